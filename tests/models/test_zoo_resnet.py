"""ImageNet ResNet family: counts, torchvision layout, output stride, stride placement, SE, init.

Parameter counts of the torchvision-compatible variants are torchvision's published figures
(``num_params`` in the weights' metadata of torchvision/models/resnet.py, e.g. resnet50
25,557,032), reproduced here by building the models on the meta device. SE counts come from
building; seresnet50's 28,088,024 matches the 28.1M of timm's seresnet50 model card, and its
excess over ResNet-50 matches the SE paper's formula (2/r) * sum_s N_s * C_s^2 plus biases.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.layers.residual import BasicBlock, Bottleneck
from cnnkit.layers.squeeze_excite import SqueezeExcite
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info

# torchvision's published num_params (ImageNet weights metadata).
TORCHVISION_COUNTS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
}
# Built here (reduction 16, hidden width C // 16).
SE_COUNTS = {
    "seresnet18": 11_778_592, "seresnet34": 21_958_868, "seresnet50": 28_088_024,
    "seresnet101": 49_326_872, "seresnet152": 66_821_848, "seresnext50_32x4d": 27_559_896,
}


def build_meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create(name, **options)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,expected", [*TORCHVISION_COUNTS.items(), *SE_COUNTS.items()])
def test_parameter_counts(name: str, expected: int) -> None:
    info = get_info(name)
    assert count(build_meta(name)) == expected
    assert info.num_params == expected
    assert info.reference == ("torchvision" if name in TORCHVISION_COUNTS else "")


def test_seresnet50_extra_parameters_follow_the_se_paper() -> None:
    # SE weights: (2/r) * sum over stages of blocks * C^2; biases: blocks * (C + C/r).
    stages = ((3, 256), (4, 512), (6, 1024), (3, 2048))
    weights = sum(n * 2 * c * (c // 16) for n, c in stages)
    biases = sum(n * (c + c // 16) for n, c in stages)
    assert weights == 2_514_944 and biases == 16_048
    extra = SE_COUNTS["seresnet50"] - TORCHVISION_COUNTS["resnet50"]
    assert extra == weights + biases == 2_530_992  # the paper's "~2.5 million", ~10%
    assert round(SE_COUNTS["seresnet50"] / 1e6, 1) == 28.1


def test_state_dict_layout_matches_torchvision() -> None:
    r18 = build_meta("resnet18").state_dict()
    r50 = build_meta("resnet50").state_dict()
    assert len(r18) == 122 and len(r50) == 320  # num_batches_tracked included
    shapes = {k: tuple(v.shape) for k, v in r50.items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["bn1.running_var"] == (64,)
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.downsample.1.running_mean"] == (256,)
    assert shapes["layer3.5.conv2.weight"] == (256, 256, 3, 3)
    assert shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert shapes["fc.weight"] == (1000, 2048) and shapes["fc.bias"] == (1000,)
    assert "layer1.0.downsample.0.weight" not in r18
    assert tuple(r18["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(r18["layer4.1.conv2.weight"].shape) == (512, 512, 3, 3)
    # ResNeXt: grouped 3x3 (32 groups of 4 channels); Wide: 128-wide bottleneck in layer1.
    rx = build_meta("resnext50_32x4d").state_dict()
    assert tuple(rx["layer1.0.conv2.weight"].shape) == (128, 4, 3, 3)
    wide = build_meta("wide_resnet50_2").state_dict()
    assert tuple(wide["layer1.0.conv2.weight"].shape) == (128, 128, 3, 3)
    se = build_meta("seresnet50").state_dict()
    assert set(se) - set(r50) == {k for k in se if ".se." in k}
    assert tuple(se["layer1.0.se.fc1.weight"].shape) == (16, 256, 1, 1)
    assert tuple(se["layer4.2.se.fc2.weight"].shape) == (2048, 128, 1, 1)


@pytest.mark.parametrize("output_stride,strides,last_size", [
    (32, [2, 4, 8, 16, 32], 7), (16, [2, 4, 8, 16, 16], 14), (8, [2, 4, 8, 8, 8], 28)])
def test_output_stride_sizes(output_stride: int, strides: list[int], last_size: int) -> None:
    extractor = build_meta("resnet50", features_only=True, output_stride=output_stride)
    assert extractor.strides == strides
    assert extractor.channels == [64, 256, 512, 1024, 2048]
    maps = extractor(torch.empty(1, 3, 224, 224, device="meta"))
    assert [m.shape[-1] for m in maps] == [224 // s for s in strides]
    assert maps[-1].shape == (1, 2048, last_size, last_size)


def test_output_stride_dilations() -> None:
    model = build_meta("resnet50", output_stride=8)
    conv = model.get_submodule
    # the first block of a dilated stage keeps the previous dilation (torchvision's rule)
    assert conv("layer2.0.conv2").stride == (2, 2)
    assert conv("layer3.0.conv2").dilation == (1, 1) and conv("layer3.0.conv2").stride == (1, 1)
    assert conv("layer3.1.conv2").dilation == (2, 2) and conv("layer3.5.conv2").dilation == (2, 2)
    assert conv("layer4.0.conv2").dilation == (2, 2) and conv("layer4.1.conv2").dilation == (4, 4)
    assert conv("layer4.2.conv2").padding == (4, 4)
    assert conv("layer3.0.downsample.0").stride == (1, 1)
    basic = build_meta("resnet18", output_stride=16)
    assert basic.get_submodule("layer4.0.conv1").dilation == (1, 1)
    assert basic.get_submodule("layer4.0.conv2").dilation == (2, 2)
    assert basic.get_submodule("layer4.1.conv1").dilation == (2, 2)
    assert count(basic) == TORCHVISION_COUNTS["resnet18"]


@pytest.mark.parametrize("bad", [4, 12, 64])
def test_output_stride_rejects_other_values(bad: int) -> None:
    with pytest.raises(ValueError, match=r"output_stride must be one of \[8, 16, 32\]"):
        build_meta("resnet50", output_stride=bad)


def test_stride_in_1x1_moves_the_stride() -> None:
    default = build_meta("resnet50")
    original = build_meta("resnet50", stride_in_1x1=True)
    for name in ("layer2.0", "layer3.0", "layer4.0"):
        assert default.get_submodule(f"{name}.conv1").stride == (1, 1)
        assert default.get_submodule(f"{name}.conv2").stride == (2, 2)
        assert original.get_submodule(f"{name}.conv1").stride == (2, 2)
        assert original.get_submodule(f"{name}.conv2").stride == (1, 1)
    assert count(original) == count(default)
    with pytest.raises(ValueError, match="stride_in_1x1"):
        build_meta("resnet18", stride_in_1x1=True)


def test_bad_configuration_errors() -> None:
    from cnnkit.models.classification.resnet import resnet

    with pytest.raises(ValueError, match="block must be one of"):
        resnet("dense")
    with pytest.raises(ValueError, match="4 positive block counts"):
        resnet("basic", (2, 2, 2))
    with pytest.raises(ValueError, match="groups=1"):
        resnet("basic", (2, 2, 2, 2), groups=32)


@pytest.mark.parametrize("name", ["resnet18", "seresnet18"])
def test_zero_init_residual_makes_blocks_identity(name: str) -> None:
    model = create(name, num_classes=10, zero_init_residual=True).eval()
    default = create(name, num_classes=10)
    assert all(b.bn2.weight.abs().sum() == 0 for b in model.modules() if isinstance(b, BasicBlock))
    assert all(b.bn2.weight.abs().sum() > 0 for b in default.modules()
               if isinstance(b, BasicBlock))
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        block = model.get_submodule(f"{stage}.1")
        x = torch.randn(2, block.conv1.in_channels, 6, 6)
        with torch.no_grad():
            assert torch.equal(block(x), torch.relu(x))


def test_zero_init_residual_bottleneck() -> None:
    model = build_meta("resnet50", zero_init_residual=True)
    last_bns = [b.bn3.weight for b in model.modules() if isinstance(b, Bottleneck)]
    assert len(last_bns) == 16
    block = create("resnet50", zero_init_residual=True).layer1[1].eval()
    x = torch.randn(1, 256, 5, 5)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


def test_resnet18_forward_backward_and_features() -> None:
    model = create("resnet18", num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert model.conv1.weight.grad is not None and torch.isfinite(model.conv1.weight.grad).all()
    extractor = FeatureExtractor(model.eval())
    maps = extractor(x)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8),
                                              (2, 256, 4, 4), (2, 512, 2, 2)]
    assert extractor.strides == [2, 4, 8, 16, 32]


def test_groups_head_and_input_channels() -> None:
    model = build_meta("seresnext50_32x4d", in_channels=1, num_classes=7)
    assert tuple(model.conv1.weight.shape) == (64, 1, 7, 7)
    groups = model.param_groups()
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    assert [p.shape for p in groups["stem"]] == [(64, 1, 7, 7), (64,), (64,)]
    assert [p.shape for p in groups["head"]] == [(7, 2048), (7,)]
    model.reset_classifier(3)
    assert model.num_classes == 3 and model.fc.in_features == 2048
    assert [s.channels for s in build_meta("resnet34").feature_specs] == [64, 64, 128, 256, 512]


def test_squeeze_excite_module() -> None:
    se = SqueezeExcite(64, reduction=16)
    assert tuple(se.fc1.weight.shape) == (4, 64, 1, 1) and se.fc1.bias is not None
    x = torch.randn(2, 64, 5, 7) * 10
    gates = se.excitation(x)
    assert gates.shape == (2, 64, 1, 1)
    assert bool((gates > 0).all() and (gates < 1).all())
    out = se(x)
    assert out.shape == x.shape
    assert torch.allclose(out, x * gates)
    with pytest.raises(ValueError, match="reduction"):
        SqueezeExcite(8, reduction=16)
