"""The mask branch of Mask R-CNN, its loss, and pasting the predicted masks into the image.

He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017: on each positive RoI (RoIAlign 14x14
from the FPN level of its size) four 3x3 convolutions (256, ReLU), a 2x transposed convolution
and a 1x1 convolution give one 28x28 mask logit map per class; the loss is the mean per-pixel
binary cross-entropy of the ground-truth class's map against the ground-truth mask RoIAligned into
the proposal (no competition between classes). At inference the predicted class's map goes
through a sigmoid and is resized into its box in the image, then thresholded at 0.5 (by the
caller: the model returns the soft masks).

As torchvision (names ``mask_head.i.0``, ``mask_predictor.conv5_mask`` and ``.mask_fcn_logits``;
Kaiming-normal fan-out initialisation): the targets are ``roi_align(masks, proposal, 28,
spatial_scale=1, sampling_ratio=-1, aligned=False)``, i.e. sampled at the proposal's coordinates
in the frame where pixel j covers [j, j + 1] without the half-pixel shift.

Pasting (:func:`paste_masks_in_image`), two documented methods, both vectorised (two batched
matrix products with bilinear weights, no loop over masks or pixels):

- ``"exact"`` (default): the 28x28 cells tile the box exactly; every image pixel whose centre
  lies in the box (``x1 <= centre < x2``, likewise in y) gets the mask bilinearly interpolated
  at its centre (cell centres at ``x1 + (i + 0.5) w / 28``, clamped to the outer cells), every
  other pixel 0. A mask of ones therefore covers exactly the box's pixels, and nothing else.
- ``"reference"``: torchvision's: the mask padded by one zero cell on each side, the box grown
  by 30/28 and truncated to integer pixels ``[x1, x2]`` (both included), the padded mask resized
  bilinearly (``align_corners=False``) to that many pixels and copied in. The zero border makes
  the mask fade out around the box, so thresholding at 0.5 can add or drop a pixel at the edges.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.models.detection._legacy import LegacyKeys
from cnnkit.ops import roi_align

PASTE_METHODS = ("exact", "reference")


class MaskRCNNHeads(LegacyKeys, nn.Sequential):
    """3x3 convolutions + ReLU (``i.0``), one per entry of ``layers`` (their widths)."""

    def __init__(self, in_channels: int, layers: tuple[int, ...], dilation: int = 1) -> None:
        blocks, channels = [], in_channels
        for width in layers:
            blocks.append(nn.Sequential(nn.Conv2d(channels, width, 3, padding=dilation,
                                                  dilation=dilation), nn.ReLU(inplace=True)))
            channels = width
        super().__init__(*blocks)
        if not any(p.is_meta for p in self.parameters()):
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    def legacy_keys(self) -> dict[str, str]:
        return {f"mask_fcn{i + 1}.{kind}": f"{i}.0.{kind}"
                for i in range(len(self)) for kind in ("weight", "bias")}


class MaskRCNNPredictor(nn.Sequential):
    """``conv5_mask`` (2x2 transposed convolution, stride 2) + ReLU + ``mask_fcn_logits`` (1x1,
    one map per class)."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int) -> None:
        super().__init__(OrderedDict([
            ("conv5_mask", nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)),
            ("relu", nn.ReLU(inplace=True)),
            ("mask_fcn_logits", nn.Conv2d(dim_reduced, num_classes, 1, 1, 0))]))
        if not any(p.is_meta for p in self.parameters()):
            for name, param in self.named_parameters():
                if "weight" in name:
                    nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


def project_masks_on_boxes(gt_masks, boxes, matched_idxs, size: int) -> torch.Tensor:
    """The ground-truth mask of each box's match, RoIAligned into the box: ``[K, size, size]``."""
    rois = torch.cat([matched_idxs[:, None].to(boxes), boxes], dim=1)
    return roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0)[:, 0]


def maskrcnn_loss(mask_logits, proposals, gt_masks, gt_labels, matched_idxs) -> torch.Tensor:
    """Mean BCE of the ground-truth class's mask logits against the projected masks."""
    size = mask_logits.shape[-1]
    labels = torch.cat([lab[idx] for lab, idx in zip(gt_labels, matched_idxs)])
    targets = torch.cat([project_masks_on_boxes(m, p, i, size)
                         for m, p, i in zip(gt_masks, proposals, matched_idxs)])
    if targets.numel() == 0:
        return mask_logits.sum() * 0
    chosen = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(chosen, targets.to(chosen.dtype))


def maskrcnn_inference(mask_logits, labels: list[torch.Tensor]) -> list[torch.Tensor]:
    """Sigmoid of each detection's class map: ``[n_i, 1, 28, 28]`` per image."""
    flat = torch.cat(labels)
    probs = mask_logits.sigmoid()[torch.arange(flat.shape[0], device=flat.device), flat]
    return list(probs[:, None].split([len(lab) for lab in labels], dim=0))


def _linear_weights(src, valid, cells: int) -> torch.Tensor:
    """Bilinear weights ``[N, P, cells]`` of sample positions ``src`` [N, P] (in cell units,
    clamped at 0) over ``cells`` cells; rows where ``valid`` is False are zero."""
    low = src.floor().clamp(max=cells - 1)
    frac = (src - low).clamp(0, 1) * valid
    low = low.long()
    high = (low + 1).clamp(max=cells - 1)
    weights = src.new_zeros(*src.shape, cells)
    weights.scatter_add_(2, low[..., None], (valid.to(src.dtype) - frac)[..., None])
    weights.scatter_add_(2, high[..., None], frac[..., None])
    return weights


def _exact_axis(lo, hi, cells: int, size: int) -> torch.Tensor:
    centre = torch.arange(size, dtype=lo.dtype, device=lo.device)[None] + 0.5
    inside = (centre >= lo[:, None]) & (centre < hi[:, None])
    extent = (hi - lo).clamp(min=torch.finfo(lo.dtype).tiny)[:, None]
    src = ((centre - lo[:, None]) * cells / extent - 0.5).clamp(0, cells - 1)
    return _linear_weights(src, inside, cells)


def _reference_axis(lo, hi, cells: int, size: int, dtype) -> torch.Tensor:
    length = (hi - lo + 1).clamp(min=1)
    pixel = torch.arange(size, device=lo.device)[None]
    local = pixel - lo[:, None]
    valid = (local >= 0) & (pixel <= hi[:, None])
    scale = (torch.full_like(length, cells, dtype=dtype) / length.to(dtype))[:, None]
    src = (scale * (local.to(dtype) + 0.5) - 0.5).clamp(min=0)
    return _linear_weights(src, valid, cells)


def paste_masks_in_image(masks: torch.Tensor, boxes: torch.Tensor, image_size,
                         method: str = "exact") -> torch.Tensor:
    """Soft masks ``[N, 1, M, M]`` into their boxes ``[N, 4]`` (x1, y1, x2, y2 in the frame where
    pixel j covers [j, j + 1]) of an image of ``(height, width)``: ``[N, 1, H, W]``, 0 outside
    the boxes. ``method``: "exact" or "reference" (see the module docstring)."""
    if method not in PASTE_METHODS:
        raise ArgumentError(f"mask_paste must be one of {', '.join(PASTE_METHODS)}; "
                            f"got {method!r}")
    height, width = (int(v) for v in image_size)
    if masks.shape[0] == 0:
        return masks.new_zeros((0, 1, height, width))
    work = masks[:, 0].float() if masks.dtype not in (torch.float32, torch.float64) \
        else masks[:, 0]
    boxes = boxes.to(work.dtype)
    cells = work.shape[-1]
    if method == "exact":
        rows = _exact_axis(boxes[:, 1], boxes[:, 3], cells, height)
        cols = _exact_axis(boxes[:, 0], boxes[:, 2], cells, width)
    else:
        work = F.pad(work, (1, 1, 1, 1))
        scale = float(cells + 2) / cells
        half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
        centre = (boxes[:, 2:] + boxes[:, :2]) * 0.5
        grown = torch.cat([centre - half, centre + half], dim=1).to(torch.int64)
        rows = _reference_axis(grown[:, 1], grown[:, 3], cells + 2, height, work.dtype)
        cols = _reference_axis(grown[:, 0], grown[:, 2], cells + 2, width, work.dtype)
    pasted = torch.matmul(torch.matmul(rows, work), cols.transpose(1, 2))
    return pasted.to(masks.dtype)[:, None]
