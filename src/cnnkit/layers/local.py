"""Locally connected layer: a convolution whose filters are not shared across positions.

Every output position has its own ``C_out x C_in x k x k`` filter, so the layer has
``out_h x out_w`` times the weights of the matching convolution but the same number of
multiply-adds. Used in face recognition on aligned ("registered") images, where the statistics
differ from one position to another: Taigman, Yang, Ranzato & Wolf, "DeepFace: Closing the Gap
to Human-Level Performance in Face Verification", CVPR 2014 (layers L4-L6). Differences from
DeepFace: no weight sharing between neighbouring positions of any kind, square or rectangular
kernels, optional ``"same"`` padding (asymmetric for even kernels, as PyTorch's convolution).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 0 for v in pair):
        raise ArgumentError(f"{name} must be an int or a pair of non-negative ints; got {value!r}")
    return pair


class LocallyConnected2d(nn.Module):
    """Unshared-weight 2-D "convolution" for inputs of a fixed size ``input_size`` (H, W).

    ``padding`` is an int/pair (both sides) or ``"same"`` (stride 1; the extra pixel of an even
    kernel goes after, as in ``nn.Conv2d(padding="same")``). Weights have shape
    ``(out_h, out_w, out_channels, in_channels * kh * kw)``; biases ``(out_channels, out_h,
    out_w)``: one per output unit.
    """

    def __init__(self, in_channels: int, out_channels: int, input_size: int | tuple[int, int],
                 kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | str = 0, bias: bool = True) -> None:
        super().__init__()
        require_positive(in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size = _pair(input_size, "input_size")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        if padding == "same":
            if self.stride != (1, 1):
                raise ArgumentError("padding='same' needs stride 1")
            totals = [k - 1 for k in self.kernel_size]
            self.pad = tuple((t // 2, t - t // 2) for t in totals)
        elif isinstance(padding, str):
            raise ArgumentError(f"padding must be an int, a pair or 'same'; got {padding!r}")
        else:
            self.pad = tuple((p, p) for p in _pair(padding, "padding"))
        self.padding_before = tuple(p[0] for p in self.pad)
        self.output_size = tuple(
            (n + sum(p) - k) // s + 1
            for n, p, k, s in zip(self.input_size, self.pad, self.kernel_size, self.stride))
        if min(self.output_size) < 1:
            raise InputSizeError(f"LocallyConnected2d: kernel {self.kernel_size} does not fit "
                                 f"the padded input {self.input_size}")
        fan_in = in_channels * math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(*self.output_size, out_channels, fan_in))
        self.bias = nn.Parameter(torch.empty(out_channels, *self.output_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(fan_in), PyTorch's default for convolutions."""
        bound = 1 / math.sqrt(self.weight.shape[-1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.input_size):
            raise InputSizeError(f"LocallyConnected2d expects (N, {self.in_channels}, "
                                 f"{self.input_size[0]}, {self.input_size[1]}); "
                                 f"got {tuple(x.shape)}")
        (top, bottom), (left, right) = self.pad
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        patches = F.unfold(x, self.kernel_size, stride=self.stride)  # (N, C_in*kh*kw, L)
        positions = self.output_size[0] * self.output_size[1]
        weight = self.weight.reshape(positions, self.out_channels, -1)
        out = torch.einsum("nkl,lok->nol", patches, weight)
        out = out.reshape(x.shape[0], self.out_channels, *self.output_size)
        return out if self.bias is None else out + self.bias

    def analysis_cost(self, inputs, outputs) -> tuple[int, int]:
        """(MACs, FLOPs) for cnnkit's analyzer: like a convolution, one multiply-add per weight
        of each output element's window."""
        macs = outputs[0].numel() * self.weight.shape[-1]
        return macs, 2 * macs

    def receptive_window(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, ...]]:
        """(kernel, stride, padding before) of one output position, for cnnkit's analyzer."""
        return self.kernel_size, self.stride, self.padding_before

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}")
