"""The pictures of :mod:`cnnkit.explain.see`, drawn with Pillow from tensors.

Scalings, so that a picture can be read:

- filters: ``"symmetric"`` (default) divides each filter by its largest absolute weight and maps
  ``[-1, 1]`` to ``[0, 1]``, so a zero weight is mid-gray in every picture and the sign of a
  weight is its side of gray; ``"minmax"`` stretches each filter from its own minimum (black)
  to its maximum (white), which shows more contrast but hides where zero is;
- feature maps: each channel from its own minimum (black) to its maximum (white); a constant
  channel is black;
- heat maps (CAM, Grad-CAM, saliency, effective receptive field): from their minimum to their
  maximum in the heat colours of :func:`cnnkit.viz.style.heat_color`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw

from cnnkit.errors import ArgumentError
from cnnkit.viz import caption, overlay_heatmap, to_pil
from cnnkit.viz.tiles import heat_image, tile_grid

SCALES = ("symmetric", "minmax")
DISPLAY_SIDE = 224  # small inputs are enlarged by whole factors to about this many pixels
TILE_SIDE = 48  # ... and filters and feature maps to about this many
BOX_COLOR = (0, 255, 255)  # the theoretical receptive field's outline


def display_zoom(height: int, width: int, side: int = DISPLAY_SIDE) -> int:
    """The whole factor that enlarges an ``height x width`` picture to about ``side`` pixels."""
    return max(1, side // max(height, width, 1))


def per_item_unit(values: torch.Tensor, scale: str) -> torch.Tensor:
    """``N x ...`` values scaled to [0, 1] item by item (``scale`` as in the module docstring)."""
    if scale not in SCALES:
        raise ArgumentError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    flat = values.detach().float().flatten(1)
    if scale == "symmetric":
        top = flat.abs().amax(1).clamp(min=1e-12)
        flat = 0.5 + 0.5 * flat / top[:, None]
    else:
        low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        flat = (flat - low) / (high - low).clamp(min=1e-12)
    return flat.view_as(values)


def filter_picture(weights: torch.Tensor, name: str, *, scale: str = "symmetric",
                   zoom: int | None = None) -> Image.Image:
    """The ``C_out x C_in x kh x kw`` weights of a first convolution as a grid: one RGB tile
    per filter when ``C_in`` is 3, else ``C_in`` gray tiles side by side per filter; captioned."""
    c_out, c_in, kh, kw = weights.shape
    unit = per_item_unit(weights, scale)
    zoom = zoom or max(1, TILE_SIDE // max(kh, kw))
    if c_in == 3:
        tiles, columns = unit, math.ceil(math.sqrt(c_out))
    else:
        tiles = unit.reshape(c_out * c_in, 1, kh, kw)
        columns = c_in * math.ceil(math.sqrt(c_out / c_in))
    grid = tile_grid(tiles, columns, zoom=zoom, gap=2 if c_in == 3 or c_in == 1 else 1)
    return caption(grid, f"{name}: {c_out} filters {c_in}x{kh}x{kw}, {scale} scale")


def maps_picture(maps: torch.Tensor, channels: Sequence[int], name: str) -> Image.Image:
    """Channels ``channels`` of ``C x h x w`` maps as gray tiles (each from its minimum to its
    maximum), captioned with the layer's name and shape."""
    c, h, w = maps.shape
    shown = per_item_unit(maps[list(channels)], "minmax")[:, None]
    grid = tile_grid(shown, zoom=max(1, TILE_SIDE // max(h, w)))
    return caption(grid, f"{name}: {c}x{h}x{w}, {len(channels)} channels")


def base_picture(image: torch.Tensor, picture: Image.Image | None) -> Image.Image:
    """``picture`` as RGB, or else the input itself (rescaled to [0, 1], gray when it has
    neither 1 nor 3 channels) enlarged by :func:`display_zoom`."""
    if picture is not None:
        if not isinstance(picture, Image.Image):
            raise ArgumentError(f"picture must be a PIL image; got {type(picture).__name__}")
        return picture.convert("RGB")
    x = image.detach().float().cpu()[0]
    if x.shape[0] not in (1, 3):
        x = x.mean(0, keepdim=True)
    shown = to_pil(x)
    zoom = display_zoom(shown.height, shown.width)
    return shown.resize((shown.width * zoom, shown.height * zoom), Image.NEAREST)


def heat_overlay(image: torch.Tensor, picture: Image.Image | None,
                 heat: torch.Tensor) -> Image.Image:
    """The heat map (input size) over the picture (:func:`cnnkit.viz.overlay_heatmap`)."""
    return overlay_heatmap(base_picture(image, picture), heat)


def field_picture(gradient: torch.Tensor, box: list[list], lines: Sequence[str]) -> Image.Image:
    """The ``H x W`` gradient magnitude in heat colours, enlarged by :func:`display_zoom`, with
    the inclusive pixel box ``[[top, bottom], [left, right]]`` outlined along its border
    pixels, and ``lines`` of text below (16 pixels each)."""
    height, width = gradient.shape
    zoom = display_zoom(height, width)
    low, high = gradient.min(), gradient.max()
    picture = heat_image((gradient - low) / (high - low).clamp(min=1e-12), zoom)
    if box:
        (top, bottom), (left, right) = box
        corners = [math.floor(left) * zoom, math.floor(top) * zoom,
                   (math.ceil(right) + 1) * zoom - 1, (math.ceil(bottom) + 1) * zoom - 1]
        ImageDraw.Draw(picture).rectangle(corners, outline=BOX_COLOR, width=1 + (zoom >= 4))
    for line in lines:
        picture = caption(picture, line)
    return picture
