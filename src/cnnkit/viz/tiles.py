"""Grids of small tiles (filters, feature maps) and heat-coloured maps, drawn with Pillow.

Both take tensors whose values are already in [0, 1] (the caller decides the scaling) and build
the picture with whole-tensor operations: no loop over tiles or pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.viz.style import BACKGROUND, RGB, heat_color

HEAT_RAMP = np.asarray([heat_color(i / 255) for i in range(256)], dtype=np.uint8)


def grid_size(count: int, tile: tuple[int, int], columns: int, zoom: int = 1,
              gap: int = 2) -> tuple[int, int]:
    """(width, height) of :func:`tile_grid`'s picture for ``count`` tiles of ``tile`` (h, w)."""
    rows = math.ceil(count / columns)
    h, w = tile
    return columns * (w * zoom + gap) - gap, rows * (h * zoom + gap) - gap


def tile_grid(tiles: torch.Tensor, columns: int | None = None, *, zoom: int = 1, gap: int = 2,
              background: RGB = BACKGROUND) -> Image.Image:
    """``N x C x h x w`` values in [0, 1] (C = 1: gray, C = 3: RGB) as one RGB picture.

    Tiles go row by row, ``columns`` per row (default ``ceil(sqrt(N))``), each enlarged ``zoom``
    times (nearest neighbour), with ``gap`` pixels of ``background`` between them; the size is
    :func:`grid_size`. Values outside [0, 1] are clipped.
    """
    if tiles.dim() != 4 or tiles.shape[1] not in (1, 3) or tiles.shape[0] == 0:
        raise ArgumentError(f"tiles must be N x C x h x w with N >= 1 and C 1 or 3; got shape "
                            f"{tuple(tiles.shape)}")
    count = tiles.shape[0]
    columns = math.ceil(math.sqrt(count)) if columns is None else columns
    require_positive(columns=columns, zoom=zoom)
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ArgumentError(f"gap must be an integer >= 0; got {gap!r}")
    pixels = (tiles.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1)
    pixels = pixels.repeat_interleave(zoom, 2).repeat_interleave(zoom, 3)
    h, w = pixels.shape[-2:]
    rows = math.ceil(count / columns)
    canvas = torch.tensor(background, dtype=torch.uint8).view(1, 3, 1, 1)
    canvas = canvas.expand(rows * columns, 3, h + gap, w + gap).clone()
    canvas[:count, :, :h, :w] = pixels
    sheet = canvas.view(rows, columns, 3, h + gap, w + gap).permute(0, 3, 1, 4, 2)
    sheet = sheet.reshape(rows * (h + gap), columns * (w + gap), 3)[:rows * (h + gap) - gap,
                                                                     :columns * (w + gap) - gap]
    return Image.fromarray(sheet.contiguous().numpy(), "RGB")


def heat_image(values: torch.Tensor, zoom: int = 1) -> Image.Image:
    """An ``h x w`` map in [0, 1] in the heat colours of :func:`cnnkit.viz.style.heat_color`
    (black for 0 to light yellow for 1), enlarged ``zoom`` times (nearest neighbour)."""
    if values.dim() != 2:
        raise ArgumentError(f"heat map must be h x w; got shape {tuple(values.shape)}")
    require_positive(zoom=zoom)
    index = (values.detach().float().cpu().clamp(0, 1) * 255).round().long()
    index = index.repeat_interleave(zoom, 0).repeat_interleave(zoom, 1)
    return Image.fromarray(HEAT_RAMP[index.numpy()], "RGB")
