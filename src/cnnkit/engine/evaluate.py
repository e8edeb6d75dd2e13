"""Validation over a whole dataset: the task's loss and its metric, summed across processes."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from cnnkit.data.batch import to_device
from cnnkit.engine.batches import as_batch
from cnnkit.engine.distributed import all_reduce_sum, dist_info
from cnnkit.tasks.base import Metric, Task


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context when mixed precision is off."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _as_float(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, tuple):
        return tuple(_as_float(o) for o in output)
    if isinstance(output, list):
        return [_as_float(o) for o in output]
    return output


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, loader: Any, *, device: torch.device | str = "cpu",
             amp_dtype: torch.dtype | None = None, channels_last: bool = False,
             metric: Metric | None = None) -> dict[str, float]:
    """``{"loss": mean loss per sample, **task metric}`` over every batch of ``loader``.

    The model is put in evaluation mode (and left there). In a distributed run each process
    sees its shard; the loss sums and the metric's state are summed across processes, so every
    process returns the figures of the whole dataset. Outputs are cast to float32 before the
    metric sees them.
    """
    device = torch.device(device)
    model.eval()
    metric = task.new_metric() if metric is None else metric  # a given one is left filled
    metric.reset()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    batches = losses = 0
    for raw in loader:
        batch = to_device(as_batch(raw), device, channels_last=channels_last)
        with autocast_context(device, amp_dtype):
            output = task.forward(model, batch)
        output = _as_float(output)
        loss, _ = task.loss(output, batch)
        size = batch["image"].shape[0]
        batches += 1
        if loss is not None:
            losses += 1
            loss_sum += loss.detach().double() * size
            count += size
        metric.update(output, batch)
    if dist_info().enabled:
        metric.all_reduce()
        all_reduce_sum(loss_sum)
        all_reduce_sum(count)
    figures = {name: float(value) for name, value in metric.compute().items()}
    if batches and not losses:  # the task's outputs carry no loss here (a detector's)
        return figures
    total = count.item()
    return {"loss": loss_sum.item() / total if total else float("nan"), **figures}
