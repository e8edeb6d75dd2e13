"""The transform protocol: ``t(sample, rng) -> sample``, random draws only from ``rng``.

Passing the generator explicitly makes augmentation reproducible per sample whatever the
number of DataLoader workers: :class:`~cnnkit.data.datasets.TransformedDataset` (or any caller)
seeds one generator from ``(seed, epoch, index)``. With ``rng=None`` a transform draws from
torch's global generator, which DataLoader seeds differently in each worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnkit.data.sample import Sample
from cnnkit.errors import ArgumentError


class Transform:
    """Base class: subclasses implement ``apply(sample, rng)`` and return a new sample.

    A transform that draws nothing at random and changes only the image, pixel by pixel (such
    as Normalize), may also set ``batchable = True`` and implement ``apply_batch(images)`` on an
    ``N x C x H x W`` batch: datasets held in memory then skip the per-sample work entirely
    (:meth:`cnnkit.data.datasets.TransformedDataset.__getitems__`).
    """

    batchable = False

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        raise NotImplementedError

    def apply_batch(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, sample: Sample, rng: torch.Generator | None = None) -> Sample:
        return self.apply(sample, rng)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def uniform(rng: torch.Generator | None, low: float, high: float) -> float:
    """One float drawn uniformly from [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=rng))


def randint(rng: torch.Generator | None, low: int, high: int) -> int:
    """One integer drawn uniformly from [low, high] (both ends included)."""
    return int(torch.randint(low, high + 1, (), generator=rng))


def chance(rng: torch.Generator | None, p: float) -> bool:
    return float(torch.rand((), generator=rng)) < p


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    @property
    def batchable(self) -> bool:  # type: ignore[override]
        return all(getattr(t, "batchable", False) for t in self.transforms)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def apply_batch(self, images: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            images = t.apply_batch(images)
        return images


class RandomChoice(Transform):
    """Apply one of ``transforms``, chosen uniformly."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        if not transforms:
            raise ArgumentError("RandomChoice needs at least one transform")
        self.transforms = list(transforms)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        return self.transforms[randint(rng, 0, len(self.transforms) - 1)](sample, rng)
