"""Per-channel pixel statistics of a dataset: mean/std for normalisation, RGB PCA for colour jitter.

Both functions stream over the images once and keep only per-channel sums (float64), so they
work on datasets that do not fit in memory. The source may be:

- a tensor ``C x H x W`` (one image) or ``N x C x H x W`` (a batch);
- a map-style dataset (``len`` and integer indexing, e.g. a torch ``Dataset``) or any iterable
  (e.g. a ``DataLoader``) whose items are images, batches, :class:`~cnnkit.data.sample.Sample`
  objects, or tuples/lists whose first element is one of these (``(image, label)``).

Images must all have the same number of channels; their sizes may differ (every pixel counts
once, so large images weigh more, as in the papers that compute "the mean RGB value over the
training set").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from cnnkit.data.sample import Sample
from cnnkit.errors import ArgumentError


def _as_pixels(item: Any) -> torch.Tensor:
    """One item -> a P x C float64 matrix of its pixels."""
    if isinstance(item, Sample):
        item = item.image
    elif isinstance(item, (tuple, list)) and item:
        item = item[0]
        if isinstance(item, Sample):
            item = item.image
    if not isinstance(item, torch.Tensor) or item.dim() not in (3, 4):
        what = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
        raise ArgumentError(f"pixel statistics need images C x H x W or batches N x C x H x W "
                         f"(tensors, Samples or (image, label) pairs); got {what}")
    channels = item.shape[-3]
    return item.detach().to(torch.float64).movedim(-3, -1).reshape(-1, channels)


def iter_pixel_blocks(source: Any) -> Iterator[torch.Tensor]:
    """Pixel matrices (P x C, float64) of every image in ``source`` (see the module docstring)."""
    if isinstance(source, (torch.Tensor, Sample)):
        yield _as_pixels(source)
        return
    if hasattr(source, "__len__") and hasattr(source, "__getitem__") and \
            not isinstance(source, (list, tuple)):
        for index in range(len(source)):
            yield _as_pixels(source[index])
        return
    if not isinstance(source, Iterable):
        raise ArgumentError(f"pixel statistics need a tensor, a dataset or an iterable of images; "
                         f"got {type(source).__name__}")
    for item in source:
        yield _as_pixels(item)


def _moments(source: Any, cross: bool) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Pixel count, mean (C) and sum of centred squares (C, or C x C if ``cross``).

    Blocks are merged with Chan, Golub & LeVeque's pairwise update, which avoids the
    cancellation of the naive ``E[x^2] - E[x]^2``.
    """
    count, mean, m2 = 0, None, None
    for pixels in iter_pixel_blocks(source):
        n = pixels.shape[0]
        if n == 0:
            continue
        block_mean = pixels.mean(dim=0)
        centred = pixels - block_mean
        block_m2 = centred.T @ centred if cross else centred.square().sum(dim=0)
        if mean is None:
            count, mean, m2 = n, block_mean, block_m2
            continue
        if block_mean.shape != mean.shape:
            raise ArgumentError(f"all images must have the same number of channels; got "
                             f"{mean.shape[0]} then {block_mean.shape[0]}")
        delta = block_mean - mean
        total = count + n
        correction = torch.outer(delta, delta) if cross else delta.square()
        m2 = m2 + block_m2 + correction * (count * n / total)
        mean = mean + delta * (n / total)
        count = total
    if mean is None:
        raise ArgumentError("pixel statistics need at least one non-empty image; the source was empty")
    return count, mean, m2


def mean_std(source: Any, unbiased: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (float64, C each) of all pixels of ``source``.

    ``unbiased=False`` divides by the pixel count P (the population std, what normalisation
    uses), ``True`` by ``P - 1``.
    """
    count, mean, m2 = _moments(source, cross=False)
    divisor = count - 1 if unbiased else count
    if divisor <= 0:
        raise ArgumentError("an unbiased std needs at least two pixels")
    return mean, (m2 / divisor).sqrt()


def pixel_covariance(source: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C) and population covariance (C x C) of all pixels of ``source`` (float64)."""
    count, mean, m2 = _moments(source, cross=True)
    return mean, m2 / count


def pca_color_components(source: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (3, largest first) and eigenvectors (3 x 3, one per column) of the RGB
    pixel covariance of ``source``, for :class:`~cnnkit.data.transforms.color.PCAColor`.

    Krizhevsky et al. (NIPS 2012) computed them over the ImageNet training set; each
    eigenvector's sign is fixed so that its largest-magnitude entry is positive (eigenvectors
    are defined up to sign; the augmentation draws symmetric ``alpha``, so the sign is irrelevant
    to it but fixing it makes the output reproducible).
    """
    _, covariance = pixel_covariance(source)
    if covariance.shape != (3, 3):
        raise ArgumentError(f"PCA colour components need RGB images; got {covariance.shape[0]} "
                         f"channels")
    eigvals, eigvecs = torch.linalg.eigh(covariance)
    order = torch.argsort(eigvals, descending=True)
    eigvals, eigvecs = eigvals[order].clamp(min=0.0), eigvecs[:, order]
    pivot = eigvecs.abs().argmax(dim=0)
    signs = torch.sign(eigvecs[pivot, torch.arange(3)])
    return eigvals, eigvecs * signs
