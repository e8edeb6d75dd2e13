"""GoogLeNet and the Inception module: counts, torchvision layout, Table 1, costs, aux heads.

Sources of the figures: torchvision's published count for ``googlenet`` is 6,624,904
(``num_params`` in torchvision/models/googlenet.py, weights without auxiliary heads); the
13,004,888 with heads and both ``googlenet_paper`` counts come from building. Table 1 of
Szegedy et al. (2015) gives per-layer "params" in units of 1024 weights (biases not counted) and
"ops" in millions of multiply-accumulates at 224x224. The ops column matches our paper build to
within rounding for every layer except conv1 (table 34M, built 118.0M) and inception 5a (table
54M, built 51.1M). The params column matches only for conv2+conv3 (112K), inception 3a
(159.5K, printed 159K) and the classifier (1000K); the other rows disagree with their own ops
column (e.g. 4c: 463K printed, 497.5K built, and 497.5K x 196 pixels = the printed 100M ops).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.layers.inception import Inception, NaiveInception
from cnnkit.models.classification.googlenet import GoogLeNetOutputs, build_googlenet
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info
from cnnkit.models.weights import load_weights, save_weights


def build_meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create(name, **options)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_macs(model: nn.Module, size: tuple[int, int, int], *, by_child: bool = False):
    """Multiply-accumulates of every convolution: weights x output pixels, batch of one (meta)."""
    totals: dict[str, int] = {}

    def hook(name: str):
        def record(conv: nn.Conv2d, _inputs, out: torch.Tensor) -> None:
            totals[name] = totals.get(name, 0) + conv.weight.numel() * out.shape[-2] * out.shape[-1]
        return record

    handles = [m.register_forward_hook(hook(n.split(".")[0] if by_child else ""))
               for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    model(torch.empty(1, *size, device="meta"))
    for h in handles:
        h.remove()
    return totals if by_child else totals[""]


@pytest.mark.parametrize("name,aux,expected", [
    ("googlenet", False, 6_624_904), ("googlenet", True, 13_004_888),
    ("googlenet_paper", False, 6_998_552), ("googlenet_paper", True, 13_378_280),
])
def test_parameter_counts(name: str, aux: bool, expected: int) -> None:
    assert count(build_meta(name, aux_logits=aux)) == expected
    info = get_info(name)
    if not aux:
        assert info.num_params == expected
    assert info.reference == ("torchvision" if name == "googlenet" else "")


def test_state_dict_layout_matches_torchvision() -> None:
    plain = build_meta("googlenet").state_dict()
    with_aux = build_meta("googlenet", aux_logits=True).state_dict()
    assert len(plain) == 344 and len(with_aux) == 364  # num_batches_tracked included
    shapes = {k: tuple(v.shape) for k, v in with_aux.items()}
    assert shapes["conv1.conv.weight"] == (64, 3, 7, 7) and "conv1.conv.bias" not in shapes
    assert shapes["conv1.bn.running_var"] == (64,)
    assert shapes["conv3.conv.weight"] == (192, 64, 3, 3)
    assert shapes["inception3a.branch1.conv.weight"] == (64, 192, 1, 1)
    assert shapes["inception3a.branch2.0.conv.weight"] == (96, 192, 1, 1)
    assert shapes["inception3a.branch2.1.conv.weight"] == (128, 96, 3, 3)
    assert shapes["inception3a.branch3.1.conv.weight"] == (32, 16, 3, 3)  # torchvision's 3x3
    assert shapes["inception5b.branch4.1.conv.weight"] == (128, 832, 1, 1)
    assert shapes["inception5b.branch4.1.bn.bias"] == (128,)
    assert shapes["aux1.conv.conv.weight"] == (128, 512, 1, 1)
    assert shapes["aux2.conv.conv.weight"] == (128, 528, 1, 1)
    assert shapes["aux1.fc1.weight"] == (1024, 2048) and shapes["aux2.fc2.weight"] == (1000, 1024)
    assert shapes["fc.weight"] == (1000, 1024) and shapes["fc.bias"] == (1000,)
    assert set(plain) == {k for k in with_aux if not k.startswith("aux")}


def test_paper_variant_layout() -> None:
    sd = build_meta("googlenet_paper").state_dict()
    assert len(sd) == 116  # 57 biased convolutions + fc, no batch norm
    assert not any(".bn." in k for k in sd)
    assert tuple(sd["inception3a.branch3.1.conv.weight"].shape) == (32, 16, 5, 5)
    assert tuple(sd["conv1.conv.bias"].shape) == (64,)
    model = build_meta("googlenet_paper")
    assert isinstance(model.lrn1, nn.LocalResponseNorm)
    assert isinstance(model.lrn2, nn.LocalResponseNorm)
    assert model.maxpool4.kernel_size == 3 and model.dropout.p == 0.4


def test_paper_table1_weights_and_ops() -> None:
    model = build_meta("googlenet_paper").eval()
    weights = {name: sum(p.numel() for k, p in getattr(model, name).named_parameters()
                         if k.endswith("weight"))
               for name in ("conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a",
                            "inception4b", "inception4c", "inception4d", "inception4e",
                            "inception5a", "inception5b", "fc")}
    assert weights == {
        "conv1": 9_408, "conv2": 4_096, "conv3": 110_592, "inception3a": 163_328,
        "inception3b": 388_096, "inception4a": 375_552, "inception4b": 448_512,
        "inception4c": 509_440, "inception4d": 604_672, "inception4e": 867_328,
        "inception5a": 1_042_432, "inception5b": 1_442_816, "fc": 1_024_000}
    # The rows of Table 1's params column that the build reproduces (K = 1024 weights).
    assert (weights["conv2"] + weights["conv3"]) / 1024 == 112
    assert weights["inception3a"] / 1024 == 159.5  # printed 159K
    assert weights["fc"] / 1024 == 1000

    macs = conv_macs(model, (3, 224, 224), by_child=True)
    assert macs == {
        "conv1": 118_013_952, "conv2": 12_845_056, "conv3": 346_816_512,
        "inception3a": 128_049_152, "inception3b": 304_267_264, "inception4a": 73_608_192,
        "inception4b": 87_908_352, "inception4c": 99_850_240, "inception4d": 118_515_712,
        "inception4e": 169_996_288, "inception5a": 51_079_168, "inception5b": 70_697_984}
    table_ops_millions = {"inception3a": 128, "inception3b": 304, "inception4a": 73,
                          "inception4b": 88, "inception4c": 100, "inception4d": 119,
                          "inception4e": 170, "inception5b": 71}
    for name, ops in table_ops_millions.items():
        assert abs(macs[name] / 1e6 - ops) < 1, name
    assert abs((macs["conv2"] + macs["conv3"]) / 1e6 - 360) < 1
    assert round(macs["inception5a"] / 1e6) == 51  # the table prints 54M


def test_inception_output_channels() -> None:
    x = torch.randn(1, 192, 28, 28)
    naive = NaiveInception(192, 64, 128, 32)  # the lecture's example: 64 + 128 + 32 + 192
    assert naive.out_channels == 416 and tuple(naive(x).shape) == (1, 416, 28, 28)
    reduced = Inception(192, 64, 96, 128, 16, 32, 32)  # inception (3a): 64 + 128 + 32 + 32
    assert reduced.out_channels == 256 and tuple(reduced(x).shape) == (1, 256, 28, 28)
    assert reduced.branch3[1].conv.kernel_size == (5, 5)  # the paper's kernel by default


def test_inception_cost_naive_versus_reduced() -> None:
    # On a 28x28x256 input: naive module (128 1x1, 192 3x3, 96 5x5) vs 1x1 reductions of 64.
    with torch.device("meta"):
        naive = NaiveInception(256, 128, 192, 96)
        reduced = Inception(256, 128, 64, 192, 64, 96, 64)
    naive_macs = conv_macs(naive, (256, 28, 28))
    assert naive_macs == 28 * 28 * (256 * 128 + 3 * 3 * 256 * 192 + 5 * 5 * 256 * 96) == 854_196_224
    assert naive.out_channels == 128 + 192 + 96 + 256 == 672
    reduced_macs = conv_macs(reduced, (256, 28, 28))
    assert reduced_macs == 28 * 28 * (256 * 128 + 256 * 64 + 3 * 3 * 64 * 192 + 256 * 64
                                      + 5 * 5 * 64 * 96 + 256 * 64) == 271_351_808
    assert reduced.out_channels == 480


def test_five_by_five_cost_with_a_one_by_one_reduction() -> None:
    # The lecture's example: 5x5 convolution 200 -> 92 channels on 32x32, directly (~470M
    # multiplications) or after a 1x1 reduction to 16 channels (~40M, about a tenth).
    with torch.device("meta"):
        direct = nn.Conv2d(200, 92, 5, padding=2, bias=False)
        reduced = nn.Sequential(nn.Conv2d(200, 16, 1, bias=False),
                                nn.Conv2d(16, 92, 5, padding=2, bias=False))
    assert conv_macs(direct, (200, 32, 32)) == 5 * 5 * 200 * 32 * 32 * 92 == 471_040_000
    reduced_macs = conv_macs(reduced, (200, 32, 32))
    assert reduced_macs == 200 * 32 * 32 * 16 + 5 * 5 * 16 * 32 * 32 * 92 == 40_960_000


def test_aux_heads_in_training_mode() -> None:
    model = build_googlenet(num_classes=7, aux_logits=True)
    assert model.classifier_names == ("fc", "aux1.fc2", "aux2.fc2")
    with torch.no_grad():  # make each head's output identify it
        for head, value in (("aux1", 1.0), ("aux2", 2.0)):
            getattr(model, head).fc2.weight.zero_()
            getattr(model, head).fc2.bias.fill_(value)
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert tuple(out.logits.shape) == (2, 7)
    assert torch.equal(out.aux_logits1, torch.ones(2, 7))
    assert torch.equal(out.aux_logits2, torch.full((2, 7), 2.0))
    (out.logits.sum() + out.aux_logits1.sum() + out.aux_logits2.sum()).backward()
    assert model.aux1.conv.conv.weight.grad is not None and model.aux2.fc1.weight.grad is not None
    assert isinstance(model.eval()(x), torch.Tensor)
    model.reset_classifier(3)
    assert model.aux1.fc2.out_features == model.aux2.fc2.out_features == model.fc.out_features == 3
    groups = model.param_groups()
    assert {id(p) for p in model.aux2.parameters()} <= {id(p) for p in groups["head"]}


def test_checkpoint_with_aux_heads_loads_into_a_model_without_them(tmp_path) -> None:
    # torchvision publishes googlenet's checkpoint with the auxiliary heads in it.
    path = save_weights(build_googlenet(aux_logits=True), tmp_path / "googlenet.pth")
    model = build_googlenet()
    report = load_weights(model, path)
    assert report.loaded == 344 and len(report.ignored) == 20
    assert not report.missing and not report.unexpected


def test_without_aux_heads_training_returns_logits() -> None:
    model = build_meta("googlenet", num_classes=5).train()
    assert model.aux1 is None and model.classifier_names == ("fc",)
    assert tuple(model(torch.empty(2, 3, 64, 64, device="meta")).shape) == (2, 5)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_paper"])
def test_feature_maps(name: str) -> None:
    backbone = FeatureExtractor(build_meta(name).eval())
    feats = backbone(torch.empty(1, 3, 224, 224, device="meta"))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 112, 112), (192, 56, 56), (480, 28, 28), (832, 14, 14), (1024, 7, 7)]
    assert backbone.strides == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("name,smallest", [("googlenet", 15), ("googlenet_paper", 31)])
def test_smallest_input(name: str, smallest: int) -> None:
    model = create(name, num_classes=4).eval()
    assert model.min_input_size == smallest
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, smallest, smallest)).shape) == (1, 4)
        with pytest.raises(InputSizeError, match=f"at least {smallest}x{smallest}"):
            model(torch.randn(1, 3, smallest - 1, 64))


def test_paper_variant_trains_on_a_small_batch() -> None:
    model = create("googlenet_paper", num_classes=5, aux_logits=True).train()
    out = model(torch.randn(2, 3, 32, 32))
    loss = out.logits.logsumexp(1).mean() + 0.3 * (out.aux_logits1.mean() + out.aux_logits2.mean())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("option,value", [("branch3_kernel", 4), ("last_pool_kernel", 5),
                                          ("dropout", 1.0)])
def test_bad_options_name_the_argument(option: str, value) -> None:
    with pytest.raises(ValueError, match=option):
        build_googlenet(**{option: value})
