"""Several dense predictions from one network: sub-tasks, weighted losses, prefixed metrics.

The model returns a dict of outputs keyed by task kind, e.g. ``{"depth": N x 1 x H x W,
"normals": N x 3 x H x W, "segmentation": N x K x H x W}`` (the multi-scale network of Eigen &
Fergus, ICCV 2015, and :mod:`cnnkit.models.dense_regression.multitask`); the task holds one
sub-task per kind, built with its own options: ``MultiTask(tasks={"depth": {"loss": "silog"},
"segmentation": {"num_classes": 4}})``. Each sub-task reads its own output and its own labels
from the one batch (``depth``, ``normals``, ``mask``, ...).

**Loss** (``weighting``):

- ``"fixed"``: ``sum_i w_i L_i`` with ``weights`` (a dict by kind, 1 for a kind not named);
- ``"uncertainty"``: Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
  Losses for Scene Geometry and Semantics" (CVPR 2018): ``sum_i exp(-s_i) L_i + s_i`` with
  learned log-variances ``s_i = log sigma_i^2``. (The paper writes ``1 / (2 sigma^2)`` for
  regression and ``1 / sigma^2`` for classification losses; this uses one form for all, its
  common simplification.) A task has no parameters, so the s_i live **in the model** (a
  :class:`~cnnkit.models.dense_regression.multitask.LogVariances` module, trained by the
  model's optimizer like any weight) and the model hands them to the task in its output,
  ``output["log_variances"] = {kind: s_i}`` (0-dim tensors). (With fixed weights the s_i get
  no gradient: build the model with ``log_variances=False`` for a distributed run, whose
  DistributedDataParallel refuses parameters that take no part in the loss.)

Logged parts: ``loss_<kind>`` (each unweighted sub-loss) and, with uncertainty weighting,
``log_var_<kind>``. **Metrics**: every sub-task's, prefixed with its kind and a slash
(``depth/abs_rel``, ``segmentation/miou``, ``segmentation/iou/floor``); ``state()`` is the
concatenation of the sub-metrics' states. **Primary**: ``primary_metric`` (e.g.
``"segmentation/miou"``), by default the first sub-task's primary; its direction is the
sub-task's. **Decoding, drawing, writing, flip TTA** delegate to the sub-tasks: records are
dicts by kind, pictures are the sub-tasks' pictures stacked, files are the sub-tasks' files
next to the same stem. (:class:`cnnkit.inference.FlipTTA` averages tensors and tuples only,
so flip TTA of a dict-returning model needs the caller to average the dicts.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import ArgumentError, CnnkitError, OptionError
from cnnkit.tasks.base import Batch, Metric, Task
from cnnkit.tasks.registry import build_task, register_task, task_class
from cnnkit.viz.dense import stack

Weighting = Literal["fixed", "uncertainty"]
LOG_VARIANCES = "log_variances"  # the output key of the learned s_i


class MultiTaskMetric(Metric):
    """The sub-tasks' metrics side by side, their figures prefixed with the kind."""

    def __init__(self, task: MultiTask) -> None:
        self.task = task
        self.metrics = {kind: sub.new_metric() for kind, sub in task.tasks.items()}

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    def state(self) -> list[torch.Tensor]:
        return [t for metric in self.metrics.values() for t in metric.state()]

    def update(self, output: Any, batch: Batch) -> None:
        outputs = self.task.outputs(output)
        for kind, metric in self.metrics.items():
            metric.update(outputs[kind], batch)

    def compute(self) -> dict[str, float]:
        return {f"{kind}/{name}": value for kind, metric in self.metrics.items()
                for name, value in metric.compute().items()}


@register_task
class MultiTask(Task):
    """Sub-tasks on one dict-returning model (see the module docstring)."""

    kind = "multitask"
    primary_metric = ""  # set per instance
    higher_is_better = True

    def __init__(self, tasks: Mapping[str, Mapping[str, Any]], *,
                 weighting: Weighting = "fixed", weights: Mapping[str, float] | None = None,
                 primary_metric: str | None = None) -> None:
        if not isinstance(tasks, Mapping) or not tasks:
            raise ArgumentError("tasks must name at least one sub-task: {kind: {options}}")
        if weighting not in ("fixed", "uncertainty"):
            raise ArgumentError(f"weighting must be 'fixed' or 'uncertainty'; got {weighting!r}")
        self.tasks: dict[str, Task] = {}
        for kind, options in tasks.items():
            if kind in (self.kind, LOG_VARIANCES):
                raise ArgumentError(f"tasks: {kind!r} cannot be a sub-task")
            try:
                self.tasks[kind] = build_task(kind, **dict(options or {}))
            except OptionError as err:
                raise OptionError(f"tasks[{kind!r}]: {str(err).split(': ', 1)[-1]}") from None
        unknown = sorted(set(weights or {}) - set(self.tasks))
        if unknown:
            raise ArgumentError(f"weights: {unknown} are not sub-tasks ({', '.join(self.tasks)})")
        self.weighting = weighting
        self.weights = {kind: float((weights or {}).get(kind, 1.0)) for kind in self.tasks}
        first = next(iter(self.tasks))
        self.primary_metric = primary_metric or f"{first}/{self.tasks[first].primary_metric}"
        kind, _, figure = self.primary_metric.partition("/")
        if kind not in self.tasks or not figure:
            raise ArgumentError(f"primary_metric must be '<kind>/<figure>' with a kind of "
                                f"{', '.join(self.tasks)}; got {self.primary_metric!r}")
        self.higher_is_better = self.tasks[kind].higher_is_better_for(figure)

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        """``tasks``: each kind of ``model.task_kinds`` with what its own task takes from the
        labels and the model (e.g. the segmentation classes)."""
        kinds = getattr(model, "task_kinds", None)
        if not kinds:
            raise CnnkitError(f"a multitask model names its outputs in task_kinds; "
                              f"{type(model).__name__} has none")
        return {"tasks": {kind: task_class(kind).options_from(labels, model) for kind in kinds}}

    def higher_is_better_for(self, figure: str) -> bool:
        kind, _, rest = figure.partition("/")
        if kind in self.tasks and rest:
            return self.tasks[kind].higher_is_better_for(rest)
        return not figure.startswith(("loss", "log_var"))

    def per_class(self, figure: str) -> tuple[str, str] | None:
        """``<kind>/<figure>`` is a sub-task's figure: per class only where the sub-task's is
        (``segmentation/iou/floor`` -> (``segmentation/iou``, ``floor``))."""
        kind, _, rest = figure.partition("/")
        inner = self.tasks[kind].per_class(rest) if kind in self.tasks and rest else None
        return None if inner is None else (f"{kind}/{inner[0]}", inner[1])

    def outputs(self, output: Any) -> Mapping[str, Any]:
        """The model's dict, checked to hold every sub-task's output."""
        if not isinstance(output, Mapping):
            raise ArgumentError(f"a multitask model returns a dict of outputs by kind "
                                f"({', '.join(self.tasks)}); got {type(output).__name__}")
        missing = [kind for kind in self.tasks if kind not in output]
        if missing:
            raise CnnkitError(f"the model's outputs lack {missing}; it gives "
                              f"{sorted(k for k in output if k != LOG_VARIANCES)}")
        return output

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = self.outputs(output)
        log_vars = outputs.get(LOG_VARIANCES) if self.weighting == "uncertainty" else None
        if self.weighting == "uncertainty" and (log_vars is None
                                                or any(k not in log_vars for k in self.tasks)):
            raise CnnkitError(f"weighting='uncertainty' needs the model's learned log-variances "
                              f"in output[{LOG_VARIANCES!r}] for {', '.join(self.tasks)} "
                              f"(build the model with log_variances=True)")
        total: torch.Tensor | float = 0.0
        parts: dict[str, torch.Tensor] = {}
        for kind, sub in self.tasks.items():
            value, _ = sub.loss(outputs[kind], batch)
            parts[f"loss_{kind}"] = value.detach()
            if log_vars is not None:
                s = log_vars[kind].to(value)
                total = total + torch.exp(-s) * value + s
                parts[f"log_var_{kind}"] = s.detach()
            else:
                total = total + self.weights[kind] * value
        return total, parts

    def new_metric(self) -> MultiTaskMetric:
        return MultiTaskMetric(self)

    def _per_sample(self, method: str, output: Any, batch: Batch | None) -> list[dict[str, Any]]:
        outputs = self.outputs(output)
        decoded = {kind: getattr(sub, method)(outputs[kind], batch)
                   for kind, sub in self.tasks.items()}
        count = len(next(iter(decoded.values())))
        return [{kind: records[i] for kind, records in decoded.items()} for i in range(count)]

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``{kind: the sub-task's record}``."""
        return self._per_sample("decode", output, batch)

    def decode_in_input(self, output: Any, batch: Batch | None) -> list[dict[str, Any]]:
        return self._per_sample("decode_in_input", output, batch)

    def ground_truth(self, batch: Batch) -> list[dict[str, Any]]:
        truths = {kind: sub.ground_truth(batch) for kind, sub in self.tasks.items()}
        count = batch["image"].shape[0]
        return [{kind: records[i] for kind, records in truths.items()} for i in range(count)]

    def flip_back(self, output: Any, width: int) -> Any:
        outputs = self.outputs(output)
        flipped: dict[str, Any] = {kind: sub.flip_back(outputs[kind], width)
                                   for kind, sub in self.tasks.items()}
        if LOG_VARIANCES in outputs:
            flipped[LOG_VARIANCES] = outputs[LOG_VARIANCES]
        return flipped

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """Each sub-task's picture, one below the other."""
        tiles = [sub.draw(image, None if target is None else target.get(kind), prediction[kind],
                          scale=scale) for kind, sub in self.tasks.items()]
        return stack(tiles)

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """Each sub-task's files next to ``stem``; the record holds each one's, by kind."""
        shared = {k: v for k, v in record.items() if k not in self.tasks}
        written = {kind: sub.write({**shared, **record[kind]}, image, stem)
                   for kind, sub in self.tasks.items()}
        return {**shared, **{kind: {k: v for k, v in rec.items() if k not in shared}
                             for kind, rec in written.items()}}
