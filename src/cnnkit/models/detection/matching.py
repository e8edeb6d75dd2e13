"""Training-time matching and sampling shared by the RPN and the RoI heads.

Ren et al., "Faster R-CNN", NIPS 2015, section 3.1.2: an anchor (or proposal) is positive when
its IoU with some ground-truth box is at least ``high``, negative when its best IoU is below
``low``; for the RPN every ground-truth box also claims the anchors of highest IoU with it
("low-quality matches"), so each box has a positive even when no anchor reaches ``high``. A
mini-batch of ``batch_size_per_image`` examples per image holds at most ``positive_fraction``
positives, filled up with negatives.

As torchvision's ``Matcher`` and ``BalancedPositiveNegativeSampler`` (details the paper leaves
open): an example between the thresholds is ignored (-2), one below is background (-1); a
low-quality match takes every example tied at a box's best IoU, and gets that example's own
best box; the examples are drawn uniformly at random (``torch.randperm``) among the positives
and negatives of each image.
"""

from __future__ import annotations

import torch

from cnnkit.errors import ArgumentError

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


class Matcher:
    """``matcher(quality)`` with ``quality`` [boxes, examples] (IoU) -> for every example the
    index of its box, or ``BELOW_LOW_THRESHOLD`` / ``BETWEEN_THRESHOLDS``."""

    def __init__(self, high: float, low: float, allow_low_quality_matches: bool = False) -> None:
        if not 0.0 <= low <= high <= 1.0:
            raise ArgumentError(f"IoU thresholds must satisfy 0 <= bg_iou_thresh <= "
                                f"fg_iou_thresh <= 1; got {low} and {high}")
        self.high, self.low = float(high), float(low)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, quality: torch.Tensor) -> torch.Tensor:
        best, matches = quality.max(dim=0)
        original = matches.clone()
        matches = torch.where(best < self.low, torch.full_like(matches, BELOW_LOW_THRESHOLD),
                              matches)
        between = (best >= self.low) & (best < self.high)
        matches = torch.where(between, torch.full_like(matches, BETWEEN_THRESHOLDS), matches)
        if self.allow_low_quality_matches:
            per_box = quality.max(dim=1).values
            tied = (quality == per_box[:, None]).any(dim=0)
            matches = torch.where(tied, original, matches)
        return matches


class BalancedSampler:
    """``sampler(labels)`` with one Tensor of labels per image (>= 1 positive, 0 negative,
    -1 ignored) -> per image a pair of boolean masks (sampled positives, sampled negatives)."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        if isinstance(batch_size_per_image, bool) or not isinstance(batch_size_per_image, int) \
                or batch_size_per_image < 1:
            raise ArgumentError(f"batch_size_per_image must be an integer >= 1; "
                                f"got {batch_size_per_image!r}")
        if not 0.0 < positive_fraction <= 1.0:
            raise ArgumentError(f"positive_fraction must be in (0, 1]; got {positive_fraction!r}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = float(positive_fraction)

    def __call__(self, labels: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for per_image in labels:
            positive = torch.where(per_image >= 1)[0]
            negative = torch.where(per_image == 0)[0]
            num_pos = min(positive.numel(),
                          int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(negative.numel(), self.batch_size_per_image - num_pos)
            pos = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
            neg = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
            pos_mask = torch.zeros_like(per_image, dtype=torch.bool)
            neg_mask = torch.zeros_like(per_image, dtype=torch.bool)
            pos_mask[pos] = True
            neg_mask[neg] = True
            out.append((pos_mask, neg_mask))
        return out


def in_float32(*outputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Head outputs in float32 where autocast gave bf16/fp16: box decoding, proposals, mask
    pasting, keypoint decoding and the losses run in float32 (the reference's autocast does
    the same for its box operators; a bf16 coordinate near 512 is only good to 2 pixels)."""
    return tuple(o.float() if o.dtype in (torch.bfloat16, torch.float16) else o for o in outputs)
