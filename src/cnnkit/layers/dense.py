"""DenseNet's building blocks: the bottleneck dense layer, the dense block and the transition.

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017. Inside a dense block every
layer receives the concatenation of the block input and all earlier layers' outputs and adds
``growth_rate`` (k) new channels, so a block with L layers turns C channels into C + L*k. The
layers are the paper's "B" (bottleneck) form, BN-ReLU-Conv(1x1, bn_size*k)-BN-ReLU-Conv(3x3, k);
transitions between blocks are BN-ReLU-Conv(1x1)-AvgPool(2x2, stride 2), with compression
(the "C" of DenseNet-BC) setting their output channels. Submodule names follow torchvision
(``denselayer1.norm1``, ``transition1.conv`` ...) so that its checkpoints load.

``memory_efficient=True`` recomputes each layer's concatenation, BN and 1x1 convolution in the
backward pass instead of storing them (Pleiss et al., "Memory-Efficient Implementation of
DenseNets", 2017): same results, memory linear instead of quadratic in depth, slower. Unlike a
plain checkpoint (torchvision's), the recomputation leaves the BatchNorm running statistics alone,
so they are updated once per step as without checkpointing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from cnnkit.errors import require_positive


@contextmanager
def _running_stats_kept(norm: nn.BatchNorm2d) -> Iterator[None]:
    """Restore ``norm``'s running statistics on exit (for a checkpoint's recomputation)."""
    saved = [t.clone() for t in (norm.running_mean, norm.running_var, norm.num_batches_tracked)]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip((norm.running_mean, norm.running_var,
                                      norm.num_batches_tracked), saved):
                buffer.copy_(value)


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1(bn_size*k)-BN-ReLU-Conv3x3(k) on the concatenation of ``inputs``."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, *, drop_rate: float = 0.0,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        if self.memory_efficient and needs_grad:
            hidden = checkpoint(self._bottleneck, *inputs, use_reentrant=False,
                                context_fn=lambda: (nullcontext(), _running_stats_kept(self.norm1)))
        else:
            hidden = self._bottleneck(*inputs)
        out = self.conv2(self.relu2(self.norm2(hidden)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers named ``denselayer1`` ...; output: input and all new maps."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int, *,
                 drop_rate: float = 0.0, memory_efficient: bool = False) -> None:
        super().__init__()
        require_positive(num_layers=num_layers)
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate,
                                                    bn_size, drop_rate=drop_rate,
                                                    memory_efficient=memory_efficient)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1-AvgPool(2, stride 2) between two dense blocks; halves height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.out_channels = out_channels
