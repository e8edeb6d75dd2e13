"""Pictures and files of detected instances: boxes with class names and scores, masks tinted
with a colour per instance (so that touching objects of one class stay apart; box and mask of
an instance share it), keypoints with the skeleton (the detection tasks of
:mod:`cnnkit.tasks.detection` draw and write with these)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnkit.data.datasets.coco_results import to_coco_json
from cnnkit.geometry import Skeleton
from cnnkit.tasks.base import jsonable
from cnnkit.viz import CATEGORICAL, draw_boxes, draw_keypoints

MASK_ALPHA = 0.45  # weight of the class colour over a masked pixel


def _enlarge(image: Image.Image, scale: int) -> Image.Image:
    image = image.convert("RGB")
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale),
                                                 Image.NEAREST)


def tint_masks(picture: Image.Image, masks: torch.Tensor, colors: Sequence[tuple[int, int, int]],
               alpha: float = MASK_ALPHA) -> Image.Image:
    """``picture`` with the pixels of each ``B x H x W`` mask blended with its colour (a later
    mask over an earlier one)."""
    if not len(masks):
        return picture
    layers = masks.to(torch.uint8).flip(0)  # argmax finds the first: the last mask, flipped
    top = len(masks) - 1 - layers.argmax(0)
    covered = masks.bool().any(0)
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32).copy())
    palette = torch.tensor(list(colors), dtype=torch.float32).reshape(-1, 3)
    blended = (1 - alpha) * pixels + alpha * palette[top]
    out = torch.where(covered[..., None], blended, pixels)
    return Image.fromarray(out.round().clamp(0, 255).to(torch.uint8).numpy(), "RGB")


def draw_instances(image: Image.Image, values: dict[str, Any], class_names: Sequence[str], *,
                   threshold: float | None = None, scale: int = 1,
                   skeleton: Skeleton | None = None,
                   limbs: Sequence[tuple[int, int]] = ()) -> Image.Image:
    """``image`` with the instances of ``values`` (``boxes``, ``labels``, optionally
    ``scores``, ``masks`` B x H x W, ``keypoints`` B x K x 3 with visibility or score > 0 shown,
    ``crowd``) in image pixels; with ``threshold``, only those scoring at least that."""
    picture = _enlarge(image, scale)
    boxes = torch.as_tensor(values["boxes"], dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(values["labels"]).long().reshape(-1)
    scores = values.get("scores")
    keep = torch.ones(len(boxes), dtype=torch.bool)
    if threshold is not None and scores is not None:
        keep = torch.as_tensor(scores, dtype=torch.float32) >= threshold
    colors = [CATEGORICAL[int(c) % len(CATEGORICAL)] for c in labels[keep]]
    if values.get("masks") is not None:  # one colour per instance, the class in the caption
        colors = [CATEGORICAL[i % len(CATEGORICAL)] for i in range(len(colors))]
        masks = torch.as_tensor(values["masks"]).bool()[keep]
        if scale != 1:
            masks = masks.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        picture = tint_masks(picture, masks, colors)
    if values.get("keypoints") is not None:
        for points in torch.as_tensor(values["keypoints"], dtype=torch.float32)[keep]:
            picture = draw_keypoints(picture, (points[:, :2] + 0.5) * scale - 0.5,
                                     points[:, 2] > 0, skeleton, list(limbs) or None,
                                     names=False)
    crowd = values.get("crowd")
    crowd = torch.zeros(len(boxes), dtype=torch.bool) if crowd is None else \
        torch.as_tensor(crowd).bool()
    texts = [f"{class_names[c] if 0 <= c < len(class_names) else c}" +
             (" (crowd)" if is_crowd else "")
             for c, is_crowd in zip(labels[keep].tolist(), crowd[keep].tolist())]
    kept_scores = None if scores is None else torch.as_tensor(scores)[keep].tolist()
    return draw_boxes(picture, (boxes[keep] + 0.5) * scale - 0.5, list(range(len(texts))),
                      texts, kept_scores, colors=colors or CATEGORICAL)


def write_instances(record: dict[str, Any], image: Image.Image, stem: Path,
                    class_names: Sequence[str], *, threshold: float,
                    skeleton: Skeleton | None = None,
                    limbs: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
    """``<stem>_detections.png`` and ``<stem>_coco.json`` (COCO results) of one image's
    decoded predictions; returns the JSON record, masks as COCO RLE dicts."""
    draw_instances(image, record, class_names, threshold=threshold, skeleton=skeleton,
                   limbs=limbs).save(f"{stem}_detections.png")
    fields = {k: record[k] for k in ("boxes", "labels", "scores", "masks", "keypoints")
              if record.get(k) is not None}
    entries = to_coco_json([{"image_id": int(record.get("image_id", 0)), **fields}])
    Path(f"{stem}_coco.json").write_text(json.dumps(entries))
    out = {k: v for k, v in record.items() if k != "masks"}
    if "masks" in fields:
        out["masks"] = [entry["segmentation"] for entry in entries]
    return jsonable(out)
