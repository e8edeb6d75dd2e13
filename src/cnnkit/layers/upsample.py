"""Upsampling layers of dense-prediction networks: interpolation, transposed convolution with the
bilinear initialiser, and "upsample then convolve".

Transposed convolution ("up-convolution", "backwards-strided" or "fractionally strided"
convolution; never a deconvolution in the signal-processing sense) multiplies by the transpose of
the matrix of a strided convolution. A transposed convolution with kernel ``k``, stride ``s`` and
padding ``p`` equals: insert ``s - 1`` zeros between neighbouring inputs, pad by ``k - p - 1``
and convolve (stride 1) with the kernel rotated by 180 degrees (Dumoulin & Visin, "A guide to
convolution arithmetic for deep learning", 2016); :func:`conv_transpose_as_conv` computes it that
way, the tests check it against ``nn.ConvTranspose2d``.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015,
initialise their in-network upsampling layers as bilinear interpolation: a transposed convolution
with stride ``f`` and a ``2f - f % 2`` kernel whose weights are
``(1 - |x - c| / f) * (1 - |y - c| / f)`` around the centre ``c = (k - 1) / 2``, applied to each
channel separately (:func:`bilinear_kernel`, :func:`init_bilinear_`). With padding
``(k - f) / 2`` that layer reproduces ``F.interpolate(mode="bilinear", align_corners=False)``
exactly away from the borders. The lecture's 3x3 kernel ``[[1/4, 1/2, 1/4], [1/2, 1, 1/2],
[1/4, 1/2, 1/4]]`` (stride 2, padding 1, output padding 1) instead samples at input coordinate
``i / 2``: it copies every input and averages neighbours in between.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from cnnkit.errors import ArgumentError, require_positive


def _check_factor(factor: int, name: str = "factor") -> None:
    if not isinstance(factor, int) or factor < 1:
        raise ArgumentError(f"upsampling {name} must be an integer >= 1; got {factor!r}")


def bilinear_kernel(factor: int, channels: int | None = None, *,
                    kernel_size: int | None = None) -> torch.Tensor:
    """The bilinear upsampling kernel for ``factor``, FCN's construction.

    ``kernel_size`` defaults to ``2 * factor - factor % 2`` (4 for factor 2, 5 for 3). With
    ``channels=None`` the result is the ``k x k`` kernel; otherwise it is a
    ``(channels, channels, k, k)`` transposed-convolution weight that upsamples every channel on
    its own (the kernel on the diagonal, zeros elsewhere).
    """
    _check_factor(factor)
    k = 2 * factor - factor % 2 if kernel_size is None else kernel_size
    require_positive(k=k)
    center = (k - 1) / 2
    taps = 1 - (torch.arange(k, dtype=torch.float64) - center).abs() / factor
    kernel = torch.outer(taps, taps).to(torch.get_default_dtype())
    if channels is None:
        return kernel
    require_positive(channels=channels)
    weight = torch.zeros(channels, channels, k, k)
    weight[range(channels), range(channels)] = kernel
    return weight


@torch.no_grad()
def init_bilinear_(conv_transpose: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """Set ``conv_transpose`` to per-channel bilinear upsampling by its stride; bias to zero.

    Works for ``groups=1`` with as many output as input channels (diagonal weight) and for
    depthwise layers (``groups == in_channels == out_channels``). Returns the layer.
    """
    m = conv_transpose
    if not isinstance(m, nn.ConvTranspose2d):
        raise ArgumentError(f"init_bilinear_ takes an nn.ConvTranspose2d; got {type(m).__name__}")
    kh, kw = m.kernel_size
    sh, sw = m.stride
    if kh != kw or sh != sw:
        raise ArgumentError(f"init_bilinear_ needs a square kernel and equal strides; got kernel "
                         f"{m.kernel_size}, stride {m.stride}")
    if m.in_channels != m.out_channels or m.groups not in (1, m.in_channels):
        raise ArgumentError(f"init_bilinear_ upsamples each channel on its own, so in_channels must "
                         f"equal out_channels and groups be 1 or in_channels; got "
                         f"{m.in_channels} -> {m.out_channels}, groups={m.groups}")
    kernel = bilinear_kernel(sh, kernel_size=kh).to(m.weight)
    if m.groups == 1:
        m.weight.zero_()
        m.weight[range(m.in_channels), range(m.in_channels)] = kernel
    else:
        m.weight.copy_(kernel.expand_as(m.weight))
    if m.bias is not None:
        m.bias.zero_()
    return m


def bilinear_conv_transpose(channels: int, factor: int = 2, *, kernel_size: int | None = None,
                            trainable: bool = True) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples ``channels`` maps by ``factor`` (exactly
    ``n -> f*n``), initialised as bilinear interpolation (no bias).

    ``kernel_size=None`` gives FCN's ``2f - f % 2`` kernel with padding ``(k - f) / 2`` (equal to
    ``F.interpolate(..., mode="bilinear", align_corners=False)`` away from the borders);
    ``kernel_size=3, factor=2`` gives the lecture's 3x3 kernel with padding 1 and output padding 1.
    ``trainable=False`` freezes the weight (FCN's final 8x/16x/32x layers are fixed).
    """
    _check_factor(factor)
    k = 2 * factor - factor % 2 if kernel_size is None else kernel_size
    if k < factor:
        raise ArgumentError(f"kernel_size must be >= factor ({factor}) for an n -> {factor}n "
                         f"upsampling; got {k}")
    padding = -(-(k - factor) // 2)
    output_padding = factor - k + 2 * padding
    layer = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=padding,
                               output_padding=output_padding, bias=False)
    init_bilinear_(layer)
    layer.weight.requires_grad_(trainable)
    return layer


def conv_transpose_as_conv(x: torch.Tensor, weight: torch.Tensor, *, stride: int = 1,
                           padding: int = 0, output_padding: int = 0) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, stride=s, padding=p)`` computed as the lecture derives it:
    insert ``s - 1`` zeros between inputs, pad by ``k - p - 1`` (plus ``output_padding`` at the
    bottom/right) and convolve with stride 1 with the kernel rotated by 180 degrees.

    ``weight`` has the transposed-convolution layout ``(in, out, k, k)``; ``groups=1``.
    For teaching and testing, not speed. Requires ``padding <= k - 1``.
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    if padding > k - 1:
        raise ArgumentError(f"padding must be <= kernel_size - 1 = {k - 1}; got {padding}")
    dilated = x.new_zeros(n, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    dilated[..., ::stride, ::stride] = x
    edge = k - padding - 1
    dilated = F.pad(dilated, (edge, edge + output_padding, edge, edge + output_padding))
    rotated = weight.flip(-2, -1).transpose(0, 1)  # (out, in, k, k) for conv2d
    return F.conv2d(dilated, rotated)


Mode = Literal["nearest", "bilinear", "bicubic"]
MODES = ("nearest", "bilinear", "bicubic")


class Interpolate(nn.Module):
    """Parameter-free upsampling by ``factor`` with ``F.interpolate``.

    ``mode="bilinear"``: ``align_corners=False`` (default) treats pixels as unit squares and
    maps output pixel ``i`` to input coordinate ``(i + 0.5) / f - 0.5`` (the convention of
    FCN-style bilinear transposed convolutions and of torchvision's segmentation heads);
    ``align_corners=True`` maps the corner pixels onto each other (``i * (n - 1) / (fn - 1)``).
    ``mode="bicubic"``: the same sampling positions, read through Keys' cubic convolution
    kernel (a = -0.75, PyTorch's choice) on the 4 x 4 nearest inputs, indices clamped at the
    borders; it can overshoot (values outside the input range near edges), which bilinear cannot.
    ``mode="nearest"`` repeats every pixel ``f x f`` times (nearest-neighbour unpooling).
    """

    def __init__(self, factor: int = 2, mode: Mode = "bilinear", *,
                 align_corners: bool = False) -> None:
        super().__init__()
        _check_factor(factor)
        if mode not in MODES:
            raise ArgumentError(f"interpolation mode must be one of {', '.join(map(repr, MODES))}; "
                                f"got {mode!r}")
        self.factor, self.mode = factor, mode
        self.align_corners = align_corners if mode != "nearest" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode,
                             align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}, align_corners={self.align_corners}"


class UpsampleConv(nn.Sequential):
    """"Upsample then convolve": interpolation by ``factor`` followed by a stride-1 convolution
    (``kernel_size`` 3 with "same" padding, or 1), an alternative to transposed convolution that
    avoids its checkerboard artefacts (Odena et al., "Deconvolution and Checkerboard Artifacts",
    Distill 2016). Submodules: ``upsample``, ``conv``.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2, *,
                 mode: Mode = "bilinear", kernel_size: int = 3,
                 align_corners: bool = False, bias: bool = True) -> None:
        if kernel_size % 2 != 1:
            raise ArgumentError(f"UpsampleConv kernel_size must be odd (same padding); "
                             f"got {kernel_size}")
        super().__init__()
        self.upsample = Interpolate(factor, mode, align_corners=align_corners)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              bias=bias)
