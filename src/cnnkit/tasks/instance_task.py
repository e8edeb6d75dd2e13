"""What detection, instance segmentation and instance keypoints share (their registered tasks
are in :mod:`cnnkit.tasks.detection`): the tasks of two-stage detectors.

The models are Faster R-CNN, Mask R-CNN and Keypoint R-CNN (He, Gkioxari, Dollar & Girshick,
"Mask R-CNN", ICCV 2017; :mod:`cnnkit.models.detection`), with torchvision's interface in
cnnkit's pixel-centre frame: while training, ``model(images, targets)`` returns its named losses
(the RPN's ``loss_objectness`` and ``loss_rpn_box_reg``, the box head's ``loss_classifier`` and
``loss_box_reg``, and ``loss_mask`` or ``loss_keypoint``); in evaluation, ``model(images)``
returns per image ``boxes``, ``labels`` (1..C-1, 0 being the background), ``scores``, and
``masks`` (N x 1 x H x W, soft) or ``keypoints`` (N x K x 3) at the network input's size.

- :meth:`InstanceTask.forward` builds the targets from ``batch["instances"]``, leaving crowd
  regions out as the reference training does (COCO's ``iscrowd`` annotations are dropped);
- :meth:`InstanceTask.loss` is the sum of the model's losses (each one a logged part), and no
  loss at all for predictions: validation then reports the metric alone;
- the metric is COCO's AP (Lin et al., ECCV 2014; :mod:`cnnkit.tasks.coco_metric`) measured on
  the original images: the predictions (:meth:`InstanceTask.decode`) and the ground truth are
  both mapped back through the transforms recorded in each sample's ``meta``
  (:mod:`cnnkit.tasks.original_coordinates`: boxes exactly; masks resampled bilinearly, the
  predicted soft masks before ``mask_threshold`` cuts them, the true ones from their network-input
  resolution; keypoints exactly, left/right identities swapped back). Unlike COCO's own
  evaluation, the true masks of a resized image are therefore those of its resized labels;
- flip test-time augmentation is not defined (boxes, masks and keypoints of two sets of
  detections would have to be matched and merged).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.geometry import Skeleton
from cnnkit.tasks.base import Batch, Task
from cnnkit.tasks.coco_metric import COCOMetric
from cnnkit.tasks.instance_coordinates import (
    masks_to_original,
    original_size,
    points_to_original,
    unflip_instances,
)
from cnnkit.tasks.instance_drawing import draw_instances, write_instances
from cnnkit.tasks.original_coordinates import boxes_to_original
from cnnkit.viz import caption, panels


def instances_of(batch: Batch) -> list[dict[str, torch.Tensor]]:
    if "instances" not in batch:
        raise CnnkitError("detection tasks need samples with instances (batch['instances']: "
                          "boxes, labels, crowd flags); use an instance dataset such as "
                          "coco-instances or synthetic-instances")
    return batch["instances"]


class InstanceTask(Task):
    """What detection, instance segmentation and instance keypoints share (see the module)."""

    primary_metric: ClassVar[str] = "bbox_AP"
    higher_is_better = True
    iou_types: ClassVar[tuple[str, ...]] = ("bbox",)
    extra: ClassVar[tuple[str, ...]] = ()  # "masks" / "keypoints": what else the model predicts

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *,
                 draw_threshold: float = 0.5, mask_threshold: float = 0.5,
                 max_detections: int | None = None) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ArgumentError(f"num_classes counts the background: it must be >= 2; got "
                                f"{num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ArgumentError(f"class_names has {len(class_names)} names for {num_classes} "
                                "classes (background included, name 0)")
        for name, value in (("draw_threshold", draw_threshold),
                            ("mask_threshold", mask_threshold)):
            if not 0 <= value <= 1:
                raise ArgumentError(f"{name} must lie in [0, 1]; got {value}")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else \
            ["background"] + [str(c) for c in range(1, num_classes)]
        self.draw_threshold, self.mask_threshold = draw_threshold, mask_threshold
        self.max_detections = max_detections  # per image, for AP (None: COCO's 100, 20)
        self.skeleton: Skeleton | None = None
        self.limbs: tuple[tuple[int, int], ...] = ()
        self.permutation: list[int] | None = None

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        count = getattr(model, "num_classes", None)
        if count is None:
            raise CnnkitError(f"{type(model).__name__} says nothing of its classes "
                              "(num_classes); a detection task needs a detector")
        options: dict[str, Any] = {"num_classes": int(count)}
        if labels.instances is not None:
            names = list(labels.instances.names)
            if len(names) != count:
                raise CnnkitError(f"the model predicts {count} classes (background included) but "
                                  f"the data has {len(names)} ({', '.join(names)}); set "
                                  f"model.num_classes={len(names)}")
            options["class_names"] = names
        return options

    # ------------------------------------------------------------------ training
    def targets(self, batch: Batch) -> list[dict[str, torch.Tensor]]:
        """The model's training targets: the non-crowd instances of each image."""
        out = []
        for i, item in enumerate(instances_of(batch)):
            missing = [k for k in ("labels", *self.extra) if k not in item]
            if missing:
                raise CnnkitError(f"{self.kind} trains on instances with "
                                  f"{', '.join(missing)}; batch['instances'][{i}] has none")
            keep = ~item["crowd"].bool()
            target = {"boxes": item["boxes"][keep].float(), "labels": item["labels"][keep]}
            target.update({k: item[k][keep] for k in self.extra})
            out.append(target)
        return out

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """``model(images, targets)`` while training, ``model(images)`` otherwise."""
        if model.training:
            return model(batch["image"], self.targets(batch))
        return model(batch["image"])

    def loss(self, output: Any, batch: Batch
             ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Training: the sum of the model's losses, with each as a part; predictions: None."""
        if isinstance(output, dict):
            if not output:
                raise CnnkitError("the detector returned no losses")
            total = torch.stack([v.float() for v in output.values()]).sum()
            return total, {name: value.detach() for name, value in output.items()}
        if isinstance(output, (list, tuple)):
            return None, {}
        raise ArgumentError(f"a detector's output is a dict of losses (training) or a list of "
                            f"detections (evaluation); got {type(output).__name__}")

    # ------------------------------------------------------------------ evaluation
    def new_metric(self) -> COCOMetric:
        sigmas = self.kpt_oks_sigmas if "keypoints" in self.iou_types else None
        return COCOMetric(self.class_names, self.iou_types, decoder=self.decode,
                          truth=self.truth_in_original, kpt_oks_sigmas=sigmas,
                          max_detections=self.max_detections)

    @staticmethod
    def _detections(output: Any) -> list[dict[str, torch.Tensor]]:
        if not isinstance(output, (list, tuple)):
            raise ArgumentError("decoding needs a detector's predictions (a list with a dict per "
                                f"image, evaluation mode); got {type(output).__name__}")
        return list(output)

    def _record(self, values: dict[str, torch.Tensor], boxes: torch.Tensor) -> dict[str, Any]:
        labels = values["labels"].detach().cpu().long()
        record = {"boxes": boxes.float().cpu(), "labels": labels,
                  "class_names": [self.class_names[c] if 0 <= c < self.num_classes else str(c)
                                  for c in labels.tolist()]}
        if "scores" in values:
            record["scores"] = values["scores"].detach().float().cpu()
        return record

    def decode_in_input(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per image, in network-input pixels: ``boxes``, ``labels``, ``class_names``,
        ``scores``, and ``masks`` (N x H x W bool) or ``keypoints`` (N x K x 3: x, y, the
        model's visibility) with ``keypoints_scores``."""
        results = []
        for det in self._detections(output):
            record = self._record(det, det["boxes"].detach())
            if "masks" in self.extra:
                record["masks"] = det["masks"].detach()[:, 0].cpu() > self.mask_threshold
            if "keypoints" in self.extra:
                record["keypoints"] = det["keypoints"].detach().float().cpu()
                record["keypoints_scores"] = det["keypoints_scores"].detach().float().cpu()
            results.append(record)
        return results

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """:meth:`decode_in_input` in original image pixels (``masks`` H0 x W0), through the
        transforms recorded in ``batch["meta"]`` (without it: at the network input)."""
        if batch is None or "meta" not in batch:
            return self.decode_in_input(output, batch)
        size = tuple(batch["image"].shape[-2:])
        results = []
        for det, meta in zip(self._detections(output), batch["meta"]):
            boxes = boxes_to_original(det["boxes"].detach().double().cpu().reshape(-1, 4),
                                      meta, size)
            record = self._record(det, boxes)
            if "masks" in self.extra:
                soft = det["masks"].detach()[:, 0].float()  # resampled where it is
                record["masks"] = (masks_to_original(soft, meta, size) > self.mask_threshold).cpu()
            if "keypoints" in self.extra:
                points = det["keypoints"].detach().float().cpu()
                record["keypoints"] = points_to_original(points, meta, size, self.permutation)
                record["keypoints_scores"] = unflip_instances(
                    det["keypoints_scores"].detach().float().cpu(), meta, self.permutation)
            results.append(record)
        return results

    def ground_truth(self, batch: Batch) -> list[dict[str, Any]]:
        """Per image, in network-input pixels: the instances (``crowd`` flags included)."""
        keys = ("boxes", "labels", "crowd", *self.extra)
        return [{k: item[k].cpu() for k in keys if k in item} for item in instances_of(batch)]

    def truth_in_original(self, batch: Batch) -> list[dict[str, Any]]:
        """The ground truth of :meth:`ground_truth` in original image pixels, with ``size``."""
        size = tuple(batch["image"].shape[-2:])
        metas = batch.get("meta") or [{} for _ in instances_of(batch)]
        out = []
        for i, (item, meta) in enumerate(zip(self.ground_truth(batch), metas)):
            missing = [k for k in ("labels", *self.extra) if k not in item]
            if missing:
                raise CnnkitError(f"{self.kind} is measured on instances with "
                                  f"{', '.join(missing)}; batch['instances'][{i}] has none")
            truth = {"size": original_size(meta, size), "labels": item["labels"],
                     "crowd": item["crowd"],
                     "boxes": boxes_to_original(item["boxes"].double(), meta, size).float()}
            if "masks" in self.extra:
                truth["masks"] = masks_to_original(item["masks"].float(), meta, size) > 0.5
            if "keypoints" in self.extra:
                truth["keypoints"] = points_to_original(item["keypoints"].float(), meta, size,
                                                       self.permutation)
            out.append(truth)
        return out

    # ------------------------------------------------------------------ pictures and files
    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """The true instances (when given) and the predicted ones scoring at least
        ``draw_threshold``, side by side: boxes with class names (and scores), masks, keypoints."""
        tiles = []
        for title, values, threshold in (("true", target, None),
                                         ("predicted", prediction, self.draw_threshold)):
            if values is not None:
                tiles.append(caption(draw_instances(
                    image, values, self.class_names, threshold=threshold, scale=scale,
                    skeleton=self.skeleton, limbs=self.limbs), title))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_detections.png`` (the original image with the instances scoring at least
        ``draw_threshold``) and ``<stem>_coco.json`` (all of them as COCO results, image id
        ``record["image_id"]`` or 0); the record's masks become COCO RLE dicts."""
        return write_instances(record, image, stem, self.class_names,
                               threshold=self.draw_threshold, skeleton=self.skeleton,
                               limbs=self.limbs)
