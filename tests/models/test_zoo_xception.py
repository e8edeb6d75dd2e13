"""Xception: the paper's 22,855,952 parameters, separable convs without BN inside, flows, sizes.

22,855,952 is the paper's count (also Keras' trainable count and that of the PyTorch port of the
Keras weights); it is reproduced here by building on the meta device.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError, InputSizeError
from cnnkit.models.classification.xception import SeparableConv2d, XceptionBlock, xception
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.registry import create, get_info


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_xception(**options) -> nn.Module:
    with torch.device("meta"):
        return xception(**options).eval()


def test_parameter_count_is_the_papers() -> None:
    model = meta_xception()
    assert count(model) == 22_855_952 == get_info("xception").num_params
    assert count(model.fc) == 2048 * 1000 + 1000
    assert count(model) - count(model.fc) == 20_806_952  # the convolutional base


def test_separable_conv_has_no_norm_or_activation_inside() -> None:
    conv = SeparableConv2d(728, 728)
    assert [type(m) for m in conv.children()] == [nn.Conv2d, nn.Conv2d]
    assert conv.conv1.groups == 728 and conv.conv1.bias is None
    assert count(conv) == 728 * 3 * 3 + 728 * 728
    # a middle-flow block: three times ReLU, separable conv, BN; identity shortcut
    block = XceptionBlock(728, 728, 3, 1, True, True)
    assert block.skip is None and count(block) == 3 * (6_552 + 529_984 + 2 * 728) == 1_613_976
    assert sum(isinstance(m, nn.ReLU) for m in block.rep) == 3


def test_flows_and_layout() -> None:
    model = meta_xception()
    state = model.state_dict()
    assert len(state) == 276
    expected = {
        "conv1.weight": (32, 3, 3, 3), "conv2.weight": (64, 32, 3, 3),
        "block1.rep.0.conv1.weight": (64, 1, 3, 3),
        "block1.rep.0.pointwise.weight": (128, 64, 1, 1),
        "block1.skip.weight": (128, 64, 1, 1), "block1.skipbn.weight": (128,),
        "block3.rep.4.pointwise.weight": (728, 728, 1, 1),
        "block11.rep.7.pointwise.weight": (728, 728, 1, 1),
        "block12.rep.1.pointwise.weight": (728, 728, 1, 1),
        "block12.rep.4.pointwise.weight": (1024, 728, 1, 1),
        "block12.skip.weight": (1024, 728, 1, 1),
        "conv3.conv1.weight": (1024, 1, 3, 3), "conv4.pointwise.weight": (2048, 1536, 1, 1),
        "bn4.weight": (2048,), "fc.weight": (1000, 2048),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    middle = [getattr(model, f"block{i}") for i in range(4, 12)]
    assert all(b.skip is None for b in middle)
    entry_exit = [getattr(model, f"block{i}") for i in (1, 2, 3, 12)]
    assert all(b.skip.stride == (2, 2) and isinstance(b.rep[-1], nn.MaxPool2d) for b in entry_exit)
    assert not isinstance(model.block1.rep[0], nn.ReLU)  # the first block starts with its conv


def test_feature_maps_at_299_and_smallest_input() -> None:
    backbone = FeatureExtractor(meta_xception())
    feats = backbone(torch.empty(1, 3, 299, 299, device="meta"))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 147, 147), (128, 74, 74), (256, 37, 37), (728, 19, 19), (2048, 10, 10)]
    assert backbone.strides == [2, 4, 8, 16, 32]
    assert [tuple(f.shape[2:]) for f in backbone(torch.empty(1, 3, 7, 7, device="meta"))][-1] \
        == (1, 1)
    with pytest.raises(InputSizeError, match="at least 7x7"):
        backbone(torch.empty(1, 3, 6, 40, device="meta"))


def test_forward_backward_at_64() -> None:
    model = create("xception", num_classes=5, in_channels=1).train()
    assert model.dropout.p == 0.5
    assert 0.009 < model.fc.weight.std().item() < 0.011
    feats = FeatureExtractor(model)(torch.randn(2, 1, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 29, 29), (128, 15, 15), (256, 8, 8), (728, 4, 4), (2048, 2, 2)]
    logits = model(torch.randn(2, 1, 64, 64))
    assert tuple(logits.shape) == (2, 5)
    logits.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_options_are_rejected() -> None:
    with pytest.raises(CnnkitError, match="dropout"):
        xception(dropout=1.0)
    with pytest.raises(CnnkitError, match="in_channels"):
        xception(in_channels=0)
