"""Horizontal and vertical flips that also swap left/right labels.

A mirror image of a face has its right eye where the left eye was: mirroring the keypoint
coordinates (``x -> W - 1 - x``) is not enough, the keypoint *identities* of every left/right
pair must be swapped too (the "very common bug" of flipping without updating the label). The
pairs come from ``sample.skeleton.flip_pairs`` (:meth:`Skeleton.flip_permutation`); without a
skeleton the points are only mirrored. Classes of a mask with a left/right meaning (e.g.
"left arm" and "right arm" in part segmentation) are exchanged with ``mask_remap``, a dict
``{class: class}`` applied both ways (``{3: 4}`` also maps 4 to 3).

Any reflection changes handedness, so :class:`VerticalFlip` swaps the same pairs by default
(``swap_pairs=False`` to keep them, e.g. for labels defined in image left/right).

Depth and ``valid`` are mirrored; surface normals (camera frame, x right, y down) are mirrored
and their x component negated (y for a vertical flip): the mirrored scene's surfaces face the
mirrored way.

Instances (:mod:`cnnkit.data.transforms.instances`): their masks are mirrored, their keypoints
mirrored and their left/right pairs swapped like ``keypoints``; a flip drops none.
"""

from __future__ import annotations

from typing import Any

import torch

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform, chance
from cnnkit.data.transforms.dense import flip_dense
from cnnkit.data.transforms.geometric import log_transform
from cnnkit.data.transforms.instances import flip_instances
from cnnkit.errors import ArgumentError


def _remap_table(remap: dict[int, int] | None) -> dict[int, int]:
    """Symmetric class exchange table from ``{a: b}`` pairs."""
    table: dict[int, int] = {}
    for a, b in (remap or {}).items():
        for src, dst in ((a, b), (b, a)):
            if table.get(src, dst) != dst:
                raise ArgumentError(f"mask_remap maps class {src} to both {table[src]} and {dst}; "
                                 f"give each left/right class pair once")
            table[src] = dst
    return table


def flip_sample(sample: Sample, horizontal: bool, mask_remap: dict[int, int],
                swap_pairs: bool = True) -> Sample:
    """Mirror ``sample`` left-right (``horizontal``) or top-bottom, labels included."""
    height, width = sample.size
    axis, extent = (0, width) if horizontal else (1, height)
    changes: dict[str, Any] = {"image": sample.image.flip(-1 if horizontal else -2)}
    if sample.mask is not None:
        mask = sample.mask.flip(-1 if horizontal else -2)
        if mask_remap:
            remapped = mask.clone()
            for src, dst in mask_remap.items():
                remapped[mask == src] = dst
            mask = remapped
        changes["mask"] = mask
    if sample.keypoints is not None:
        points = sample.keypoints.clone()
        points[:, axis] = extent - 1 - points[:, axis]
        visible = sample.visible
        if swap_pairs and sample.skeleton is not None:
            perm = torch.tensor(sample.skeleton.flip_permutation())
            points, visible = points[perm], visible[perm]
        changes["keypoints"], changes["visible"] = points, visible
    if sample.boxes is not None:
        boxes = sample.boxes.clone()
        low, high = (0, 2) if horizontal else (1, 3)
        boxes[:, low] = extent - 1 - sample.boxes[:, high]
        boxes[:, high] = extent - 1 - sample.boxes[:, low]
        changes["boxes"] = boxes
    changes.update(flip_dense(sample, horizontal))
    changes.update(flip_instances(sample, horizontal, swap_pairs))
    name = "horizontal_flip" if horizontal else "vertical_flip"
    return sample.replace(meta=log_transform(sample, name), **changes)


class HorizontalFlip(Transform):
    """Mirror left-right with probability ``p``: ``x -> W - 1 - x``, left/right pairs swapped."""

    def __init__(self, p: float = 0.5, mask_remap: dict[int, int] | None = None) -> None:
        if not 0 <= p <= 1:
            raise ArgumentError(f"HorizontalFlip p must be in [0, 1]; got {p}")
        self.p, self.mask_remap = p, mask_remap
        self._table = _remap_table(mask_remap)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        if not chance(rng, self.p):
            return sample
        return flip_sample(sample, True, self._table)


class VerticalFlip(Transform):
    """Mirror top-bottom with probability ``p``: ``y -> H - 1 - y`` (pairs swapped by default)."""

    def __init__(self, p: float = 0.5, mask_remap: dict[int, int] | None = None,
                 swap_pairs: bool = True) -> None:
        if not 0 <= p <= 1:
            raise ArgumentError(f"VerticalFlip p must be in [0, 1]; got {p}")
        self.p, self.mask_remap, self.swap_pairs = p, mask_remap, swap_pairs
        self._table = _remap_table(mask_remap)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        if not chance(rng, self.p):
            return sample
        return flip_sample(sample, False, self._table, self.swap_pairs)
