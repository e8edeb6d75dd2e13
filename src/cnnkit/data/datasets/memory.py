"""A dataset decoded once and kept in memory, images as uint8 tensors.

``InMemory(dataset)`` reads every sample of ``dataset`` once (decoding its image files) and
keeps the images as ``uint8`` where that is exact (every 8-bit picture: values ``k / 255``), so
CamVid's 367 training frames take about 190 MB instead of 760 MB in float32. Reading sample
``i`` afterwards costs a tensor conversion, no file access, and returns exactly the sample the
file-backed dataset returns (the same values, labels and ``meta``). Images that are not 8-bit
(16-bit PNGs, float arrays) are kept as they were read.

Batched access: :meth:`InMemory.get_batch` returns whole batches of images and labels as one
tensor each (when all images have one size), which :class:`TransformedDataset` uses when its
transforms can run on batches (see ``apply_batch`` of the transforms): no Python work per
sample at all. Configured as ``data.cache: true``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from cnnkit.data.sample import Sample

log = logging.getLogger(__name__)


# The two ways readers turn 8-bit values into floats (they differ in the last bit for some
# values); a sample is stored as uint8 only when one of them gives back its floats exactly.
CONVERSIONS = {
    "divide": lambda v: v.to(torch.float32) / 255.0,
    "multiply": lambda v: v.to(torch.float32) * torch.tensor(1 / 255, dtype=torch.float32),
}


def _as_uint8(image: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """``image`` as uint8 and the conversion that gives it back exactly, when there is one."""
    if image.dtype != torch.float32:
        return image, None
    scaled = image * 255.0
    exact = torch.round(scaled)
    if not (bool(((scaled - exact).abs() < 1e-3).all())
            and bool(((exact >= 0) & (exact <= 255)).all())):
        return image, None
    as_uint8 = exact.to(torch.uint8)
    for name, convert in CONVERSIONS.items():
        if torch.equal(convert(as_uint8), image):
            return as_uint8, name
    return image, None


class InMemory(Dataset):
    """Every sample of ``dataset``, decoded once (see the module docstring)."""

    def __init__(self, dataset: Dataset, name: str = "dataset") -> None:
        self.dataset = dataset
        self.samples: list[Sample] = []
        self.conversions: list[str | None] = []
        for index in range(len(dataset)):  # type: ignore[arg-type]
            sample = dataset[index]
            image, conversion = _as_uint8(sample.image)
            self.samples.append(sample.replace(image=image))
            self.conversions.append(conversion)
        total = sum(s.image.numel() * s.image.element_size() for s in self.samples)
        log.info("%s: %d samples decoded into memory (%.0f MB of images)", name,
                 len(self.samples), total / 2**20)
        shapes = {tuple(s.image.shape) for s in self.samples}
        dtypes = {s.image.dtype for s in self.samples}
        self._stacked = None
        if len(shapes) == 1 and dtypes == {torch.uint8} and len(set(self.conversions)) == 1:
            self._stacked = torch.stack([s.image for s in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        sample = self.samples[index]
        image = sample.image
        if self.conversions[index] is not None:
            image = CONVERSIONS[self.conversions[index]](image)
        return sample.replace(image=image, meta=dict(sample.meta))

    def get_batch(self, indices: Sequence[int]) -> dict[str, Any] | None:
        """The images (N x C x H x W float32) and image labels of ``indices`` as tensors, and
        their ``meta``; None when the samples cannot be stacked (sizes differ, other labels)."""
        if self._stacked is None:
            return None
        chosen = [self.samples[i] for i in indices]
        if any(s.mask is not None or s.keypoints is not None or s.boxes is not None
               or s.depth is not None for s in chosen):
            return None  # labels that move with the image: per-sample transforms
        index = torch.as_tensor(list(indices), dtype=torch.long)
        convert = CONVERSIONS[self.conversions[0]]
        batch: dict[str, Any] = {"image": convert(self._stacked[index])}
        if all(s.label is not None for s in chosen):
            batch["label"] = torch.tensor([s.label for s in chosen], dtype=torch.int64)
        batch["meta"] = [dict(s.meta) for s in chosen]
        return batch

    def __getattr__(self, name: str) -> Any:
        # the wrapped dataset's attributes (label_space, keys, classes ...), never its specials
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
