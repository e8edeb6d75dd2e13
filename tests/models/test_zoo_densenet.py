"""DenseNet: counts, torchvision layout, dense-block arithmetic, features, CIFAR DenseNet-BC.

Sources: torchvision's published counts (``num_params`` in torchvision/models/densenet.py):
densenet121 7,978,856, densenet161 28,681,000, densenet169 14,149,480, densenet201 20,013,928.
The CIFAR DenseNet-BC counts come from building; rounded to 0.1M they equal Table 2 of Huang
et al. (2017): 0.8M (L=100, k=12), 15.3M (L=250, k=24), 25.6M (L=190, k=40).
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.layers.dense import DenseBlock, Transition
from cnnkit.models.classification.densenet import DenseNet, build_densenet, build_densenet_cifar
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info

TORCHVISION_COUNTS = {"densenet121": 7_978_856, "densenet161": 28_681_000,
                      "densenet169": 14_149_480, "densenet201": 20_013_928}
CIFAR_COUNTS = {"densenet_bc100_k12": (769_162, 0.8), "densenet_bc250_k24": (15_324_406, 15.3),
                "densenet_bc190_k40": (25_624_430, 25.6)}


def build_meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create(name, **options)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,expected", TORCHVISION_COUNTS.items())
def test_torchvision_counts(name: str, expected: int) -> None:
    assert count(build_meta(name)) == expected
    info = get_info(name)
    assert info.num_params == expected and info.reference == "torchvision"
    assert info.num_classes == 1000 and info.input_size == (3, 224, 224)


@pytest.mark.parametrize("name,expected", CIFAR_COUNTS.items())
def test_cifar_counts_match_table2(name: str, expected: tuple[int, float]) -> None:
    exact, paper_millions = expected
    model = build_meta(name)
    assert count(model) == exact and round(exact / 1e6, 1) == paper_millions
    info = get_info(name)
    assert info.num_params == exact and info.num_classes == model.num_classes == 10
    assert info.input_size == (3, 32, 32) and info.reference == ""


def test_state_dict_layout_matches_torchvision() -> None:
    sd = build_meta("densenet121").state_dict()
    assert len(sd) == 727  # num_batches_tracked included; the ReLU modules add no keys
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["features.conv0.weight"] == (64, 3, 7, 7)
    assert shapes["features.norm0.running_mean"] == (64,)
    assert shapes["features.denseblock1.denselayer1.norm1.weight"] == (64,)
    assert shapes["features.denseblock1.denselayer1.conv1.weight"] == (128, 64, 1, 1)
    assert shapes["features.denseblock1.denselayer1.conv2.weight"] == (32, 128, 3, 3)
    assert shapes["features.denseblock1.denselayer6.norm1.weight"] == (224,)
    assert shapes["features.transition1.norm.weight"] == (256,)
    assert shapes["features.transition1.conv.weight"] == (128, 256, 1, 1)
    assert shapes["features.transition3.conv.weight"] == (512, 1024, 1, 1)
    assert shapes["features.denseblock4.denselayer16.conv2.weight"] == (32, 128, 3, 3)
    assert shapes["features.norm5.weight"] == (1024,)
    assert shapes["classifier.weight"] == (1000, 1024) and shapes["classifier.bias"] == (1000,)
    assert not any("relu" in k or "pool" in k for k in sd)
    d161 = build_meta("densenet161").state_dict()
    assert tuple(d161["features.conv0.weight"].shape) == (96, 3, 7, 7)
    assert tuple(d161["features.denseblock1.denselayer1.conv1.weight"].shape) == (192, 96, 1, 1)
    assert tuple(d161["classifier.weight"].shape) == (1000, 2208)


def test_legacy_checkpoint_keys_are_renamed() -> None:
    model = build_densenet_cifar(depth=16, growth_rate=4)
    state = model.state_dict()
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
              for k, v in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert "features.transition1.norm.weight" in legacy  # transitions never changed
    renamed = DenseNet.remap_checkpoint_keys(legacy)
    assert list(renamed) == list(state)
    model.load_state_dict(renamed, strict=True)


def test_dense_block_concatenates_and_transition_compresses() -> None:
    block = DenseBlock(6, 64, growth_rate=32, bn_size=4)  # densenet121's first block
    assert block.out_channels == 64 + 6 * 32 == 256
    x = torch.randn(2, 64, 8, 8)
    y = block.eval()(x)
    assert tuple(y.shape) == (2, 256, 8, 8)
    assert torch.equal(y[:, :64], x)  # the block input is passed on unchanged
    assert [layer.conv1.in_channels for layer in block.values()] == [64, 96, 128, 160, 192, 224]
    trans = Transition(256, 128)
    assert tuple(trans(y).shape) == (2, 128, 4, 4)


@pytest.mark.parametrize("name,maps", [
    ("densenet121", [(64, 112), (256, 56), (512, 28), (1024, 14), (1024, 7)]),
    ("densenet161", [(96, 112), (384, 56), (768, 28), (2112, 14), (2208, 7)]),
    ("densenet_bc100_k12", [(216, 32), (300, 16), (342, 8)]),
])
def test_feature_maps(name: str, maps: list[tuple[int, int]]) -> None:
    info = get_info(name)
    backbone = FeatureExtractor(build_meta(name).eval())
    feats = backbone(torch.empty(1, *info.input_size, device="meta"))
    assert [(f.shape[1], f.shape[2]) for f in feats] == maps
    assert [s.channels for s in backbone.feature_specs] == [c for c, _ in maps]


def test_last_feature_map_is_after_the_final_relu() -> None:
    model = create("densenet_bc100_k12").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        last = FeatureExtractor(model)(x)[-1]
        before_relu = model.features[:-1](x)
    assert last.min() >= 0 and torch.equal(last, torch.relu(before_relu))


def test_cifar_forward_backward() -> None:
    model = create("densenet_bc100_k12").train()
    out = model(torch.randn(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 10)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    conv0 = model.features.conv0
    assert conv0.kernel_size == (3, 3) and conv0.stride == (1, 1) and conv0.out_channels == 24  # 2k


def test_memory_efficient_gives_the_same_gradients_and_statistics() -> None:
    plain = build_densenet_cifar(depth=16, growth_rate=4)
    efficient = build_densenet_cifar(depth=16, growth_rate=4, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 8)
    for model in (plain, efficient):
        model.train()(x).square().mean().backward()
    for p, q in zip(plain.parameters(), efficient.parameters()):
        assert torch.allclose(p.grad, q.grad)
    for (k, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        assert torch.equal(a, b), k  # running statistics updated once, as without checkpoints


def test_param_groups() -> None:
    groups = build_meta("densenet121").param_groups()
    assert len(groups["stem"]) == 3  # conv0.weight, norm0.weight, norm0.bias
    assert len(groups["head"]) == 2
    assert sum(p.numel() for p in groups["stages"]) == 7_978_856 - 64 * 3 * 49 - 128 - 1_025_000


@pytest.mark.parametrize("name,smallest", [("densenet121", 29), ("densenet_bc100_k12", 4)])
def test_smallest_input(name: str, smallest: int) -> None:
    model = create(name, num_classes=3).eval()
    assert model.min_input_size == smallest
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, smallest, smallest)).shape) == (1, 3)
        with pytest.raises(InputSizeError, match=f"at least {smallest}x{smallest}"):
            model(torch.randn(1, 3, smallest - 1, smallest))


def test_drop_rate_is_active_in_training_only() -> None:
    model = build_densenet_cifar(depth=16, growth_rate=4, drop_rate=0.5)
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("options,word", [
    (dict(compression=0.0), "compression"), (dict(block_config=()), "block_config"),
    (dict(growth_rate=0), "growth_rate"), (dict(stem="tiny"), "stem"),
    (dict(drop_rate=1.0), "drop_rate"),
])
def test_bad_options_name_the_argument(options: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        build_densenet(**options)


def test_bad_cifar_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        build_densenet_cifar(depth=101)
