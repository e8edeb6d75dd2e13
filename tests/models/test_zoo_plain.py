"""Plain networks of the ResNet paper's degradation experiment (He et al. 2016, sections 4.1 and
4.2): the layers of resnet18/34 and resnet20..56_cifar without any shortcut.

Counts by hand: the CIFAR plain nets equal the residual ones (option A shortcuts have no
parameters); plain18/34 are resnet18/34 minus three 1x1 projection + BN shortcuts:
64*128 + 2*128 + 128*256 + 2*256 + 256*512 + 2*512 = 8,448 + 33,280 + 132,096 = 173,824."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.layers.residual import BasicBlock, Bottleneck, ZeroPadShortcut, make_shortcut
from cnnkit.models import create, get_info
from cnnkit.models.classification.plain import PLAIN_VARIANTS, PROJECTIONS_RESNET18_34
from cnnkit.models.classification.resnet import resnet
from cnnkit.models.classification.resnet_cifar import resnet_cifar

PLAIN = {"plain18": 11_515_688, "plain34": 21_623_848, "plain20_cifar": 269_722,
         "plain32_cifar": 464_154, "plain44_cifar": 658_586, "plain56_cifar": 853_018}
TWINS = {"plain18": "resnet18", "plain34": "resnet34", "plain20_cifar": "resnet20_cifar",
         "plain32_cifar": "resnet32_cifar", "plain44_cifar": "resnet44_cifar",
         "plain56_cifar": "resnet56_cifar"}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_projection_count_by_hand() -> None:
    assert PROJECTIONS_RESNET18_34 == sum(c_in * c_out + 2 * c_out for c_in, c_out in
                                          ((64, 128), (128, 256), (256, 512))) == 173_824


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_counts(name: str) -> None:
    twin = TWINS[name]
    with torch.device("meta"):
        plain, residual = create(name), create(twin)
    assert count(plain) == PLAIN[name] == get_info(name).num_params == PLAIN_VARIANTS[name][4]
    if name.endswith("_cifar"):
        assert count(plain) == count(residual) == get_info(twin).num_params
    else:
        assert count(plain) == count(residual) - PROJECTIONS_RESNET18_34
        with torch.device("meta"):  # the paper's option A residual net: the same count
            assert count(resnet("basic", PLAIN_VARIANTS[name][1]["depths"], shortcut="A")) \
                == count(plain)
    # the same layers: every key of the plain net is one of the residual net's
    assert set(plain.state_dict()) <= set(residual.state_dict())
    assert not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())
    assert all(m.downsample is None and not m.residual for m in plain.modules()
               if isinstance(m, BasicBlock))


def test_plain_block_has_no_addition() -> None:
    torch.manual_seed(0)
    block = BasicBlock(8, 8, residual=False).eval()
    x = torch.randn(2, 8, 6, 6)
    by_hand = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))
    assert torch.equal(block(x), by_hand)
    residual = BasicBlock(8, 8).eval()
    residual.load_state_dict(block.state_dict())
    assert torch.allclose(residual(x), torch.relu(block.bn2(block.conv2(
        torch.relu(block.bn1(block.conv1(x))))) + x))
    bottleneck = Bottleneck(16, 4, residual=False).eval()
    y = torch.randn(1, 16, 5, 5)
    out = bottleneck.bn3(bottleneck.conv3(torch.relu(bottleneck.bn2(bottleneck.conv2(
        torch.relu(bottleneck.bn1(bottleneck.conv1(y))))))))
    assert torch.equal(bottleneck(y), torch.relu(out))


def test_plain_nets_run_and_train() -> None:
    model = create("plain20_cifar").train()
    out = model(torch.randn(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.device("meta"):
        plain18 = create("plain18", num_classes=5, output_stride=8).eval()
    assert tuple(plain18(torch.empty(1, 3, 64, 64, device="meta")).shape) == (1, 5)
    assert [s.stride for s in plain18.feature_specs] == [2, 4, 8, 8, 8]


def test_shortcut_and_plain_errors() -> None:
    with pytest.raises(ArgumentError, match=r"shortcut must be 'A' .*'none'.*; got 'C'"):
        resnet_cifar(20, shortcut="C")
    with pytest.raises(ArgumentError, match="shortcut must be"):
        resnet("basic", (2, 2, 2, 2), shortcut="identity")
    with pytest.raises(ArgumentError, match="zero_init_residual needs shortcuts"):
        resnet_cifar(20, shortcut="none", zero_init_residual=True)
    with pytest.raises(ArgumentError, match="zero_init_residual needs shortcuts"):
        create("plain18", zero_init_residual=True)
    with pytest.raises(ArgumentError, match="downsample must be None"):
        BasicBlock(16, 32, 2, make_shortcut("B", 16, 32, 2), residual=False)
    assert make_shortcut("none", 16, 32, 2) is None
