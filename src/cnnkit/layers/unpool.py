"""Parameter-free "unpooling": the inverses of pooling used by encoder-decoder networks.

- nearest neighbour: every value is copied into its ``f x f`` block;
- "bed of nails": every value goes to the top-left corner of its block, zeros elsewhere;
- max unpooling: every value goes back to the position its max pooling took it from (the
  stored argmax indices), zeros elsewhere. Noh, Hong & Han, "Learning Deconvolution Network for
  Semantic Segmentation", ICCV 2015, and Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep
  Convolutional Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017, pair each
  max pool of the encoder with an unpooling layer of the decoder this way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from cnnkit.errors import ArgumentError


def _check_factor(factor: int) -> None:
    if not isinstance(factor, int) or factor < 1:
        raise ArgumentError(f"unpooling factor must be an integer >= 1; got {factor!r}")


class NearestUnpool(nn.Module):
    """Copy every value into an ``f x f`` block: ``N x C x H x W -> N x C x fH x fW``."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        _check_factor(factor)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)


class BedOfNailsUnpool(nn.Module):
    """Put every value at the top-left of an ``f x f`` block of zeros (stride-``f`` placement)."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        _check_factor(factor)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.factor
        out = x.new_zeros(*x.shape[:-2], x.shape[-2] * f, x.shape[-1] * f)
        out[..., ::f, ::f] = x
        return out


class IndexedMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that always returns ``(pooled, indices)`` for a matching
    :class:`MaxUnpool` (the indices are flat positions in each input map)."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, *,
                 ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, return_indices=True, ceil_mode=ceil_mode)


class MaxUnpool(nn.Module):
    """Put values back at the positions recorded by :class:`IndexedMaxPool2d`, zeros elsewhere.

    ``output_size`` (the pooled map's input size) restores odd sizes exactly; without it the
    output is ``stride`` times the input.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride

    def forward(self, x: torch.Tensor, indices: torch.Tensor,
                output_size: torch.Size | tuple[int, int] | None = None) -> torch.Tensor:
        if indices.shape != x.shape:
            raise ArgumentError(f"MaxUnpool needs indices of the same shape as its input; got "
                             f"{tuple(indices.shape)} for input {tuple(x.shape)}")
        size = None if output_size is None else tuple(output_size)[-2:]
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, output_size=size)
