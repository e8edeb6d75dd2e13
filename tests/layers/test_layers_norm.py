"""make_norm: batch, group (32 groups, lowered to a divisor of the channels), layer (GroupNorm
with one group = LayerNorm over C x H x W, per-channel affine) and instance normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.layers.norm import NORMS, group_count, make_norm


def test_kinds_and_parameter_counts() -> None:
    assert NORMS == ("batch", "group", "layer", "instance")
    assert type(make_norm("batch", 64)) is nn.BatchNorm2d
    group = make_norm("group", 64)
    assert isinstance(group, nn.GroupNorm) and group.num_groups == 32
    layer = make_norm("layer", 64)
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == 1
    instance = make_norm("instance", 64)
    assert isinstance(instance, nn.InstanceNorm2d) and instance.affine
    assert not instance.track_running_stats
    for kind in NORMS:
        assert sum(p.numel() for p in make_norm(kind, 64).parameters()) == 2 * 64


@pytest.mark.parametrize("channels, groups, expected", [(64, 32, 32), (16, 32, 16), (3, 32, 3),
                                                        (48, 32, 24), (96, 32, 32),
                                                        (100, 32, 25), (7, 4, 1)])
def test_group_count_is_the_largest_divisor_not_above_groups(channels, groups, expected) -> None:
    assert group_count(channels, groups) == expected
    assert make_norm("group", channels, groups=groups).num_groups == expected


def test_layer_norm_is_group_norm_with_one_group() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    norm = make_norm("layer", 6).double()
    assert torch.allclose(norm(x), F.layer_norm(x, x.shape[1:]), atol=1e-12)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
        norm.bias.fill_(0.5)
    expected = F.layer_norm(x, x.shape[1:]) * torch.arange(1.0, 7.0).view(1, 6, 1, 1) + 0.5
    assert torch.allclose(norm(x), expected.double(), atol=1e-12)
    # statistics per sample: one sample's output does not depend on the others
    assert torch.allclose(norm(x)[:1], norm(x[:1]), atol=1e-12)


def test_instance_norm_normalises_each_map() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8) * 3 + 1
    out = make_norm("instance", 4)(x)
    assert torch.allclose(out.mean((2, 3)), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(out.var((2, 3), unbiased=False), torch.ones(2, 4), atol=1e-3)


def test_bad_kind_names_the_valid_ones() -> None:
    with pytest.raises(ArgumentError, match="norm must be one of 'batch', 'group', 'layer', "
                                            "'instance'; got 'weight'"):
        make_norm("weight", 8)
    with pytest.raises(ArgumentError, match="channels must be an integer >= 1"):
        make_norm("group", 0)
