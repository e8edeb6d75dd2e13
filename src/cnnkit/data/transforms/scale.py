"""Scale jitter: the image and every label resized by a random factor (multi-scale training).

Mask R-CNN (He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017) trains at several scales
by drawing the short side of each image from a range (640 to 800 pixels in its Detectron
recipe); the large-scale jitter of later detectors draws a resize factor instead (e.g. 0.1 to
2). :class:`ScaleJitter` does either, keeping the aspect ratio, with no crop and no cap on the
long side (follow it with a crop or pad to batch images of one size). The labels move as
:func:`cnnkit.data.transforms.geometric.resize_sample` moves them: instances that shrink below
a pixel are dropped and counted (:mod:`cnnkit.data.transforms.instances`).
"""

from __future__ import annotations

import torch

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform, randint, uniform
from cnnkit.data.transforms.geometric import resize_sample, short_side_size
from cnnkit.errors import ArgumentError


class ScaleJitter(Transform):
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]`` (output
    ``round(s H) x round(s W)``, at least 1 pixel), or, with ``short_side=(low, high)``, to a
    short side drawn uniformly from the integers ``low..high`` (aspect ratio kept)."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0, *,
                 short_side: tuple[int, int] | None = None) -> None:
        if not 0 < min_scale <= max_scale:
            raise ArgumentError(f"ScaleJitter needs 0 < min_scale <= max_scale; got "
                                f"min_scale={min_scale}, max_scale={max_scale}")
        if short_side is not None and (len(short_side) != 2 or not all(
                isinstance(v, int) for v in short_side) or not 0 < short_side[0] <= short_side[1]):
            raise ArgumentError(f"ScaleJitter short_side must be (low, high) integers with "
                                f"0 < low <= high; got {short_side!r}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.short_side = None if short_side is None else (int(short_side[0]), int(short_side[1]))

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        height, width = sample.size
        if self.short_side is not None:
            return resize_sample(sample, *short_side_size(height, width,
                                                          randint(rng, *self.short_side)))
        scale = uniform(rng, self.min_scale, self.max_scale)
        return resize_sample(sample, max(1, round(height * scale)), max(1, round(width * scale)))
