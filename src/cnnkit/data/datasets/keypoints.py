"""Keypoint datasets: DeepLabCut label CSVs and COCO keypoint JSON.

DeepLabCut (Mathis et al., "DeepLabCut: markerless pose estimation of user-defined body parts
with deep learning", 2018) stores labels as a CSV with three header rows (scorer, bodyparts,
coords) and one row per frame ``image path, x, y, x, y, ...``; an empty cell means the point
was not labelled (here: ``visible=False``, coordinates 0). Coordinates are used as given: pixel
centres at integers, as in :mod:`cnnkit.data.sample`.

COCO keypoints (Lin et al., "Microsoft COCO: Common Objects in Context", 2014): one sample per
annotated instance, ``keypoints`` a flat list ``x, y, v`` per point (``v = 0``: not labelled ->
invisible). COCO boxes ``[x, y, w, h]`` have pixel corners at integers, so they are shifted by
-0.5 into cnnkit's frame.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.images import DatasetError, SkipBad, image_size, read_image
from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.data.sample import Sample
from cnnkit.geometry import Skeleton


def left_right_pairs(names: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """Pairs of names that differ only by a "left"/"right" prefix, any case (``leftear`` and
    ``rightear``, ``left_eye`` and ``right_eye``)."""
    pairs = []
    lowered = {n.lower(): n for n in names}
    for name in names:
        low = name.lower()
        if low.startswith("left"):
            partner = lowered.get("right" + low[4:])
            if partner is not None:
                pairs.append((name, partner))
    return pairs


class _KeypointRows(Dataset, SkipBad):
    """Shared loading: rows of (image path, K x 2 points, K visibility, extra fields)."""

    skeleton: Skeleton
    rows: list[tuple[Path, torch.Tensor, torch.Tensor, dict]]

    @property
    def num_keypoints(self) -> int:
        return len(self.skeleton.names)

    @property
    def keys(self) -> list[str]:
        return [f"{path.name}#{i}" if "annotation_id" in extra else path.name
                for i, (path, _, _, extra) in enumerate(self.rows)]

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(skeleton=self.skeleton)

    def __len__(self) -> int:
        return len(self.rows)

    def image_size(self, index: int) -> tuple[int, int]:
        return image_size(self.rows[index][0])

    def _load(self, row) -> Sample:
        path, points, visible, extra = row
        meta = {"path": str(path), **{k: v for k, v in extra.items() if k != "boxes"}}
        boxes = extra.get("boxes")
        image = read_image(path, "RGB")
        self._check_inside(path, points, visible, image.shape[-2:])
        return Sample(image, keypoints=points.clone(), visible=visible.clone(),
                      skeleton=self.skeleton, boxes=boxes,
                      box_labels=None if boxes is None else torch.zeros(1, dtype=torch.int64),
                      meta=meta)

    def __getitem__(self, index: int) -> Sample:
        return self._load(self.rows[index])

    def _check_inside(self, path: Path, points: torch.Tensor, visible: torch.Tensor,
                      size: tuple[int, int]) -> None:
        """A visible keypoint must lie on the image (``[-0.5, W - 0.5] x [-0.5, H - 0.5]``);
        one outside is a labelling error, named with its file, keypoint and position."""
        height, width = size
        outside = visible & ((points[:, 0] < -0.5) | (points[:, 0] > width - 0.5)
                             | (points[:, 1] < -0.5) | (points[:, 1] > height - 0.5))
        if bool(outside.any()):
            k = int(outside.nonzero()[0])
            x, y = points[k].tolist()
            raise DatasetError(f"{path}: keypoint {self.skeleton.names[k]!r} at ({x:g}, {y:g}) "
                               f"is outside the {width} x {height} image but marked visible")


class DLCKeypoints(_KeypointRows):
    """Frames labelled in a DeepLabCut ``CollectedData_<scorer>.csv``.

    Image paths in the CSV (``labeled-data/<video>/imgNNNN.png``) are looked up under
    ``image_root`` (default: the project folder two levels above the CSV), then next to the CSV.
    ``flip_pairs`` defaults to the left/right name pairs (e.g. leftear/rightear).
    """

    def __init__(self, csv_path: str | Path, image_root: str | Path | None = None,
                 flip_pairs: list[tuple[str, str]] | None = None, *, skip_bad: bool = False) -> None:
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise DatasetError(f"{self.csv_path}: label file not found")
        with self.csv_path.open(newline="") as f:
            table = list(csv.reader(f))
        if len(table) < 3 or [r[0] if r else "" for r in table[:3]] != ["scorer", "bodyparts", "coords"]:
            raise DatasetError(f"{self.csv_path}: expected DeepLabCut's 3 header rows scorer, "
                               f"bodyparts, coords (single animal); got "
                               f"{[r[0] if r else '' for r in table[:3]]}")
        parts, coords = table[1][1:], table[2][1:]
        if len(parts) % 2 or coords != ["x", "y"] * (len(parts) // 2) or parts[::2] != parts[1::2]:
            raise DatasetError(f"{self.csv_path}: header must list each body part twice with "
                               f"coords x, y; got bodyparts {parts} and coords {coords}")
        names = parts[::2]
        self.skeleton = Skeleton.from_names(names, left_right_pairs(names) if flip_pairs is None
                                            else flip_pairs)
        roots = [Path(image_root)] if image_root is not None else []
        roots += [self.csv_path.parent.parent.parent, self.csv_path.parent]
        self.rows, bad = [], []
        for number, row in enumerate(table[3:], 4):
            if not row or not any(cell.strip() for cell in row):
                continue
            try:
                self.rows.append(self._parse(row, number, len(names), roots))
            except DatasetError as err:
                if not skip_bad:
                    raise
                bad.append((f"{self.csv_path}:{number}", str(err)))
        if not self.rows and not bad:
            raise DatasetError(f"{self.csv_path}: no labelled frames")
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self.rows, self.skipped = self._check_all(self.rows, self._load, str(self.csv_path), bad)

    def _parse(self, row: list[str], number: int, k: int, roots: list[Path]):
        where = f"{self.csv_path}:{number}"
        if len(row) != 1 + 2 * k:
            raise DatasetError(f"{where}: wrong keypoint count: {len(row) - 1} values, expected "
                               f"{2 * k} (x, y for {k} body parts)")
        rel = Path(row[0])
        path = next((r / rel for r in roots if (r / rel).is_file()),
                    next((r / rel.name for r in roots if (r / rel.name).is_file()), None))
        if path is None:
            raise DatasetError(f"{where}: missing image {row[0]} (looked in "
                               f"{', '.join(map(str, roots))})")
        try:
            values = [float(c) if c.strip() else math.nan for c in row[1:]]
        except ValueError as err:
            raise DatasetError(f"{where}: not a number ({err})") from None
        points = torch.tensor(values, dtype=torch.float32).view(k, 2)
        visible = ~points.isnan().any(dim=1)
        return path, torch.where(visible[:, None], points, torch.zeros(())), visible, {}


class COCOKeypoints(_KeypointRows):
    """Instances of one category of a COCO keypoint JSON, one :class:`Sample` each (with its
    box); ``images`` is the image folder. Instances without any labelled point are left out
    (as COCO's keypoint training does), counted in ``num_unlabelled``."""

    def __init__(self, json_path: str | Path, images: str | Path, category_id: int | None = None,
                 *, skip_bad: bool = False) -> None:
        self.json_path = Path(json_path)
        try:
            data = json.loads(self.json_path.read_text())
            categories = [c for c in data["categories"] if "keypoints" in c]
            image_files = {im["id"]: im["file_name"] for im in data["images"]}
            annotations = data["annotations"]
        except FileNotFoundError:
            raise DatasetError(f"{self.json_path}: annotation file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DatasetError(f"{self.json_path}: not a COCO keypoint file ({err!r})") from None
        if category_id is not None:
            categories = [c for c in categories if c["id"] == category_id]
        if not categories:
            raise DatasetError(f"{self.json_path}: no category with keypoints"
                               + (f" and id {category_id}" if category_id is not None else ""))
        cat = categories[0]
        names = list(cat["keypoints"])
        self.skeleton = Skeleton.from_names(names, left_right_pairs(names))
        self.rows, self.num_unlabelled, bad = [], 0, []
        for ann in annotations:
            if ann.get("category_id") != cat["id"]:
                continue
            try:
                row = self._parse(ann, names, image_files, Path(images))
            except DatasetError as err:
                if not skip_bad:
                    raise
                bad.append((f"annotation {ann.get('id')}", str(err)))
                continue
            if row is None:
                self.num_unlabelled += 1
            else:
                self.rows.append(row)
        if not self.rows and not bad:
            raise DatasetError(f"{self.json_path}: no labelled instances of {cat.get('name')!r}")
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self.rows, self.skipped = self._check_all(self.rows, self._load, str(self.json_path), bad)

    def _parse(self, ann: dict, names: list[str], image_files: dict, folder: Path):
        where = f"{self.json_path}: annotation {ann.get('id')}"
        flat = ann.get("keypoints", [])
        if len(flat) != 3 * len(names):
            raise DatasetError(f"{where}: wrong keypoint count: {len(flat)} values, expected "
                               f"{3 * len(names)} (x, y, v for {len(names)} keypoints)")
        try:
            values = torch.tensor([float(v) for v in flat], dtype=torch.float32).view(-1, 3)
        except (TypeError, ValueError):
            bad = next(v for v in flat if not isinstance(v, (int, float)))
            raise DatasetError(f"{where}: keypoints must be numbers (x, y, v); got "
                               f"{bad!r}") from None
        visible = values[:, 2] > 0
        if not bool(visible.any()):
            return None
        if ann.get("image_id") not in image_files:
            raise DatasetError(f"{where}: image id {ann.get('image_id')} is not in 'images'")
        path = folder / image_files[ann["image_id"]]
        extra: dict = {"annotation_id": ann.get("id"), "image_id": ann["image_id"]}
        if "bbox" in ann:
            x, y, w, h = (float(v) for v in ann["bbox"])
            extra["boxes"] = torch.tensor([[x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5]])
        points = torch.where(visible[:, None], values[:, :2], torch.zeros(()))
        return path, points, visible, extra
