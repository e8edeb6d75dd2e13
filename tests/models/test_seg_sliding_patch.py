"""Sliding-window dense prediction (one patch classification per pixel) against the same
classifier made fully convolutional: identical outputs, and multiply-adds counted by hand.

LeNet-5 on a 32x32 window: C1 28*28*6*25 = 117,600; C3 10*10*16*6*25 = 240,000; C5
120*16*25 = 48,000; F6 120*84 = 10,080; output 84*10 = 840; 416,520 per window. On an 8x8 image
(zero padded to 39x39) the sliding window runs it 64 times; the dense FCN computes C1 once per
position of the padded image (35x35), C3 with dilation 2 on 26x26 positions, C5 with dilation 4
and the 1x1 convolutions that were F6 and the output on the 8x8 output positions."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from cnnkit.analysis import analyze
from cnnkit.errors import ArgumentError
from cnnkit.models import create, get_info
from cnnkit.models.segmentation.sliding import (PatchClassifier, convolutionalize,
                                                sliding_vs_fcn_cost)

WINDOW = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25 + 120 * 16 * 25 + 120 * 84 + 84 * 10
SLIDING = 64 * WINDOW
DENSE = (35 ** 2 * 6 * 25 + 26 ** 2 * 16 * 6 * 25 + 8 ** 2 * 120 * 16 * 25
         + 8 ** 2 * 120 * 84 + 8 ** 2 * 84 * 10)
STRIDED = (35 ** 2 * 6 * 25 + 13 ** 2 * 16 * 6 * 25 + 2 ** 2 * 120 * 16 * 25
           + 2 ** 2 * 120 * 84 + 2 ** 2 * 84 * 10)


def test_macs_by_hand() -> None:
    assert WINDOW == 416_520 and SLIDING == 26_657_280
    assert DENSE == 5_577_030 and STRIDED == 825_030
    cost = sliding_vs_fcn_cost(create("lenet5_relu"), 32, (1, 8, 8))
    assert (cost["sliding"], cost["fcn_dense"], cost["fcn_strided"]) == (SLIDING, DENSE, STRIDED)
    assert cost["stride"] == 4
    assert Fraction(cost["sliding"], cost["fcn_dense"]) == Fraction(26_657_280, 5_577_030)
    assert cost["dense_ratio"] == pytest.approx(4.7798344, rel=1e-7)
    # the saving grows with the image: at 64x64 the window work is 6.6 times the FCN's
    big = sliding_vs_fcn_cost(create("lenet5_relu"), 32, (1, 64, 64))
    assert big["sliding"] == 64 * 64 * WINDOW and big["dense_ratio"] > 6.5


def test_patch_classifier_classifies_the_window_of_every_pixel() -> None:
    torch.manual_seed(0)
    classifier = create("lenet5_relu", num_classes=3).double().eval()
    model = PatchClassifier(classifier, patch=32, chunk=50).eval()
    x = torch.randn(2, 1, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        assert tuple(out.shape) == (2, 3, 9, 11)
        padded = nn.functional.pad(x, (16, 15, 16, 15))
        for i, j in [(0, 0), (4, 7), (8, 10), (3, 0)]:  # window rows i-16 .. i+15
            assert torch.allclose(out[..., i, j], classifier(padded[..., i:i + 32, j:j + 32]),
                                  atol=1e-12)
        whole = PatchClassifier(classifier, patch=32, chunk=10_000)(x)
    assert torch.allclose(out, whole, atol=1e-12)


@pytest.mark.parametrize("name, patch", [("lenet5_relu", 32), ("lenet5", 33),
                                         ("lenet5_relu", 35)])
def test_fully_convolutional_copy_gives_the_same_map(name: str, patch: int) -> None:
    torch.manual_seed(0)
    classifier = create(name, num_classes=4).double().eval()
    x = torch.randn(2, 1, 13, 10, dtype=torch.float64)
    with torch.no_grad():
        sliding = PatchClassifier(classifier, patch=patch, chunk=64)(x)
        dense = convolutionalize(classifier, patch)(x)
        strided_model = convolutionalize(classifier, patch, dense=False)
        strided = strided_model(x)
    assert torch.allclose(dense, sliding, atol=1e-12)
    assert strided_model.stride == 4 and tuple(strided.shape) == (2, 4, 4, 3)
    assert torch.allclose(strided, sliding[..., ::4, ::4], atol=1e-12)


def test_global_pooling_classifier_converts() -> None:
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3),
                               nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(5, 3)).double().eval()
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        sliding = PatchClassifier(classifier, patch=12, num_classes=3, in_channels=2)(x)
        assert torch.allclose(convolutionalize(classifier, 12)(x), sliding, atol=1e-12)


def test_registered_patch_model_and_errors() -> None:
    info = get_info("patch_lenet5")
    model = create("patch_lenet5")
    assert sum(p.numel() for p in model.parameters()) == info.num_params == 61_026
    assert info.num_params == get_info("lenet5_relu").num_params - 84 * 8 - 8  # 2 classes
    assert analyze(model, (1, 16, 16)).totals["macs"] == 16 * 16 * (WINDOW - 84 * 8)
    with pytest.raises(ArgumentError, match="unpadded convolutions .* layer 'features.0' has "
                                            "padding"):
        convolutionalize(create("vgg_small_s"), 32)
    with pytest.raises(ArgumentError, match=r"cannot convert layer '1' \(Upsample\)"):
        convolutionalize(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)), 8)
    with pytest.raises(ArgumentError, match="patch must be an integer >= 1"):
        PatchClassifier("lenet5_relu", patch=0)
    with pytest.raises(ArgumentError, match="B x classes logits"):
        PatchClassifier(nn.Conv2d(1, 2, 3), patch=5, num_classes=2)(torch.randn(1, 1, 4, 4))
