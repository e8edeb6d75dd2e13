"""Sliding-window (tiled) inference: dense logits for images larger than the network input.

The image is padded by reflection (``margin`` pixels on every side, then on the bottom and
right up to a whole number of tile steps), cut into ``tile`` windows ``step = tile - overlap``
apart, and the model's logits for each window are accumulated with a weight window and divided
by the summed weights: ``out(p) = sum_t w_t(p) f_t(p) / sum_t w_t(p)``.

- ``blend="uniform"``: every window counts equally (plain average in the overlaps);
- ``blend="gaussian"``: a separable Gaussian window (sigma = tile / 8) that trusts the window
  centre, where the network sees the most context, more than its edges; never zero, so every
  pixel is covered. This is the blending popularised by nnU-Net (Isensee et al., "nnU-Net: a
  self-configuring method for deep learning-based biomedical image segmentation", Nature
  Methods 2021).
- The margin (default ``overlap // 2``) gives border pixels reflected context, as the
  overlap-tile strategy of Ronneberger, Fischer & Brox, "U-Net", MICCAI 2015 does with
  mirroring.

Memory: the accumulators have the size of the padded output (N x classes x H' x W'), the only
full-resolution tensors; the model sees at most ``batch_size`` windows of every image at a
time (a batch of ``batch_size * N``), and the windows are cut as they are needed.

Blending is not exact near seams. :func:`exact_tiled_inference` is, for fully convolutional
networks whose output has the input's size: output pixel ``x`` depends only on the inputs
``x - halo .. x + halo`` (its receptive field, padding positions included), so a tile's output
is the whole pass's wherever that field lies inside the tile, if the tile sees the image as the
whole pass does. Tiles are crops, never padded (at an image border every layer then pads its
own input as in the whole pass; padding the image would feed deeper layers the activations of
zeros instead); tile origins are multiples of the total stride ``S`` (so every pooled or strided
map of a tile is a crop of the whole pass's map); neighbours overlap by at least ``2 * halo``
and each keeps its output up to the middle of the overlap; the last tile ends at the border (its
origin is the largest multiple of ``S`` leaving ``tile`` pixels, so it may be up to ``S - 1``
longer). ``halo`` and ``S`` come from cnnkit's analyzer (:func:`tiling_geometry`: the largest
distance from an output pixel to its field's edge over all output phases; the lcm of all
layers' jumps) or are given. Each output then comes from the same inputs through the same
operations; floats agree to rounding only, since a BLAS product rounds an output column
differently depending on the matrix width (MKL's dgemm does), and bit for bit with exact
arithmetic (integer weights and inputs in float64). Use eval mode; models with an image-level
(global pooling) branch are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from cnnkit.errors import ArgumentError

Model = Callable[[torch.Tensor], torch.Tensor]
Blend = Literal["uniform", "gaussian"]


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ArgumentError(f"{name} must be an int or a (height, width) pair; got {value!r}")
    return pair  # type: ignore[return-value]


def reflect_pad(images: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Mirror padding (edge pixel not repeated) of any amount, by repeated reflection.

    A single reflection can add at most ``size - 1`` pixels per side; larger pads reflect the
    already padded image again. A dimension of size 1 is replicated.
    """
    if min(left, right, top, bottom) < 0:
        raise ArgumentError(f"padding must be >= 0; got {[left, right, top, bottom]}")
    for before, after, dim in ((left, right, -1), (top, bottom, -2)):
        while before or after:
            size = images.shape[dim]
            pad = [0, 0, 0, 0]
            offset = 0 if dim == -1 else 2
            if size == 1:
                pad[offset:offset + 2] = [before, after]
                images = F.pad(images, pad, mode="replicate")
                break
            step = min(before, size - 1), min(after, size - 1)
            pad[offset:offset + 2] = step
            images = F.pad(images, pad, mode="reflect")
            before, after = before - step[0], after - step[1]
    return images


def blend_window(height: int, width: int, blend: Blend = "uniform",
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
                 ) -> torch.Tensor:
    """The ``height x width`` weight window of a tile (all ones, or a Gaussian bump)."""
    if blend == "uniform":
        return torch.ones(height, width, dtype=dtype, device=device)
    if blend != "gaussian":
        raise ArgumentError(f"blend must be 'uniform' or 'gaussian'; got {blend!r}")

    def bump(size: int) -> torch.Tensor:
        x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
        return torch.exp(-0.5 * (x / (size / 8)).square())

    return torch.outer(bump(height), bump(width)).to(dtype)


def _starts(length: int, tile: int, step: int) -> list[int]:
    count = 1 + math.ceil(max(length - tile, 0) / step)
    return [i * step for i in range(count)]


@torch.no_grad()
def sliding_window_inference(model: Model, images: torch.Tensor,
                             tile: int | tuple[int, int],
                             overlap: int | tuple[int, int] = 0, *, blend: Blend = "uniform",
                             batch_size: int = 4,
                             margin: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Logits (N x classes x H x W) of ``images`` (N x C x H x W) computed tile by tile.

    ``tile``: the model's input size (int or (height, width)); ``overlap``: pixels shared by
    neighbouring tiles (0 <= overlap < tile); ``margin``: reflected border (default
    ``overlap // 2``); ``batch_size``: windows per model call (per image). The model must
    return N x classes x tile_h x tile_w logits for a tile batch.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ArgumentError(f"images must be an N x C x H x W batch; got {shape}")
    tile_h, tile_w = _pair(tile, "tile")
    over_h, over_w = _pair(overlap, "overlap")
    if tile_h < 1 or tile_w < 1:
        raise ArgumentError(f"tile must be >= 1 pixel; got {(tile_h, tile_w)}")
    if not (0 <= over_h < tile_h and 0 <= over_w < tile_w):
        raise ArgumentError(f"overlap must be in [0, tile) per side; got overlap {(over_h, over_w)} "
                         f"for tile {(tile_h, tile_w)}")
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be >= 1; got {batch_size}")
    margin_h, margin_w = _pair(margin, "margin") if margin is not None else (over_h // 2,
                                                                             over_w // 2)
    n, _, height, width = images.shape
    step_h, step_w = tile_h - over_h, tile_w - over_w
    rows = _starts(height + 2 * margin_h, tile_h, step_h)
    cols = _starts(width + 2 * margin_w, tile_w, step_w)
    padded_h, padded_w = rows[-1] + tile_h, cols[-1] + tile_w
    padded = reflect_pad(images, margin_w, padded_w - width - margin_w,
                         margin_h, padded_h - height - margin_h)
    positions = [(top, left) for top in rows for left in cols]
    output = weights = window = None
    for first in range(0, len(positions), batch_size):
        group = positions[first:first + batch_size]
        tiles = torch.cat([padded[..., t:t + tile_h, l:l + tile_w] for t, l in group])
        logits = model(tiles)
        if logits.dim() != 4 or tuple(logits.shape[-2:]) != (tile_h, tile_w) or \
                logits.shape[0] != len(group) * n:
            raise ArgumentError(f"the model must return {len(group) * n} x classes x {tile_h} x "
                             f"{tile_w} logits for {len(group) * n} tiles; got "
                             f"{tuple(logits.shape)}")
        if output is None:
            output = logits.new_zeros(n, logits.shape[1], padded_h, padded_w)
            weights = logits.new_zeros(padded_h, padded_w)
            window = blend_window(tile_h, tile_w, blend, logits.dtype, logits.device)
        for index, (top, left) in enumerate(group):
            part = logits[index * n:(index + 1) * n]
            output[..., top:top + tile_h, left:left + tile_w] += part * window
            weights[top:top + tile_h, left:left + tile_w] += window
    assert output is not None and weights is not None
    crop = (slice(margin_h, margin_h + height), slice(margin_w, margin_w + width))
    return output[..., crop[0], crop[1]] / weights[crop[0], crop[1]]


@dataclass(frozen=True)
class TilingGeometry:
    """``halo``: (rows, columns) of context every output pixel needs on each side; ``stride``:
    what tile origins must be multiples of."""

    halo: tuple[int, int]
    stride: int


def tiling_geometry(model: torch.nn.Module, input_size: tuple[int, int, int]) -> TilingGeometry:
    """Receptive-field radius and total stride of ``model`` from cnnkit's analyzer, for inputs
    of ``input_size`` (C, H, W); see the module docstring."""
    from cnnkit.analysis import analyze

    report = analyze(model, input_size)
    field = report.output_field
    if field is None or field.dims is None or len(field.dims) != 2:
        note = field.note if field is not None else "no field"
        raise ArgumentError(f"the analyzer found no receptive field for this model ({note}); "
                            "pass halo and stride to exact_tiled_inference")
    halo = []
    for axis in field.dims:
        if axis.jump != 1 or axis.fixed is not None:
            raise ArgumentError("exact tiling needs a fully convolutional model whose output has "
                                "the input's resolution and no image-level (global) branch")
        regions = [(o, axis.bounds(o)) for o in range(axis.period)]
        halo.append(max(math.ceil(max(o - r[0], r[1] - o)) for o, r in regions if r))
    jumps = {a.jump.numerator for row in report.layers if row.field is not None
             and row.field.dims for a in row.field.dims if a.jump > 0}
    return TilingGeometry((halo[0], halo[1]), math.lcm(*jumps))


def _exact_plan(length: int, tile: int, halo: int, stride: int) -> list[tuple[int, int, int, int]]:
    """(origin, size, keep_from, keep_to) of the tiles along one dimension."""
    if length <= tile:
        return [(0, length, 0, length)]
    step = (tile - 2 * halo) // stride * stride
    if step < 1:
        raise ArgumentError(f"tile must be >= 2 * halo + stride = {2 * halo + stride} pixels for "
                            f"exact tiling (halo {halo}, stride {stride}); got {tile}")
    origins = list(range(0, length - tile, step))
    last = (length - tile) // stride * stride
    origins = [o for o in origins if o != last] + [last]
    sizes = [tile] * (len(origins) - 1) + [length - last]
    cuts = [0] + [(here + tile + nxt) // 2 for here, nxt in pairwise(origins)] + [length]
    return [(o, n, lo, hi) for o, n, lo, hi in zip(origins, sizes, cuts, cuts[1:])]


@torch.no_grad()
def exact_tiled_inference(model: Model, images: torch.Tensor, tile: int | tuple[int, int], *,
                          halo: int | tuple[int, int] | None = None, stride: int | None = None,
                          batch_size: int = 4) -> torch.Tensor:
    """Logits (N x classes x H x W) of ``images`` tile by tile, equal to ``model(images)``.

    ``tile``: tile size (int or (height, width)), a multiple of ``stride``; ``halo`` (pixels of
    context per side) and ``stride`` (total stride of the network) default to the analyzer's
    (:func:`tiling_geometry`, which needs ``model`` to be an ``nn.Module``); ``batch_size``:
    tiles per model call (per image). See the module docstring for the construction.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ArgumentError(f"images must be an N x C x H x W batch; got {shape}")
    tile_hw = _pair(tile, "tile")
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be >= 1; got {batch_size}")
    if halo is None or stride is None:
        if not isinstance(model, torch.nn.Module):
            raise ArgumentError("pass halo and stride, or a model that is an nn.Module (the "
                                "analyzer reads them from it)")
        geometry = tiling_geometry(model, (images.shape[1], *tile_hw))
        halo = geometry.halo if halo is None else halo
        stride = geometry.stride if stride is None else stride
    halo_hw = _pair(halo, "halo")
    if not isinstance(stride, int) or stride < 1 or min(halo_hw) < 0:
        raise ArgumentError(f"stride must be an int >= 1 and halo >= 0; got {stride}, {halo_hw}")
    if any(t < 1 or t % stride for t in tile_hw):
        raise ArgumentError(f"tile must be a positive multiple of the network's stride {stride}; "
                            f"got {tile_hw}")
    n, _, height, width = images.shape
    plans = [_exact_plan(size, t, h, stride)
             for size, t, h in zip((height, width), tile_hw, halo_hw)]
    groups: dict[tuple[int, int], list[tuple]] = {}
    for row in plans[0]:
        for col in plans[1]:
            groups.setdefault((row[1], col[1]), []).append((row, col))
    output = None
    for (tile_h, tile_w), tiles in groups.items():
        for first in range(0, len(tiles), batch_size):
            part = tiles[first:first + batch_size]
            batch = torch.cat([images[..., r[0]:r[0] + tile_h, c[0]:c[0] + tile_w]
                               for r, c in part])
            logits = model(batch)
            if logits.dim() != 4 or tuple(logits.shape[-2:]) != (tile_h, tile_w):
                raise ArgumentError(f"exact tiling needs outputs of the input's size: the model "
                                    f"returned {tuple(logits.shape)} for tiles of "
                                    f"{(tile_h, tile_w)}")
            if output is None:
                output = logits.new_empty(n, logits.shape[1], height, width)
            for index, ((top, _, r_lo, r_hi), (left, _, c_lo, c_hi)) in enumerate(part):
                output[..., r_lo:r_hi, c_lo:c_hi] = logits[index * n:(index + 1) * n, :,
                                                           r_lo - top:r_hi - top,
                                                           c_lo - left:c_hi - left]
    assert output is not None
    return output
