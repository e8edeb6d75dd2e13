"""Writing COCO files: predictions in COCO's result format, and any instance dataset's ground
truth as a COCO instances file, so that pycocotools' ``COCOeval`` (the evaluation of Lin et
al., "Microsoft COCO: Common Objects in Context", ECCV 2014) can score any cnnkit model on any
cnnkit instance dataset.

Frames (see :mod:`cnnkit.data.datasets.coco`): boxes go back from cnnkit's pixel-centre frame
to COCO's pixel-edge ``[x, y, w, h]`` (``x = x1 + 0.5``, ``w = x2 - x1``); masks become
compressed RLE (``pycocotools.mask.encode``, counts as text for JSON); keypoints are written as
pixel indices, as read. Labels 1..C go back to category ids through ``category_ids`` (label
``l`` is ``category_ids[l - 1]``; without it the label is the id).

``COCOeval`` for keypoints scores with COCO's 17 person sigmas: for another skeleton set
``params.kpt_oks_sigmas`` (one per keypoint) and ``params.catIds`` to the keypoint categories.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.coco import coco_mask_api
from cnnkit.data.datasets.images import DatasetError
from cnnkit.data.datasets.labels import base_dataset, label_space
from cnnkit.errors import ArgumentError


def _encode(masks: torch.Tensor) -> list[dict]:
    """``B x H x W`` bool masks as compressed RLE dicts with text counts."""
    if not len(masks):
        return []
    array = np.asfortranarray(masks.cpu().numpy().transpose(1, 2, 0).astype(np.uint8))
    rles = coco_mask_api().encode(array)
    return [{"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}
            for r in rles]


def _coco_boxes(boxes: torch.Tensor) -> list[list[float]]:
    """cnnkit ``(x1, y1, x2, y2)`` -> COCO ``[x, y, w, h]`` (pixel edges at integers)."""
    b = boxes.double()
    return torch.stack([b[:, 0] + 0.5, b[:, 1] + 0.5, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
                       1).tolist()


def _category(labels: torch.Tensor, category_ids: Sequence[int] | None, where: str) -> list[int]:
    if category_ids is None:
        return [int(v) for v in labels]
    bad = [int(v) for v in labels if not 1 <= int(v) <= len(category_ids)]
    if bad:
        raise ArgumentError(f"{where}: labels {bad[:5]} are not 1..{len(category_ids)} (the "
                            f"{len(category_ids)} categories of category_ids)")
    return [int(category_ids[int(v) - 1]) for v in labels]


def to_coco_json(predictions: Iterable[Mapping[str, Any]],
                 category_ids: Sequence[int] | None = None,
                 mask_threshold: float = 0.5) -> list[dict]:
    """COCO result entries (one per predicted instance) from one dict per image: ``image_id``,
    ``boxes`` (B x 4, cnnkit frame), ``labels`` (B, 1..C), ``scores`` (B), and optionally
    ``masks`` (B x H x W, bool or probabilities cut at ``mask_threshold``) and ``keypoints``
    (B x K x 2, or B x K x 3 whose third column is written as v; else v = 1)."""
    results = []
    for n, pred in enumerate(predictions):
        where = f"predictions[{n}]"
        missing = [k for k in ("image_id", "boxes", "labels", "scores") if k not in pred]
        if missing:
            raise ArgumentError(f"{where}: a prediction needs image_id, boxes, labels and scores; "
                                f"{', '.join(missing)} missing")
        boxes = torch.as_tensor(pred["boxes"]).reshape(-1, 4)
        labels, scores = torch.as_tensor(pred["labels"]), torch.as_tensor(pred["scores"])
        count = len(boxes)
        sizes = {"labels": len(labels), "scores": len(scores)}
        for key in ("masks", "keypoints"):
            if key in pred:
                sizes[key] = len(pred[key])
        if any(v != count for v in sizes.values()):
            raise ArgumentError(f"{where}: {count} boxes but {sizes}; give one of each per box")
        entries = [{"image_id": int(pred["image_id"]), "category_id": c, "bbox": b,
                    "score": float(s)} for c, b, s in zip(
                        _category(labels, category_ids, where), _coco_boxes(boxes), scores)]
        if "masks" in pred:
            masks = torch.as_tensor(pred["masks"])
            masks = masks if masks.dtype == torch.bool else masks > mask_threshold
            for entry, rle in zip(entries, _encode(masks)):
                entry["segmentation"] = rle
        if "keypoints" in pred:
            points = torch.as_tensor(pred["keypoints"]).double()
            if points.shape[-1] == 2:
                points = torch.cat([points, torch.ones_like(points[..., :1])], -1)
            for entry, row in zip(entries, points.flatten(1).tolist()):
                entry["keypoints"] = row
        results.extend(entries)
    return results


def write_coco_results(path: str | Path, predictions: Iterable[Mapping[str, Any]],
                       category_ids: Sequence[int] | None = None,
                       mask_threshold: float = 0.5) -> int:
    """Write :func:`to_coco_json` to ``path`` (what ``COCO.loadRes`` reads); returns the count."""
    results = to_coco_json(predictions, category_ids, mask_threshold)
    Path(path).write_text(json.dumps(results))
    return len(results)


def _categories(dataset: Dataset, category_ids: Sequence[int] | None) -> list[dict]:
    base = base_dataset(dataset)
    if getattr(base, "categories", None) is not None:  # a COCO file's own
        return [dict(c) for c in base.categories]
    space = label_space(dataset)
    if space.instances is None:
        raise ArgumentError(f"{type(base).__name__} declares no instance classes "
                            f"(label_space.instances); it is not an instance dataset")
    names = space.instances.names[1:]
    ids = list(category_ids) if category_ids is not None else list(range(1, len(names) + 1))
    out = [{"id": int(i), "name": n, "supercategory": n} for i, n in zip(ids, names)]
    if space.skeleton is not None:
        limbs = [[a + 1, b + 1] for a, b in getattr(base, "limbs", ())]
        for c in out:
            c.update(keypoints=list(space.skeleton.names), skeleton=limbs)
    return out


def write_coco_dataset(dataset: Dataset, path: str | Path,
                       category_ids: Sequence[int] | None = None) -> dict:
    """Write the ground truth of an instance dataset as a COCO instances file (and return it).

    Image ids are ``meta["image_id"]`` where samples have one, else the index; boxes, masks
    (RLE), crowd flags and keypoints (v = 2 visible, 0 not) of every sample; ``area`` is the
    mask's pixel count (the box's area without masks). ``category_ids`` default to the
    dataset's own (a COCO file's), else to the labels 1..C.
    """
    base = base_dataset(dataset)
    if category_ids is None:
        category_ids = getattr(base, "category_ids", None)
    images, annotations = [], []
    for index in range(len(dataset)):  # type: ignore[arg-type]
        sample = dataset[index]
        if not sample.has_instances or sample.box_labels is None:
            raise DatasetError(f"{sample.meta.get('path', f'sample {index}')}: no instances "
                               f"with labels to write as COCO ground truth")
        image_id = int(sample.meta.get("image_id", index))
        height, width = sample.size
        images.append({"id": image_id, "file_name": str(sample.meta.get("path", index)),
                       "height": height, "width": width})
        where = f"sample {index}"
        cats = _category(sample.box_labels, category_ids, where)
        rles = _encode(sample.instance_masks) if sample.instance_masks is not None else None
        for b, (box, cat) in enumerate(zip(_coco_boxes(sample.boxes), cats)):
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                   "bbox": box, "iscrowd": int(sample.crowd[b]),
                   "area": box[2] * box[3], "num_keypoints": 0}
            if rles is not None:
                ann["segmentation"] = rles[b]
                ann["area"] = int(sample.instance_masks[b].sum())
            if sample.instance_keypoints is not None:
                visible = sample.instance_visible[b]
                points = torch.where(visible[:, None], sample.instance_keypoints[b].double(), 0.0)
                code = torch.where(visible, 2.0, 0.0).double()
                ann["keypoints"] = torch.cat([points, code[:, None]], 1).reshape(-1).tolist()
                ann["num_keypoints"] = int(visible.sum())
            annotations.append(ann)
    coco = {"images": images, "annotations": annotations,
            "categories": _categories(dataset, category_ids)}
    Path(path).write_text(json.dumps(coco))
    return coco
