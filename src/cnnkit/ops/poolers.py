"""RoIAlign over a feature pyramid, as ``torchvision.ops.MultiScaleRoIAlign``.

Lin, Dollar, Girshick, He, Hariharan & Belongie, "Feature Pyramid Networks for Object
Detection", CVPR 2017, eq. 1: a box of width ``w`` and height ``h`` (image pixels) is pooled
from level ``k = floor(k0 + log2(sqrt(w h) / 224))``, clamped to the levels present, with
``k0 = canonical_level = 4`` and ``224 = canonical_scale``.

What differs from the paper (as torchvision): RoIAlign (Mask R-CNN) instead of RoIPool, with
``aligned=False``; ``1e-6`` is added before the floor; the scale of every map is inferred as
the power of two nearest ``map height / largest image height`` (``torch.round`` of its log2, so
halves go to even), the levels are ``-log2(scale)`` of the first and last map, and scales and
level mapper are set up on the first call and kept (later calls must use the same layout).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnkit.ops._utils import check_feature, cost_rois, fail, pair_size, to_rois
from cnnkit.ops.boxes import box_area
from cnnkit.ops.roi_align import align_flops, as_ratio, roi_align


class LevelMapper:
    """Pyramid level (0 for ``k_min``) of every box, by FPN eq. 1."""

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224,
                 canonical_level: int = 4, eps: float = 1e-6) -> None:
        self.k_min, self.k_max = k_min, k_max
        self.s0, self.lvl0, self.eps = canonical_scale, canonical_level, eps

    def __call__(self, boxlists: list[torch.Tensor]) -> torch.Tensor:
        size = torch.sqrt(torch.cat([box_area(b) for b in boxlists]))
        level = torch.floor(self.lvl0 + torch.log2(size / self.s0)
                            + torch.tensor(self.eps, dtype=size.dtype, device=size.device))
        level = torch.clamp(level, min=self.k_min, max=self.k_max)
        return level.to(torch.int64) - self.k_min


def infer_scale(feature: torch.Tensor, image_size: tuple[int, int]) -> float:
    """The power of two nearest ``feature height / image height``."""
    ratio = float(feature.shape[-2]) / float(image_size[0])
    return 2.0 ** float(torch.tensor(ratio).log2().round())


class MultiScaleRoIAlign(nn.Module):
    """Pool each box from the pyramid level that suits its size: ``forward(x, boxes,
    image_shapes) -> Tensor[K, C, oh, ow]``, with ``x`` a dict of maps (those named in
    ``featmap_names``, finest first), ``boxes`` a list of Tensor[L, 4] xyxy in image pixels (one
    per image) and ``image_shapes`` the ``(height, width)`` of every image before padding."""

    def __init__(self, featmap_names: list[str], output_size, sampling_ratio: int,
                 canonical_scale: int = 224, canonical_level: int = 4) -> None:
        super().__init__()
        if isinstance(featmap_names, str) or not featmap_names or any(
                not isinstance(n, str) for n in featmap_names):
            fail(f"featmap_names must be a non-empty list of feature map names, "
                 f"got {featmap_names!r}")
        if not canonical_scale > 0:
            fail(f"canonical_scale must be > 0 (box size of the canonical level), "
                 f"got {canonical_scale!r}")
        self.featmap_names = list(featmap_names)
        self.output_size = pair_size(output_size)
        self.sampling_ratio = as_ratio(sampling_ratio)
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level
        self.scales: list[float] | None = None
        self.map_levels: LevelMapper | None = None

    def _maps(self, x) -> list[torch.Tensor]:
        if not isinstance(x, dict):
            fail(f"x must be a dict of feature maps holding {self.featmap_names}, "
                 f"got {type(x).__name__}")
        missing = [n for n in self.featmap_names if n not in x]
        if missing:
            fail(f"x has no feature map {missing}; it has {list(x)}")
        names = [k for k in x if k in self.featmap_names]  # in the order of x, as torchvision
        for name in names:
            check_feature(x[name], f"x[{name!r}]")
        return [x[name] for name in names]

    def setup_scales(self, maps: list[torch.Tensor], image_shapes) -> None:
        if not image_shapes:
            fail("image_shapes must list the (height, width) of every image, got none")
        largest = (max(int(s[0]) for s in image_shapes), max(int(s[1]) for s in image_shapes))
        self.scales = [infer_scale(m, largest) for m in maps]
        k_min = int(-math.log2(self.scales[0]))
        k_max = int(-math.log2(self.scales[-1]))
        self.map_levels = LevelMapper(k_min, k_max, self.canonical_scale, self.canonical_level)

    def forward(self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        maps = self._maps(x)
        if self.scales is None or self.map_levels is None:
            self.setup_scales(maps, image_shapes)
        if len(maps) != len(self.scales):
            fail(f"x holds {len(maps)} of the maps {self.featmap_names}, but the first call "
                 f"had {len(self.scales)}")
        rois = to_rois(boxes)
        if len(maps) == 1:
            return roi_align(maps[0], rois, self.output_size, self.scales[0], self.sampling_ratio)
        levels = self.map_levels([rois[:, 1:]])
        first = maps[0]
        result = first.new_zeros((rois.size(0), first.size(1)) + self.output_size)
        for level, (fmap, scale) in enumerate(zip(maps, self.scales)):
            chosen = torch.where(levels == level)[0]
            pooled = roi_align(fmap, rois[chosen], self.output_size, scale, self.sampling_ratio)
            result = result.index_put((chosen,), pooled.to(result.dtype))
        return result

    def analysis_cost(self, inputs, outputs) -> tuple[int, int]:
        """(MACs, FLOPs) of one call: the sum of its RoIAlign calls (see ``RoIAlign``: 0 MACs,
        ``9 x samples`` FLOPs per output element, each box at the scale of its level); the level
        assignment (a few FLOPs per box) and the copy into the result count 0. Uses the scales
        set up by the first call, so call the module once before. ``inputs``: the call's
        arguments (x, boxes, image_shapes), nested or flattened."""
        if self.scales is None or self.map_levels is None:
            fail("MultiScaleRoIAlign.analysis_cost: run the module once first (its scales and "
                 "levels are set up on the first call)")
        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        rois = cost_rois(inputs, "MultiScaleRoIAlign")
        channels, dtype = outs[0].shape[1], outs[0].dtype
        if len(self.scales) == 1:
            levels = torch.zeros(rois.size(0), dtype=torch.long, device=rois.device)
        else:
            levels = self.map_levels([rois[:, 1:]])
        return 0, sum(align_flops(rois[levels == level], self.output_size, scale,
                                  self.sampling_ratio, False, channels, dtype)
                      for level, scale in enumerate(self.scales))

    def extra_repr(self) -> str:
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")
