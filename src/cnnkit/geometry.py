"""Pixel geometry: cnnkit's one coordinate convention, and points and boxes moved between frames.

Every transform, dataset, model, decoder, metric and picture in cnnkit uses this convention:

- pixel centres are at integer coordinates: pixel ``(row i, column j)`` covers
  ``[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]``, so an image of width W spans ``[-0.5, W - 0.5]``;
- a point is ``(x, y)``: x is the column, y the row;
- a box is ``(x1, y1, x2, y2)`` in the same continuous frame (the whole image is
  ``(-0.5, -0.5, W - 0.5, H - 0.5)``);
- a horizontal flip maps ``x -> W - 1 - x`` (:func:`flip_coordinate`) and swaps the identities of
  left/right keypoints (:func:`flip_permutation`); resizing by a factor ``s`` maps
  ``x -> (x + 0.5) * s - 0.5``;
- normalised coordinates put the image borders at 0 and 1: ``u = (x + 0.5) / W``;
- a map at output stride ``s`` (heatmaps, feature maps) is the image pooled by ``s``: cell ``j``
  covers pixels ``j*s .. j*s + s - 1``, its centre is at ``x = j*s + (s - 1) / 2``.

This module is the ground floor: it imports only torch and :mod:`cnnkit.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cnnkit.errors import ArgumentError


def flip_permutation(count: int, flip_pairs: Sequence[Sequence[int]]) -> list[int]:
    """Index permutation of ``count`` keypoints that swaps every left/right pair."""
    perm = list(range(count))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


@dataclass(frozen=True)
class Skeleton:
    """Keypoint names and the left/right pairs a horizontal flip must swap."""

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            for i in (a, b):
                if not 0 <= i < len(self.names):
                    raise ArgumentError(f"flip pair ({a}, {b}) names keypoint {i}, but the "
                                        f"skeleton has {len(self.names)}: {', '.join(self.names)}")
            if a == b or a in seen or b in seen:
                raise ArgumentError(f"flip pairs must pair distinct keypoints once each; "
                                    f"({a}, {b}) repeats or pairs a keypoint with itself")
            seen.update((a, b))

    @classmethod
    def from_names(cls, names: Sequence[str], pairs: Sequence[tuple[str, str]] = ()) -> Skeleton:
        """Build from names, with pairs given by name (e.g. ``[("leftear", "rightear")]``)."""
        index = {n: i for i, n in enumerate(names)}
        missing = [n for pair in pairs for n in pair if n not in index]
        if missing:
            raise ArgumentError(f"flip pair names {missing} are not keypoints ({', '.join(names)})")
        return cls(tuple(names), tuple((index[a], index[b]) for a, b in pairs))

    def flip_permutation(self) -> list[int]:
        """Index permutation that swaps every left/right pair (identity elsewhere)."""
        return flip_permutation(len(self.names), self.flip_pairs)


def flip_coordinate(values: torch.Tensor, extent: int) -> torch.Tensor:
    """``x -> extent - 1 - x``: a coordinate mirrored in an image ``extent`` pixels wide."""
    return extent - 1 - values


def pixels_to_normalized(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel ``(x, y)`` -> ``[0, 1]`` coordinates (0 and 1 at the image borders)."""
    size = torch.tensor([width, height], dtype=xy.dtype, device=xy.device)
    return (xy + 0.5) / size


def normalized_to_pixels(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[0, 1]`` coordinates -> pixel coordinates (inverse of :func:`pixels_to_normalized`)."""
    size = torch.tensor([width, height], dtype=uv.dtype, device=uv.device)
    return uv * size - 0.5


def _check_stride(stride: int) -> None:
    if stride < 1:
        raise ArgumentError(f"stride must be a positive integer; got {stride}")


def map_to_image(xy: torch.Tensor, stride: int) -> torch.Tensor:
    """Map coordinates at output stride ``stride`` -> image pixels: ``x * s + (s - 1) / 2``."""
    _check_stride(stride)
    return xy * stride + (stride - 1) / 2


def image_to_map(xy: torch.Tensor, stride: int) -> torch.Tensor:
    """Image pixels -> map coordinates at ``stride`` (inverse of :func:`map_to_image`)."""
    _check_stride(stride)
    return (xy - (stride - 1) / 2) / stride


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)`` along the last dimension."""
    centre, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)`` along the last dimension."""
    low, high = boxes[..., :2], boxes[..., 2:]
    return torch.cat([(low + high) / 2, high - low], dim=-1)


def boxes_to_normalized(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel ``(x1, y1, x2, y2)`` -> normalised ``(cx, cy, w, h)`` (the localization head's)."""
    size = boxes.new_tensor([width, height, width, height])
    return xyxy_to_cxcywh((boxes + 0.5) / size)


def normalized_to_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised ``(cx, cy, w, h)`` -> pixel ``(x1, y1, x2, y2)``."""
    return cxcywh_to_xyxy(boxes) * boxes.new_tensor([width, height, width, height]) - 0.5


def paired_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching ``(x1, y1, x2, y2)`` boxes (``a[i]`` with ``b[i]``, N x 4 each); 0 when
    the union is empty. (All pairs of two sets: :func:`cnnkit.ops.box_iou`.)"""
    low = torch.maximum(a[:, :2], b[:, :2])
    high = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (high - low).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
