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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric, Task, main_output
from cnnkit.tasks.classification import (aux_names, class_names_for, confusion_counts, nanmean,
                                         safe_ratio, weight_vector)
from cnnkit.tasks.losses import dice_loss, soft_iou_loss
from cnnkit.tasks.original_coordinates import maps_to_original
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption, colorize_mask, overlay_mask, panels

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
    """One dataset-wide confusion matrix; see the module docstring for the figures.

    With a ``decoder`` (the task's :meth:`SegmentationTask.decode`), the predictions are taken
    at the labels' original resolution and compared with ``meta["original_mask"]``."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 ignore_values: Sequence[int] = (),
                 class_names: Sequence[str] | None = None,
                 decoder: Callable[[Any, Batch], list[dict[str, Any]]] | None = None) -> None:
        self.rules = LabelRules(num_classes, ignore_index, ignore_values)
        self.decoder = decoder
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
        if self.decoder is not None:
            self._update_original(output, batch)
            return
        logits = main_output(output).detach()
        labels, valid = self.rules.prepare(batch["mask"].to(logits.device), _spatial(logits))
        pred = logits.argmax(1)
        self.confusion += confusion_counts(labels[valid], pred[valid], self.num_classes).cpu()

    def _update_original(self, output: Any, batch: Batch) -> None:
        for prediction, meta in zip(self.decoder(output, batch), batch["meta"]):
            if "original_mask" not in meta:
                raise CnnkitError("evaluation at the original resolution needs the samples' "
                                  "original masks (meta['original_mask']); build the dataset "
                                  "with keep_original=True")
            mask = torch.as_tensor(meta["original_mask"])
            pred = prediction["mask"].long()
            labels, valid = self.rules.prepare(mask[None], tuple(mask.shape))
            valid &= (pred != IGNORE_INDEX)[None]  # pixels no crop of the input showed
            self.confusion += confusion_counts(labels[valid], pred[None][valid],
                                               self.num_classes)

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


@register_task
class SegmentationTask(Task):
    """Per-pixel classification into ``num_classes`` (see the module docstring)."""

    kind = "segmentation"
    primary_metric = "miou"
    higher_is_better = True

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX,
                 ignore_values: Sequence[int] = (),
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 ce_weight: float = 1.0, dice_weight: float = 0.0, soft_iou_weight: float = 0.0,
                 aux_weight: float = TORCHVISION_AUX_WEIGHT,
                 class_names: Sequence[str] | None = None,
                 class_colors: Sequence[Sequence[int]] | None = None,
                 eval_resolution: Literal["input", "original"] = "input") -> None:
        if eval_resolution not in ("input", "original"):
            raise ArgumentError(f"eval_resolution must be 'input' or 'original'; got "
                                f"{eval_resolution!r}")
        self.eval_resolution = eval_resolution
        self.rules = LabelRules(num_classes, ignore_index, ignore_values)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.ignore_values = tuple(ignore_values)
        self.class_names = list(class_names) if class_names else None
        if class_colors is not None and len(class_colors) != num_classes:
            raise ArgumentError(f"class_colors has {len(class_colors)} colours for "
                                f"{num_classes} classes")
        self.class_colors = None if class_colors is None else [tuple(c) for c in class_colors]
        self.weights = {"ce": ce_weight, "dice": dice_weight, "soft_iou": soft_iou_weight}
        if all(w == 0 for w in self.weights.values()):
            raise ArgumentError("at least one of ce_weight, dice_weight, soft_iou_weight must "
                                "be > 0")
        self.aux_weight = aux_weight
        self.class_weights = weight_vector(class_weights, num_classes)

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        num_classes = model.num_classes
        options: dict[str, Any] = {"num_classes": num_classes}
        if labels.mask is not None:
            options["class_names"] = class_names_for(labels.mask, num_classes, "masks")
            if labels.mask.colors is not None:
                options["class_colors"] = [list(c) for c in labels.mask.colors]
        return options

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

    @property
    def keeps_original_targets(self) -> bool:
        """Whether evaluation compares with the untransformed masks (``eval_resolution``)."""
        return self.eval_resolution == "original"

    def new_metric(self) -> SegmentationMetric:
        decoder = self.decode if self.eval_resolution == "original" else None
        return SegmentationMetric(self.num_classes, self.ignore_index, self.ignore_values,
                                  self.class_names, decoder=decoder)

    def _masks(self, logits: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred.to(torch.uint8) if self.num_classes <= 256 else pred

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``mask``, the argmax of the logits brought back to the original image
        (resizes undone on the logits, bilinearly, before the argmax; pixels the network did
        not see are the ignore index), uint8 up to 256 classes, else int64. Without the
        samples' ``meta`` (original size, transforms) the mask stays at the input resolution."""
        if batch is None or "meta" not in batch:
            return self.decode_in_input(output, batch)
        logits = main_output(output).detach().float()
        size = tuple(batch["image"].shape[-2:])
        predicted = self._predicted_region(logits, size)
        results = []
        for one, meta in zip(self._in_input(logits, batch), batch["meta"]):
            if meta.get("original_size") is None:
                maps, seen = one, predicted
            else:
                maps, seen = maps_to_original(one, meta, size, predicted)
            mask = self._masks(maps[None])[0]
            mask[~seen] = self.ignore_index
            results.append({"mask": mask.cpu()})
        return results

    @staticmethod
    def _predicted_region(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The pixels of an input of ``size`` that the output covers (its centre)."""
        (in_h, in_w), (height, width) = size, logits.shape[-2:]
        region = torch.zeros(in_h, in_w, dtype=torch.bool, device=logits.device)
        top, left = (in_h - height) // 2, (in_w - width) // 2
        region[top:top + height, left:left + width] = True
        return region

    def _in_input(self, logits: torch.Tensor, batch: Batch | None) -> torch.Tensor:
        """Logits placed at their offset in the network input (a valid U-Net predicts its
        centre); the rest gets a uniform score (so its argmax is class 0, then masked)."""
        _spatial(logits)
        if batch is None or "image" not in batch:
            return logits
        in_h, in_w = batch["image"].shape[-2:]
        height, width = logits.shape[-2:]
        if (height, width) == (in_h, in_w):
            return logits
        top, left = (in_h - height) // 2, (in_w - width) // 2
        return F.pad(logits, (left, in_w - width - left, top, in_h - height - top))

    def decode_in_input(self, output: Any, batch: Batch | None) -> list[dict[str, Any]]:
        """Per sample: ``mask`` over the network input (the ignore index outside the output of
        a network that predicts only the centre)."""
        logits = main_output(output).detach().float()
        masks = self._masks(self._in_input(logits, batch))
        masks[:, ~self._predicted_region(logits, tuple(masks.shape[-2:]))] = self.ignore_index
        return [{"mask": m} for m in masks.cpu()]

    def flip_back(self, output: Any, width: int) -> Any:
        logits = main_output(output)
        if logits.shape[-1] != width:
            raise CnnkitError(f"flip test-time augmentation of segmentation needs logits at the "
                              f"input width {width}; the model gives width {logits.shape[-1]}")
        return logits.flip(-1)

    def dihedral_back(self, output: Any, turns: int, mirrored: bool) -> Any:
        logits = torch.rot90(main_output(output), -turns, dims=(-2, -1))
        return logits.flip(-1) if mirrored else logits

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """The image, the true mask (when given) and the predicted mask over it."""
        if scale != 1:
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        tiles = [caption(image, "image")]
        for title, values in (("true", target), ("predicted", prediction)):
            if values is None or values.get("mask") is None:
                continue
            mask = torch.as_tensor(values["mask"])
            if scale != 1:
                mask = mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            tiles.append(caption(overlay_mask(image, mask, self.class_colors), title))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_mask.png`` (class indices), ``<stem>_mask_color.png`` and
        ``<stem>_overlay.png``; the record names the index PNG."""
        mask = torch.as_tensor(record["mask"])
        if mask.dtype != torch.uint8:
            raise CnnkitError(f"{stem}: {self.num_classes} classes do not fit an 8-bit mask PNG")
        Image.fromarray(mask.numpy()).save(f"{stem}_mask.png")
        colorize_mask(mask, self.class_colors).save(f"{stem}_mask_color.png")
        overlay_mask(image.convert("RGB"), mask, self.class_colors).save(f"{stem}_overlay.png")
        return {**{k: v for k, v in record.items() if k != "mask"},
                "mask": f"{stem.name}_mask.png", "classes": self.class_names}
