"""Depthwise separable building blocks of the efficient networks.

- :class:`DepthwiseSeparableConv`: Howard et al., "MobileNets: Efficient Convolutional Neural
  Networks for Mobile Vision Applications", 2017: a KxK depthwise convolution (one filter per
  channel, ``groups=in_channels``) then a 1x1 pointwise convolution, each followed by BN + ReLU.
  A KxK convolution from C_in to C_out channels has K*K*C_in*C_out weights; the separable pair
  has K*K*C_in + C_in*C_out (5x5 on 3 channels: 75, then 1x1 from 3 to 256: 768, instead of
  19,200).
- :class:`InvertedResidual`: Sandler et al., "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", 2018: 1x1 expansion by a factor t (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear
  projection (no activation); the input is added only when the stride is 1 and the channel
  counts agree. Submodule names follow torchvision so its checkpoints load.
- :func:`channel_shuffle`: Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional
  Neural Network for Mobile Devices", 2018: reshape the channels to (groups, C/groups),
  transpose, flatten, so that the next group convolution sees channels of every group.

Activations are not in-place, so feature maps captured by forward hooks stay intact.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import CnnkitError, require_positive


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` (never below ``min_value``,
    default ``divisor``, and never more than 10% below ``value``), as the MobileNetV2 reference
    code does for its width multiplier."""
    require_positive(divisor=divisor)
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                  groups: int = 1, activation: type[nn.Module] | None = nn.ReLU,
                  padding: int | None = None) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> activation as ``Sequential`` indices 0, 1, 2 (torchvision's
    ``Conv2dNormActivation`` layout). ``padding=None`` keeps the size at stride 1 (K // 2)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                  kernel_size // 2 if padding is None else padding, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` equal channel groups: with 2 groups, [a0 a1 a2 b0 b1 b2] becomes
    [a0 b0 a1 b1 a2 b2]."""
    batch, channels, height, width = x.shape
    if groups < 1 or channels % groups:
        raise CnnkitError(f"channel_shuffle: groups must be >= 1 and divide the {channels} "
                          f"channels; got groups={groups}")
    x = x.reshape(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


class ChannelShuffle(nn.Module):
    """:func:`channel_shuffle` as a (parameterless) module."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class DepthwiseSeparableConv(nn.Module):
    """MobileNet's separable layer: ``depthwise`` (KxK, groups=C_in, BN, ReLU) then
    ``pointwise`` (1x1, BN, ReLU). ``padding=None`` means K // 2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int | None = None,
                 activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.depthwise = conv_norm_act(in_channels, in_channels, kernel_size, stride,
                                       groups=in_channels, activation=activation, padding=padding)
        self.pointwise = conv_norm_act(in_channels, out_channels, 1, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck: ``conv`` = [1x1 expand (if t != 1)], 3x3 depthwise, 1x1 linear
    projection + BN; ``x + conv(x)`` when ``use_residual`` (stride 1 and in == out channels)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise CnnkitError(f"InvertedResidual: stride must be 1 or 2; got {stride}")
        if expand_ratio < 1:
            raise CnnkitError(f"InvertedResidual: expand_ratio must be >= 1; got {expand_ratio}")
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(in_channels, hidden, 1, activation=nn.ReLU6))
        layers += [
            conv_norm_act(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out

    def zero_init_last(self) -> None:
        """Zero the projection's BN gamma so a residual block starts as the identity."""
        if self.use_residual:
            nn.init.zeros_(self.conv[-1].weight)
