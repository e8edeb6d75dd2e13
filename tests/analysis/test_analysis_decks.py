"""The analyzer against the figures of the lecture decks: AlexNet's and VGG16's tables, receptive
fields of stacked convolutions, and the cost comparisons (small vs large filters, Inception's
1x1 reduction, depthwise separable convolution, fully vs locally connected layers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.analysis import analyze
from cnnkit.layers.local import LocallyConnected2d
from cnnkit.models import create


def _meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create(name, **options)


def _rows(report, type_name: str) -> list:
    return [r for r in report.layers if r.type == type_name]


# ---------------------------------------------------------------------------- AlexNet
def test_alexnet_table() -> None:
    report = analyze(_meta("alexnet_paper"), (3, 227, 227))
    convs, pools = _rows(report, "Conv2d"), _rows(report, "MaxPool2d")
    conv1 = convs[0]
    assert conv1.output_shape == [1, 96, 55, 55]  # (227 - 11) / 4 + 1 = 55
    assert (conv1.weight_params, conv1.bias_params) == (34_848, 96)  # (3 * 11 * 11) * 96
    assert pools[0].output_shape == [1, 96, 27, 27] and pools[0].params == 0
    assert [c.output_shape[1:] for c in convs] == [
        [96, 55, 55], [256, 27, 27], [384, 13, 13], [384, 13, 13], [256, 13, 13]]
    assert [p.output_shape[1:] for p in pools] == [[96, 27, 27], [256, 13, 13], [256, 6, 6]]
    assert [r.output_shape for r in _rows(report, "Linear")] == [[1, 4096], [1, 4096], [1, 1000]]
    assert report.totals["params"] == 60_965_224
    assert analyze(_meta("alexnet_paper", groups=1), (3, 227, 227)).totals["params"] == 62_378_344


def test_alexnet_receptive_fields() -> None:
    report = analyze(_meta("alexnet_paper"), (3, 227, 227))
    convs, pools = _rows(report, "Conv2d"), _rows(report, "MaxPool2d")
    assert [(c.rf["size"], c.rf["jump"]) for c in convs] == [
        (11, 4), (51, 8), (99, 16), (131, 16), (163, 16)]
    assert [(p.rf["size"], p.rf["jump"]) for p in pools] == [(19, 8), (67, 16), (195, 32)]


# ---------------------------------------------------------------------------- VGG16
VGG16_CONV_ELEMENTS = [3_211_264] * 2 + [1_605_632] * 2 + [802_816] * 3 + [401_408] * 3 \
    + [100_352] * 3
VGG16_CONV_WEIGHTS = [1_728, 36_864, 73_728, 147_456, 294_912, 589_824, 589_824, 1_179_648,
                      2_359_296, 2_359_296, 2_359_296, 2_359_296, 2_359_296]
VGG16_POOL_ELEMENTS = [802_816, 401_408, 200_704, 100_352, 25_088]
VGG16_FC = [(4_096, 102_760_448), (4_096, 16_777_216), (1_000, 4_096_000)]


@pytest.fixture(scope="module")
def vgg16_report():
    return analyze(_meta("vgg16"), (3, 224, 224), name="vgg16")


def test_vgg16_table(vgg16_report) -> None:
    convs = _rows(vgg16_report, "Conv2d")
    assert [c.activations for c in convs] == VGG16_CONV_ELEMENTS
    assert [c.weight_params for c in convs] == VGG16_CONV_WEIGHTS
    assert [p.activations for p in _rows(vgg16_report, "MaxPool2d")] == VGG16_POOL_ELEMENTS
    assert [p.output_shape for p in _rows(vgg16_report, "MaxPool2d")][0] == [1, 64, 112, 112]
    fcs = _rows(vgg16_report, "Linear")
    assert [(f.activations, f.weight_params) for f in fcs] == VGG16_FC
    assert vgg16_report.totals["params"] == 138_357_544


def test_vgg16_memory_matches_the_sum_of_the_decks_rows(vgg16_report) -> None:
    totals = vgg16_report.totals
    assert totals["input_elements"] == 150_528
    # in-place ReLUs, eval Dropout and the flatten view add nothing ...
    for row in vgg16_report.layers:
        if row.type in ("ReLU", "Dropout", "flatten"):
            assert row.activations == 0, row.name
    # ... but torchvision's AdaptiveAvgPool2d((7, 7)) writes a new 7x7x512 map
    (avgpool,) = _rows(vgg16_report, "AdaptiveAvgPool2d")
    assert avgpool.activations == 25_088
    assert totals["activations"] == 15_112_168
    assert totals["activations"] + totals["input_elements"] == 15_262_696
    # the decks' rows (input included) sum to 15,237,608 elements, not "24M"
    assert totals["activations"] + totals["input_elements"] - avgpool.activations == 15_237_608
    assert totals["activation_bytes"] == 4 * 15_112_168


def test_vgg16_receptive_fields(vgg16_report) -> None:
    convs = _rows(vgg16_report, "Conv2d")
    assert [c.rf["size"] for c in convs] == [3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    assert convs[-1].rf["jump"] == 16  # conv5_3
    pool5 = _rows(vgg16_report, "MaxPool2d")[-1]
    assert (pool5.rf["size"], pool5.rf["jump"]) == (212, 32)


# ---------------------------------------------------------------------------- costs
def _conv_stack(channels: int, kernels: list[int]) -> nn.Sequential:
    return nn.Sequential(*(nn.Conv2d(channels, channels, k, padding=k // 2, bias=False)
                           for k in kernels))


@pytest.mark.parametrize("kernels, per_c2", [([5], 25), ([3, 3], 18), ([7], 49), ([3, 3, 3], 27)])
def test_small_filters_cost_less(kernels: list[int], per_c2: int) -> None:
    c, h, w = 16, 12, 10
    report = analyze(_conv_stack(c, kernels), (c, h, w))
    assert report.totals["params"] == per_c2 * c * c
    assert report.totals["macs"] == per_c2 * c * c * h * w
    assert report.totals["rf"]["size"] == 1 + sum(k - 1 for k in kernels)


def test_inception_1x1_reduction() -> None:
    direct = analyze(nn.Conv2d(200, 92, 5, padding=2), (200, 32, 32))
    assert direct.totals["macs"] == 471_040_000
    reduced = analyze(nn.Sequential(nn.Conv2d(200, 16, 1), nn.Conv2d(16, 92, 5, padding=2)),
                      (200, 32, 32))
    assert [r.macs for r in reduced.layers] == [3_276_800, 37_683_200]


def test_depthwise_separable_multiplications() -> None:
    standard = analyze(nn.Conv2d(3, 256, 5), (3, 12, 12))
    assert standard.layers[0].output_shape == [1, 256, 8, 8]
    assert standard.totals["macs"] == 1_228_800
    separable = analyze(nn.Sequential(nn.Conv2d(3, 3, 5, groups=3), nn.Conv2d(3, 256, 1)),
                        (3, 12, 12))
    assert [r.macs for r in separable.layers] == [4_800, 49_152]


def test_fully_vs_locally_connected() -> None:
    with torch.device("meta"):
        fc = nn.Linear(40_000, 40_000, bias=False)
        local = LocallyConnected2d(1, 1, 200, 10, padding="same", bias=False)
    assert analyze(fc, (40_000,)).totals["weight_params"] == 1_600_000_000
    report = analyze(local, (1, 200, 200))
    assert report.layers[0].output_shape == [1, 1, 200, 200]  # 40K hidden units
    assert report.totals["weight_params"] == 4_000_000
    assert report.totals["macs"] == 4_000_000
    assert report.layers[0].rf == {"size": 10, "jump": 1, "start": 0.5}
