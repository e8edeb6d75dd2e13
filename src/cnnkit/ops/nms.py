"""Greedy non-maximum suppression, as ``torchvision.ops.nms`` and ``batched_nms``.

Greedy NMS (Felzenszwalb, Girshick, McAllester & Ramanan, "Object Detection with
Discriminatively Trained Part-Based Models", TPAMI 2010; used by the R-CNN family): take the
best-scoring box, drop every remaining box whose IoU with it is above the threshold, repeat.

As torchvision: scores are sorted with a stable descending sort (ties keep their input order),
a box is suppressed only when ``IoU > iou_threshold`` (equal is kept; the comparison is done in
float64 like the reference kernels), and the kept indices come back by decreasing score.

Vectorised without a loop over boxes: with boxes sorted by score and ``S[j, i] = (j < i and
IoU(j, i) > t)``, the kept set is the unique fixed point of ``keep[i] = not any_j (keep[j] and
S[j, i])``. Iterating from all-True settles at least one more leading box per step, and in
practice takes a few steps. The boxes are processed in blocks of ``BLOCK`` (IoU memory ``BLOCK x
N``): a block first drops what the kept boxes of earlier blocks suppress, then iterates.
:func:`batched_nms` adds ``idxs[j] == idxs[i]`` to ``S`` (exact per category, no coordinate
offsets). Indices only: no gradient.
"""

from __future__ import annotations

import torch

from cnnkit.ops._utils import fail
from cnnkit.ops.boxes import box_iou

BLOCK = 512


def _check(boxes, scores, idxs=None) -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.size(1) != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        fail(f"boxes must be a Tensor[N, 4] (x1, y1, x2, y2), got {shape}")
    n = boxes.size(0)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (n,):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        fail(f"scores must be a Tensor[N] with N = {n} (one per box), got {shape}")
    if idxs is not None and (not isinstance(idxs, torch.Tensor) or tuple(idxs.shape) != (n,)):
        shape = tuple(idxs.shape) if isinstance(idxs, torch.Tensor) else type(idxs).__name__
        fail(f"idxs must be a Tensor[N] with N = {n} (a category per box), got {shape}")


def _overlaps(rows, cols, threshold, row_cats, col_cats) -> torch.Tensor:
    over = box_iou(rows, cols).to(torch.float64) > threshold
    if row_cats is not None:
        over &= row_cats[:, None] == col_cats[None, :]
    return over


def _keep_sorted(boxes, threshold, cats) -> torch.Tensor:
    """Greedy keep mask of ``boxes`` sorted by decreasing score."""
    n = boxes.size(0)
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    kept_boxes, kept_cats = boxes[:0], None if cats is None else cats[:0]
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        # only the boxes that the kept boxes of earlier blocks leave alive take part
        alive = torch.arange(start, stop, device=boxes.device)
        if len(kept_boxes):
            block_cats = None if cats is None else cats[start:stop]
            earlier = _overlaps(kept_boxes, boxes[start:stop], threshold, kept_cats, block_cats)
            alive = alive[~earlier.any(dim=0)]
        block, block_cats = boxes[alive], None if cats is None else cats[alive]
        inside = _overlaps(block, block, threshold, block_cats, block_cats).triu(diagonal=1)
        current = torch.ones(len(alive), dtype=torch.bool, device=boxes.device)
        while True:
            update = ~(inside & current[:, None]).any(dim=0)
            if torch.equal(update, current):
                break
            current = update
        keep[alive[current]] = True
        kept_boxes = torch.cat([kept_boxes, block[current]])
        if cats is not None:
            kept_cats = torch.cat([kept_cats, block_cats[current]])
    return keep


def _nms(boxes, scores, iou_threshold, idxs) -> torch.Tensor:
    if boxes.size(0) == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    cats = None if idxs is None else idxs[order]
    keep = _keep_sorted(boxes.detach()[order], float(iou_threshold), cats)
    return order[keep]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes greedy NMS keeps, by decreasing score.

    ``boxes``: Tensor[N, 4] xyxy; ``scores``: Tensor[N]; a box is dropped when its IoU with a
    kept, better-scored box is ``> iou_threshold``."""
    _check(boxes, scores)
    return _nms(boxes, scores, iou_threshold, None)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each category ``idxs`` (Tensor[N] of ints): boxes of different categories
    never suppress each other. Indices (int64) of the kept boxes, by decreasing score."""
    _check(boxes, scores, idxs)
    return _nms(boxes, scores, iou_threshold, idxs.to(boxes.device))
