"""Semantic segmentation: pixel-wise losses and metrics from one dataset-wide confusion matrix.

Labels: ``batch["mask"]`` (N x H x W int64). Pixels equal to ``ignore_index`` (255, the padding
value of the transforms) or to any of ``ignore_values`` (e.g. CamVid's void = 11 with 11
classes: ``ignore_values=(11,)``) are skipped by losses and metrics; any other value outside
``[0, num_classes)`` is an error that names it.

Output smaller than the mask (U-Net with valid convolutions, Ronneberger et al., MICCAI 2015):
the mask is centre-cropped to the output size (top/left offset ``(H - h) // 2``, as the
network's own crop), the paper's way of training on the central region whose context is fully
inside the tile. A larger output is an error.

Loss: ``ce_weight`` x cross-entropy (``class_weights``, e.g. median-frequency weights) +
``dice_weight`` x Dice + ``soft_iou_weight`` x soft IoU (:mod:`cnnkit.tasks.losses`), e.g.
``ce_weight=1, dice_weight=0.5``. Auxiliary outputs (a tuple, main first, e.g.
:class:`~cnnkit.models.segmentation.headless.SegmentationOutputs`) add ``aux_weight`` x the
same combination each: 0.5 by default, the weight of torchvision's segmentation reference
training script (``losses["out"] + 0.5 * losses["aux"]``); PSPNet (Zhao et al., CVPR 2017)
uses 0.4.

Metrics (:class:`SegmentationMetric`), from one C x C confusion matrix (rows: true class,
columns: predicted) summed over the whole dataset (and over processes: ``state()``):
``pixel_accuracy``; per-class IoU ``TP / (TP + FP + FN)``; ``miou``, the mean IoU over the
classes **present** in the targets or the predictions (a class in neither has no IoU: NaN,
excluded from the mean, never counted as 0); ``mean_class_accuracy``, the mean of
``TP / (TP + FN)`` over the classes present in the targets. ``miou`` is the primary metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric, Task, main_output
from cnnkit.tasks.classification import (aux_names, confusion_counts, nanmean, safe_ratio,
                                         weight_vector)
from cnnkit.tasks.losses import dice_loss, soft_iou_loss

TORCHVISION_AUX_WEIGHT = 0.5
CE_IGNORE = -100  # the cross-entropy's marker for skipped pixels


def center_crop_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The central ``size`` (h, w) window of an N x H x W mask (top/left rounded down)."""
    height, width = mask.shape[-2:]
    if size[0] > height or size[1] > width:
        raise CnnkitError(f"segmentation output {tuple(size)} (h x w) is larger than the mask "
                          f"{(height, width)}; the model must predict at most the input size")
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return mask[..., top:top + size[0], left:left + size[1]]


class LabelRules:
    """Which mask values count and which are skipped (see the module docstring)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 ignore_values: Sequence[int] = ()) -> None:
        if num_classes < 1:
            raise ArgumentError(f"num_classes must be >= 1; got {num_classes}")
        self.num_classes = num_classes
        self.ignored = sorted({int(ignore_index), *(int(v) for v in ignore_values)})

    def prepare(self, mask: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask cropped to the output ``size``; returns (labels, valid), labels 0 where invalid."""
        mask = center_crop_mask(mask.long(), size)
        skipped = torch.isin(mask, torch.tensor(self.ignored, device=mask.device))
        in_range = (mask >= 0) & (mask < self.num_classes)
        bad = ~in_range & ~skipped
        if bad.any():
            values = mask[bad].unique().tolist()
            raise CnnkitError(
                f"mask values {values[:10]} are outside [0, {self.num_classes}) "
                f"(num_classes={self.num_classes}) and not ignored (ignored: {self.ignored}); "
                f"declare them with ignore_values=... or fix num_classes")
        valid = in_range & ~skipped
        return torch.where(valid, mask, torch.zeros_like(mask)), valid


def _spatial(logits: torch.Tensor) -> tuple[int, int]:
    if logits.dim() != 4:
        raise ArgumentError(f"segmentation output must be N x C x H x W logits; got shape "
                         f"{tuple(logits.shape)}")
    return int(logits.shape[-2]), int(logits.shape[-1])


class SegmentationMetric(Metric):
    """One dataset-wide confusion matrix; see the module docstring for the figures."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 ignore_values: Sequence[int] = (),
                 class_names: Sequence[str] | None = None) -> None:
        self.rules = LabelRules(num_classes, ignore_index, ignore_values)
        self.num_classes = num_classes
        self.class_names = (list(class_names) if class_names
                            else [str(c) for c in range(num_classes)])
        if len(self.class_names) != num_classes:
            raise ArgumentError(f"class_names has {len(self.class_names)} names for "
                             f"{num_classes} classes")
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def state(self) -> list[torch.Tensor]:
        return [self.confusion]

    def update(self, output: Any, batch: Batch) -> None:
        logits = main_output(output).detach()
        labels, valid = self.rules.prepare(batch["mask"].to(logits.device), _spatial(logits))
        pred = logits.argmax(1)
        self.confusion += confusion_counts(labels[valid], pred[valid], self.num_classes).cpu()

    @property
    def per_class_iou(self) -> torch.Tensor:
        """IoU per class (float64), NaN for classes in neither targets nor predictions."""
        tp = self.confusion.diagonal()
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        return safe_ratio(tp, union)

    @property
    def per_class_accuracy(self) -> torch.Tensor:
        """``TP / (TP + FN)`` per class (float64), NaN for classes absent from the targets."""
        return safe_ratio(self.confusion.diagonal(), self.confusion.sum(1))

    def compute(self) -> dict[str, float]:
        total = int(self.confusion.sum())
        iou = self.per_class_iou
        figures = {"pixel_accuracy": int(self.confusion.diagonal().sum()) / total if total
                   else float("nan"),
                   "miou": nanmean(iou), "mean_class_accuracy": nanmean(self.per_class_accuracy)}
        figures.update({f"iou/{name}": float(v) for name, v in zip(self.class_names, iou)})
        return figures


class SegmentationTask(Task):
    """Per-pixel classification into ``num_classes`` (see the module docstring)."""

    name = "segmentation"
    primary_metric = "miou"
    higher_is_better = True

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX,
                 ignore_values: Sequence[int] = (),
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 ce_weight: float = 1.0, dice_weight: float = 0.0, soft_iou_weight: float = 0.0,
                 aux_weight: float = TORCHVISION_AUX_WEIGHT,
                 class_names: Sequence[str] | None = None) -> None:
        self.rules = LabelRules(num_classes, ignore_index, ignore_values)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.ignore_values, self.class_names = tuple(ignore_values), class_names
        self.weights = {"ce": ce_weight, "dice": dice_weight, "soft_iou": soft_iou_weight}
        if all(w == 0 for w in self.weights.values()):
            raise ArgumentError("at least one of ce_weight, dice_weight, soft_iou_weight must be > 0")
        self.aux_weight = aux_weight
        self.class_weights = weight_vector(class_weights, num_classes)

    def _parts(self, logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        labels, valid = self.rules.prepare(mask.to(logits.device), _spatial(logits))
        parts: dict[str, torch.Tensor] = {}
        if self.weights["ce"]:
            weight = None if self.class_weights is None else self.class_weights.to(logits.device)
            target = torch.where(valid, labels, torch.full_like(labels, CE_IGNORE))
            parts["ce"] = (F.cross_entropy(logits, target, weight=weight, ignore_index=CE_IGNORE)
                           if valid.any() else logits.sum() * 0)
        if self.weights["dice"] or self.weights["soft_iou"]:
            probs = torch.softmax(logits.float(), dim=1)
            if self.weights["dice"]:
                parts["dice"] = dice_loss(probs, labels, valid)
            if self.weights["soft_iou"]:
                parts["soft_iou"] = soft_iou_loss(probs, labels, valid)
        return parts

    def _combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[name] * value for name, value in parts.items())

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = output if isinstance(output, tuple) else (output,)
        parts = self._parts(outputs[0], batch["mask"])
        total = self._combine(parts)
        logged = {name: v.detach() for name, v in parts.items()}
        for name, aux in zip(aux_names(outputs), outputs[1:]):
            aux_loss = self._combine(self._parts(aux, batch["mask"]))
            logged[name] = aux_loss.detach()
            total = total + self.aux_weight * aux_loss
        return total, logged

    def new_metric(self) -> SegmentationMetric:
        return SegmentationMetric(self.num_classes, self.ignore_index, self.ignore_values,
                                  self.class_names)

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``mask`` (h x w argmax, uint8 up to 256 classes, else int64) at the output
        resolution, and ``offset`` (top, left) of the output in the network input (non-zero
        for valid U-Nets)."""
        logits = main_output(output).detach()
        height, width = _spatial(logits)
        pred = logits.argmax(1).cpu()
        pred = pred.to(torch.uint8) if self.num_classes <= 256 else pred
        offset = (0, 0)
        if batch is not None and "image" in batch:
            in_h, in_w = batch["image"].shape[-2:]
            offset = ((in_h - height) // 2, (in_w - width) // 2)
        return [{"mask": m, "offset": offset} for m in pred]
