"""RoIPool: max pooling of quantised regions of a feature map, as ``torchvision.ops.roi_pool``.

Girshick, "Fast R-CNN", ICCV 2015 (after He et al.'s SPP-net, ECCV 2014): every region is
split into an ``output_size`` grid of sub-windows and each is max-pooled.

Exactly as torchvision (not spelled out in the paper):

- region corners are ``round(coordinate * spatial_scale)`` (halves away from zero) and both
  corner pixels belong to the region: its size is ``end - start + 1`` (at least 1);
- bin ``p`` of a side of ``n`` pixels covers ``[floor(p n / P), ceil((p + 1) n / P))``, so
  neighbouring bins may share a row; bins are clipped to the map and an empty bin gives 0;
- the gradient goes to the first maximum of the bin in row-major order.

Built from differentiable torch ops: one gather of a window of the largest bin's size per bin,
for a group of regions at a time (largest first, memory bounded); no gradient to the boxes.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.ops._utils import (batch_index, check_feature, check_scale, coord_dtype, cost_rois,
                               fail, flat_tensors, pair_size, plan, to_rois)

# Elements gathered per group of regions (regions x bins x window x channels): bounds memory.
CHUNK_ELEMENTS = 1 << 24


def _round_half_away(values: torch.Tensor) -> torch.Tensor:
    whole = torch.trunc(values)
    return whole + torch.sign(values) * ((values - whole).abs() >= 0.5).to(values.dtype)


def _side(start, end, pooled: int, size: int, dtype):
    """First and one-past-last pixel of every bin along one side: two ``[K, P]`` tensors."""
    length = (end - start + 1).clamp(min=1)
    bin_size = length.to(dtype) / pooled
    steps = torch.arange(pooled + 1, dtype=dtype, device=start.device)
    first = torch.floor(steps[None, :-1] * bin_size[:, None]).long() + start[:, None]
    last = torch.ceil(steps[None, 1:] * bin_size[:, None]).long() + start[:, None]
    return first.clamp(0, size), last.clamp(0, size)


def _bins(rois, output_size, spatial_scale, height, width, dtype):
    corners = _round_half_away(rois[:, 1:].to(dtype) * spatial_scale).long()
    rows = _side(corners[:, 1], corners[:, 3], output_size[0], height, dtype)
    cols = _side(corners[:, 0], corners[:, 2], output_size[1], width, dtype)
    return rows, cols


def _window(first, last, most: int, size: int):
    """Pixel indices ``[K, P, most]`` of every bin: its pixels, then its last pixel repeated
    (repeats change neither the max nor which pixel comes first); whether the bin is empty."""
    idx = first[:, :, None] + torch.arange(most, device=first.device)
    return torch.minimum(idx, last[:, :, None] - 1).clamp(0, size - 1), last <= first


def roi_pool(input: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0) -> torch.Tensor:
    """Max-pool every region of ``boxes`` from ``input`` (``N x C x H x W``) to ``K x C x oh x ow``.

    ``boxes``: Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4] (one per
    image), in image coordinates; ``spatial_scale`` maps them onto ``input``.
    """
    check_feature(input)
    out_h, out_w = pair_size(output_size)
    scale = check_scale(spatial_scale)
    rois = to_rois(boxes).detach().to(input.device)
    n, channels, height, width = input.shape
    if rois.size(0) == 0:  # an empty result still in the graph of ``input`` (zero gradient)
        return input[:0, :, :1, :1].expand(0, channels, out_h, out_w).clone()
    index = batch_index(rois, n)
    (r0, r1), (c0, c1) = _bins(rois, (out_h, out_w), scale, height, width,
                               coord_dtype(input.dtype))
    source = input.permute(0, 2, 3, 1).contiguous()  # channels last: gathers C at once
    order, groups = plan((r1 - r0).amax(1), (c1 - c0).amax(1), out_h * out_w * channels,
                         CHUNK_ELEMENTS)
    pieces = []
    for part, most_h, most_w in groups:
        rows, row_empty = _window(r0[part], r1[part], most_h, height)
        cols, col_empty = _window(c0[part], c1[part], most_w, width)
        k = rows.size(0)
        win = source[index[part, None, None], rows.view(k, -1, 1), cols.view(k, 1, -1)]
        win = win.view(k, out_h, most_h, out_w, most_w, channels)
        # max over columns, then rows: the first maximum in row-major order, as the reference
        best = win.max(dim=4).values.max(dim=2).values                      # [k, oh, ow, C]
        empty = row_empty[:, :, None, None] | col_empty[:, None, :, None]
        pieces.append(best.masked_fill(empty, 0.0))
    pooled = torch.cat(pieces, dim=0).index_select(0, torch.argsort(order))
    return pooled.permute(0, 3, 1, 2).contiguous()


def pool_flops(rois, output_size, spatial_scale, height, width, channels, dtype) -> int:
    """Comparisons of RoIPool over ``rois``: ``bin elements - 1`` per non-empty bin."""
    if rois.size(0) == 0:
        return 0
    (r0, r1), (c0, c1) = _bins(rois, output_size, spatial_scale, height, width,
                               coord_dtype(dtype))
    area = (r1 - r0).clamp(min=0)[:, :, None] * (c1 - c0).clamp(min=0)[:, None, :]
    return channels * int((area - 1).clamp(min=0).sum())


class RoIPool(nn.Module):
    """:func:`roi_pool` as a module (``torchvision.ops.RoIPool``): ``forward(input, rois)``."""

    def __init__(self, output_size, spatial_scale: float) -> None:
        super().__init__()
        self.output_size = pair_size(output_size)
        self.spatial_scale = check_scale(spatial_scale)

    def forward(self, input: torch.Tensor, rois) -> torch.Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def analysis_cost(self, inputs, outputs) -> tuple[int, int]:
        """(MACs, FLOPs) of one call: 0 MACs; per output element, ``n - 1`` comparisons for a
        bin of ``n`` map elements (after clipping to the map), 0 for an empty bin; the same
        convention as max pooling. ``inputs``: the call's arguments (input, boxes), nested or
        flattened (the first 4-D tensor is the feature map)."""
        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        maps = [t for t in flat_tensors(inputs) if t.dim() == 4]
        if not maps:
            fail("RoIPool.analysis_cost: inputs must hold the feature map N x C x H x W")
        height, width = maps[0].shape[-2:]
        rois = cost_rois(inputs, "RoIPool")
        return 0, pool_flops(rois, self.output_size, self.spatial_scale, height, width,
                             outs[0].shape[1], outs[0].dtype)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
