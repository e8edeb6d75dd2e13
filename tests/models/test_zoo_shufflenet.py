"""ShuffleNet v1/v2: channel shuffle, torchvision layout and counts, the v1 group table, mult-adds.

v2 counts are torchvision's published figures (``num_params`` in the weights metadata of
torchvision/models/shufflenetv2.py) and its ``_ops`` (GFLOPS = multiply-adds) are compared with
what we count. v1 counts come from building (g=3, 1x: 1,865,728, the 1.87M reported by
mmpretrain); its mult-adds are compared with the paper's Table 1 (143, 140, 137, 133, 137
MFLOPs for g = 1, 2, 3, 4, 8) and the authors' released 0.5x/1.5x/2x models (38M, 292M, 524M).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.zoo import count, mult_adds, on_meta

from cnnkit.errors import CnnkitError
from cnnkit.layers.separable import ChannelShuffle, channel_shuffle
from cnnkit.models.classification.shufflenet import shufflenet_v1, shufflenet_v2
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info


# --- channel shuffle ----------------------------------------------------------------------------

def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]  # a0 b0 a1 b1 a2 b2
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]  # a0 b0 c0 a1 b1 c1
    assert channel_shuffle(x, 1).flatten().tolist() == [0, 1, 2, 3, 4, 5]
    y = torch.randn(2, 12, 3, 3)
    shuffled = ChannelShuffle(3)(y)
    assert sorted(shuffled.sum((0, 2, 3)).tolist()) == sorted(y.sum((0, 2, 3)).tolist())
    assert torch.equal(channel_shuffle(shuffled, 4), y)  # (3 x 4) transposed back is (4 x 3)
    with pytest.raises(CnnkitError, match="divide"):
        channel_shuffle(y, 5)


# --- ShuffleNet v2 ------------------------------------------------------------------------------

V2 = {  # torchvision: (num_params, _ops in GFLOPS)
    "shufflenet_v2_x0_5": (1_366_792, 0.04), "shufflenet_v2_x1_0": (2_278_604, 0.145),
    "shufflenet_v2_x1_5": (3_503_624, 0.296), "shufflenet_v2_x2_0": (7_393_996, 0.583),
}


@pytest.mark.parametrize("name", V2)
def test_v2_counts_and_mult_adds_match_torchvision(name: str) -> None:
    params, gflops = V2[name]
    info = get_info(name)
    with torch.device("meta"):
        model = create(name).eval()
    assert count(model) == params == info.num_params and info.reference == "torchvision"
    assert round(mult_adds(model, 224) / 1e9, 3) == gflops
    assert len(model.state_dict()) == 338


def test_v2_torchvision_layout() -> None:
    state = on_meta(shufflenet_v2).state_dict()
    expected = {
        "conv1.0.weight": (24, 3, 3, 3), "conv1.1.weight": (24,),
        "stage2.0.branch1.0.weight": (24, 1, 3, 3), "stage2.0.branch1.1.weight": (24,),
        "stage2.0.branch1.2.weight": (58, 24, 1, 1), "stage2.0.branch1.3.running_mean": (58,),
        "stage2.0.branch2.0.weight": (58, 24, 1, 1), "stage2.0.branch2.3.weight": (58, 1, 3, 3),
        "stage2.0.branch2.5.weight": (58, 58, 1, 1), "stage2.0.branch2.6.bias": (58,),
        "stage2.3.branch2.0.weight": (58, 58, 1, 1), "stage3.7.branch2.5.weight": (116, 116, 1, 1),
        "stage4.0.branch1.2.weight": (232, 232, 1, 1),
        "conv5.0.weight": (1024, 464, 1, 1), "fc.weight": (1000, 1024), "fc.bias": (1000,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert not any(k.startswith("stage2.1.branch1") for k in state)  # stride-1 units split


def test_v2_forward_backward_and_features() -> None:
    model = create("shufflenet_v2_x0_5", num_classes=3).train()
    feats = FeatureExtractor(model)(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (24, 32, 32), (24, 16, 16), (48, 8, 8), (96, 4, 4), (1024, 2, 2)]
    logits = model(torch.randn(2, 3, 64, 64))
    assert tuple(logits.shape) == (2, 3)
    logits.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert 0.009 < model.fc.weight.std().item() < 0.011


# --- ShuffleNet v1 ------------------------------------------------------------------------------

V1 = {  # groups: (stage 2, 3, 4 channels of Table 1, parameters, mult-adds at 224, Table 1 MFLOPs)
    1: ((144, 288, 576), 1_531_936, 143_078_976, 143),
    2: ((200, 400, 800), 1_733_848, 140_836_512, 140),
    3: ((240, 480, 960), 1_865_728, 137_460_672, 137),
    4: ((272, 544, 1088), 1_968_344, 134_339_776, 133),
    8: ((384, 768, 1536), 2_434_768, 138_365_952, 137),
}


@pytest.mark.parametrize("groups", V1)
def test_v1_group_table_counts_and_complexity(groups: int) -> None:
    stage_channels, params, macs, paper_mflops = V1[groups]
    model = on_meta(shufflenet_v1, groups=groups)
    assert [s.channels for s in model.feature_specs][2:] == list(stage_channels)
    assert count(model) == params == get_info(f"shufflenet_v1_g{groups}").num_params
    assert mult_adds(model, 224) == macs
    assert abs(macs / 1e6 - paper_mflops) < 1.5  # the paper rounds differently for g=4, 8


def test_v1_unit_structure() -> None:
    model = on_meta(shufflenet_v1, groups=3)
    first, second = model.stage2[0], model.stage2[1]
    assert first.reduce[0].groups == 1 and second.reduce[0].groups == 3  # stage 2 starts ungrouped
    assert model.stage3[0].reduce[0].groups == 3
    assert first.reduce[0].out_channels == 240 // 4 and first.depthwise[0].groups == 60
    assert first.expand[0].out_channels == 240 - 24  # concatenated with the pooled 24 channels
    assert isinstance(first.shortcut, nn.AvgPool2d) and second.shortcut is None
    assert [len(s) for s in (model.stage2, model.stage3, model.stage4)] == [4, 8, 4]
    assert model.conv5 is None and model.fc.in_features == 960


@pytest.mark.parametrize("width,stem,params,macs,released", [
    (0.5, 12, 718_324, 37_589_856, 38), (1.5, 24, 3_442_168, 292_443_552, 292),
    (2.0, 48, 5_450_776, 524_045_184, 524)])
def test_v1_width_multiplier_with_the_released_stems(width, stem, params, macs, released) -> None:
    model = on_meta(shufflenet_v1, groups=3, width_mult=width, stem_channels=stem)
    widths = [int(c * width) for c in (240, 480, 960)]
    assert [s.channels for s in model.feature_specs] == [stem, stem, *widths]
    assert count(model) == params
    assert mult_adds(model, 224) == macs and round(macs / 1e6) == released


def test_v1_forward_backward_and_features() -> None:
    model = create("shufflenet_v1_g8", num_classes=4, in_channels=1).train()
    feats = FeatureExtractor(model)(torch.randn(2, 1, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (24, 32, 32), (24, 16, 16), (384, 8, 8), (768, 4, 4), (1536, 2, 2)]
    logits = model(torch.randn(2, 1, 64, 64))
    assert tuple(logits.shape) == (2, 4)
    logits.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_options_are_rejected() -> None:
    with pytest.raises(CnnkitError, match="groups must be one of"):
        shufflenet_v1(groups=5)
    with pytest.raises(CnnkitError, match="2 groups must divide the bottleneck channels"):
        shufflenet_v1(groups=2, width_mult=0.5)
    with pytest.raises(CnnkitError, match="width_mult must be one of"):
        shufflenet_v2(width_mult=0.75)
