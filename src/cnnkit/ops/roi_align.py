"""RoIAlign: bilinear pooling of regions of a feature map, as ``torchvision.ops.roi_align``.

He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017. Every region is split into
``output_size`` bins; every bin averages a regular grid of bilinear samples, with no rounding
of the region or the bins (RoIPool's quantisation misaligns the pooled features).

What differs from the paper (and matches torchvision / Detectron):

- the grid has ``sampling_ratio x sampling_ratio`` samples per bin; when ``sampling_ratio <= 0``
  it adapts to the region: ``ceil(region height / output height)`` rows (columns alike). The
  paper uses 4 samples and notes that max or average give similar results; this is the average.
- ``aligned=False`` (the default, the legacy Detectron behaviour) samples at ``box * scale``
  with pixel ``j`` of the map at coordinate ``j`` and forces regions to at least 1 x 1;
  ``aligned=True`` samples at ``box * scale - 0.5`` (no minimum size), which is right for boxes
  in the frame where pixel ``j`` covers ``[j, j + 1]``. cnnkit's frame puts pixel centres at
  integers (see :mod:`cnnkit.data.sample`): there, add 0.5 to the box coordinates and use
  ``aligned=True``; that samples at ``(x + 0.5) * scale - 0.5``, cnnkit's resize mapping, for
  any ``spatial_scale``. (With ``spatial_scale=1``, ``aligned=False`` on cnnkit boxes is the same
  except for the 1 x 1 minimum.)
- samples beyond ``[-1, size]`` give 0; samples in ``[-1, 0]`` or ``[size - 1, size]`` take the
  border value.

The operation is built from differentiable torch ops (one gather per group of regions), so
autograd gives the gradient with respect to ``input``; like torchvision, none flows to the boxes.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.ops._utils import (batch_index, check_feature, check_scale, coord_dtype, cost_rois,
                               fail, pair_size, plan, to_rois)

# Elements gathered per group of regions (regions x 4 taps x samples x channels): bounds memory.
CHUNK_ELEMENTS = 1 << 24


def _geometry(rois, output_size, spatial_scale, sampling_ratio, aligned, dtype):
    """Per region: start ``(y, x)``, bin size ``(y, x)`` and sampling grid ``(rows, cols)``."""
    offset = 0.5 if aligned else 0.0
    coords = rois[:, 1:].to(dtype) * spatial_scale - offset
    start = coords[:, [1, 0]]
    size = coords[:, [3, 2]] - start
    if not aligned:
        size = size.clamp(min=1.0)
    pooled = torch.tensor(output_size, dtype=dtype, device=rois.device)
    bin_size = size / pooled
    if sampling_ratio > 0:
        grid = torch.full_like(start, sampling_ratio, dtype=torch.long)
    else:
        grid = torch.ceil(bin_size).long().clamp(min=0)  # ceil(region size / output size)
    return start, bin_size, grid


def _axis(start, bin_size, grid, pooled: int, most: int, size: int, dtype):
    """Taps of the samples along one axis: indices ``[K, P * 2 * G]`` (bin, tap, sample) and
    weights alike.

    ``grid`` samples of the ``most`` per bin are real; the rest get weight 0."""
    steps = torch.arange(most, dtype=dtype, device=start.device)
    bins = torch.arange(pooled, dtype=dtype, device=start.device)
    divisor = grid.clamp(min=1).to(dtype)[:, None, None]
    # the reference's order of operations: start + p * bin + ((i + 0.5) * bin) / grid
    pos = (start[:, None, None] + bins[None, :, None] * bin_size[:, None, None]
           + (steps + 0.5)[None, None, :] * bin_size[:, None, None] / divisor)  # [K, P, G]
    used = steps[None, None, :] < grid[:, None, None]
    inside = (pos >= -1.0) & (pos <= size) & used
    pos = pos.clamp(min=0.0)
    low = pos.floor().long()
    at_end = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_end, low, low + 1)
    frac = torch.where(at_end, torch.zeros_like(pos), pos - low.to(dtype))
    weight = inside.to(dtype)
    index = torch.stack([low, high], dim=2).flatten(1)
    weights = torch.stack([(1.0 - frac) * weight, frac * weight], dim=2).flatten(1)
    return index, weights


def roi_align(input: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """Pool every region of ``boxes`` from ``input`` (``N x C x H x W``) to ``K x C x oh x ow``.

    ``boxes``: Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4] (one per
    image), in image coordinates; ``spatial_scale`` maps them onto ``input`` (e.g. 1/16).
    """
    check_feature(input)
    out_h, out_w = pair_size(output_size)
    scale = check_scale(spatial_scale)
    ratio = as_ratio(sampling_ratio)
    rois = to_rois(boxes).detach().to(input.device)
    n, channels, height, width = input.shape
    if rois.size(0) == 0:  # an empty result still in the graph of ``input`` (zero gradient)
        return input[:0, :, :1, :1].expand(0, channels, out_h, out_w).clone()
    index = batch_index(rois, n)
    dtype = coord_dtype(input.dtype)
    start, bin_size, grid = _geometry(rois, (out_h, out_w), scale, ratio, bool(aligned), dtype)
    count = (grid[:, 0] * grid[:, 1]).clamp(min=1).to(input.dtype)
    source = input.permute(0, 2, 3, 1).contiguous()  # channels last: taps gather C at once
    order, groups = plan(grid[:, 0], grid[:, 1], 4 * out_h * out_w * channels, CHUNK_ELEMENTS)
    pieces = []
    for part, most_h, most_w in groups:
        rows, wy = _axis(start[part, 0], bin_size[part, 0], grid[part, 0], out_h, most_h,
                         height, dtype)
        cols, wx = _axis(start[part, 1], bin_size[part, 1], grid[part, 1], out_w, most_w,
                         width, dtype)
        k, ty, tx = rows.size(0), 2 * most_h, 2 * most_w
        # [k, out_h * ty, out_w * tx, C]: the four taps of every sample
        taps = source[index[part, None, None], rows[:, :, None], cols[:, None, :]]
        taps = taps.view(k, out_h, ty, out_w * tx * channels)
        # weighted sums over the row taps, then over the column taps (batched products)
        along_y = torch.matmul(wy.to(input.dtype).view(k, out_h, 1, ty), taps)
        along_y = along_y.view(k, out_h, out_w, tx, channels)
        pooled = torch.matmul(wx.to(input.dtype).view(k, 1, out_w, 1, tx), along_y)
        pieces.append(pooled.view(k, out_h, out_w, channels) / count[part, None, None, None])
    pooled = torch.cat(pieces, dim=0).index_select(0, torch.argsort(order))
    return pooled.permute(0, 3, 1, 2).contiguous()


def as_ratio(sampling_ratio) -> int:
    if isinstance(sampling_ratio, bool) or not hasattr(sampling_ratio, "__index__"):
        fail(f"sampling_ratio must be an int (> 0: samples per bin side, <= 0: adaptive), "
             f"got {sampling_ratio!r}")
    return sampling_ratio.__index__()


def align_flops(rois, output_size, spatial_scale, sampling_ratio, aligned, channels, dtype):
    """FLOPs of RoIAlign over ``rois``: ``9 x samples`` per output element (see RoIAlign)."""
    if rois.size(0) == 0:
        return 0
    _, _, grid = _geometry(rois, output_size, spatial_scale, sampling_ratio, aligned,
                           coord_dtype(dtype))
    samples = int((grid[:, 0] * grid[:, 1]).sum())
    return 9 * samples * channels * output_size[0] * output_size[1]


class RoIAlign(nn.Module):
    """:func:`roi_align` as a module (``torchvision.ops.RoIAlign``): ``forward(input, rois)``."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False) -> None:
        super().__init__()
        self.output_size = pair_size(output_size)
        self.spatial_scale = check_scale(spatial_scale)
        self.sampling_ratio = as_ratio(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: torch.Tensor, rois) -> torch.Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def analysis_cost(self, inputs, outputs) -> tuple[int, int]:
        """(MACs, FLOPs) of one call: 0 MACs; per output element, for each of its ``s`` samples
        8 FLOPs (bilinear interpolation: 4 taps, a multiply and an add each) plus ``s`` for the
        average (``s - 1`` adds and one divide), so ``9 s``. ``s`` is the region's grid
        (``sampling_ratio**2``, or the adaptive one); samples that fall outside count too.
        ``inputs``: the call's arguments (input, boxes), nested or flattened."""
        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        rois = cost_rois(inputs, "RoIAlign")
        return 0, align_flops(rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                              self.aligned, outs[0].shape[1], outs[0].dtype)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
