"""Fonts, colours and tensor-to-image conversion shared by the plots and overlays."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from PIL import Image, ImageDraw, ImageFont
from cnnkit.errors import ArgumentError

RGB = tuple[int, int, int]
# Ten distinct line colours (the "tab10" hues of matplotlib's default cycle).
CATEGORICAL: tuple[RGB, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
LEFT_COLOR: RGB = (30, 144, 255)  # keypoints and limbs on the left side
RIGHT_COLOR: RGB = (255, 69, 0)  # ... on the right side
CENTER_COLOR: RGB = (50, 205, 50)  # unpaired keypoints
IGNORE_COLOR: RGB = (224, 224, 192)  # mask pixels with the ignore index
BACKGROUND: RGB = (255, 255, 255)
AXIS_COLOR: RGB = (0, 0, 0)
GRID_COLOR: RGB = (225, 225, 225)


@lru_cache(maxsize=8)
def font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (a bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def text_size(draw: ImageDraw.ImageDraw, text: str, size: int = 12) -> tuple[int, int]:
    """(width, height) of ``text`` drawn at the top-left corner."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    return right - left, bottom


def label_palette(num_classes: int) -> list[RGB]:
    """Distinct colours for class indices 0..num_classes-1, built like the Pascal VOC palette:
    the bits of the index are spread over the high bits of R, G and B (class 0 is black)."""
    colors = []
    for index in range(num_classes):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colors.append((r, g, b))
    return colors


def to_pil(image: torch.Tensor, mean: Sequence[float] | None = None,
           std: Sequence[float] | None = None) -> Image.Image:
    """A ``C x H x W`` float image (1 or 3 channels) as an RGB picture.

    With ``mean``/``std`` the normalisation is undone first; values outside [0, 1] without them
    are rescaled by the image's own minimum and maximum.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ArgumentError(f"image must be C x H x W with 1 or 3 channels; got shape "
                         f"{tuple(image.shape)}")
    image = image.detach().float().cpu()
    if mean is not None and std is not None:
        image = image * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    elif image.numel() and (image.min() < 0 or image.max() > 1):
        low, high = image.min(), image.max()
        image = (image - low) / (high - low).clamp(min=1e-12)
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    if pixels.shape[0] == 1:
        pixels = pixels.expand(3, -1, -1)
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy(), "RGB")


def sequential_color(value: float, low: RGB = (247, 251, 255), high: RGB = (8, 48, 107)) -> RGB:
    """A colour between ``low`` (value 0) and ``high`` (value 1): white to dark blue by default."""
    t = min(max(float(value), 0.0), 1.0)
    return tuple(round(a + (b - a) * t) for a, b in zip(low, high))  # type: ignore[return-value]


HEAT_ANCHORS: tuple[RGB, ...] = ((0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9),
                                 (252, 255, 164))


def heat_color(value: float) -> RGB:
    """A black-purple-orange-yellow ramp for heatmaps (value in [0, 1])."""
    t = min(max(float(value), 0.0), 1.0) * (len(HEAT_ANCHORS) - 1)
    i = min(int(t), len(HEAT_ANCHORS) - 2)
    f = t - i
    a, b = HEAT_ANCHORS[i], HEAT_ANCHORS[i + 1]
    return tuple(round(x + (y - x) * f) for x, y in zip(a, b))  # type: ignore[return-value]
