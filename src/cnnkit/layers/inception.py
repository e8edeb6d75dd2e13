"""The Inception module of GoogLeNet, in its naive and its dimension-reduced form.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, Figure 2:

- (a) naive: 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool (stride 1) side by side on the
  same input, outputs concatenated along channels. The pool keeps all input channels, so the
  output always has more channels than the input and the cost grows stage after stage.
- (b) with dimension reductions: 1x1 convolutions shrink the channels before the 3x3 and 5x5
  convolutions and project the pooled map ("pool proj"), which keeps the cost in check.

Every convolution is followed by a ReLU. ``batch_norm=True`` gives the batch-normalised unit
(convolution without bias, BatchNorm with eps 0.001, ReLU) that torchvision's GoogLeNet uses in
place of the paper's biased convolutions; the submodule names (``branch1.conv``, ``branch2.0``,
``branch4.1.bn`` ...) are torchvision's so that its checkpoints load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from cnnkit.errors import ArgumentError, require_positive


class ConvUnit(nn.Module):
    """Convolution + optional BatchNorm (eps 0.001) + ReLU, named ``conv``/``bn`` like torchvision.

    Without ``batch_norm`` the convolution has a bias (the paper's unit); with it, it has none.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, batch_norm: bool = True) -> None:
        super().__init__()
        require_positive(in_channels=in_channels, out_channels=out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else None
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True)


def _same_pool() -> nn.MaxPool2d:
    """The module's 3x3 max pool with stride 1 and padding 1: keeps the spatial size."""
    return nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True)


class NaiveInception(nn.Module):
    """Figure 2(a): 1x1, 3x3, 5x5 convolutions and a 3x3 max pool, concatenated.

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + in_channels`` (the pool passes every input channel).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, *,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.branch1 = ConvUnit(in_channels, ch1x1, 1, batch_norm=batch_norm)
        self.branch2 = ConvUnit(in_channels, ch3x3, 3, padding=1, batch_norm=batch_norm)
        self.branch3 = ConvUnit(in_channels, ch5x5, 5, padding=2, batch_norm=batch_norm)
        self.branch4 = _same_pool()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class Inception(nn.Module):
    """Figure 2(b): the module with 1x1 dimension reductions, as used in every GoogLeNet stage.

    Arguments follow the columns of the paper's Table 1: ``#1x1``, ``#3x3 reduce``, ``#3x3``,
    ``#5x5 reduce``, ``#5x5``, ``pool proj``.
    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    ``branch3_kernel`` is 5 in the paper; torchvision's GoogLeNet uses 3 there (a known slip kept
    so that its published weights still load).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int,
                 ch5x5_reduce: int, ch5x5: int, pool_proj: int, *, batch_norm: bool = True,
                 branch3_kernel: int = 5) -> None:
        super().__init__()
        if branch3_kernel not in (3, 5):
            raise ArgumentError(f"branch3_kernel must be 5 (the paper) or 3 (torchvision); "
                             f"got {branch3_kernel}")
        bn = batch_norm
        self.branch1 = ConvUnit(in_channels, ch1x1, 1, batch_norm=bn)
        self.branch2 = nn.Sequential(
            ConvUnit(in_channels, ch3x3_reduce, 1, batch_norm=bn),
            ConvUnit(ch3x3_reduce, ch3x3, 3, padding=1, batch_norm=bn))
        self.branch3 = nn.Sequential(
            ConvUnit(in_channels, ch5x5_reduce, 1, batch_norm=bn),
            ConvUnit(ch5x5_reduce, ch5x5, branch3_kernel, padding=branch3_kernel // 2,
                     batch_norm=bn))
        self.branch4 = nn.Sequential(_same_pool(),
                                     ConvUnit(in_channels, pool_proj, 1, batch_norm=bn))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier (paper, Section 5), attached to inception 4a and 4d.

    Average pooling to 4x4, a 1x1 convolution with 128 filters, a 1024-unit fully connected layer
    with ReLU, dropout 70% and a linear classifier. The paper pools with a 5x5 window at stride 3,
    which gives 4x4 on the 14x14 maps of a 224x224 input; an adaptive pool to 4x4 gives the same
    output size at any input size (its windows are 4 or 5 pixels wide instead of 5).
    """

    def __init__(self, in_channels: int, num_classes: int, *, batch_norm: bool = True,
                 dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = ConvUnit(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)
        return self.fc2(self.dropout(x))
