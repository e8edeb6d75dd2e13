"""LeNet-5, AlexNet and VGG: exact parameter counts, layer sizes, torchvision key layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.models.classification.alexnet import paper_lrn
from cnnkit.models.registry import create, get_info, list_models

# Exact counts at the default options. torchvision's published figures: alexnet, vgg11..vgg19_bn;
# the others are counted by hand in the tests below or follow from the paper's tables.
EXPECTED_PARAMS = {
    "lenet5": 61_706,
    "lenet5_relu": 61_706,
    "alexnet_paper": 60_965_224,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "vgg_a_lrn": 132_863_336,
    "vgg_c": 133_638_952,
    "vgg_c_bn": 133_647_400,
}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create(name, **kwargs)


def layer_sides(model: nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[int]:
    """Output height of every module of the given kinds in ``model.features``, in order."""
    sides = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, kinds):
            sides.append(x.shape[-1])
    return sides


def test_all_variants_are_registered() -> None:
    assert set(EXPECTED_PARAMS) <= set(list_models("classification"))


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_exact_parameter_count(name: str) -> None:
    assert count(meta_model(name)) == EXPECTED_PARAMS[name]
    assert get_info(name).num_params == EXPECTED_PARAMS[name]


def test_vgg_table2_counts_in_millions() -> None:
    # Simonyan & Zisserman, Table 2: A, A-LRN 133; B 133; C 134; D 138; E 144 (millions)
    table2 = {"vgg11": 133, "vgg_a_lrn": 133, "vgg13": 133, "vgg_c": 134, "vgg16": 138,
              "vgg19": 144}
    for name, millions in table2.items():
        assert round(count(meta_model(name)) / 1e6) == millions, name


def test_alexnet_groups_one_versus_two() -> None:
    assert count(meta_model("alexnet_paper", groups=2)) == 60_965_224
    assert count(meta_model("alexnet_paper", groups=1)) == 62_378_344
    convs = [m for m in meta_model("alexnet_paper").features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    with pytest.raises(ValueError, match="groups"):
        meta_model("alexnet_paper", groups=5)


def test_lenet5_layer_sizes_and_forward_backward() -> None:
    torch.manual_seed(0)
    model = create("lenet5")
    x = torch.randn(1, 1, 32, 32)
    sides = layer_sides(model, x, (nn.Conv2d, nn.AvgPool2d))
    assert sides == [28, 14, 10, 5, 1]
    assert [type(m) for m in model.features][:3] == [nn.Conv2d, nn.Tanh, nn.AvgPool2d]
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_lenet5_relu_uses_relu_and_max_pooling() -> None:
    model = create("lenet5_relu", num_classes=5, in_channels=3)
    kinds = {type(m) for m in model.modules()}
    assert nn.ReLU in kinds and nn.MaxPool2d in kinds and nn.Tanh not in kinds
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_lenet5_rejects_other_input_sizes() -> None:
    model = create("lenet5")
    with pytest.raises(InputSizeError, match="32"):
        model(torch.randn(1, 1, 28, 28))


def test_alexnet_paper_layer_sizes() -> None:
    model = meta_model("alexnet_paper")
    x = torch.empty(1, 3, 227, 227, device="meta")
    sides = layer_sides(model, x, (nn.Conv2d, nn.MaxPool2d))
    # conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool3
    assert sides == [55, 27, 27, 13, 13, 13, 13, 6]
    assert model(x).shape == (1, 1000)
    lrns = [m for m in model.features if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 2 and lrns[0].size == 5 and lrns[0].beta == 0.75 and lrns[0].k == 2.0


def test_paper_lrn_follows_krizhevsky_formula() -> None:
    torch.manual_seed(0)
    a = torch.randn(1, 8, 3, 3) * 10
    k, alpha, beta, n = 2.0, 1e-4, 0.75, 5
    expected = torch.empty_like(a)
    for i in range(8):
        lo, hi = max(0, i - n // 2), min(7, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    torch.testing.assert_close(paper_lrn()(a), expected)


def test_alexnet_paper_init() -> None:
    torch.manual_seed(0)
    model = create("alexnet_paper")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    biases = [float(m.bias.detach().mean()) for m in convs + linears]
    assert biases == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert abs(float(linears[0].weight.detach().std()) - 0.01) < 1e-3


ALEXNET_KEYS = {
    "features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5),
    "features.6.weight": (384, 192, 3, 3), "features.8.weight": (256, 384, 3, 3),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.4.weight": (4096, 4096),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}
VGG16_KEYS = {
    "features.0.weight": (64, 3, 3, 3), "features.2.weight": (64, 64, 3, 3),
    "features.5.weight": (128, 64, 3, 3), "features.28.weight": (512, 512, 3, 3),
    "classifier.0.weight": (4096, 25088), "classifier.3.weight": (4096, 4096),
    "classifier.6.weight": (1000, 4096),
}
VGG16_BN_KEYS = {
    "features.0.weight": (64, 3, 3, 3), "features.1.weight": (64,),
    "features.1.running_mean": (64,), "features.1.num_batches_tracked": (),
    "features.3.weight": (64, 64, 3, 3), "features.40.weight": (512, 512, 3, 3),
    "features.41.weight": (512,), "features.41.running_var": (512,),
    "classifier.0.weight": (4096, 25088), "classifier.6.weight": (1000, 4096),
}
VGG11_KEYS = {"features.3.weight": (128, 64, 3, 3), "features.18.weight": (512, 512, 3, 3)}
VGG19_BN_KEYS = {"features.49.weight": (512, 512, 3, 3), "features.50.running_mean": (512,)}


@pytest.mark.parametrize("name, keys, entries", [
    ("alexnet", ALEXNET_KEYS, 16), ("vgg16", VGG16_KEYS, 32), ("vgg16_bn", VGG16_BN_KEYS, 97),
    ("vgg11", VGG11_KEYS, 22), ("vgg19_bn", VGG19_BN_KEYS, 118),
    ("vgg13", {}, 26), ("vgg13_bn", {}, 76), ("vgg11_bn", {}, 62), ("vgg19", {}, 38),
])
def test_torchvision_state_dict_layout(name: str, keys: dict, entries: int) -> None:
    assert get_info(name).reference == "torchvision"
    state = meta_model(name).state_dict()
    assert len(state) == entries
    for key, shape in keys.items():
        assert tuple(state[key].shape) == shape, key


def test_vgg_c_has_1x1_convs_in_the_last_three_blocks() -> None:
    kernels = [m.kernel_size[0] for m in meta_model("vgg_c").features if isinstance(m, nn.Conv2d)]
    assert kernels == [3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]


def test_vgg_a_lrn_has_one_lrn_after_the_first_conv() -> None:
    kinds = [type(m) for m in meta_model("vgg_a_lrn").features][:4]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d]


@pytest.mark.parametrize("name, strides, channels, sides", [
    ("vgg16", [2, 4, 8, 16, 32], [64, 128, 256, 512, 512], [112, 56, 28, 14, 7]),
    ("vgg16_bn", [2, 4, 8, 16, 32], [64, 128, 256, 512, 512], [112, 56, 28, 14, 7]),
    ("alexnet", [4, 8, 16, 32], [64, 192, 256, 256], [55, 27, 13, 6]),
    ("alexnet_paper", [4, 8, 16, 32], [96, 256, 256, 256], [55, 27, 13, 6]),
])
def test_feature_maps(name: str, strides: list, channels: list, sides: list) -> None:
    extractor = meta_model(name, features_only=True)
    side = get_info(name).input_size[-1]
    maps = extractor(torch.empty(1, 3, side, side, device="meta"))
    assert extractor.strides == strides and extractor.channels == channels
    assert [m.shape[1] for m in maps] == channels and [m.shape[-1] for m in maps] == sides


def test_vgg_prepool_feature_specs() -> None:
    model = meta_model("vgg16")
    assert [s.stride for s in model.prepool_feature_specs] == [1, 2, 4, 8, 16]
    assert [s.module for s in model.prepool_feature_specs] == [
        "features.3", "features.8", "features.15", "features.22", "features.29"]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_param_groups_and_custom_heads(name: str) -> None:
    model = meta_model(name, num_classes=10, in_channels=1)
    groups = model.param_groups()
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    assert all(groups[g] for g in ("stem", "stages", "head"))
    assert model.num_classes == 10
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 1


def test_vgg_a_forward_backward_at_smallest_input() -> None:
    torch.manual_seed(0)
    model = create("vgg11", num_classes=10, in_channels=1)
    # torchvision's initialisation: He normal (fan-out) convs, N(0, 0.01) linears, zero biases
    conv = model.features[3]  # 128 x 64 x 3 x 3: fan-out 128 * 9
    assert abs(float(conv.weight.detach().std()) - (2 / (128 * 9)) ** 0.5) < 2e-3
    assert abs(float(model.classifier[0].weight.detach().std()) - 0.01) < 1e-3
    assert float(model.classifier[0].bias.detach().abs().max()) == 0.0
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert model.features[0].weight.grad is not None
    with pytest.raises(InputSizeError, match="32"):
        model(torch.randn(1, 1, 31, 31))


@pytest.mark.parametrize("name, smallest", [("alexnet", 63), ("alexnet_paper", 67)])
def test_alexnet_smallest_input(name: str, smallest: int) -> None:
    model = meta_model(name)
    assert model(torch.empty(1, 3, smallest, smallest, device="meta")).shape == (1, 1000)
    with pytest.raises(InputSizeError, match=str(smallest)):
        model(torch.empty(1, 3, smallest - 1, smallest - 1, device="meta"))


def test_lenet5_feature_maps_and_reset_classifier() -> None:
    extractor = create("lenet5", features_only=True)
    maps = extractor(torch.randn(2, 1, 32, 32))
    assert extractor.strides == [2, 4] and extractor.channels == [6, 16]
    assert [tuple(m.shape) for m in maps] == [(2, 6, 14, 14), (2, 16, 5, 5)]
    model = create("lenet5")
    model.reset_classifier(3)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)
    assert count(model) == 61_706 - 850 + (84 * 3 + 3)
