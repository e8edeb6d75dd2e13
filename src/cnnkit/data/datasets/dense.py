"""Dense-target datasets of files: images with depth, surface normals and semantic masks.

NYU Depth v2 (Silberman, Hoiem, Kohli & Fergus, ECCV 2012), the data of Eigen & Fergus
(ICCV 2015), ships as one MATLAB file (RGB-D frames with depth in metres); projects export it,
and their own data, as parallel folders matched by file stem, which is what this reads::

    root[/split]/image/<stem>.png|jpg       the pictures (required)
    root[/split]/depth/<stem>.png|npy|tif   16-bit PNG (value / depth_scale = metres, 0 =
                                            unknown) or float metres
    root[/split]/normals/<stem>.png|npy     8-bit RGB, n = 2 rgb / 255 - 1; or float arrays
                                            3 x H x W / H x W x 3 (camera frame)
    root[/split]/mask/<stem>.png            optional semantic classes (index PNG)
    root[/split]/valid/<stem>.png           optional, 0 / 255: pixels whose targets are known

At least one of depth and normals is needed. Normals are read in cnnkit's camera frame (x right,
y down, z forward; facing the camera, so negative z head-on); ``normals_sign`` multiplies the
components of files stored in another frame (e.g. ``(1, -1, -1)`` for x right, y up, z
backward). A PNG normal far from unit length (black or mid-grey: the usual "unknown" codes) is
unknown. ``valid`` is the valid file (if any) and depth > 0 and known normals; depth and normals
are set to 0 where the valid file says unknown. Values are taken as the files hold them:
nothing is cropped, capped at a maximum depth or filled in (NYU's labelled frames come with
in-painted depth; raw sensor depth keeps its holes, which read as 0 = unknown).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.images import (IMAGE_EXTENSIONS, DatasetError, SkipBad, load_npy,
                                         _open_array, image_size, list_images, read_depth,
                                         read_image, read_mask)
from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.sample import Sample
from cnnkit.errors import ArgumentError

FOLDERS = {"image": ("image", "images", "img", "imgs", "rgb"), "depth": ("depth", "depths"),
           "normals": ("normals", "normal"), "mask": ("mask", "masks", "label", "labels"),
           "valid": ("valid",)}
TARGET_EXTENSIONS = IMAGE_EXTENSIONS + (".npy",)
UNIT_TOLERANCE = 0.25  # an 8-bit normal whose decoded length is off 1 by more is unknown


def read_normals(path: Path, sign: Sequence[float] = (1.0, 1.0, 1.0)
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals ``3 x H x W`` float32 (0 where unknown) and the ``H x W`` known map."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        array = load_npy(path)
        if array.ndim == 3 and array.shape[0] != 3 and array.shape[-1] == 3:
            array = array.transpose(2, 0, 1)
        if array.ndim != 3 or array.shape[0] != 3 or not np.issubdtype(array.dtype, np.floating):
            raise DatasetError(f"{path}: a normals array must be float 3 x H x W or H x W x 3; "
                               f"got {array.dtype} {array.shape}")
        normals = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        length = normals.norm(dim=0)
        known = torch.isfinite(length) & (length > 1e-6)
    else:
        array, file_mode, _ = _open_array(path, None)
        if file_mode != "RGB" or array.dtype != np.uint8:
            raise DatasetError(f"{path}: a normals image must be 8-bit RGB (n = 2 rgb / 255 - 1); "
                               f"got mode {file_mode!r}")
        normals = torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32)) * (2 / 255) - 1
        length = normals.norm(dim=0)
        known = (length - 1).abs() <= UNIT_TOLERANCE
    normals = normals * torch.tensor(sign, dtype=torch.float32)[:, None, None]
    unit = normals / length.clamp(min=1e-6)
    return torch.where(known, unit, torch.zeros_like(unit)), known


def read_valid(path: Path) -> torch.Tensor:
    """An ``H x W`` bool map from a 0 / 255 (or 1-bit) PNG; other values are an error."""
    array, file_mode, _ = _open_array(path, None)
    if array.ndim != 2:
        raise DatasetError(f"{path}: a valid mask must be single-channel 0 / 255; got mode "
                           f"{file_mode!r}")
    if array.dtype != np.bool_:
        odd = sorted(set(np.unique(array).tolist()) - {0, 255})[:5]
        if odd:
            raise DatasetError(f"{path}: a valid mask holds 0 (unknown) and 255 (known); got "
                               f"values {odd}")
    return torch.from_numpy(array != 0)


def _find(root: Path, what: str, required: bool) -> Path | None:
    for name in FOLDERS[what]:
        if (root / name).is_dir():
            return root / name
    if required:
        raise DatasetError(f"{root}: no {what} folder (looked for {', '.join(FOLDERS[what])})")
    return None


def _pair_files(images: list[Path], folder: Path, what: str) -> list[Path]:
    """The file of ``folder`` for each image, by stem; an unpaired file is an error."""
    files = list_images(folder, TARGET_EXTENSIONS)
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem:
            raise DatasetError(f"{f}: two {what} files named {f.stem}.* ({by_stem[f.stem].name})")
        by_stem[f.stem] = f
    missing = [p for p in images if p.stem not in by_stem]
    if missing:
        raise DatasetError(f"{missing[0]}: missing pair: no {what} file named {missing[0].stem}.* "
                           f"in {folder} ({len(missing)} image(s) without one)")
    stems = {p.stem for p in images}
    extra = [f for f in files if f.stem not in stems]
    if extra:
        raise DatasetError(f"{extra[0]}: missing pair: no image named {extra[0].stem}.* in "
                           f"{images[0].parent} ({len(extra)} {what} file(s) without an image)")
    return [by_stem[p.stem] for p in images]


class DenseFolders(Dataset, SkipBad):
    """Images with depth and/or normals (and optional masks and valid maps) in parallel folders
    of ``root``, matched by file stem (see the module docstring for the layout).

    ``depth_scale``: stored units per metre of 16-bit depth PNGs (1000: millimetres);
    ``classes``: the mask's classes (needed when there is a mask folder); ``mask_values``:
    stored mask values -> classes; ``skip_bad``: leave out samples that fail to load.
    """

    def __init__(self, root: str | Path, *, depth_scale: float = 1000.0,
                 classes: ClassList | None = None, mask_values: dict[int, int] | None = None,
                 normals_sign: Sequence[float] = (1.0, 1.0, 1.0), mode: str = "RGB",
                 skip_bad: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: folder not found")
        if not depth_scale > 0:
            raise ArgumentError(f"depth_scale must be > 0 (stored units per metre); got "
                                f"{depth_scale!r}")
        if len(normals_sign) != 3 or any(abs(s) != 1 for s in normals_sign):
            raise ArgumentError(f"normals_sign must be three of 1 / -1; got {normals_sign!r}")
        self.depth_scale, self.classes, self.mask_values = float(depth_scale), classes, mask_values
        self.normals_sign, self.mode = tuple(float(s) for s in normals_sign), mode
        images = list_images(_find(self.root, "image", True))
        folders = {what: _find(self.root, what, False) for what in FOLDERS if what != "image"}
        if folders["depth"] is None and folders["normals"] is None:
            raise DatasetError(f"{self.root}: no depth or normals folder (looked for "
                               f"{', '.join(FOLDERS['depth'] + FOLDERS['normals'])})")
        if folders["mask"] is not None and classes is None:
            raise DatasetError(f"{folders['mask']}: a mask folder needs its classes "
                               f"(num_classes or a class list)")
        self.targets = tuple(w for w, f in folders.items() if f is not None)
        paired = {w: _pair_files(images, folders[w], w) for w in self.targets}
        self.items = [{"image": p, **{w: paired[w][i] for w in self.targets}}
                      for i, p in enumerate(images)]
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self.items, self.skipped = self._check_all(self.items, self._load, str(self.root))

    @property
    def has_masks(self) -> bool:
        return "mask" in self.targets

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(mask=self.classes if self.has_masks else None)

    @property
    def keys(self) -> list[str]:
        return [item["image"].name for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def image_size(self, index: int) -> tuple[int, int]:
        return image_size(self.items[index]["image"])

    def _load(self, item: dict[str, Path]) -> Sample:
        image_path = item["image"]
        image = read_image(image_path, self.mode)
        h, w = image.shape[-2:]
        fields: dict[str, torch.Tensor] = {}
        if "depth" in item:
            fields["depth"] = read_depth(item["depth"], self.depth_scale)
        if "normals" in item:
            fields["normals"], known = read_normals(item["normals"], self.normals_sign)
        if "mask" in item:
            fields["mask"] = read_mask(item["mask"], len(self.classes), values=self.mask_values)
        if "valid" in item:
            fields["valid"] = read_valid(item["valid"])
        for name, value in fields.items():
            if tuple(value.shape[-2:]) != (h, w):
                raise DatasetError(f"{item[name]}: {name} is {value.shape[-1]} x {value.shape[-2]} "
                                   f"(W x H) but its image {image_path.name} is {w} x {h}")
        valid = fields.get("valid", torch.ones(h, w, dtype=torch.bool))
        for name in ("depth", "normals"):
            if name in fields:
                fields[name] = torch.where(valid, fields[name], torch.zeros_like(fields[name]))
        if "depth" in fields:
            valid = valid & (fields["depth"] > 0)
        if "normals" in fields:
            valid = valid & known
        fields["valid"] = valid
        meta = {"path": str(image_path), **{f"{n}_path": str(item[n]) for n in self.targets}}
        return Sample(image, meta=meta, **fields)

    def __getitem__(self, index: int) -> Sample:
        return self._load(self.items[index])

    def masks(self) -> Iterator[torch.Tensor]:
        """Every mask in order, without decoding the images (for statistics)."""
        if not self.has_masks:
            raise DatasetError(f"{self.root}: no mask folder")
        for item in self.items:
            yield read_mask(item["mask"], len(self.classes), values=self.mask_values)

    def depths(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(depth, valid)`` of every sample in order (for statistics)."""
        for i in range(len(self)):
            sample = self[i]
            if sample.depth is not None:
                yield sample.depth, sample.valid  # type: ignore[misc]
