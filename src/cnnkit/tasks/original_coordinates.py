"""Points and boxes from the network input back to the original image, by inverting the
geometric transforms a sample went through (``meta["transforms"]``, see
:mod:`cnnkit.data.transforms.geometric`), in the pixel-centre convention of
:mod:`cnnkit.data.sample`.

Inverted exactly, last transform first:

- ``resize``: ``x -> (x + 0.5) * W_in / W_out - 0.5`` (and y). The input size is the output
  size of the previous sizing transform (``resize``/``crop``), or, for the first one, the
  original image size: ``params["from_size"]`` when the resize records it, else
  ``meta["original_size"]`` (H, W); without either the resize cannot be inverted (error);
- ``crop`` (also ``Pad``, ``CenterCrop``, ``RandomCrop``): ``x -> x + left``, ``y -> y + top``;
- ``horizontal_flip`` / ``vertical_flip``: ``x -> W - 1 - x`` (``y -> H - 1 - y``) with the
  size at that point; keypoint identities swapped back with ``permutation`` (the skeleton's
  :meth:`~cnnkit.data.sample.Skeleton.flip_permutation`) when given. A ``VerticalFlip`` built
  with ``swap_pairs=False`` is not recorded as such: pass no permutation for it;
- ``affine``: the recorded 2 x 3 matrix, inverted.

``lens_distortion`` (and any transform not listed) raises :class:`~cnnkit.errors.CnnkitError`:
evaluate without it. Colour transforms do not move points and are not recorded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cnnkit.errors import ArgumentError, CnnkitError

Size = tuple[int, int]
SIZING = ("resize", "crop")
SIZE_KEEPING = ("horizontal_flip", "vertical_flip", "affine")


def _sizes(steps: list[tuple[str, dict]], meta: dict[str, Any],
           final_size: Size | None) -> tuple[list[Size | None], list[Size | None]]:
    """Image size before and after every step, where the log determines it."""
    current: Size | None = meta.get("original_size")
    current = tuple(current) if current is not None else None
    before: list[Size | None] = []
    after: list[Size | None] = []
    for name, params in steps:
        if name == "resize" and params.get("from_size") is not None:
            current = tuple(params["from_size"])
        before.append(current)
        if name in SIZING:
            current = tuple(params["size"])
        after.append(current)
    following = tuple(final_size) if final_size is not None else None
    for i in range(len(steps) - 1, -1, -1):  # size-keeping steps: size from the end backwards
        if after[i] is None:
            after[i] = following
        if steps[i][0] not in SIZING and before[i] is None:
            before[i] = after[i]
        following = before[i]
    return before, after


def _check_steps(steps: list[tuple[str, dict]]) -> None:
    for name, _ in steps:
        if name not in SIZING + SIZE_KEEPING:
            raise CnnkitError(
                f"cannot map points back through the {name!r} transform; invertible: "
                f"{', '.join(SIZING + SIZE_KEEPING)} (evaluate without {name!r})")


def to_original(points: torch.Tensor, meta: dict[str, Any], size: Size | None = None,
                permutation: Sequence[int] | None = None) -> torch.Tensor:
    """``K x 2`` (x, y) points in the transformed image (of ``size`` (H, W)) -> original image.

    See the module docstring for what is inverted and what ``meta`` must hold.
    """
    if points.dim() != 2 or points.shape[-1] != 2:
        raise ArgumentError(f"points must be K x 2 (x, y); got shape {tuple(points.shape)}")
    steps = [(name, dict(params)) for name, params in meta.get("transforms", [])]
    _check_steps(steps)
    before, after = _sizes(steps, meta, size)
    xy = points.to(torch.float64).clone()
    for i in range(len(steps) - 1, -1, -1):
        name, params = steps[i]
        if name == "resize":
            if before[i] is None:
                raise CnnkitError(
                    f"{meta.get('path', 'sample')}: cannot invert a resize without the size "
                    "before it; record meta['original_size'] = (H, W) in the dataset or "
                    "'from_size' in the resize entry")
            (in_h, in_w), (out_h, out_w) = before[i], after[i]
            scale = xy.new_tensor([in_w / out_w, in_h / out_h])
            xy = (xy + 0.5) * scale - 0.5
        elif name == "crop":
            xy = xy + xy.new_tensor([params["left"], params["top"]])
        elif name == "affine":
            matrix = torch.tensor(params["matrix"], dtype=torch.float64)
            xy = (xy - matrix[:, 2]) @ torch.linalg.inv(matrix[:, :2]).T
        else:
            if after[i] is None:
                raise CnnkitError(f"cannot invert {name!r} without the image size; pass size")
            axis, extent = (0, after[i][1]) if name == "horizontal_flip" else (1, after[i][0])
            xy[:, axis] = extent - 1 - xy[:, axis]
            if permutation is not None:
                xy = xy[torch.as_tensor(list(permutation))]
    return xy.to(points.dtype)


def boxes_to_original(boxes: torch.Tensor, meta: dict[str, Any],
                      size: Size | None = None) -> torch.Tensor:
    """``B x 4`` (x1, y1, x2, y2) boxes -> original image: the hull of the mapped corners."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ArgumentError(f"boxes must be B x 4 (x1, y1, x2, y2); got shape {tuple(boxes.shape)}")
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack([torch.stack(c, 1) for c in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))], 1)
    moved = to_original(corners.reshape(-1, 2), meta, size).reshape(-1, 4, 2)
    return torch.cat([moved.amin(1), moved.amax(1)], 1)


def maps_to_original(maps: torch.Tensor, meta: dict[str, Any], size: Size | None = None,
                     seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``C x H x W`` maps over the transformed image (of ``size``) -> the original image.

    Returns the maps on the original pixel grid and a boolean ``H0 x W0`` map of the pixels the
    network saw (False where a crop left the original out, and where ``seen``, the pixels of the
    transformed image that have a prediction, is False). Resizes are undone bilinearly
    (``align_corners=False``, as the transforms resize), crops and pads by placing the maps at
    their offset, flips by flipping back; other transforms raise as in :func:`to_original`.
    Resize logits back before the argmax: evaluating at the labels' own resolution this way is
    how published segmentation figures are computed.
    """
    import torch.nn.functional as F

    if maps.dim() != 3:
        raise ArgumentError(f"maps must be C x H x W; got shape {tuple(maps.shape)}")
    steps = [(name, dict(params)) for name, params in meta.get("transforms", [])]
    _check_steps(steps)
    before, after = _sizes(steps, meta, size or tuple(maps.shape[-2:]))
    if seen is None:
        seen = torch.ones(maps.shape[-2:], dtype=torch.bool, device=maps.device)
    for i in range(len(steps) - 1, -1, -1):
        name, params = steps[i]
        if before[i] is None:
            raise CnnkitError(f"{meta.get('path', 'sample')}: cannot map back through "
                              f"{name!r} without the image size before it; record "
                              "meta['original_size'] = (H, W) in the dataset")
        height, width = before[i]
        if name == "resize":
            maps = F.interpolate(maps[None].float(), size=(height, width), mode="bilinear",
                                 align_corners=False)[0]
            seen = F.interpolate(seen[None, None].float(), size=(height, width),
                                 mode="nearest")[0, 0] > 0.5
        elif name == "crop":
            top, left = params["top"], params["left"]
            canvas = maps.new_zeros((maps.shape[0], height, width))
            seen_canvas = seen.new_zeros((height, width))
            rows = slice(max(top, 0), min(top + maps.shape[-2], height))
            cols = slice(max(left, 0), min(left + maps.shape[-1], width))
            inner = (slice(rows.start - top, rows.stop - top),
                     slice(cols.start - left, cols.stop - left))
            canvas[:, rows, cols] = maps[(slice(None), *inner)]
            seen_canvas[rows, cols] = seen[inner]
            maps, seen = canvas, seen_canvas
        elif name in ("horizontal_flip", "vertical_flip"):
            axis = -1 if name == "horizontal_flip" else -2
            maps, seen = maps.flip(axis), seen.flip(axis)
        else:
            raise CnnkitError(f"cannot map a dense prediction back through {name!r}; "
                              f"invertible: resize, crop, flips (evaluate without {name!r})")
    return maps, seen
