"""Monocular depth: a log-depth map per image, scale-invariant or metric losses, the error
measures of Eigen, Puhrsch & Fergus (NIPS 2014) over the whole dataset.

**Output**: ``N x 1 x h x w``, read as the **natural log of the depth in metres** (the
network's last layer stays linear; ``depth = exp(output)`` is positive by construction, the
choice of Eigen & Fergus, ICCV 2015, whose network predicts log depth). An output smaller than
the labels (Eigen-Fergus predicts at half resolution) is resized bilinearly, in log space, to
the labels' size for the loss and the metrics. The same reading everywhere: the loss, the
metrics, the decoded maps and the pictures.

**Labels**: ``batch["depth"]`` (N x H x W metres, 0 where unknown) and ``batch["valid"]``
(N x H x W bool, when present); a pixel counts when it is valid, its depth > 0 and, with
``max_depth``, at most ``max_depth`` (e.g. NYU's 10 m). Invalid pixels take no part in losses
or metrics.

**Loss** (``loss``, :mod:`cnnkit.tasks.functional`): ``"silog"``, the scale-invariant log loss
of Eigen et al. (NIPS 2014, eq. 4) with ``silog_lambda`` (0.5, the paper's training value) and
optionally Eigen & Fergus's gradient term (``gradient_weight``, 0 = off), computed on the log
output directly; ``"l1"``, mean |d - d*|; ``"berhu"``, Laina et al.'s reverse Huber (3DV 2016).
The metric losses see ``exp(output)``, with the log clamped to ``[log min_depth, log
max_clamp]`` (max_clamp = ``max_depth`` or 10 km) so it cannot overflow.

**Metrics** (:class:`DepthMetric`): ``abs_rel``, ``sq_rel``, ``rmse``, ``rmse_log``,
``delta1..3`` from dataset-wide sums (every valid pixel of every image weighs the same; exact
over batches and processes), the prediction clamped to ``[min_depth, max_clamp]`` as the
evaluation scripts of the papers do. **Primary**: ``abs_rel``, lower is better (delta1 is the
usual alternative; it stays at 0 for long in early training, abs_rel moves from the start).

**Decoding**: the depth map (``depth``, H0 x W0 float32 metres) in original image coordinates:
the log map is brought back with :func:`~cnnkit.tasks.original_coordinates.maps_to_original`
(resizes undone **bilinearly in log depth**, i.e. a geometric mean of the neighbours; crops and
pads placed at their offset; pixels the network did not see are 0, "unknown"). **Pictures**:
the image, the true and the predicted depth as heat maps on the same range (the truth's),
near bright. **Files**: ``<stem>_depth.png``, a 16-bit PNG in millimetres (0 = unknown,
saturating at 65.535 m), and ``<stem>_depth_color.png``. **Flip TTA**: the mirrored map is
flipped back (depth does not change under a mirror); :class:`cnnkit.inference.FlipTTA` then
averages the two log maps, i.e. takes the geometric mean of the two depths.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric, Task
from cnnkit.tasks.dense_regression import (check_flip_width, dense_output, input_size,
                                           maps_in_original, require_field, to_size, valid_map)
from cnnkit.tasks.functional import (DepthMetricAccumulator, berhu_loss, l1_depth_loss,
                                     scale_invariant_log_loss)
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption, panels
from cnnkit.viz.dense import colorize_depth, depth_range, enlarge

DepthLoss = Literal["silog", "l1", "berhu"]
DEPTH_LOSSES = ("silog", "l1", "berhu")
FAR_CLAMP = 1e4  # metres: the upper clamp of predictions without max_depth
MM_PER_M = 1000.0
UINT16_MAX = 65535


class DepthMetric(Metric):
    """Dataset-wide depth figures (:class:`~cnnkit.tasks.functional.DepthMetricAccumulator`,
    pixel reduction) of the task's predictions."""

    def __init__(self, task: DepthTask) -> None:
        self.task = task
        self.accumulator = DepthMetricAccumulator()

    def reset(self) -> None:
        self.accumulator.reset()

    def state(self) -> list[torch.Tensor]:
        return self.accumulator.state()

    def update(self, output: Any, batch: Batch) -> None:
        target, valid = self.task.targets(batch)
        log_depth = self.task.log_depth(output, target.shape[-2:]).detach().float()
        log_depth = log_depth.clamp(*self.task.log_range)
        self.accumulator.update(log_depth.exp()[:, 0], target.to(log_depth), valid)

    def compute(self) -> dict[str, float]:
        return self.accumulator.compute("pixels")


@register_task
class DepthTask(Task):
    """Per-pixel depth from a log-depth output (see the module docstring)."""

    kind = "depth"
    primary_metric = "abs_rel"
    higher_is_better = False
    lower_is_better = ("loss", "abs_rel", "sq_rel", "rmse", "rmse_log") + DEPTH_LOSSES

    def __init__(self, *, loss: DepthLoss = "silog", silog_lambda: float = 0.5,
                 gradient_weight: float = 0.0, min_depth: float = 1e-3,
                 max_depth: float | None = None) -> None:
        if loss not in DEPTH_LOSSES:
            raise ArgumentError(f"depth loss must be one of {', '.join(DEPTH_LOSSES)}; "
                                f"got {loss!r}")
        if not 0.0 <= silog_lambda <= 1.0:
            raise ArgumentError(f"silog_lambda must be in [0, 1]; got {silog_lambda}")
        if gradient_weight < 0:
            raise ArgumentError(f"gradient_weight must be >= 0; got {gradient_weight}")
        if not min_depth > 0 or (max_depth is not None and not max_depth > min_depth):
            raise ArgumentError(f"need 0 < min_depth < max_depth; got min_depth={min_depth}, "
                                f"max_depth={max_depth}")
        self.loss_name, self.silog_lambda = loss, silog_lambda
        self.gradient_weight, self.min_depth, self.max_depth = gradient_weight, min_depth, max_depth
        self.log_range = (math.log(min_depth), math.log(max_depth or FAR_CLAMP))

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        channels = getattr(model, "num_classes", None)
        if not hasattr(model, "task_kinds") and channels not in (None, 1):
            raise CnnkitError(f"a depth model predicts 1 channel (log depth); this one gives "
                              f"{channels}: set model.num_classes=1")
        return {}

    def log_depth(self, output: Any, size: Any = None) -> torch.Tensor:
        """The log-depth output (N x 1 x H x W), resized to ``size`` when given."""
        maps = dense_output(output, 1, "depth")
        return maps if size is None else to_size(maps, size)

    def targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth N x H x W, valid N x H x W) with ``max_depth`` applied."""
        depth = require_field(batch, "depth", "depth", "N x H x W metres")
        valid = valid_map(batch, depth) & (depth > 0)
        if self.max_depth is not None:
            valid &= depth <= self.max_depth
        return depth, valid

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target, valid = self.targets(batch)
        log_depth = self.log_depth(output, target.shape[-2:])[:, 0]
        target = target.to(log_depth)
        if self.loss_name == "silog":
            value = scale_invariant_log_loss(log_depth, target, valid, lam=self.silog_lambda,
                                             gradient_weight=self.gradient_weight, log_pred=True)
        else:
            depth = log_depth.clamp(*self.log_range).exp()
            function = l1_depth_loss if self.loss_name == "l1" else berhu_loss
            value = function(depth, target, valid)
        return value, {self.loss_name: value.detach()}

    def new_metric(self) -> DepthMetric:
        return DepthMetric(self)

    def _depth_in_input(self, output: Any, batch: Batch | None) -> torch.Tensor:
        maps = self.log_depth(output).detach().float()
        return to_size(maps, input_size(batch, maps)).clamp(*self.log_range)

    def decode_in_input(self, output: Any, batch: Batch | None) -> list[dict[str, Any]]:
        """Per sample: ``depth`` (H x W metres) over the network input."""
        return [{"depth": d[0].exp().cpu()} for d in self._depth_in_input(output, batch)]

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``depth`` (H0 x W0 float32 metres, 0 where unseen) in original image
        coordinates (see the module docstring)."""
        results = []
        for maps, seen in maps_in_original(self._depth_in_input(output, batch), batch):
            depth = torch.where(seen, maps[0].exp(), torch.zeros_like(maps[0]))
            results.append({"depth": depth.cpu()})
        return results

    def ground_truth(self, batch: Batch) -> list[dict[str, Any]]:
        target, valid = self.targets(batch)
        return [{"depth": d.cpu(), "valid": v.cpu()} for d, v in zip(target, valid)]

    def flip_back(self, output: Any, width: int) -> Any:
        maps = self.log_depth(output)
        check_flip_width(maps, width, "depth")
        return maps.flip(-1)

    def dihedral_back(self, output: Any, turns: int, mirrored: bool) -> Any:
        maps = torch.rot90(self.log_depth(output), -turns, dims=(-2, -1))
        return maps.flip(-1) if mirrored else maps

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """The image, the true depth (when given) and the predicted depth, one colour range."""
        tiles = [caption(enlarge(image, scale), "image")]
        if target is not None and target.get("depth") is not None:
            low, high = depth_range(target["depth"], target.get("valid"))
            truth = colorize_depth(target["depth"], target.get("valid"), low, high)
            tiles.append(caption(enlarge(truth, scale), f"true depth {low:.2f}-{high:.2f} m"))
        else:
            low, high = depth_range(prediction["depth"])
        predicted = colorize_depth(prediction["depth"], None, low, high)
        tiles.append(caption(enlarge(predicted, scale), "predicted depth"))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_depth.png`` (uint16 millimetres, 0 = unknown) and
        ``<stem>_depth_color.png``; the record names them."""
        depth = torch.as_tensor(record["depth"], dtype=torch.float32)
        millimetres = (depth * MM_PER_M).round().clamp(0, UINT16_MAX).to(torch.int32).numpy()
        Image.fromarray(millimetres.astype(np.uint16)).save(f"{stem}_depth.png")
        colorize_depth(depth).save(f"{stem}_depth_color.png")
        low, high = depth_range(depth)
        return {**{k: v for k, v in record.items() if k != "depth"},
                "depth": f"{stem.name}_depth.png", "depth_color": f"{stem.name}_depth_color.png",
                "depth_unit": "mm (uint16 PNG, 0 = unknown)", "depth_range_m": [low, high]}
