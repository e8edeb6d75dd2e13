"""Box utilities with the semantics of ``torchvision.ops``: area, IoU, formats, clipping.

Boxes are ``(x1, y1, x2, y2)`` with ``0 <= x1 < x2`` and ``0 <= y1 < y2`` expected; widths are
``x2 - x1`` (no "+ 1"). These functions do not depend on where pixel centres lie, except
:func:`clip_boxes_to_image`, which clamps to ``[0, width] x [0, height]`` like torchvision (the
frame where pixel ``j`` covers ``[j, j + 1]``); in cnnkit's frame (pixel centres at integers,
see :mod:`cnnkit.data.sample`) the image spans ``[-0.5, W - 0.5]``: shift by 0.5 around the call.
"""

from __future__ import annotations

import torch

from cnnkit.ops._utils import fail

FORMATS = ("xyxy", "xywh", "cxcywh")


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Float32/64 and int32/64 stay; other floats become float32, other ints int32."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _check_boxes(boxes, name: str = "boxes") -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() < 1 or boxes.size(-1) != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        fail(f"{name} must be a Tensor[..., 4] of boxes, got {shape}")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(x2 - x1) * (y2 - y1)`` of a Tensor[N, 4] of xyxy boxes."""
    _check_boxes(boxes)
    boxes = _upcast(boxes)
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(boxes1: torch.Tensor, boxes2: torch.Tensor):
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = _upcast(bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1[:, None] + area2[None, :] - inter


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair: Tensor[N, 4], Tensor[M, 4] -> Tensor[N, M]."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if boxes1.dim() != 2 or boxes2.dim() != 2:
        fail(f"box_iou takes two Tensor[N, 4], got shapes {tuple(boxes1.shape)} and "
             f"{tuple(boxes2.shape)}")
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union


def _to_xyxy(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack((a, b, a + c, b + d), dim=-1)
    if fmt == "cxcywh":
        return torch.stack((a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d), dim=-1)
    return boxes


def _from_xyxy(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
    if fmt == "cxcywh":
        return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)
    return boxes


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert Tensor[..., 4] boxes between ``"xyxy"`` (corners), ``"xywh"`` (top-left corner,
    width, height) and ``"cxcywh"`` (centre, width, height). Same format: a copy."""
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in FORMATS:
            fail(f"{name} must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    return _from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt)


def clip_boxes_to_image(boxes: torch.Tensor, size) -> torch.Tensor:
    """Clamp Tensor[..., 4] xyxy boxes to ``[0, width] x [0, height]``, with ``size`` the image's
    ``(height, width)``."""
    _check_boxes(boxes)
    if not isinstance(size, (list, tuple, torch.Size)) or len(size) != 2:
        fail(f"size must be the image size (height, width), got {size!r}")
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the Tensor[N, 4] xyxy boxes whose width and height are both >= ``min_size``."""
    _check_boxes(boxes)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]
