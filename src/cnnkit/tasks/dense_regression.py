"""What the dense regression tasks (depth, normals, colourisation) share: reading the model's
maps, bringing them to the target's size, the valid pixels, and mapping back to the original
image.

- :func:`dense_output`: the main output (the first of a tuple) checked to be ``N x C x h x w``
  with the task's C, one :class:`~cnnkit.errors.ArgumentError` line otherwise.
- :func:`to_size`: maps resized bilinearly (``align_corners=False``) to a size, e.g. a
  half-resolution Eigen-Fergus output or a quarter-resolution colourisation output to the
  labels' size; unchanged when the sizes agree.
- :func:`valid_map`: ``batch["valid"]`` (N x H x W bool) when the batch has it, else every
  pixel.
- :func:`maps_in_original`: per sample, the maps over the network input brought back to the
  original image with :func:`~cnnkit.tasks.original_coordinates.maps_to_original` (resizes
  undone bilinearly, crops and pads placed at their offset, flips flipped back) with the map of
  the pixels the network saw; a sample without ``meta["original_size"]`` keeps the input grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, main_output
from cnnkit.tasks.original_coordinates import maps_to_original


def dense_output(output: Any, channels: int, what: str) -> torch.Tensor:
    """The main output as ``N x channels x h x w`` (``what`` names the task in errors)."""
    maps = main_output(output)
    if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or maps.shape[1] != channels:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ArgumentError(f"{what} output must be N x {channels} x H x W; got {shape}")
    return maps


def to_size(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``maps`` (N x C x h x w) bilinearly resized to ``size`` (H, W) when it differs."""
    size = tuple(int(s) for s in size)
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def require_field(batch: Batch, key: str, what: str, shape: str) -> torch.Tensor:
    """``batch[key]`` or one line saying which field the task needs."""
    if key not in batch:
        raise CnnkitError(f"the {what} task needs batch[{key!r}] ({shape}); the data has "
                          f"{sorted(k for k in batch if k != 'meta')}")
    return batch[key]


def valid_map(batch: Batch, like: torch.Tensor) -> torch.Tensor:
    """``batch["valid"]`` as bool N x H x W on the device of ``like`` (N x H x W), else all."""
    valid = batch.get("valid")
    if valid is None:
        return torch.ones(like.shape, dtype=torch.bool, device=like.device)
    if tuple(valid.shape) != tuple(like.shape):
        raise CnnkitError(f"batch['valid'] is {tuple(valid.shape)} but the target is "
                          f"{tuple(like.shape)} (N x H x W)")
    return valid.to(like.device).bool()


def maps_in_original(maps: torch.Tensor, batch: Batch | None
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per sample ``(C x H0 x W0 maps, H0 x W0 seen)`` in original image coordinates."""
    seen = torch.ones(maps.shape[-2:], dtype=torch.bool, device=maps.device)
    metas = batch.get("meta") if batch is not None else None
    if metas is None:
        return [(one, seen) for one in maps]
    size = tuple(maps.shape[-2:])
    results = []
    for one, meta in zip(maps, metas):
        if meta.get("original_size") is None:
            results.append((one, seen))
        else:
            results.append(maps_to_original(one, meta, size))
    return results


def input_size(batch: Batch | None, maps: torch.Tensor) -> tuple[int, int]:
    """The network input's (H, W): the batch image's, else the maps' own."""
    if batch is not None and "image" in batch:
        return tuple(int(s) for s in batch["image"].shape[-2:])
    return tuple(int(s) for s in maps.shape[-2:])


def check_flip_width(maps: torch.Tensor, width: int, what: str) -> None:
    """Flipping a map of width w is exact for an input of width ``width`` when w divides it."""
    if width % maps.shape[-1]:
        raise CnnkitError(f"flip test-time augmentation of {what} needs maps whose width divides "
                          f"the input width {width}; the model gives width {maps.shape[-1]}")
