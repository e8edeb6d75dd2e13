"""Convolution arithmetic: output sizes, "same" padding and receptive fields of layer stacks.

The formulas are the lecture decks' and Dumoulin & Visin's (A guide to convolution arithmetic for
deep learning, 2016):

- convolution / pooling: ``out = (N - K_eff + 2P) / S + 1`` with ``K_eff = D(K - 1) + 1``;
- transposed convolution: ``out = (N - 1)S - 2P + K_eff + output_padding``.

When ``(N - K_eff + 2P)`` is not divisible by ``S`` the layer does not tile its input ("fractions
are illegal": 7x7 input, 3x3 filter, stride 3 gives 2.33). The helpers raise :class:`ArithmeticError`
then, unless ``floor=True`` asks for PyTorch's behaviour (the last, partial window is dropped), or
``ceil=True`` for pooling with ``ceil_mode``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from cnnkit.errors import ArgumentError


class FractionalSizeError(ArithmeticError, ValueError):
    """The layer's windows do not tile the input: (N - K + 2P) is not divisible by S."""


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Extent of a dilated kernel: ``D(K-1) + 1`` (3x3 with dilation 2 spans 5)."""
    _positive(kernel=kernel, dilation=dilation)
    return dilation * (kernel - 1) + 1


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, *, floor: bool = False, ceil: bool = False) -> int:
    """Output size of a convolution or pooling window: ``(N - K_eff + 2P)/S + 1``."""
    _positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    if padding < 0:
        raise ArgumentError(f"padding must be >= 0; got {padding}")
    k_eff = effective_kernel(kernel, dilation)
    span = size - k_eff + 2 * padding
    if span < 0:
        raise ArgumentError(f"kernel extent {k_eff} is larger than the padded input "
                         f"{size} + 2*{padding} = {size + 2 * padding}")
    quotient, remainder = divmod(span, stride)
    if remainder and not (floor or ceil):
        raise FractionalSizeError(
            f"({size} - {k_eff} + 2*{padding})/{stride} + 1 = {span / stride + 1:.2f}: "
            f"fractions are illegal; the stride does not tile the input "
            f"(pass floor=True for PyTorch's floor, or change padding/stride)")
    if remainder and ceil:
        quotient += 1
        # PyTorch's ceil_mode: the last window must start inside the input or left padding.
        if quotient * stride >= size + padding:
            quotient -= 1
    return quotient + 1


def pool_output_size(size: int, kernel: int, stride: int | None = None, padding: int = 0,
                     *, floor: bool = False, ceil: bool = False) -> int:
    """Pooling output size; the stride defaults to the kernel size, as in PyTorch."""
    return conv_output_size(size, kernel, kernel if stride is None else stride, padding,
                            floor=floor, ceil=ceil)


def transposed_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                           dilation: int = 1, output_padding: int = 0) -> int:
    """Output size of a transposed convolution: ``(N-1)S - 2P + D(K-1) + 1 + output_padding``."""
    _positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    if not 0 <= output_padding < max(stride, dilation):
        raise ArgumentError(f"output_padding must be in [0, max(stride, dilation)) = "
                         f"[0, {max(stride, dilation)}); got {output_padding}")
    out = (size - 1) * stride - 2 * padding + effective_kernel(kernel, dilation) + output_padding
    if out < 1:
        raise ArgumentError(f"transposed convolution gives a non-positive size {out}")
    return out


def same_padding(kernel: int, dilation: int = 1) -> int:
    """Padding that keeps the size at stride 1: ``(K_eff - 1)/2``; odd extents only."""
    k_eff = effective_kernel(kernel, dilation)
    if k_eff % 2 == 0:
        raise ArgumentError(f"'same' padding needs an odd kernel extent; kernel {kernel} with "
                         f"dilation {dilation} spans {k_eff} (pad asymmetrically instead)")
    return (k_eff - 1) // 2


@dataclass(frozen=True)
class Layer:
    """One layer of a stack for :func:`receptive_field`: a window of ``kernel`` moved by ``stride``."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


@dataclass(frozen=True)
class ReceptiveField:
    """``size``: input pixels one output unit sees; ``jump``: input pixels between neighbouring
    output units (effective stride); ``start``: input coordinate of the centre of the first
    output unit's field (pixel centres at integers, so padding makes it negative)."""

    size: int
    jump: int
    start: float


def receptive_field(layers: Iterable[Layer | tuple[int, ...]]) -> list[ReceptiveField]:
    """Receptive field after each layer of a chain, with respect to the input.

    Each layer is a :class:`Layer` or a tuple ``(kernel, stride=1, padding=0, dilation=1)``.
    Recurrence: ``size += (K_eff - 1) * jump``; ``start += ((K_eff - 1)/2 - P) * jump``;
    ``jump *= S``. L stacked 3x3 stride-1 layers give ``1 + 2L``.
    """
    size, jump, start = 1, 1, 0.0
    out = []
    for layer in layers:
        layer = layer if isinstance(layer, Layer) else Layer(*layer)
        _positive(kernel=layer.kernel, stride=layer.stride, dilation=layer.dilation)
        k_eff = effective_kernel(layer.kernel, layer.dilation)
        size += (k_eff - 1) * jump
        start += ((k_eff - 1) / 2 - layer.padding) * jump
        jump *= layer.stride
        out.append(ReceptiveField(size, jump, start))
    return out


def conv_params(in_channels: int, out_channels: int, kernel: int | tuple[int, int],
                groups: int = 1, bias: bool = True) -> int:
    """Weights (+ biases) of a convolution: ``Cout * Cin/groups * kh * kw (+ Cout)``."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if in_channels % groups or out_channels % groups:
        raise ArgumentError(f"groups={groups} must divide in_channels={in_channels} and "
                         f"out_channels={out_channels}")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def conv_macs(in_channels: int, out_channels: int, kernel: int | tuple[int, int],
              out_height: int, out_width: int, groups: int = 1) -> int:
    """Multiply-adds of a convolution: one per weight per output position (bias not counted)."""
    return conv_params(in_channels, out_channels, kernel, groups, bias=False) * out_height * out_width


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ArgumentError(f"{name} must be a positive integer; got {value!r}")
