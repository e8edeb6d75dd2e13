"""The ``norm`` option of the ResNets, CIFAR ResNets, plain nets, VGG with batch norm and the
small VGGs: same module names and parameter counts (every kind has 2 x C parameters), the chosen
layer everywhere a batch norm was, outputs of the right shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.models import create, get_info

KINDS = {"group": nn.GroupNorm, "layer": nn.GroupNorm, "instance": nn.InstanceNorm2d}
REAL = ["resnet18", "resnet20_cifar", "plain20_cifar", "vgg_small_s", "seresnet18"]
META = ["resnet50", "resnext50_32x4d", "plain34", "vgg11_bn", "vgg16_bn", "vgg_small_m"]


def norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules()
            if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d))]


def check(name: str, kind: str, model: nn.Module, default: nn.Module) -> None:
    assert list(model.state_dict()) == [k for k in default.state_dict()
                                        if not k.endswith(("running_mean", "running_var",
                                                           "num_batches_tracked"))]
    assert sum(p.numel() for p in model.parameters()) == get_info(name).num_params
    found = norms(model)
    assert len(found) == len(norms(default)) and all(type(m) is KINDS[kind] for m in found)
    if kind == "layer":
        assert all(m.num_groups == 1 for m in found)
    if kind == "group":
        assert all(m.num_groups == min(32, m.num_channels) for m in found)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", REAL)
def test_norm_option_on_cpu(name: str, kind: str) -> None:
    model = create(name, norm=kind, num_classes=4).train()
    side = min(get_info(name).input_size[1], 64)
    out = model(torch.randn(1, 3, side, side))  # batch of 1: no batch statistics needed
    assert tuple(out.shape) == (1, 4) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.device("meta"):
        check(name, kind, create(name, norm=kind), create(name))


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", META)
def test_norm_option_on_meta(name: str, kind: str) -> None:
    with torch.device("meta"):
        model, default = create(name, norm=kind).eval(), create(name)
    check(name, kind, model, default)
    out = model(torch.empty(2, *get_info(name).input_size, device="meta"))
    assert tuple(out.shape) == (2, get_info(name).num_classes)


def test_norm_errors() -> None:
    with pytest.raises(ArgumentError, match="norm must be one of .*; got 'switch'"):
        create("resnet18", norm="switch")
    with pytest.raises(ArgumentError, match="norm must be one of"):
        create("vgg_small_s", norm="Batch")
    with pytest.raises(ArgumentError, match="pass batch_norm=True as well"):
        create("vgg16", norm="group")
