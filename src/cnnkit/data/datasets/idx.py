"""MNIST-style idx files (``*-idx1-ubyte`` labels, ``*-idx3-ubyte`` images), gzip or raw.

Format (LeCun et al., "Gradient-based learning applied to document recognition", 1998; the
MNIST page): a big-endian header ``0, 0, type 0x08 (uint8), ndim``, then ``ndim`` uint32 sizes,
then the values. Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) uses the same files.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.images import DatasetError
from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.sample import Sample

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an idx file (``.gz`` decompressed on the fly)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: corrupt or truncated gzip file ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path}: not an idx file of uint8 values (bad magic number "
                           f"{data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape))
    if len(shape) != ndim or len(data) != expected:
        raise DatasetError(f"{path}: truncated or padded idx file: header says shape {shape} "
                           f"({expected} bytes), the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: missing {stem} (or {stem}.gz)")


class IdxDataset(Dataset):
    """Images and labels of one split (``train`` or ``test``) from ``root``.

    Labels are read at construction (fast); the image file only when a sample or
    ``images`` is first needed. ``classes`` defaults to Fashion-MNIST's names when the folder
    name contains "fashion", else the digits.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 classes: tuple[str, ...] | None = None) -> None:
        if split not in SPLIT_PREFIX:
            raise DatasetError(f"split must be one of {', '.join(SPLIT_PREFIX)}; got {split!r}")
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: folder not found")
        prefix = SPLIT_PREFIX[split]
        self.label_file = _find(self.root, f"{prefix}-labels-idx1-ubyte")
        self.image_file = _find(self.root, f"{prefix}-images-idx3-ubyte")
        self.labels = torch.from_numpy(read_idx(self.label_file).astype(np.int64))
        if self.labels.dim() != 1:
            raise DatasetError(f"{self.label_file}: labels must be 1-D; got {tuple(self.labels.shape)}")
        if classes is None:
            fashion = "fashion" in self.root.name.lower()
            classes = FASHION_MNIST_CLASSES if fashion else tuple(str(i) for i in range(10))
        self.classes = tuple(classes)
        top = int(self.labels.max()) if len(self.labels) else -1
        if top >= len(self.classes):
            raise DatasetError(f"{self.label_file}: label {top} is outside the classes "
                               f"0..{len(self.classes) - 1}")
        self._images: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(label=ClassList(tuple(self.classes)))

    @property
    def keys(self) -> list[str]:
        return [f"{self.split}/{i}" for i in range(len(self))]

    @property
    def images(self) -> np.ndarray:
        """All images, ``N x H x W`` uint8 (decoded once, on first use)."""
        if self._images is None:
            images = read_idx(self.image_file)
            if images.ndim != 3 or len(images) != len(self.labels):
                raise DatasetError(f"{self.image_file}: {tuple(images.shape)} images do not match "
                                   f"{len(self.labels)} labels in {self.label_file.name}")
            self._images = images
        return self._images

    def image_size(self, index: int) -> tuple[int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Sample:
        image = torch.from_numpy(self.images[index].copy()).unsqueeze(0).float().div_(255.0)
        return Sample(image, label=int(self.labels[index]), meta=self._meta(index))

    def _meta(self, index: int) -> dict:
        return {"path": f"{self.image_file}[{index}]", "index": index}

    def get_batch(self, indices) -> dict:
        """Images N x 1 x H x W (float32 in [0, 1]), labels and meta of ``indices`` at once:
        the same values as the samples one by one, without the Python work per sample."""
        index = np.asarray(list(indices), dtype=np.int64)
        images = torch.from_numpy(self.images[index]).unsqueeze(1).float().div_(255.0)
        return {"image": images, "label": self.labels[torch.from_numpy(index)],
                "meta": [self._meta(int(i)) for i in index]}
