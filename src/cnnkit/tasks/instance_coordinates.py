"""Instances from the network input back to the original image: the sizes, masks and
per-instance keypoints of :mod:`cnnkit.tasks.detection`, through the transforms recorded in a
sample's ``meta`` (:mod:`cnnkit.tasks.original_coordinates` does the inverting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cnnkit.tasks.keypoints import unflip
from cnnkit.tasks.original_coordinates import maps_to_original, to_original

Size = tuple[int, int]


def original_size(meta: dict[str, Any], size: Size) -> Size:
    """(H0, W0) of the image before the transforms of ``meta`` (``size``: the input's)."""
    if meta.get("original_size") is not None:
        return tuple(int(v) for v in meta["original_size"])
    if not meta.get("transforms"):
        return size
    return tuple(maps_to_original(torch.zeros(1, *size), meta, size)[1].shape)


def masks_to_original(maps: torch.Tensor, meta: dict[str, Any], size: Size) -> torch.Tensor:
    """``N x H x W`` float masks over the input -> ``N x H0 x W0`` (resampled bilinearly; 0
    where the input did not show the original)."""
    if not len(maps):
        return torch.zeros(0, *original_size(meta, size))
    return maps_to_original(maps, meta, size)[0]


def unflip_instances(values: torch.Tensor, meta: dict[str, Any],
                     permutation: Sequence[int] | None) -> torch.Tensor:
    """``N x K (x ...)`` per-keypoint values with left/right identities swapped back where the
    recorded flips swapped them."""
    return unflip(values.transpose(0, 1), meta, permutation).transpose(0, 1)


def points_to_original(points: torch.Tensor, meta: dict[str, Any], size: Size,
                       permutation: Sequence[int] | None) -> torch.Tensor:
    """``N x K x 3`` keypoints (x, y, visibility or score) over the input -> original pixels,
    the third column kept, identities swapped back."""
    xy = to_original(points[..., :2].reshape(-1, 2).double(), meta, size)
    moved = torch.cat([xy.reshape(*points.shape[:-1], 2).float(), points[..., 2:]], -1)
    return unflip_instances(moved, meta, permutation)
