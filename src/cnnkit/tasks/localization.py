"""Classification + localization (one object per image): class loss + box regression loss.

The model (:mod:`cnnkit.models.localization.classloc`) returns ``(logits, boxes)`` with boxes
``(cx, cy, w, h)`` normalised by the image size (borders at 0 and 1, pixel ``x`` at
``(x + 0.5) / W``), N x 4 or, class-specific, N x C x 4 (the ground-truth class's box is
trained, the predicted class's box is evaluated). The batch's ``boxes`` (N x 4, pixel
``(x1, y1, x2, y2)`` in the network input, :mod:`cnnkit.data.sample`) are converted with the
batch's image size by :func:`corners_to_normalized`.

Loss: cross-entropy + ``box_weight`` x box loss, ``"l2"`` (squared error summed over the four
numbers, mean over the batch: the lecture's L2 loss) or ``"smooth_l1"`` (Girshick, "Fast R-CNN",
ICCV 2015; ``beta`` = 1/9 as torchvision's detection references, since normalised coordinates
are small).

Metrics: ``accuracy`` (top-1 class), ``mean_iou`` (box IoU; IoU does not change when x and y
are scaled, so normalised and pixel boxes agree), ``iou50`` (fraction of boxes with IoU >= 0.5)
and ``localization_accuracy``: class right **and** IoU >= 0.5, the ILSVRC localization
criterion (1 - localization error), the primary metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.geometry import (boxes_to_normalized, cxcywh_to_xyxy, normalized_to_boxes,
                             paired_box_iou)
from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.tasks.base import Batch, Metric, Task
from cnnkit.tasks.classification import check_labels, class_names_for, name_of
from cnnkit.tasks.original_coordinates import boxes_to_original
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption, draw_boxes, panels
from cnnkit.errors import ArgumentError

BoxLoss = Literal["l2", "smooth_l1"]
IOU_THRESHOLD = 0.5
SMOOTH_L1_BETA = 1 / 9


def pick_boxes(boxes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """N x 4 boxes: as given, or the box of ``classes`` from class-specific N x C x 4."""
    if boxes.dim() == 2:
        return boxes
    return boxes[torch.arange(len(boxes), device=boxes.device), classes]


def _outputs(output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(output, tuple) and len(output) == 2):
        raise ArgumentError("a localization model must return (logits, boxes) "
                         f"(ClassesAndBoxes); got {type(output).__name__}")
    return output[0], output[1]


def _target_boxes(batch: Batch, like: torch.Tensor) -> torch.Tensor:
    if "boxes" not in batch:
        raise ArgumentError("localization needs batch['boxes'] (one box per sample)")
    height, width = batch["image"].shape[-2:]
    return boxes_to_normalized(batch["boxes"].to(like), height, width)


class LocalizationMetric(Metric):
    """Sums of class hits, IoU, IoU >= 0.5 hits, both-right hits and the sample count."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(5, dtype=torch.float64)

    def state(self) -> list[torch.Tensor]:
        return [self.sums]

    def update(self, output: Any, batch: Batch) -> None:
        logits, boxes = (t.detach() for t in _outputs(output))
        labels = batch["label"].to(logits.device)
        check_labels(labels, self.num_classes)
        pred = logits.argmax(1)
        target = cxcywh_to_xyxy(_target_boxes(batch, boxes))
        iou = paired_box_iou(cxcywh_to_xyxy(pick_boxes(boxes, pred).float()), target.float())
        right = pred == labels
        hit = iou >= IOU_THRESHOLD
        self.sums += torch.stack([right.sum(), iou.sum(), hit.sum(), (right & hit).sum(),
                                  torch.tensor(len(labels))]).double().cpu()

    def compute(self) -> dict[str, float]:
        right, iou, hit, both, count = self.sums.tolist()
        if count == 0:
            return dict.fromkeys(("accuracy", "mean_iou", "iou50", "localization_accuracy"),
                                 float("nan"))
        return {"accuracy": right / count, "mean_iou": iou / count, "iou50": hit / count,
                "localization_accuracy": both / count}


@register_task
class LocalizationTask(Task):
    """Class + one box per image (see the module docstring)."""

    kind = "localization"
    primary_metric = "localization_accuracy"
    higher_is_better = True

    def __init__(self, num_classes: int, *, box_loss: BoxLoss = "smooth_l1",
                 box_weight: float = 1.0, label_smoothing: float = 0.0,
                 smooth_l1_beta: float = SMOOTH_L1_BETA,
                 class_names: Sequence[str] | None = None) -> None:
        if num_classes < 1:
            raise ArgumentError(f"num_classes must be >= 1; got {num_classes}")
        if box_loss not in ("l2", "smooth_l1"):
            raise ArgumentError(f"box_loss must be 'l2' or 'smooth_l1'; got {box_loss!r}")
        self.num_classes, self.box_loss, self.box_weight = num_classes, box_loss, box_weight
        self.label_smoothing, self.smooth_l1_beta = label_smoothing, smooth_l1_beta
        self.class_names = list(class_names) if class_names else None

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        num_classes = model.num_classes
        return {"num_classes": num_classes,
                "class_names": class_names_for(labels.label, num_classes, "labels")}

    def flip_back(self, output: Any, width: int) -> Any:
        """Class scores as they are; normalised boxes mirrored: ``cx -> 1 - cx``."""
        logits, boxes = _outputs(output)
        mirrored = torch.cat([1 - boxes[..., :1], boxes[..., 1:]], dim=-1)
        return type(output)(logits, mirrored)

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, boxes = _outputs(output)
        labels = batch["label"].to(logits.device)
        check_labels(labels, self.num_classes)
        ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        pred = pick_boxes(boxes, labels)
        target = _target_boxes(batch, pred)
        if self.box_loss == "l2":
            box = (pred - target).square().sum(1).mean()
        else:
            box = F.smooth_l1_loss(pred, target, reduction="none",
                                   beta=self.smooth_l1_beta).sum(1).mean()
        total = ce + self.box_weight * box
        return total, {"ce": ce.detach(), "box": box.detach()}

    def new_metric(self) -> LocalizationMetric:
        return LocalizationMetric(self.num_classes)

    def decode_in_input(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        """Per sample: ``class``, ``class_name``, ``score`` and ``box`` in input pixels."""
        logits, boxes = (t.detach().float().cpu() for t in _outputs(output))
        score, pred = torch.softmax(logits, 1).max(1)
        height, width = batch["image"].shape[-2:]
        corners = normalized_to_boxes(pick_boxes(boxes, pred), height, width)
        return [{"class": int(pred[i]), "class_name": name_of(pred[i], self.class_names),
                 "score": float(score[i]), "box": corners[i]} for i in range(len(pred))]

    def decode(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        """Per sample: ``class``, ``class_name``, ``score`` and ``box`` (x1, y1, x2, y2) in
        original pixels."""
        size = tuple(batch["image"].shape[-2:])
        results = self.decode_in_input(output, batch)
        for result, meta in zip(results, batch["meta"]):
            result["box"] = boxes_to_original(result["box"][None], meta, size)[0].tolist()
        return results

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """True (when given) and predicted box, with class names, on two copies of the image."""
        tiles = []
        for title, values in (("true", target), ("predicted", prediction)):
            if values is None:
                continue
            label = values.get("label", values.get("class"))
            box = values.get("boxes", values.get("box"))
            boxes = torch.as_tensor(box, dtype=torch.float32).reshape(-1, 4)
            drawn = draw_boxes(image, boxes, [int(label)] * len(boxes), self.class_names,
                               scale=scale)
            tiles.append(caption(drawn, f"{title}: {name_of(label, self.class_names)}"))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_box.png``: the box and class drawn on the original image."""
        draw_boxes(image.convert("RGB"), torch.tensor([record["box"]]), [record["class"]],
                   self.class_names).save(f"{stem}_box.png")
        return record
