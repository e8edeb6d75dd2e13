"""How the geometric transforms move instances: boxes, instance masks and keypoints, crowd flags.

A sample *has instances* when its ``crowd`` field is set (:attr:`Sample.has_instances`); its
boxes are then objects that can leave the image, as in the multi-scale, cropped training of
Mask R-CNN (He, Gkioxari, Dollar & Girshick, ICCV 2017) on COCO (Lin et al., ECCV 2014).
Every geometric transform moves the instances with the image:

- instance masks are resampled like the semantic mask (nearest pixel centre; outside the
  image: False); instance keypoints move exactly like ``keypoints`` and become invisible when
  they leave ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; crowd flags and labels follow their rows;
- boxes move exactly (resize, crop, pad, flip) and are clipped to the image; with instance
  masks, a box is refitted to the hull of its mask's pixel centres +- 0.5 (:func:`mask_boxes`)
  where the exact move cannot be right: after a crop, for the instances the window cut (their
  mask lost pixels: an L-shaped object keeps only the box of what is left), and after an
  affine warp or a lens distortion, for every instance (the hull of the moved corners of a
  turned box is too large). Without masks those boxes are the clipped hull of the moved
  corners;
- then an instance is **dropped** when its clipped box is narrower or lower than
  :data:`MIN_BOX_SIDE` pixels (1: it has left the image, or less than a pixel of it is left)
  or, with masks, when fewer than :data:`MIN_MASK_AREA` pixels of its mask remain (1: the mask
  is empty). The number dropped is added to ``meta["dropped_instances"]`` (absent = 0), so a
  pipeline can count what its crops cost. Flips never drop anything.

The rule is close to the filters of common detection pipelines (a minimum box side, no empty
mask: a thin part sampled away by a downscale is gone); what differs is that every drop is
counted, and that only the boxes of cut instances are refitted to their masks, so an uncut
COCO box keeps its sub-pixel values. A kept instance always has a box of at least one pixel
and, with masks, a non-empty mask. Samples without instances (plain localization boxes) keep
every box, as before: only clipped.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from cnnkit.data.sample import Sample

MIN_BOX_SIDE = 1.0  # pixels: narrower or lower boxes (after clipping) are dropped
MIN_MASK_AREA = 1  # pixels: instances whose mask keeps fewer are dropped
ROW_FIELDS = ("boxes", "box_labels", "instance_masks", "instance_keypoints", "instance_visible",
              "crowd")


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``B x 4`` float boxes (x1, y1, x2, y2) of ``B x H x W`` bool masks: the hull of each
    mask's pixel centres, +- 0.5 (the pixels' outer edges). An empty mask gets the zero-area
    box ``(-0.5, -0.5, -0.5, -0.5)``."""
    _, height, width = masks.shape
    cols, rows = masks.any(1), masks.any(2)  # B x W, B x H
    xs, ys = torch.arange(width), torch.arange(height)
    x1, x2 = torch.where(cols, xs, width).amin(1), torch.where(cols, xs, -1).amax(1)
    y1, y2 = torch.where(rows, ys, height).amin(1), torch.where(rows, ys, -1).amax(1)
    boxes = torch.stack([x1 - 0.5, y1 - 0.5, x2 + 0.5, y2 + 0.5], 1).float()
    empty = ~cols.any(1)
    return torch.where(empty[:, None], torch.full_like(boxes, -0.5), boxes)


def crop_masks(masks: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The window ``[top, top + height) x [left, left + width)`` of ``B x H x W`` masks
    (False outside the input)."""
    in_h, in_w = masks.shape[-2:]
    r0, r1 = max(top, 0), min(top + height, in_h)
    c0, c1 = max(left, 0), min(left + width, in_w)
    out = masks.new_zeros((masks.shape[0], height, width))
    if r1 > r0 and c1 > c0:
        out[:, r0 - top:r1 - top, c0 - left:c1 - left] = masks[:, r0:r1, c0:c1]
    return out


def move_instances(sample: Sample, changes: dict[str, Any], masks: torch.Tensor | None = None,
                   refit: Literal["none", "cut", "all"] = "none") -> dict[str, Any]:
    """``changes`` (with the moved, clipped ``boxes``, the moved instance keypoints and the new
    ``meta``) completed for an instance sample: the resampled ``masks``, the boxes of ``refit``
    instances (none, those whose mask lost pixels, all) refitted to their masks, and the drop
    rule applied (a new dict; samples without instances pass through unchanged)."""
    if not sample.has_instances:
        return changes
    out = dict(changes)
    if masks is not None:
        out["instance_masks"] = masks
        boxes = out.get("boxes", sample.boxes)
        if refit == "all":
            out["boxes"] = mask_boxes(masks).to(boxes.dtype)
        elif refit == "cut":
            cut = masks.flatten(1).sum(1) < sample.instance_masks.flatten(1).sum(1)
            if bool(cut.any()):
                out["boxes"] = torch.where(cut[:, None], mask_boxes(masks).to(boxes.dtype), boxes)
    return drop_instances(sample, out)


def drop_instances(sample: Sample, changes: dict[str, Any]) -> dict[str, Any]:
    """Remove the instances that break the drop rule (see the module) from ``changes`` (new or
    old values), counting them in ``meta["dropped_instances"]``."""
    out = dict(changes)
    boxes = out.get("boxes", sample.boxes)
    keep = ((boxes[:, 2:] - boxes[:, :2]) >= MIN_BOX_SIDE).all(1)
    masks = out.get("instance_masks", sample.instance_masks)
    if masks is not None:
        keep &= masks.flatten(1).sum(1) >= MIN_MASK_AREA
    dropped = int((~keep).sum())
    meta = out.get("meta", sample.meta)
    out["meta"] = {**meta, "dropped_instances": meta.get("dropped_instances", 0) + dropped}
    if dropped:
        for name in ROW_FIELDS:
            value = out.get(name, getattr(sample, name))
            if value is not None:
                out[name] = value[keep]
    return out


def flip_instances(sample: Sample, horizontal: bool, swap_pairs: bool = True) -> dict[str, Any]:
    """Mirrored instance masks and keypoints (``x -> W - 1 - x``, or y), the left/right pairs
    of ``sample.skeleton`` swapped when ``swap_pairs``; boxes are flipped with the other boxes."""
    if not sample.has_instances:
        return {}
    height, width = sample.size
    out: dict[str, Any] = {}
    if sample.instance_masks is not None:
        out["instance_masks"] = sample.instance_masks.flip(-1 if horizontal else -2)
    if sample.instance_keypoints is not None:
        axis, extent = (0, width) if horizontal else (1, height)
        points = sample.instance_keypoints.clone()
        points[..., axis] = extent - 1 - points[..., axis]
        visible = sample.instance_visible
        if swap_pairs and sample.skeleton is not None:
            perm = torch.tensor(sample.skeleton.flip_permutation())
            points, visible = points[:, perm], visible[:, perm]
        out["instance_keypoints"], out["instance_visible"] = points, visible
    return out
