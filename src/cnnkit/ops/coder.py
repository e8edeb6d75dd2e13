"""Box regression targets, as ``torchvision.models.detection._utils.BoxCoder``.

The parametrisation of Girshick, Donahue, Darrell & Malik, "Rich feature hierarchies for
accurate object detection and semantic segmentation" (R-CNN, CVPR 2014, appendix C), used by
Fast/Faster R-CNN (Ren et al., NeurIPS 2015, eq. 2): for a proposal of centre ``(px, py)`` and
size ``(pw, ph)`` and a target box ``(gx, gy, gw, gh)``::

    dx = wx (gx - px) / pw    dy = wy (gy - py) / ph    dw = ww log(gw / pw)    dh = wh log(gh / ph)

What the papers do not have (as torchvision / Detectron): the weights ``(wx, wy, ww, wh)``
(e.g. ``(10, 10, 5, 5)`` for Fast R-CNN heads, ``(1, 1, 1, 1)`` for the RPN), which stand for the
paper's normalisation of targets; ``decode`` clamps ``dw`` and ``dh`` at ``bbox_xform_clip``
(default ``log(1000 / 16)``) before the exponential; sizes are ``x2 - x1`` (no "+ 1").
"""

from __future__ import annotations

import math

import torch

from cnnkit.ops._utils import fail


def _check(boxes, name: str, exact: bool = True) -> None:
    """``boxes`` must be [N, 4] (``exact``) or [N, 4 k]."""
    if (not isinstance(boxes, torch.Tensor) or boxes.dim() != 2
            or (boxes.size(1) != 4 if exact else boxes.size(1) % 4 or not boxes.size(1))):
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        fail(f"{name} must be a Tensor[N, {4 if exact else '4 k'}], got {shape}")


class BoxCoder:
    """Encode boxes as offsets from reference boxes (proposals, anchors) and decode them back."""

    def __init__(self, weights: tuple[float, float, float, float],
                 bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        if len(weights) != 4 or any(not float(w) > 0 for w in weights):
            fail(f"weights must be four positive numbers (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    # ------------------------------------------------------------------ encode
    def encode(self, reference_boxes: list[torch.Tensor],
               proposals: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """:meth:`encode_single` over lists (one tensor per image); one tensor per image back."""
        if len(reference_boxes) != len(proposals):
            fail(f"reference_boxes and proposals must have one tensor per image each, got "
                 f"{len(reference_boxes)} and {len(proposals)}")
        counts = [len(b) for b in reference_boxes]
        targets = self.encode_single(torch.cat(list(reference_boxes), dim=0),
                                     torch.cat(list(proposals), dim=0))
        return targets.split(counts, 0)

    def encode_single(self, reference_boxes: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """Targets ``(dx, dy, dw, dh)`` [N, 4] that move ``proposals`` onto ``reference_boxes``
        (the ground truth), both Tensor[N, 4] xyxy."""
        _check(reference_boxes, "reference_boxes")
        _check(proposals, "proposals")
        if reference_boxes.shape != proposals.shape:
            fail(f"reference_boxes and proposals must have the same shape [N, 4], got "
                 f"{tuple(reference_boxes.shape)} and {tuple(proposals.shape)}")
        proposals = proposals.to(reference_boxes.dtype)
        wx, wy, ww, wh = self.weights
        ex_w = proposals[:, 2] - proposals[:, 0]
        ex_h = proposals[:, 3] - proposals[:, 1]
        ex_x = proposals[:, 0] + 0.5 * ex_w
        ex_y = proposals[:, 1] + 0.5 * ex_h
        gt_w = reference_boxes[:, 2] - reference_boxes[:, 0]
        gt_h = reference_boxes[:, 3] - reference_boxes[:, 1]
        gt_x = reference_boxes[:, 0] + 0.5 * gt_w
        gt_y = reference_boxes[:, 1] + 0.5 * gt_h
        return torch.stack((wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                            ww * torch.log(gt_w / ex_w), wh * torch.log(gt_h / ex_h)), dim=1)

    # ------------------------------------------------------------------ decode
    def decode(self, rel_codes: torch.Tensor, boxes: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`decode_single` for the concatenated ``boxes`` of all images; returns
        ``[sum of boxes, codes per box / 4, 4]`` (as torchvision)."""
        counts = [b.size(0) for b in boxes]
        total = sum(counts)
        concat = torch.cat(list(boxes), dim=0)
        if total == 0:  # no boxes: as many (zero) rows, the codes' boxes per reference kept
            per_box = rel_codes.size(-1) // 4 if rel_codes.dim() > 1 else 1
            return rel_codes.new_zeros((0, per_box, 4))
        decoded = self.decode_single(rel_codes.reshape(total, -1), concat)
        return decoded.reshape(total, -1, 4)

    def decode_single(self, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes [N, 4 k] xyxy from codes [N, 4 k] (k boxes per reference, e.g. one per class)
        applied to ``boxes`` [N, 4] xyxy."""
        _check(rel_codes, "rel_codes", exact=False)
        _check(boxes, "boxes")
        if rel_codes.size(0) != boxes.size(0):
            fail(f"boxes must be a Tensor[N, 4] with N = {rel_codes.size(0)} (one per row of "
                 f"rel_codes), got {tuple(boxes.shape)}")
        boxes = boxes.to(rel_codes.dtype)
        widths = boxes[:, 2:3] - boxes[:, 0:1]
        heights = boxes[:, 3:4] - boxes[:, 1:2]
        ctr_x = boxes[:, 0:1] + 0.5 * widths
        ctr_y = boxes[:, 1:2] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = rel_codes[:, 0::4] / wx
        dy = rel_codes[:, 1::4] / wy
        dw = (rel_codes[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        x = dx * widths + ctr_x
        y = dy * heights + ctr_y
        half_w = 0.5 * (torch.exp(dw) * widths)
        half_h = 0.5 * (torch.exp(dh) * heights)
        return torch.stack((x - half_w, y - half_h, x + half_w, y + half_h), dim=2).flatten(1)
