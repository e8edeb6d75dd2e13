"""What the trainer needs from a task: a loss, metrics accumulated over a dataset, decoding.

A :class:`Task` turns model outputs and a batch (see :mod:`cnnkit.data.batch`) into a loss and
into predictions; a :class:`Metric` accumulates sufficient statistics over a whole dataset (a
confusion matrix, sums of errors), so its figures are exact over the dataset rather than means
of per-batch figures, and sums them across processes in distributed runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

Batch = dict[str, Any]


class Metric(ABC):
    """Accumulates over batches; ``compute`` gives the figures for everything seen so far."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, output: Any, batch: Batch) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...

    def state(self) -> list[torch.Tensor]:
        """Tensors whose sum over processes is the state of the whole dataset."""
        return []

    def all_reduce(self) -> None:
        """Sum the state across the processes of a ``torch.distributed`` run (no-op otherwise)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        # NCCL reduces GPU tensors only; gloo takes them where they are.
        device = torch.device("cuda", torch.cuda.current_device()) \
            if dist.get_backend() == "nccl" else None
        for tensor in self.state():
            moved = tensor.to(device) if device is not None else tensor
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            if moved is not tensor:
                tensor.copy_(moved)


class Task(ABC):
    """One kind of prediction: classification, localization, segmentation or keypoints.

    ``primary_metric`` names the figure of :meth:`Metric.compute` used to pick the best
    checkpoint and for early stopping; ``higher_is_better`` says which way it goes.
    """

    name: str
    primary_metric: str
    higher_is_better: bool = True

    @abstractmethod
    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar to minimise and its named parts, detached tensors (read only when logged,
        so that no step waits for the device)."""

    @abstractmethod
    def new_metric(self) -> Metric: ...

    @abstractmethod
    def decode(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        """Per-sample predictions in original image coordinates (JSON-friendly values)."""


def main_output(output: Any) -> torch.Tensor:
    """The main prediction of a model that may also return auxiliary outputs as a tuple
    (GoogLeNet's and FCN/DeepLab's aux heads put the main one first)."""
    return output[0] if isinstance(output, tuple) else output
