"""COCO instance annotations: one sample per image with all of its objects.

The format is that of Microsoft COCO (Lin et al., "Microsoft COCO: Common Objects in Context",
ECCV 2014): a JSON file with ``images``, ``categories`` and ``annotations``; each annotation is
one object with a ``bbox``, a ``segmentation`` (polygons, or run-length encoding for crowd
regions), ``iscrowd`` and, for categories with keypoints, ``keypoints``. These are the targets
Mask R-CNN (He et al., ICCV 2017) trains on. What cnnkit makes of them:

- boxes: COCO's ``[x, y, w, h]`` puts pixel *edges* at integers (the image spans ``[0, W]``);
  cnnkit puts pixel *centres* there (:mod:`cnnkit.geometry`), so ``x1 = x - 0.5``,
  ``y1 = y - 0.5``, ``x2 = x + w - 0.5``, ``y2 = y + h - 0.5``; the results writer adds the
  0.5 back. Polygons are rasterised by pycocotools in COCO's frame, which gives the pixel
  array directly;
- keypoints: used as given, as pixel indices (cnnkit's frame), like
  :class:`~cnnkit.data.datasets.keypoints.COCOKeypoints`; ``visible = v > 0`` (COCO's 1,
  labelled but hidden, and 2, visible, both count as labelled);
- category ids (any integers) become contiguous labels 1..C in increasing id order, 0 being
  background; ``label_space.instances`` names them, ``category_ids[label - 1]`` maps back;
- the keypoint names come from the (one) category that has keypoints, left/right pairs from
  the names (``left_eye``/``right_eye``), COCO's 1-based ``skeleton`` as 0-based ``limbs``;
  instances of other categories get all-invisible keypoints;
- ``crowd`` flags ``iscrowd`` regions (evaluation ignores them); masks are decoded with
  ``pycocotools.mask`` (``pip install 'cnnkit[coco]'``); an annotation without segmentation
  gets its box as the mask.

Unlike torchvision's and Detectron2's loaders, every annotation is validated when the file is
read: a bad one is one :class:`DatasetError` naming the file and the annotation id.
"""

from __future__ import annotations

import json
import numbers
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.images import DatasetError, read_image
from cnnkit.data.datasets.keypoints import left_right_pairs
from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.sample import Sample
from cnnkit.errors import CnnkitError
from cnnkit.geometry import Skeleton


def coco_mask_api() -> Any:
    """``pycocotools.mask``, imported when first needed (an optional dependency)."""
    try:
        from pycocotools import mask
    except ImportError:
        raise CnnkitError("COCO masks and results need pycocotools: pip install "
                          "'cnnkit[coco]'") from None
    return mask


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


class COCOInstances(Dataset):
    """The images of a COCO instances JSON file with all their objects (see the module).

    ``images``: the image folder (``file_name`` is relative to it); ``keep_empty``: keep images
    without annotations (True, as evaluation needs; False skips them, as Mask R-CNN's training
    does); ``masks``: decode the instance masks (False: boxes, labels, keypoints only).
    """

    def __init__(self, json_path: str | Path, images: str | Path, *, keep_empty: bool = True,
                 masks: bool = True) -> None:
        self.json_path, self.folder, self.with_masks = Path(json_path), Path(images), masks
        if masks:
            coco_mask_api()
        try:
            data = json.loads(self.json_path.read_text())
            categories, image_list = list(data["categories"]), list(data["images"])
            annotations = list(data.get("annotations", []))
            self.images = {int(im["id"]): (str(im["file_name"]), int(im["height"]),
                                           int(im["width"])) for im in image_list}
            self.categories = sorted(categories, key=lambda c: int(c["id"]))
            self.category_ids = tuple(int(c["id"]) for c in self.categories)
            names = tuple(str(c["name"]) for c in self.categories)
        except FileNotFoundError:
            raise DatasetError(f"{self.json_path}: annotation file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{self.json_path}: not a COCO instances file ({err!r})") from None
        self.label_of = {cid: i + 1 for i, cid in enumerate(self.category_ids)}
        self.classes = ClassList(("background",) + names)
        self._keypoint_setup()
        self.annotations: dict[int, list[dict]] = {image_id: [] for image_id in self.images}
        for ann in annotations:
            parsed = self._parse(ann)
            self.annotations[parsed["image_id"]].append(parsed)
        self.image_ids = [i for i in self.images if keep_empty or self.annotations[i]]
        for image_id in self.image_ids:
            path = self.folder / self.images[image_id][0]
            if not path.is_file():
                raise DatasetError(f"{self.json_path}: image {image_id}: missing image {path}")

    def _keypoint_setup(self) -> None:
        with_points = [c for c in self.categories if c.get("keypoints")]
        lists = {tuple(c["keypoints"]) for c in with_points}
        if len(lists) > 1:
            raise DatasetError(f"{self.json_path}: categories {[c['id'] for c in with_points]} "
                               f"name different keypoints; cnnkit holds one skeleton per dataset")
        self.keypoint_names = tuple(str(n) for n in next(iter(lists), ()))
        self.keypoint_categories = {int(c["id"]) for c in with_points}
        self.skeleton = Skeleton.from_names(self.keypoint_names,
                                            left_right_pairs(self.keypoint_names)) \
            if self.keypoint_names else None
        limbs = with_points[0].get("skeleton", []) if with_points else []
        self.limbs = tuple((int(a) - 1, int(b) - 1) for a, b in limbs)

    def _parse(self, ann: dict) -> dict:
        """One annotation checked and converted (box in cnnkit's frame, label, keypoints)."""
        where = f"{self.json_path}: annotation {ann.get('id') if isinstance(ann, dict) else ann}"
        if not isinstance(ann, dict):
            raise DatasetError(f"{where}: an annotation must be a JSON object")
        image_id, category = ann.get("image_id"), ann.get("category_id")
        if image_id not in self.images:
            raise DatasetError(f"{where}: missing image: image id {image_id!r} is not in 'images'")
        if category not in self.label_of:
            raise DatasetError(f"{where}: unknown category {category!r}; the categories are "
                               f"{', '.join(map(str, self.category_ids))}")
        bbox = ann.get("bbox")
        if not _numbers(bbox) or len(bbox) != 4 or bbox[2] < 0 or bbox[3] < 0:
            raise DatasetError(f"{where}: bbox must be [x, y, w, h] with w, h >= 0; got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        out = {"id": ann.get("id"), "image_id": image_id, "label": self.label_of[category],
               "box": [x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5],
               "crowd": bool(ann.get("iscrowd", 0)), "segmentation": ann.get("segmentation")}
        self._check_segmentation(where, out["segmentation"], self.images[image_id][1:])
        expected = 3 * len(self.keypoint_names) if category in self.keypoint_categories else 0
        flat = ann.get("keypoints") or []
        if len(flat) != expected:
            raise DatasetError(f"{where}: wrong keypoint count: {len(flat)} values, expected "
                               f"{expected} (x, y, v for {expected // 3} keypoints)")
        if not _numbers(flat):
            bad = next(v for v in flat if not isinstance(v, numbers.Real) or isinstance(v, bool))
            raise DatasetError(f"{where}: keypoints must be numbers (x, y, v); got {bad!r}")
        out["keypoints"] = flat
        return out

    def _check_segmentation(self, where: str, seg: Any, size: tuple[int, int]) -> None:
        if seg is None or seg == []:
            return
        if isinstance(seg, list):
            for polygon in seg:
                if not _numbers(polygon) or len(polygon) % 2:
                    raise DatasetError(f"{where}: a polygon must be a flat list x, y, x, y, ... "
                                       f"of numbers; got {str(polygon)[:60]}")
                if len(polygon) < 6:
                    raise DatasetError(f"{where}: a polygon needs at least 3 points; got "
                                       f"{len(polygon) // 2}")
        elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
            if not _numbers(seg["size"]) or [int(v) for v in seg["size"]] != list(size):
                raise DatasetError(f"{where}: RLE size {seg['size']} is not the image's "
                                   f"[height, width] = {list(size)}")
        else:
            raise DatasetError(f"{where}: segmentation must be polygons or an RLE with counts "
                               f"and size; got {type(seg).__name__}")

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(skeleton=self.skeleton, instances=self.classes)

    @property
    def keys(self) -> list[str]:
        return [self.images[i][0] for i in self.image_ids]

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_size(self, index: int) -> tuple[int, int]:
        return self.images[self.image_ids[index]][1:]

    def decode_mask(self, ann: dict, height: int, width: int) -> np.ndarray:
        """The ``H x W`` uint8 mask of a parsed annotation (its box when it has no segmentation)."""
        api, seg = coco_mask_api(), ann["segmentation"]
        if seg is None or seg == []:
            x1, y1, x2, y2 = ann["box"]
            box = np.array([[x1 + 0.5, y1 + 0.5, x2 - x1, y2 - y1]])  # COCO's [x, y, w, h]
            rle = api.frPyObjects(box, height, width)[0]
        elif isinstance(seg, list):
            rle = api.merge(api.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = api.frPyObjects(seg, height, width)
        else:
            rle = seg
        with warnings.catch_warnings():  # pycocotools' decode vs numpy 2's copy keyword
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            return api.decode(rle)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        file_name, height, width = self.images[image_id]
        path = self.folder / file_name
        image = read_image(path, "RGB")
        if tuple(image.shape[-2:]) != (height, width):
            raise DatasetError(f"{path}: image is {image.shape[2]} x {image.shape[1]} (W x H) but "
                               f"{self.json_path.name} says {width} x {height} (image {image_id})")
        anns = self.annotations[image_id]
        fields: dict[str, Any] = {
            "boxes": torch.tensor([a["box"] for a in anns], dtype=torch.float32).view(-1, 4),
            "box_labels": torch.tensor([a["label"] for a in anns], dtype=torch.int64),
            "crowd": torch.tensor([a["crowd"] for a in anns], dtype=torch.bool)}
        if self.with_masks:
            masks = [self.decode_mask(a, height, width) for a in anns]
            stacked = np.stack(masks) if masks else np.zeros((0, height, width), np.uint8)
            fields["instance_masks"] = torch.from_numpy(np.ascontiguousarray(stacked) > 0)
        if self.skeleton is not None:
            k = len(self.keypoint_names)
            values = torch.zeros(len(anns), k, 3)
            for row, a in enumerate(anns):
                if a["keypoints"]:
                    values[row] = torch.tensor(a["keypoints"], dtype=torch.float32).view(k, 3)
            fields.update(instance_keypoints=values[..., :2].contiguous(),
                          instance_visible=values[..., 2] > 0)
        return Sample(image, skeleton=self.skeleton,
                      meta={"path": str(path), "image_id": image_id}, **fields)
