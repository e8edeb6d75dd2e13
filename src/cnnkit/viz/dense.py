"""Pictures of dense regression maps: depth as a colour map, surface normals as RGB, and
colour images rebuilt from lightness and ab (colourisation).

- :func:`colorize_depth`: depth (``H x W``, metres) through the heat ramp of
  :func:`cnnkit.viz.style.heat_color`, **near bright** (yellow) and far dark (black-purple), over a
  range ``[low, high]`` that defaults to the valid values' minimum and maximum; give the same
  range to the truth and the prediction to compare them. Pixels that are not valid (or not
  finite, or not > 0) get :data:`~cnnkit.viz.style.IGNORE_COLOR`.
- :func:`normals_to_image`: unit normals (``3 x H x W``, any frame) as ``(n + 1) / 2`` in RGB,
  so x -> red, y -> green, z -> blue; pixels without a normal (zero vector or not valid) get
  :data:`~cnnkit.viz.style.IGNORE_COLOR`.
- :func:`lab_image`: L (``H x W``, 0..100) and ab (``2 x H x W``) as an sRGB picture
  (:func:`cnnkit.data.color.lab_to_rgb`, out-of-gamut colours clipped);
  :func:`picture_lightness`: the L of a picture.
- :func:`enlarge`: a picture made ``scale`` times larger by pixel repetition;
  :func:`stack`: pictures of any sizes one below the other, on white.

Everything is vectorised (a 256-entry colour table indexed by the quantised values).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cnnkit.data.color import lab_to_rgb, rgb_to_lab
from cnnkit.errors import ArgumentError
from cnnkit.viz.style import IGNORE_COLOR, heat_color

HEAT_TABLE = torch.tensor([heat_color(i / 255) for i in range(256)], dtype=torch.uint8)


def _picture(pixels: torch.Tensor) -> Image.Image:
    """``H x W x 3`` uint8 -> RGB picture."""
    return Image.fromarray(pixels.contiguous().numpy(), "RGB")


def enlarge(image: Image.Image, scale: int) -> Image.Image:
    """``image`` ``scale`` times larger (nearest neighbour); ``scale`` 1 returns it as is."""
    if scale < 1:
        raise ArgumentError(f"scale must be an integer >= 1; got {scale}")
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale),
                                                 Image.NEAREST)


def stack(pictures: list[Image.Image]) -> Image.Image:
    """``pictures`` one below the other, left-aligned, on a white sheet as wide as the widest."""
    if not pictures:
        raise ArgumentError("stack needs at least one picture")
    sheet = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)),
                      (255, 255, 255))
    top = 0
    for picture in pictures:
        sheet.paste(picture.convert("RGB"), (0, top))
        top += picture.height
    return sheet


def depth_range(depth: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[float, float]:
    """(min, max) of the valid, finite, positive depths; (0, 1) when there is none."""
    depth = torch.as_tensor(depth).detach().float().cpu()
    known = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        known &= torch.as_tensor(valid).bool().cpu()
    values = depth[known]
    if values.numel() == 0:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def colorize_depth(depth: torch.Tensor, valid: torch.Tensor | None = None,
                   low: float | None = None, high: float | None = None) -> Image.Image:
    """An ``H x W`` depth map as a heat-ramp picture (near bright); see the module docstring."""
    depth = torch.as_tensor(depth).detach().float().cpu()
    if depth.dim() == 3 and depth.shape[0] == 1:
        depth = depth[0]
    if depth.dim() != 2:
        raise ArgumentError(f"depth must be H x W (or 1 x H x W); got shape {tuple(depth.shape)}")
    known = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        known &= torch.as_tensor(valid).bool().cpu().reshape(depth.shape)
    auto_low, auto_high = depth_range(depth, known)
    low = auto_low if low is None else float(low)
    high = auto_high if high is None else float(high)
    span = max(high - low, 1e-12)
    nearness = ((high - torch.nan_to_num(depth)) / span).clamp(0, 1)
    pixels = HEAT_TABLE[(nearness * 255).round().long()]
    pixels[~known] = torch.tensor(IGNORE_COLOR, dtype=torch.uint8)
    return _picture(pixels)


def normals_to_image(normals: torch.Tensor, valid: torch.Tensor | None = None) -> Image.Image:
    """``3 x H x W`` normals as RGB ``(n + 1) / 2``; see the module docstring."""
    normals = torch.as_tensor(normals).detach().float().cpu()
    if normals.dim() != 3 or normals.shape[0] != 3:
        raise ArgumentError(f"normals must be 3 x H x W; got shape {tuple(normals.shape)}")
    known = torch.isfinite(normals).all(0) & (normals.norm(dim=0) > 0)
    if valid is not None:
        known &= torch.as_tensor(valid).bool().cpu().reshape(known.shape)
    pixels = ((torch.nan_to_num(normals).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.permute(1, 2, 0).clone()
    pixels[~known] = torch.tensor(IGNORE_COLOR, dtype=torch.uint8)
    return _picture(pixels)


def lab_image(lightness: torch.Tensor, ab: torch.Tensor) -> Image.Image:
    """L (``H x W``) and ab (``2 x H x W``) as an sRGB picture (out-of-gamut colours clipped)."""
    lightness = torch.as_tensor(lightness).detach().float().cpu()
    ab = torch.as_tensor(ab).detach().float().cpu()
    if lightness.dim() == 3 and lightness.shape[0] == 1:
        lightness = lightness[0]
    if lightness.dim() != 2 or ab.shape != (2, *lightness.shape):
        raise ArgumentError(f"lab_image needs L H x W and ab 2 x H x W of the same size; got "
                            f"{tuple(lightness.shape)} and {tuple(ab.shape)}")
    rgb = lab_to_rgb(torch.cat([lightness[None], ab]), clip=True)
    return _picture((rgb * 255).round().to(torch.uint8).permute(1, 2, 0))


def picture_lightness(image: Image.Image) -> torch.Tensor:
    """CIE L (``H x W``, 0..100) of a picture (converted to RGB first)."""
    pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy())
    return rgb_to_lab(pixels.permute(2, 0, 1).float() / 255)[0]
