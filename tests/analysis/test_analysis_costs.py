"""MACs/FLOPs conventions on hand-computed cases, the activation (in-place) rule, functional
rows, meta == cpu, and the locally connected layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.analysis import analyze
from cnnkit.layers.local import LocallyConnected2d


def _row(module: nn.Module, size: tuple[int, ...], batch: int = 1):
    (row,) = analyze(module, size, batch_size=batch).layers
    return row


# name, module, input size, batch, (MACs, FLOPs), output shape
CASES = [
    # 100 input positions x (6 outputs x 3 x 3 taps)
    ("transposed", nn.ConvTranspose2d(4, 6, 3, stride=2), (4, 5, 5), 1, (5_400, 10_800),
     [1, 6, 11, 11]),
    # 432 outputs x (8 / 4 groups x 3 x 3)
    ("grouped", nn.Conv2d(8, 12, 3, padding=1, groups=4), (8, 6, 6), 1, (7_776, 15_552),
     [1, 12, 6, 6]),
    ("depthwise", nn.Conv2d(6, 6, 3, groups=6), (6, 7, 7), 1, (1_350, 2_700), [1, 6, 5, 5]),
    ("dilated", nn.Conv2d(2, 3, 3, dilation=2), (2, 9, 9), 1, (1_350, 2_700), [1, 3, 5, 5]),
    # 2 x 3 rows x 10 x 7
    ("linear", nn.Linear(10, 7), (3, 10), 2, (420, 840), [2, 3, 7]),
    ("batchnorm", nn.BatchNorm2d(4), (4, 5, 5), 2, (0, 400), [2, 4, 5, 5]),
    ("maxpool", nn.MaxPool2d(3, 2), (2, 9, 9), 1, (0, 256), [1, 2, 4, 4]),  # 32 x 8 comparisons
    ("avgpool", nn.AvgPool2d(2), (2, 8, 8), 1, (0, 128), [1, 2, 4, 4]),
    ("global-avg", nn.AdaptiveAvgPool2d(1), (3, 5, 5), 1, (0, 75), [1, 3, 1, 1]),
    # windows [0, 3) and [2, 5) per dimension: 36 elements for 4 outputs
    ("adaptive-avg", nn.AdaptiveAvgPool2d(2), (1, 5, 5), 1, (0, 36), [1, 1, 2, 2]),
    ("adaptive-max", nn.AdaptiveMaxPool2d(2), (1, 5, 5), 1, (0, 32), [1, 1, 2, 2]),
    ("relu", nn.ReLU(), (3, 4, 4), 1, (0, 48), [1, 3, 4, 4]),
    ("lrn", nn.LocalResponseNorm(5), (8, 3, 3), 1, (0, 936), [1, 8, 3, 3]),  # (2*5+3) x 72
    ("bilinear", nn.Upsample(scale_factor=2, mode="bilinear"), (1, 4, 4), 1, (0, 512),
     [1, 1, 8, 8]),
    ("nearest", nn.Upsample(scale_factor=2), (1, 4, 4), 1, (0, 0), [1, 1, 8, 8]),
]


@pytest.mark.parametrize("name, module, size, batch, cost, shape", CASES,
                         ids=[c[0] for c in CASES])
def test_layer_costs(name, module, size, batch, cost, shape) -> None:
    row = _row(module, size, batch)
    assert (row.macs, row.flops) == cost
    assert row.output_shape == shape


def test_params_split() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1, bias=False))
    model[0].requires_grad_(False)
    rows = analyze(model, (3, 8, 8)).layers
    assert [(r.weight_params, r.bias_params) for r in rows] == [(108, 4), (4, 4), (8, 0)]
    assert [(r.trainable_params, r.frozen_params) for r in rows] == [(0, 112), (8, 0), (8, 0)]


def test_activation_rule_in_place_and_views() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.ReLU(), nn.Identity(),
                          nn.Flatten(), nn.Dropout(), nn.Linear(72, 5))
    rows = analyze(model, (1, 8, 8), batch_size=2).layers
    assert [r.activations for r in rows] == [144, 0, 144, 0, 0, 0, 10]
    assert [r.bytes for r in rows] == [576, 0, 576, 0, 0, 0, 40]


class Functional(nn.Module):
    """Ops called in forward, not through modules."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x))
        y = y + x
        y = torch.add(y, x)
        y += x
        y = y * 0.5  # one activation: no row
        z = torch.cat([y, F.interpolate(F.max_pool2d(y, 2), scale_factor=2)], 1)
        return torch.flatten(z, 1)


def test_functional_ops_are_rows() -> None:
    model = nn.Sequential(Functional())
    rows = analyze(model, (2, 8, 8)).layers
    assert [(r.name, r.type) for r in rows] == [
        ("0.conv", "Conv2d"), ("0.relu", "relu"), ("0.add", "add"), ("0.add#2", "add"),
        ("0.add#3", "add"), ("0.max_pool2d", "max_pool2d"), ("0.interpolate", "interpolate"),
        ("0.cat", "cat"), ("0.flatten", "flatten")]
    add, add3 = rows[2], rows[4]
    assert (add.flops, add.activations) == (128, 128)
    assert (add3.flops, add3.activations) == (128, 0)  # y += x is in place
    assert rows[5].flops == 3 * 32  # 2x2 max: 3 comparisons per output
    assert rows[0].depth == 2 and rows[2].depth == 2  # ops count one level below "0"
    # the model itself is a container unless it is a known layer type
    assert [r.name for r in analyze(Functional(), (2, 8, 8)).layers][:3] == ["conv", "relu", "add"]
    assert [r.name for r in analyze(nn.Conv2d(2, 2, 3), (2, 8, 8)).layers] == ["Conv2d"]


class StandardizedConv(nn.Module):
    """A leaf module of its own: costed and traced through the functions it calls."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 2, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight - self.weight.mean()
        return F.conv2d(x, w, stride=2, padding=1)


def test_custom_leaf_module_is_costed_through_its_ops() -> None:
    row = _row(nn.Sequential(StandardizedConv()), (2, 8, 8))
    assert (row.params, row.macs) == (72, 16 * 4 * 18)
    assert row.rf == {"size": 3, "jump": 2, "start": 0}

    class Cumulative(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.cumsum(1)

    report = analyze(nn.Sequential(Cumulative()), (2, 4, 4))
    assert report.totals["uncounted_types"] == ["Cumulative"]


def _small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.Conv2d(8, 8, 3, padding=1), nn.MaxPool2d(2),
                         nn.Upsample(scale_factor=2, mode="bilinear"), nn.AdaptiveAvgPool2d(3),
                         nn.Flatten(), nn.Linear(72, 4))


@pytest.mark.parametrize("build", [_small_net, lambda: nn.Sequential(Functional())])
def test_meta_and_cpu_agree(build) -> None:
    model = build()
    size = (3, 16, 16) if isinstance(model[0], nn.Conv2d) else (2, 8, 8)
    on_meta = analyze(model, size, batch_size=2).to_dict()
    on_cpu = analyze(model, size, batch_size=2, device="cpu").to_dict()
    assert on_meta.pop("device") == "meta" and on_cpu.pop("device") == "cpu"
    assert on_meta == on_cpu


def test_locally_connected_layer() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1)
    local = LocallyConnected2d(2, 3, (5, 6), 3, padding=1)
    with torch.no_grad():  # the same filter at every position gives the convolution
        local.weight.copy_(conv.weight.reshape(3, -1).expand(5, 6, 3, 18))
        local.bias.copy_(conv.bias[:, None, None].expand(3, 5, 6))
    x = torch.randn(2, 2, 5, 6)
    torch.testing.assert_close(local(x), conv(x))
    assert local.weight.numel() == 5 * 6 * conv.weight.numel()
    row = _row(local, (2, 5, 6))
    assert (row.macs, row.weight_params, row.bias_params) == (5 * 6 * 3 * 18, 1_620, 90)
