"""CIFAR ResNets (He et al. 2016, section 4.2) and Wide ResNets (Zagoruyko & Komodakis 2016).

Counts are from building the models (10 classes); they round to the papers' figures: ResNet
Table 6 (0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M, option A) and WRN (36.5M WRN-28-10, 8.9M
WRN-40-4, 11.0M WRN-16-8). Option B adds one 1x1 projection + BN at each of the two
downsampling blocks: 16*32 + 2*32 + 32*64 + 2*64 = 2,752 parameters at every depth.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers.residual import BasicBlock, WideBasicBlock, ZeroPadShortcut, make_shortcut
from cnnkit.models.classification.resnet_cifar import resnet_cifar, wide_resnet
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info

OPTION_A = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962,
            1202: 19_421_274}
OPTION_B = {20: 272_474, 32: 466_906, 44: 661_338, 56: 855_770, 110: 1_730_714,
            1202: 19_424_026}
PAPER_TABLE6_MILLIONS = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7", 1202: "19.4"}
WRN = {"wrn28_10": (36_479_194, "36.5"), "wrn40_4": (8_949_210, "8.9"),
       "wrn16_8": (10_961_370, "11.0")}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", sorted(OPTION_A))
def test_cifar_resnet_counts(depth: int) -> None:
    with torch.device("meta"):
        option_a = create(f"resnet{depth}_cifar")
        option_b = resnet_cifar(depth, shortcut="B")
    assert count(option_a) == OPTION_A[depth] == get_info(f"resnet{depth}_cifar").num_params
    assert count(option_b) == OPTION_B[depth] == OPTION_A[depth] + 2_752
    digits = len(PAPER_TABLE6_MILLIONS[depth].split(".")[1])
    assert f"{OPTION_A[depth] / 1e6:.{digits}f}" == PAPER_TABLE6_MILLIONS[depth]
    assert len(option_a.layer1) == len(option_a.layer3) == (depth - 2) // 6


@pytest.mark.parametrize("name", sorted(WRN))
def test_wide_resnet_counts(name: str) -> None:
    expected, paper = WRN[name]
    with torch.device("meta"):
        model = create(name)
    assert count(model) == expected == get_info(name).num_params
    assert f"{expected / 1e6:.1f}" == paper
    assert model.num_classes == 10
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_option_a_shortcut_is_parameter_free_zero_padding() -> None:
    shortcut = make_shortcut("A", 16, 32, 2)
    assert isinstance(shortcut, ZeroPadShortcut) and count(shortcut) == 0
    assert make_shortcut("A", 16, 16, 1) is None
    x = torch.relu(torch.randn(2, 16, 8, 8))
    expected = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 4, 4)], dim=1)
    assert torch.equal(shortcut(x), expected)
    # a downsampling block whose residual branch is zeroed outputs relu(shortcut(x))
    block = BasicBlock(16, 32, 2, shortcut)
    block.zero_init_last()
    with torch.no_grad():
        assert torch.equal(block.eval()(x), F.relu(expected))
    model = create("resnet20_cifar")
    assert not [n for n, _ in model.named_parameters() if "downsample" in n]
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        make_shortcut("C", 16, 32, 2)


def test_option_b_projection_keys() -> None:
    state = resnet_cifar(20, shortcut="B").state_dict()
    assert tuple(state["layer2.0.downsample.0.weight"].shape) == (32, 16, 1, 1)
    assert tuple(state["layer3.0.downsample.1.weight"].shape) == (64,)
    assert "layer1.0.downsample.0.weight" not in state


def test_resnet20_forward_backward_and_features() -> None:
    model = create("resnet20_cifar")
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert torch.isfinite(model.conv1.weight.grad).all()
    extractor = FeatureExtractor(model.eval())
    assert extractor.strides == [1, 2, 4] and extractor.channels == [16, 32, 64]
    assert [tuple(m.shape) for m in extractor(x)] == [(2, 16, 32, 32), (2, 32, 16, 16),
                                                      (2, 64, 8, 8)]
    groups = model.param_groups()
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))


def test_cifar_zero_init_residual() -> None:
    model = create("resnet32_cifar", zero_init_residual=True).eval()
    block = model.layer2[3]
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


def test_wide_resnet_blocks_are_pre_activation() -> None:
    model = wide_resnet(10, 2)
    first = model.layer1[0]
    assert isinstance(first, WideBasicBlock)
    assert first.bn1.num_features == 16  # BN before the first convolution (pre-activation)
    assert tuple(first.shortcut.weight.shape) == (32, 16, 1, 1)
    assert tuple(model.layer3[0].shortcut.weight.shape) == (128, 64, 1, 1)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert (first.eval()(x) < 0).any()  # no ReLU after the addition
    assert [n for n in dict(model.named_children())] == ["conv1", "layer1", "layer2", "layer3",
                                                         "bn", "relu", "avgpool", "fc"]


def test_wide_resnet_forward_features_and_dropout() -> None:
    model = wide_resnet(16, 2, dropout=0.3, num_classes=5, in_channels=1)
    assert isinstance(model.layer2[1].dropout, nn.Dropout) and model.layer2[1].dropout.p == 0.3
    x = torch.randn(2, 1, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert torch.isfinite(model.conv1.weight.grad).all()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        maps = FeatureExtractor(model)(x)
    assert [tuple(m.shape) for m in maps] == [(2, 32, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8)]
    assert bool((maps[-1] >= 0).all())  # last map is after the final BN-ReLU
    groups = model.param_groups()
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    model.reset_classifier(3)
    assert model.num_classes == 3


def test_bad_depths_and_options() -> None:
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet_cifar(21)
    with pytest.raises(ValueError, match="6n\\+4"):
        wide_resnet(27, 10)
    with pytest.raises(ValueError, match="dropout"):
        wide_resnet(16, 1, dropout=1.0)
    with pytest.raises(ValueError, match="widen_factor"):
        wide_resnet(16, 0)
