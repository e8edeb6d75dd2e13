"""MobileNet v1/v2 and their blocks: separable cost, counts, mult-adds, torchvision layout, skips.

Counts of mobilenet_v2 are torchvision's published figure (3,504,872, ``num_params`` in its weights
metadata); mobilenet_v1's come from building (4,231,976 at alpha 1.0; the paper's Table 6 says
4.2M, 2.6M, 1.3M, 0.5M for alpha 1.0, 0.75, 0.5, 0.25). Mult-adds count every convolution and
linear layer (output elements x inputs per output); the papers' figures are quoted next to them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.zoo import count, mult_adds, on_meta

from cnnkit.errors import CnnkitError
from cnnkit.layers.separable import DepthwiseSeparableConv, InvertedResidual, make_divisible
from cnnkit.models.classification.mobilenet_v1 import mobilenet_v1
from cnnkit.models.classification.mobilenet_v2 import mobilenet_v2
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info


# --- the blocks ---------------------------------------------------------------------------------

def test_depthwise_separable_cost_matches_the_deck() -> None:
    # Deck: 12x12x3 input, 5x5 filters, 256 outputs, 8x8 output positions.
    block = DepthwiseSeparableConv(3, 256, kernel_size=5, padding=0)
    assert block.depthwise[0].weight.numel() == 5 * 5 * 3 == 75
    assert block.pointwise[0].weight.numel() == 3 * 256 == 768
    assert nn.Conv2d(3, 256, 5, bias=False).weight.numel() == 19_200  # the standard conv
    assert count(block) == 75 + 768 + 2 * 3 + 2 * 256  # plus the two BNs' gamma and beta
    assert mult_adds(block.depthwise, 12) == 5 * 5 * 3 * 8 * 8 == 4_800
    assert mult_adds(block.pointwise, 8) == 256 * 3 * 8 * 8 == 49_152
    assert mult_adds(nn.Conv2d(3, 256, 5, device="meta"), 12) == 1_228_800
    assert tuple(block(torch.randn(1, 3, 12, 12)).shape) == (1, 256, 8, 8)


def test_inverted_residual_skips_only_at_stride_1_with_equal_channels() -> None:
    assert InvertedResidual(16, 16, 1, 6).use_residual
    assert not InvertedResidual(16, 24, 1, 6).use_residual
    assert not InvertedResidual(16, 16, 2, 6).use_residual
    assert len(InvertedResidual(32, 16, 1, 1).conv) == 3  # t = 1: no expansion layer
    expanded = InvertedResidual(16, 16, 1, 6)
    assert expanded.conv[0][0].out_channels == 96 and expanded.conv[1][0].groups == 96
    # zero_init_last zeroes the projection's BN gamma of residual blocks only; the residual
    # block then passes its input through unchanged, the strided one outputs zeros.
    strided = InvertedResidual(16, 16, 2, 6)
    expanded.zero_init_last()
    strided.zero_init_last()
    assert not expanded.conv[-1].weight.any() and strided.conv[-1].weight.all()
    nn.init.zeros_(strided.conv[-1].weight)
    x = torch.randn(2, 16, 5, 5)
    assert torch.equal(expanded.eval()(x), x)
    assert not strided.eval()(x).any()


def test_make_divisible_rounds_like_torchvision() -> None:
    assert make_divisible(32 * 0.35) == 16  # 8 would lose more than 10%
    assert make_divisible(24 * 0.75) == 24  # 16 would lose more than 10%
    assert make_divisible(96 * 0.5) == 48 and make_divisible(1280 * 1.4) == 1792
    assert make_divisible(3) == 8  # never below the divisor


# --- MobileNet v1 -------------------------------------------------------------------------------

V1 = {  # alpha: (name, parameters built, mult-adds at 224 built, the paper's Table 6 figures)
    1.0: ("mobilenet_v1", 4_231_976, 568_740_352, 4.2, 569),
    0.75: ("mobilenet_v1_075", 2_585_560, 325_400_448, 2.6, 325),
    0.5: ("mobilenet_v1_050", 1_331_592, 149_497_088, 1.3, 149),
    0.25: ("mobilenet_v1_025", 470_072, 41_030_272, 0.5, 41),
}


@pytest.mark.parametrize("alpha", V1)
def test_mobilenet_v1_counts_and_mult_adds(alpha: float) -> None:
    name, params, macs, paper_m_params, paper_m_macs = V1[alpha]
    model = on_meta(mobilenet_v1, alpha=alpha)
    assert count(model) == params == get_info(name).num_params
    assert round(params / 1e6, 1) == paper_m_params
    assert mult_adds(model, 224) == macs
    assert round(macs / 1e6) == paper_m_macs


def test_mobilenet_v1_resolution_multiplier() -> None:
    model = on_meta(mobilenet_v1)
    built = [mult_adds(model, size) for size in (192, 160, 128)]
    assert built == [418_121_728, 290_675_200, 186_400_768]  # paper Table 7: 418M, 290M, 186M
    assert count(model) == 4_231_976  # the resolution changes no parameter


def test_mobilenet_v1_has_thirteen_separable_layers_and_width_scales_channels() -> None:
    full, half = on_meta(mobilenet_v1), on_meta(mobilenet_v1, alpha=0.5)
    assert sum(isinstance(m, DepthwiseSeparableConv) for m in full.modules()) == 13
    assert [s.channels for s in full.feature_specs] == [64, 128, 256, 512, 1024]
    assert [s.channels for s in half.feature_specs] == [32, 64, 128, 256, 512]
    assert full.stem[0].out_channels == 32 and half.stem[0].out_channels == 16
    assert [s.module for s in full.feature_specs] == [
        "blocks.0", "blocks.2", "blocks.4", "blocks.10", "blocks.12"]


def test_mobilenet_v1_forward_backward_and_features() -> None:
    model = create("mobilenet_v1_025", num_classes=4, in_channels=1).train()
    backbone = FeatureExtractor(model)
    feats = backbone(torch.randn(2, 1, 64, 64))
    assert [tuple(f.shape) for f in feats] == [
        (2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2)]
    logits = model(torch.randn(2, 1, 64, 64))
    assert tuple(logits.shape) == (2, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


# --- MobileNet v2 -------------------------------------------------------------------------------

def test_mobilenet_v2_matches_torchvision_layout() -> None:
    model = on_meta(mobilenet_v2)
    info = get_info("mobilenet_v2")
    assert count(model) == 3_504_872 == info.num_params and info.reference == "torchvision"
    state = model.state_dict()
    assert len(state) == 314
    expected = {
        "features.0.0.weight": (32, 3, 3, 3), "features.0.1.running_var": (32,),
        "features.1.conv.0.0.weight": (32, 1, 3, 3), "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.2.conv.0.0.weight": (96, 16, 1, 1), "features.2.conv.1.0.weight": (96, 1, 3, 3),
        "features.2.conv.2.weight": (24, 96, 1, 1), "features.2.conv.3.weight": (24,),
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.0.weight": (1280, 320, 1, 1), "features.18.1.bias": (1280,),
        "classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.2
    assert sum(m.use_residual for m in model.modules() if isinstance(m, InvertedResidual)) == 10


def test_mobilenet_v2_mult_adds_and_features() -> None:
    model = on_meta(mobilenet_v2)
    assert mult_adds(model, 224) == 300_774_272  # the paper's Table 4: 300M
    assert [(s.module, s.stride, s.channels) for s in model.feature_specs] == [
        ("features.1", 2, 16), ("features.3", 4, 24), ("features.6", 8, 32),
        ("features.13", 16, 96), ("features.18", 32, 1280)]


def test_mobilenet_v2_width_multiplier() -> None:
    slim, wide = on_meta(mobilenet_v2, width_mult=0.5), on_meta(mobilenet_v2, width_mult=1.4)
    assert [s.channels for s in slim.feature_specs] == [8, 16, 16, 48, 1280]  # last stays 1280
    assert [s.channels for s in wide.feature_specs] == [24, 32, 48, 136, 1792]
    assert count(slim) == 1_968_680 and count(wide) == 6_108_776


def test_mobilenet_v2_forward_backward_features_and_init() -> None:
    model = create("mobilenet_v2", num_classes=3).train()
    head = model.classifier[1]
    assert 0.009 < head.weight.std().item() < 0.011 and not head.bias.any()
    conv = model.features[18][0]  # He, fan_out = 1280: std sqrt(2 / 1280) = 0.0395
    assert 0.037 < conv.weight.std().item() < 0.042
    feats = FeatureExtractor(model)(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (16, 32, 32), (24, 16, 16), (32, 8, 8), (96, 4, 4), (1280, 2, 2)]
    logits = model(torch.randn(2, 3, 64, 64))
    assert tuple(logits.shape) == (2, 3)
    logits.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_widths_are_rejected() -> None:
    with pytest.raises(CnnkitError, match="alpha"):
        mobilenet_v1(alpha=0)
    with pytest.raises(CnnkitError, match="width_mult"):
        mobilenet_v2(width_mult=-1.0)
    with pytest.raises(CnnkitError, match="num_classes"):
        mobilenet_v2(num_classes=0)
