"""Argument checks and conversions shared by the operators of :mod:`cnnkit.ops` (not public)."""

from __future__ import annotations

import torch

from cnnkit.errors import ArgumentError

BOXES_HELP = "a Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4], one per image"


def fail(message: str) -> None:
    raise ArgumentError(message)


def pair_size(value, name: str = "output_size") -> tuple[int, int]:
    """``output_size`` as ``(height, width)``: an int or a pair of positive ints."""
    items = [value, value] if not isinstance(value, (list, tuple, torch.Size)) else list(value)
    if len(items) != 2 or any(isinstance(v, bool) or not hasattr(v, "__index__") for v in items):
        fail(f"{name} must be a positive int or a pair (height, width) of positive ints, "
             f"got {value!r}")
    height, width = (v.__index__() for v in items)
    if height <= 0 or width <= 0:
        fail(f"{name} must be positive (an int >= 1 or a pair of them), got {value!r}")
    return height, width


def check_scale(spatial_scale, name: str = "spatial_scale") -> float:
    try:
        scale = float(spatial_scale)
    except (TypeError, ValueError):
        scale = float("nan")
    if not 0.0 < scale < float("inf"):
        fail(f"{name} must be a finite number > 0 (feature size / image size), "
             f"got {spatial_scale!r}")
    return scale


def check_feature(input, name: str = "input") -> None:
    if (not isinstance(input, torch.Tensor) or input.dim() != 4 or not input.is_floating_point()
            or input.size(2) < 1 or input.size(3) < 1):
        shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
        fail(f"{name} must be a floating-point tensor N x C x H x W with H, W >= 1, got {shape}")


def to_rois(boxes) -> torch.Tensor:
    """``boxes`` (either torchvision format) as one Tensor[K, 5] with the batch index first."""
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.size(1) != 5:
            fail(f"boxes must be {BOXES_HELP}; got a tensor of shape {tuple(boxes.shape)}")
        return boxes
    if not isinstance(boxes, (list, tuple)) or not boxes:
        fail(f"boxes must be {BOXES_HELP}; got {type(boxes).__name__}"
             f"{' (empty)' if isinstance(boxes, (list, tuple)) else ''}")
    for i, item in enumerate(boxes):
        if not isinstance(item, torch.Tensor) or item.dim() != 2 or item.size(1) != 4:
            shape = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
            fail(f"boxes[{i}] must be a Tensor[L, 4] (x1, y1, x2, y2), got {shape}")
    flat = torch.cat(list(boxes), dim=0)
    index = torch.cat([torch.full((len(b), 1), i, dtype=flat.dtype, device=flat.device)
                       for i, b in enumerate(boxes)], dim=0)
    return torch.cat([index, flat], dim=1)


def batch_index(rois: torch.Tensor, batch: int) -> torch.Tensor:
    """The image index of every region (truncated like the reference), checked against ``batch``."""
    index = rois[:, 0].detach().long()
    if index.numel() and bool(((index < 0) | (index >= batch)).any()):
        fail(f"boxes: every batch index must be in [0, {batch - 1}] (the input has {batch} "
             f"images), got values in [{int(index.min())}, {int(index.max())}]")
    return index


def coord_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of the box geometry: the input's (as the reference kernels), float32 for half types."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def plan(rows: torch.Tensor, cols: torch.Tensor, per_cell: int, budget: int):
    """Groups of regions with a window of at most ``rows[k] x cols[k]`` cells each: largest
    first, at most ``budget`` elements (``cells x per_cell``) per group. Returns the order of the
    regions and a list of ``(indices, most rows, most cols)``; one host sync in all."""
    order = torch.argsort(torch.maximum(rows, cols), descending=True, stable=True)
    hs, ws = rows[order].tolist(), cols[order].tolist()
    groups, start = [], 0
    while start < len(hs):
        side = max(1, hs[start], ws[start])  # every later region fits in side x side
        stop = min(len(hs), start + max(1, budget // (per_cell * side * side)))
        groups.append((order[start:stop], max(1, *hs[start:stop]), max(1, *ws[start:stop])))
        start = stop
    return order, groups


def flat_tensors(obj) -> list[torch.Tensor]:
    """Tensors in nested lists, tuples and dicts, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in flat_tensors(item)]
    return []


def cost_rois(inputs, who: str) -> torch.Tensor:
    """The regions of one call, from ``inputs`` (the call's arguments, nested or flattened)."""
    boxes = [t for t in flat_tensors(inputs) if t.dim() == 2]
    if len(boxes) == 1 and boxes[0].size(1) == 5:
        return boxes[0].detach()
    if boxes and all(b.size(1) == 4 for b in boxes):
        return to_rois([b.detach() for b in boxes])
    fail(f"{who}.analysis_cost: inputs must hold the boxes of the call ({BOXES_HELP}), "
         f"got shapes {[tuple(b.shape) for b in boxes]}")
