"""FPN with the panoptic-FPN semantic head, hypercolumns, and headless zoo backbones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.models import create, get_info
from cnnkit.models.backbones import headless_backbone


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_headless_backbones_drop_pool_and_classifier() -> None:
    with torch.device("meta"):
        resnet = headless_backbone("resnet50")
        vgg = headless_backbone("vgg16")
        wrn = headless_backbone("wrn16_8")  # deepest map = forward_features' output
    assert [n for n, _ in resnet.named_children()] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                                     "layer3", "layer4"]
    assert n_params(resnet) == 25_557_032 - 2048 * 1000 - 1000  # resnet50 without fc
    assert [n for n, _ in vgg.named_children()] == ["features"]
    assert n_params(vgg) == 14_714_688
    assert "fc" not in dict(wrn.named_children()) and "layer3" in dict(wrn.named_children())
    with pytest.raises(TypeError, match="output_stride"):  # (VGG takes it: dilated pools)
        headless_backbone("wrn16_8", output_stride=8)


def test_fpn_resnet50_counts_and_pyramid() -> None:
    with torch.device("meta"):
        model = create("fpn_resnet50").eval()
        levels = model.pyramid(torch.empty(1, 3, 512, 512))
        odd = model(torch.empty(1, 3, 513, 333))
    assert n_params(model) == get_info("fpn_resnet50").num_params == 28_478_933
    assert [tuple(p.shape) for p in levels] == [(1, 256, s, s) for s in (128, 64, 32, 16)]
    assert [len(stages) for stages in model.head] == [1, 1, 2, 3]
    assert tuple(model.head[3][0].conv.weight.shape) == (128, 256, 3, 3)
    assert tuple(model.classifier.weight.shape) == (21, 128, 1, 1)
    assert tuple(odd.shape) == (1, 21, 513, 333)


def test_fpn_resnet18_forward_backward() -> None:
    model = create("fpn_resnet50", backbone="resnet18", num_classes=4).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert tuple(out.shape) == (2, 4, 64, 64)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(InputSizeError, match="nearest to 31: 32"):
        model(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="strides 4, 8, 16, 32"):
        create("fpn_resnet50", backbone="resnet20_cifar")


def test_hypercolumn_vgg16() -> None:
    with torch.device("meta"):
        model = create("hypercolumn_vgg16").eval()
        columns = model.hypercolumns(torch.empty(1, 3, 224, 224))
        out = model(torch.empty(2, 3, 224, 200))
        linear = create("hypercolumn_vgg16", hidden_channels=0)
    assert n_params(model) == get_info("hypercolumn_vgg16").num_params == 15_447_381
    assert [s.module for s in model.taps] == ["features.9", "features.16", "features.23",
                                              "features.30"]  # pool2..pool5
    assert tuple(columns.shape) == (1, 128 + 256 + 512 + 512, 56, 56)
    assert tuple(out.shape) == (2, 21, 224, 200)
    assert n_params(linear) == 14_714_688 + 1408 * 21 + 21


def test_hypercolumn_resnet18_forward_backward() -> None:
    model = create("hypercolumn_vgg16", backbone="resnet18", num_classes=3).train()
    out = model(torch.randn(2, 3, 64, 48))
    assert tuple(out.shape) == (2, 3, 64, 48)
    assert model.hypercolumns(torch.randn(1, 3, 64, 48)).shape[1] == 64 + 128 + 256 + 512
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
