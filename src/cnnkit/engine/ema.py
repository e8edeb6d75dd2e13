"""An exponential moving average of a model's weights (Polyak & Juditsky, "Acceleration of
Stochastic Approximation by Averaging", SIAM J. Control Optim. 1992; the "EMA" of the fast
training recipes).

After every optimizer step each floating-point parameter and buffer (batch-norm statistics
included) of the average moves towards the trained model's: ``average += (1 - d) * (model -
average)``. The decay ``d`` starts low and rises to ``decay`` as ``min(decay, (1 + n) / (10 +
n))`` after ``n`` updates (the warm-up of TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``), so the first, random weights are soon forgotten. The averaging itself is
``torch.optim.swa_utils.AveragedModel`` with that schedule; the trainer validates and saves the
average, and keeps the trained weights for resuming.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from cnnkit.errors import ArgumentError


class WeightAverage:
    """The moving average of ``model``'s weights with final decay ``decay`` (0 < decay < 1);
    ``module`` is the averaged copy (no gradients), ``updates`` the number of updates."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
            raise ArgumentError(f"ema decay must be in (0, 1), e.g. 0.999; got {decay!r}")
        self.decay = float(decay)
        self._average = AveragedModel(model, multi_avg_fn=self._lerp, use_buffers=True)
        self._average.requires_grad_(False)

    def _lerp(self, averaged: list[torch.Tensor], current: list[torch.Tensor],
              num_averaged: torch.Tensor) -> None:
        updates = int(num_averaged) + 1
        decay = min(self.decay, (1 + updates) / (10 + updates))
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - decay)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():  # counters such as num_batches_tracked
                a.copy_(c)

    @property
    def module(self) -> nn.Module:
        return self._average.module

    @property
    def updates(self) -> int:
        return int(self._average.n_averaged)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model`` (the first call copies it)."""
        self._average.update_parameters(model)

    def load(self, state: dict[str, Any], updates: int) -> None:
        """Restore the averaged weights and the number of updates of a checkpoint."""
        self.module.load_state_dict(state)
        self._average.n_averaged.fill_(int(updates))
