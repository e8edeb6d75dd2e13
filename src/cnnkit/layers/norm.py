"""Normalisation layers as one option: ``make_norm(kind, channels)``.

- ``"batch"``: ``nn.BatchNorm2d`` (Ioffe & Szegedy, "Batch Normalization", ICML 2015):
  statistics over the batch and the positions, per channel; running averages at inference.
- ``"group"``: ``nn.GroupNorm`` (Wu & He, "Group Normalization", ECCV 2018): statistics per
  sample over groups of channels and all positions; ``groups`` defaults to the paper's 32,
  lowered to the largest divisor of ``channels`` that is not above it (16 channels get 16
  groups, 48 channels 24 groups), since every group must hold the same number of channels.
- ``"layer"``: layer normalisation (Ba, Kiros & Hinton, "Layer Normalization", 2016) over
  C x H x W, built as ``nn.GroupNorm(1, channels)``: one group of all channels gives the same
  mean and variance as ``nn.LayerNorm([C, H, W])``, but with one scale and shift *per channel*
  (``nn.LayerNorm`` would learn one per element, and would tie the layer to one input size).
- ``"instance"``: ``nn.InstanceNorm2d(channels, affine=True)`` (Ulyanov, Vedaldi & Lempitsky,
  "Instance Normalization", 2016): statistics per sample and channel over the positions, with a
  learned scale and shift per channel and no running statistics.

The three per-sample kinds behave the same in training and evaluation and do not depend on the
batch size; all four have ``2 x channels`` parameters (``weight``, ``bias``).
"""

from __future__ import annotations

from torch import nn

from cnnkit.errors import ArgumentError, require_positive

NORMS = ("batch", "group", "layer", "instance")
DEFAULT_GROUPS = 32  # Wu & He's default


def group_count(channels: int, groups: int = DEFAULT_GROUPS) -> int:
    """The number of groups ``make_norm("group", channels)`` uses: the largest divisor of
    ``channels`` that is at most ``groups``."""
    require_positive(channels=channels, groups=groups)
    count = min(groups, channels)
    while channels % count:
        count -= 1
    return count


def check_norm(kind: str) -> None:
    """Raise :class:`ArgumentError` unless ``kind`` is one of :data:`NORMS`."""
    if kind not in NORMS:
        raise ArgumentError(f"norm must be one of {', '.join(map(repr, NORMS))}; got {kind!r}")


def make_norm(kind: str, channels: int, *, groups: int = DEFAULT_GROUPS) -> nn.Module:
    """A normalisation layer of ``kind`` ("batch", "group", "layer", "instance") for
    ``channels`` feature maps; see the module docstring."""
    check_norm(kind)
    require_positive(channels=channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels, groups), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.InstanceNorm2d(channels, affine=True)
