"""What a kind of prediction owns: its loss, its metrics, decoding, drawing, writing, flip TTA.

A :class:`Task` turns model outputs and a batch (see :mod:`cnnkit.data.batch`) into a loss and
into predictions; a :class:`Metric` accumulates sufficient statistics over a whole dataset (a
confusion matrix, sums of errors), so its figures are exact over the dataset rather than means
of per-batch figures, and sums them across processes in distributed runs.

Everything that depends on the kind of prediction lives on the task, so the rest of cnnkit
never asks which kind it has: the options it is rebuilt from (:meth:`Task.spec`, recorded
automatically from the constructor's arguments), what it takes from a dataset's labels and a
model (:meth:`Task.options_from`), the direction of each figure (:meth:`Task.higher_is_better_for`),
the output on a mirrored image brought back (:meth:`Task.flip_back`), a picture of a prediction
next to the truth (:meth:`Task.draw`) and the files of a prediction (:meth:`Task.write`).
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import CnnkitError, OptionError

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


def jsonable(value: Any) -> Any:
    """``value`` as JSON values: tensors and tuples become lists."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def metric_and_class(figure: str) -> tuple[str, str] | None:
    """``metric/class`` -> (metric, class), the naming of per-class figures; None without a
    ``/``."""
    metric, _, name = figure.partition("/")
    return (metric, name) if name else None


class Task(ABC):
    """One kind of prediction (a name of :data:`cnnkit.kinds.TASK_KINDS`).

    ``primary_metric`` names the figure of :meth:`Metric.compute` used to pick the best
    checkpoint and for early stopping; ``higher_is_better`` says which way it goes;
    ``lower_is_better`` names the other figures (before any ``/class`` suffix) that improve
    downwards. Subclasses are registered with :func:`cnnkit.tasks.register_task`.
    """

    kind: ClassVar[str]
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    lower_is_better: ClassVar[tuple[str, ...]] = ("loss",)

    def __new__(cls, *args: Any, **kwargs: Any) -> Task:
        task = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(task, *args, **kwargs)
        except TypeError as err:  # a missing or unknown option: one line naming it
            raise OptionError(f"{cls.__name__}: {err}") from None
        bound.apply_defaults()
        options: dict[str, Any] = {}
        for index, (name, value) in enumerate(bound.arguments.items()):
            if index == 0:
                continue  # self
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                options.update(value)  # a **options catch-all, flattened
            else:
                options[name] = value
        task._options = options
        return task

    @property
    def name(self) -> str:
        return self.kind

    def spec(self) -> dict[str, Any]:
        """``{"kind": ..., "options": ...}``, JSON values: :func:`cnnkit.tasks.build_task`
        rebuilds the same task from it (class names, colours and skeleton included)."""
        return {"kind": self.kind, "options": json.loads(json.dumps(jsonable(self._options)))}

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        """Options this task takes from a dataset's labels and from the model (its size, the
        names of what it predicts); the configuration's own options come on top."""
        return {}

    @classmethod
    def options_from_data(cls, options: dict[str, Any], train: Any | None) -> dict[str, Any]:
        """Options computed from the training samples where ``options`` (the configuration's)
        ask for them (e.g. colourisation's ``prior: train``); ``train`` is the training dataset,
        or None when the run has none. The computed values replace the request, so the run's
        spec records the numbers, not the request."""
        return {}

    @property
    def keeps_original_targets(self) -> bool:
        """Whether the metric compares with the samples' untransformed targets (the run keeps
        them in ``meta`` for evaluation, see TransformedDataset's ``keep_original``)."""
        return False

    def higher_is_better_for(self, figure: str) -> bool:
        """Whether larger values of ``figure`` (e.g. ``miou``, ``iou/Road``, ``loss``) are
        better."""
        base = figure.split("/")[0]
        if base == self.primary_metric:
            return self.higher_is_better
        return base not in self.lower_is_better

    def per_class(self, figure: str) -> tuple[str, str] | None:
        """The (metric, class) of a per-class figure such as ``iou/Road``; None for a figure of
        the whole dataset."""
        return metric_and_class(figure)

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """Run ``model`` on the batch: ``model(batch["image"])``. A task whose models take their
        targets while training (detectors compute their own losses) says so here."""
        return model(batch["image"])

    @abstractmethod
    def loss(self, output: Any, batch: Batch
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """The scalar to minimise and its named parts, detached tensors (read only when logged,
        so that no step waits for the device). None where the output carries no loss (a
        detector's predictions in evaluation mode): validation then reports no loss."""

    @abstractmethod
    def new_metric(self) -> Metric: ...

    @abstractmethod
    def decode(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        """Per-sample predictions in original image coordinates."""

    def decode_in_input(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        """Per-sample predictions in the coordinates of the network input (for pictures)."""
        return self.decode(output, batch)

    def ground_truth(self, batch: Batch) -> list[dict[str, Any]]:
        """Per-sample ground truth in the coordinates of the network input (for pictures)."""
        keys = [k for k in ("label", "mask", "keypoints", "visible", "boxes") if k in batch]
        return [{k: batch[k][i].cpu() for k in keys} for i in range(batch["image"].shape[0])]

    def flip_back(self, output: Any, width: int) -> Any:
        """The output of the model on mirrored images, brought back to the unmirrored frame
        (averaged with the plain output by :class:`cnnkit.inference.FlipTTA`)."""
        raise CnnkitError(f"flip test-time augmentation is not defined for {self.kind}")

    def dihedral_back(self, output: Any, turns: int, mirrored: bool) -> Any:
        """The output of the model on images mirrored (when ``mirrored``) and then rotated by
        ``turns`` quarter turns (``torch.rot90``), brought back to the plain frame (averaged over
        the eight views by :class:`cnnkit.inference.DihedralTTA`). Defined where an output is a
        map of per-pixel values that do not change when the image turns."""
        raise CnnkitError(f"d4 test-time augmentation is not defined for {self.kind}: its outputs "
                          "do not stay the same when the image turns; use flip")

    @abstractmethod
    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """``image`` (the network input, as a picture) with the truth (when given) and the
        prediction drawn over it, captioned; coordinates are network-input pixels, ``scale``
        enlarges the picture first."""

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """Write a prediction's files next to ``stem`` (``image`` is the original picture) and
        return its JSON record; by default the record alone."""
        return jsonable(record)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind})"


def main_output(output: Any) -> torch.Tensor:
    """The main prediction of a model that may also return auxiliary outputs as a tuple
    (GoogLeNet's and FCN/DeepLab's aux heads put the main one first)."""
    return output[0] if isinstance(output, tuple) else output
