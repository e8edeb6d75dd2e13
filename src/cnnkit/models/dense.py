"""What every dense-prediction network (segmentation, heatmaps) shares: the input sizes it takes.

A network whose layers only tile some input sizes (U-Net with valid convolutions, SegNet's
unpooling) declares them as :class:`InputSizes` and calls ``check`` on its input; a wrong size
gets one message with the nearest valid sizes instead of a shape error deep inside torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnkit.errors import InputSizeError


@dataclass(frozen=True)
class InputSizes:
    """Valid spatial sizes ``minimum + k * step`` (k >= 0), the same rule for height and width."""

    minimum: int = 1
    step: int = 1

    def valid(self, size: int) -> bool:
        return size >= self.minimum and (size - self.minimum) % self.step == 0

    def nearest(self, size: int, count: int = 2) -> list[int]:
        """The valid sizes closest to ``size`` (one below and one above when they exist)."""
        k = max(0, (size - self.minimum) // self.step)
        candidates = [self.minimum + (k + i) * self.step for i in range(-count, count + 2)]
        candidates = [c for c in candidates if c >= self.minimum]
        return sorted(sorted(candidates, key=lambda c: (abs(c - size), c))[:count])

    def describe(self) -> str:
        if self.step == 1:
            return f"at least {self.minimum}"
        first = ", ".join(str(self.minimum + i * self.step) for i in range(3))
        return f"{first}, ... ({self.minimum} + k*{self.step})"

    def check(self, model_name: str, x: torch.Tensor) -> None:
        """Raise :class:`InputSizeError` unless both spatial sizes of ``x`` (N, C, H, W) are valid."""
        if x.dim() != 4:
            raise InputSizeError(f"{model_name} takes N x C x H x W images; got shape {tuple(x.shape)}")
        bad = [s for s in x.shape[-2:] if not self.valid(s)]
        if bad:
            near = {s: self.nearest(s) for s in bad}
            hint = "; ".join(f"nearest to {s}: {', '.join(map(str, n))}" for s, n in near.items())
            raise InputSizeError(f"{model_name} needs input sizes {self.describe()}; got "
                                 f"{x.shape[-2]}x{x.shape[-1]} ({hint})")


class DenseModel(nn.Module):
    """Base of segmentation and heatmap networks: ``forward`` checks the size, then ``predict``.

    Subclasses set ``input_sizes`` (default: any size) and ``num_classes`` (output channels) and
    implement ``predict(x)`` returning ``N x num_classes x H' x W'`` (the input resolution for
    segmentation networks, the chosen output stride for heatmap networks).
    """

    input_sizes: InputSizes = InputSizes()
    num_classes: int
    display_name: str = ""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.input_sizes.check(self.display_name or type(self).__name__, x)
        return self.predict(x)
