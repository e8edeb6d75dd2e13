"""Squeeze-and-Excitation: Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018.

The module rescales each channel of its input by a gate in (0, 1) computed from the whole
feature map: global average pooling (squeeze), then a bottleneck of two fully connected layers,
C -> C/r -> C, with a ReLU between them and a sigmoid after (excitation).

The fully connected layers are 1x1 convolutions with biases (named ``fc1``, ``fc2``), which is
the same computation as the paper's ``nn.Linear`` layers on the pooled vector and keeps the
tensor 4-D. The hidden width is ``channels // reduction`` without rounding to a multiple of 8
(some libraries round it; the paper does not).
"""

from __future__ import annotations

import torch
from torch import nn
from cnnkit.errors import ArgumentError


class SqueezeExcite(nn.Module):
    """SE module of Hu et al. 2018 with reduction ratio ``reduction`` (the paper uses 16)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1 or not 1 <= reduction <= channels:
            raise ArgumentError(f"SqueezeExcite needs channels >= 1 and 1 <= reduction <= channels; "
                             f"got channels={channels}, reduction={reduction}")
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel gates, shape (N, C, 1, 1), each in (0, 1)."""
        squeezed = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(self.relu(self.fc1(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excitation(x)
