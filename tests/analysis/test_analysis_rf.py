"""Analytic receptive fields: the recurrence on small cases, and analytic == back-propagated
(empirical) regions, unit by unit, on networks with branches, dilations and upsampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.analysis import analyze, empirical_receptive_field
from cnnkit.layers.unpool import BedOfNailsUnpool, NearestUnpool


def _rf(model: nn.Module, size: tuple[int, ...]) -> dict:
    return analyze(model, size).totals["rf"]


@pytest.mark.parametrize("layers", [1, 2, 3, 5])
def test_stacked_3x3_convs(layers: int) -> None:
    model = nn.Sequential(*(nn.Conv2d(2, 2, 3, padding=1) for _ in range(layers)))
    assert _rf(model, (2, 32, 32)) == {"size": 1 + 2 * layers, "jump": 1, "start": 0}


def dilated_stack(depth: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for d in (1, 2, 4)[:depth]:
        layers += [nn.Conv2d(1, 1, 3, padding=d, dilation=d), nn.ReLU()]
    return nn.Sequential(*layers)


def test_dilations_1_2_4() -> None:
    report = analyze(dilated_stack(), (1, 40, 40))
    assert [r.rf["size"] for r in report.layers if r.type == "Conv2d"] == [3, 7, 15]


def test_strides_padding_and_rectangular_kernels() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, (7, 3), stride=2, padding=(3, 0)), nn.MaxPool2d(3, 2))
    rows = analyze(model, (1, 64, 64)).layers
    assert rows[0].rf == {"size": [7, 3], "jump": 2, "start": [0, 1]}
    assert rows[1].rf == {"size": [11, 7], "jump": 4, "start": [2, 3]}


def test_transposed_conv_and_interpolation() -> None:
    up = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.ConvTranspose2d(1, 1, 3, 2))
    row = analyze(up, (1, 32, 32)).layers[1]
    # output 2i sees inputs i - 1 and i (taps 2 and 0), output 2i + 1 only input i (tap 1)
    assert row.rf == {"size": 5, "jump": 1, "start": -1, "period": 2, "min_size": 3}


def test_branches_with_different_jumps_are_flagged() -> None:
    class TwoStrides(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3, 8, 1), nn.Conv2d(1, 1, 3, 16, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)[..., :2, :2] + self.b(x)

    report = analyze(TwoStrides(), (1, 32, 32))
    add = report.layers[-1]
    assert add.type == "add" and add.rf is None
    assert add.rf_note == "branches disagree in jump: 8 vs 16"


def test_crop_and_pad_shift_the_start() -> None:
    class Crop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.pad(F.max_pool2d(x, 2)[:, :, 3:-3, 2:], (1, 1, 0, 0))

    report = analyze(Crop(), (1, 32, 32))
    assert report.totals["rf"] == {"size": 2, "jump": 2, "start": [6.5, 2.5]}


# ------------------------------------------------------------------ analytic == empirical
class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity
        return self.relu(out)


def residual_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 7, 2, 3), nn.MaxPool2d(3, 2, 1),
                         ResBlock(8, 8, 1), ResBlock(8, 16, 2))


class Inception(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b3 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 5, padding=2))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


def inception_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), Inception(4), nn.MaxPool2d(2), Inception(16))


class UNet(nn.Module):
    """Two levels; ``up`` is "transposed" (2x2, stride 2) or an interpolation mode."""

    def __init__(self, up: str = "transposed") -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())

        self.enc1, self.enc2, self.mid = block(1, 4), block(4, 8), block(8, 16)
        self.up = up
        self.up2, self.up1 = nn.ConvTranspose2d(16, 8, 2, 2), nn.ConvTranspose2d(8, 4, 2, 2)
        self.dec2, self.dec1 = block(16, 8), block(8, 2)

    def _upsample(self, conv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
        if self.up == "transposed":
            return conv(x)
        return F.interpolate(x, scale_factor=2, mode=self.up)[:, :conv.out_channels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self._upsample(self.up2, m), e2], 1))
        return self.dec1(torch.cat([self._upsample(self.up1, d2), e1], 1))


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 1, 1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(x)
        gate = torch.sigmoid(self.fc(x.mean((2, 3))))[:, :, None, None]
        return self.c2(x * gate)


def unpooled(unpool: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, 2, 1), unpool, nn.Conv2d(2, 1, 3, padding=1))


CASES = [
    ("residual", residual_net, (1, 64, 64), [(4, 4), (3, 5)], {"size": 51, "jump": 8}),
    ("inception", inception_net, (1, 64, 64), [(8, 8), (7, 9)], {"size": 29, "jump": 4}),
    ("dilated", dilated_stack, (1, 40, 40), [(20, 20)], {"size": 15, "jump": 1}),
    ("unet", UNet, (1, 64, 64), [(32, 32), (30, 30), (31, 33)], {"size": 26, "min_size": 22}),
    ("unet-nearest", lambda: UNet("nearest"), (1, 64, 64), [(30, 30), (31, 33)],
     {"size": 26, "period": 4}),
    ("unet-bilinear", lambda: UNet("bilinear"), (1, 64, 64), [(29, 34), (32, 32)],
     {"size": 30, "jump": 1}),
    ("squeeze-excite", SqueezeExcite, (1, 32, 32), [(5, 7)], {"size": 35, "jump": 2}),
    ("bed-of-nails", lambda: unpooled(BedOfNailsUnpool(2)), (1, 32, 32), [(10, 10), (11, 12)],
     {"size": 5, "period": 2}),
    ("nearest-unpool", lambda: unpooled(NearestUnpool(2)), (1, 32, 32), [(10, 10), (11, 12)],
     {"size": 5, "period": 2}),
]


@pytest.mark.parametrize("name, build, size, units, expected", CASES, ids=[c[0] for c in CASES])
def test_analytic_equals_empirical(name, build, size, units, expected) -> None:
    model = build()
    report = analyze(model, size)
    for key, value in expected.items():
        assert report.totals["rf"][key] == value
    for unit in units:
        measured = empirical_receptive_field(model, size, output=unit)
        assert report.receptive_box(unit) == measured["box"], (name, unit)


def test_empirical_field_of_a_named_layer() -> None:
    model = residual_net()
    report = analyze(model, (1, 64, 64))
    measured = empirical_receptive_field(model, (1, 64, 64), layer="2")
    assert measured["size"] == 27 and measured["unit"] == [8, 8]
    assert report.receptive_box([8, 8], layer="2") == measured["box"] == [[19, 45], [19, 45]]


def test_empirical_field_sees_through_relu_and_max_pooling() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(1, 1, 3, padding=1))
    with torch.no_grad():
        model[0].weight.fill_(-1.0)  # a trained net could switch the ReLU off everywhere
    measured = empirical_receptive_field(model, (1, 16, 16))
    assert measured["size"] == 8 == analyze(model, (1, 16, 16)).totals["rf"]["size"]
    assert model[0].weight.eq(-1.0).all()  # the model itself is untouched
