"""Masks, heatmaps, keypoints and boxes drawn over images.

Coordinates follow :mod:`cnnkit.data.sample`: pixel centres at integers, so a keypoint at
``(x, y)`` is drawn centred on pixel column ``round(x)``, row ``round(y)``, and a box
``(x1, y1, x2, y2)`` covers the pixels whose centres lie inside it. ``scale`` enlarges the
picture first (nearest neighbour, for small images) and maps coordinates with
``x -> (x + 0.5) * scale - 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.geometry import Skeleton
from cnnkit.viz.style import (CATEGORICAL, CENTER_COLOR, IGNORE_COLOR, LEFT_COLOR, RGB,
                              RIGHT_COLOR, font, heat_color, label_palette, text_size)
from cnnkit.errors import ArgumentError


def _enlarge(image: Image.Image, scale: int) -> Image.Image:
    if not isinstance(scale, int) or scale < 1:
        raise ArgumentError(f"scale must be a positive integer; got {scale!r}")
    image = image.convert("RGB")
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale),
                                                 Image.NEAREST)


def _map(value: float, scale: int) -> float:
    return (value + 0.5) * scale - 0.5


def colorize_mask(mask: torch.Tensor, palette: Sequence[RGB] | None = None,
                  ignore_color: RGB = IGNORE_COLOR) -> Image.Image:
    """An ``H x W`` class map as an RGB picture: class c gets ``palette[c]`` exactly
    (default :func:`label_palette`), :data:`IGNORE_INDEX` gets ``ignore_color``."""
    if mask.dim() != 2:
        raise ArgumentError(f"mask must be H x W; got shape {tuple(mask.shape)}")
    values = mask.detach().cpu().long()
    classes = values[values != IGNORE_INDEX]
    top = int(classes.max()) if classes.numel() else 0
    if classes.numel() and int(classes.min()) < 0:
        raise ArgumentError(f"mask values must be class indices >= 0; got {int(classes.min())}")
    colors = list(palette) if palette is not None else label_palette(top + 1)
    if top >= len(colors):
        raise ArgumentError(f"mask has class {top} but the palette has {len(colors)} colours")
    table = np.zeros((max(len(colors), IGNORE_INDEX + 1), 3), dtype=np.uint8)
    table[:len(colors)] = np.asarray(colors, dtype=np.uint8)
    table[IGNORE_INDEX] = ignore_color
    return Image.fromarray(table[values.numpy()], "RGB")


def overlay_mask(image: Image.Image, mask: torch.Tensor, palette: Sequence[RGB] | None = None,
                 alpha: float = 0.5, ignore_color: RGB = IGNORE_COLOR) -> Image.Image:
    """``image`` blended with the coloured mask (``alpha`` = weight of the mask)."""
    colored = colorize_mask(mask, palette, ignore_color)
    if colored.size != image.size:
        raise ArgumentError(f"mask is {colored.size} (W x H) but the image is {image.size}")
    return Image.blend(image.convert("RGB"), colored, alpha)


def overlay_heatmap(image: Image.Image, heatmap: torch.Tensor, alpha: float = 0.6) -> Image.Image:
    """``image`` blended with an ``h x w`` map (rescaled to [0, 1], resized to the image)."""
    values = heatmap.detach().float().cpu()
    if values.dim() != 2:
        raise ArgumentError(f"heatmap must be h x w; got shape {tuple(values.shape)}")
    low, high = float(values.min()), float(values.max())
    values = (values - low) / max(high - low, 1e-12)
    ramp = np.asarray([heat_color(i / 255) for i in range(256)], dtype=np.uint8)
    picture = Image.fromarray(ramp[(values * 255).round().long().numpy()], "RGB")
    return Image.blend(image.convert("RGB"), picture.resize(image.size, Image.BILINEAR), alpha)


def keypoint_sides(skeleton: Skeleton | None, num_keypoints: int) -> list[str]:
    """"left", "right" or "center" per keypoint: in each flip pair the keypoint whose name
    contains "left" (or else the first of the pair) is the left one."""
    sides = ["center"] * num_keypoints
    for a, b in skeleton.flip_pairs if skeleton is not None else ():
        if "left" not in skeleton.names[a].lower() and "left" in skeleton.names[b].lower():
            a, b = b, a
        sides[a], sides[b] = "left", "right"
    return sides


SIDE_COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "center": CENTER_COLOR}


def draw_keypoints(image: Image.Image, keypoints: torch.Tensor, visible: torch.Tensor | None = None,
                   skeleton: Skeleton | None = None,
                   edges: Sequence[tuple[int, int]] | None = None, *, radius: int = 3,
                   names: bool = True, scale: int = 1) -> Image.Image:
    """Keypoints (``K x 2`` x, y) as dots coloured by side (left blue, right orange-red, unpaired
    green), with their names. Limbs: ``edges`` (index pairs), coloured by the side of their
    keypoints; without ``edges``, each left/right pair is joined, half in each side's colour.
    Invisible keypoints are not drawn."""
    picture = _enlarge(image, scale)
    draw = ImageDraw.Draw(picture)
    points = keypoints.detach().float().cpu()
    if points.dim() != 2 or points.shape[1] != 2:
        raise ArgumentError(f"keypoints must be K x 2 (x, y); got shape {tuple(points.shape)}")
    k = points.shape[0]
    shown = torch.ones(k, dtype=torch.bool) if visible is None else visible.detach().cpu().bool()
    shown = shown & torch.isfinite(points).all(1)
    sides = keypoint_sides(skeleton, k)
    xy = [(_map(float(x), scale), _map(float(y), scale)) for x, y in points]
    if edges is None and skeleton is not None:
        for a, b in skeleton.flip_pairs:
            if shown[a] and shown[b]:
                mid = ((xy[a][0] + xy[b][0]) / 2, (xy[a][1] + xy[b][1]) / 2)
                draw.line([xy[a], mid], fill=SIDE_COLORS[sides[a]], width=2)
                draw.line([mid, xy[b]], fill=SIDE_COLORS[sides[b]], width=2)
    for a, b in edges or ():
        if shown[a] and shown[b]:
            pair = {sides[a], sides[b]} - {"center"}
            side = pair.pop() if len(pair) == 1 else "center"
            draw.line([xy[a], xy[b]], fill=SIDE_COLORS[side], width=2)
    for i in range(k):
        if not shown[i]:
            continue
        x, y = round(xy[i][0]), round(xy[i][1])
        draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                     fill=SIDE_COLORS[sides[i]], outline=(255, 255, 255))
        if names and skeleton is not None:
            draw.text((x + radius + 2, y - radius - 8), skeleton.names[i],
                      fill=SIDE_COLORS[sides[i]], font=font(11))
    return picture


def draw_boxes(image: Image.Image, boxes: torch.Tensor, labels: Sequence[int] | None = None,
               class_names: Sequence[str] | None = None, scores: Sequence[float] | None = None,
               *, colors: Sequence[RGB] = CATEGORICAL, width: int = 2,
               scale: int = 1) -> Image.Image:
    """Boxes (``B x 4`` x1, y1, x2, y2) outlined in the colour of their label, with the class
    name (and score) written above."""
    picture = _enlarge(image, scale)
    draw = ImageDraw.Draw(picture)
    boxes = boxes.detach().float().cpu().reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        label = int(labels[i]) if labels is not None else 0
        color = colors[label % len(colors)]
        corners = [round(_map(x1 + 0.5, scale)), round(_map(y1 + 0.5, scale)),
                   round(_map(x2 - 0.5, scale)), round(_map(y2 - 0.5, scale))]
        draw.rectangle(corners, outline=color, width=width)
        text = class_names[label] if class_names is not None else (str(label) if labels is not None
                                                                    else "")
        if scores is not None:
            text = f"{text} {float(scores[i]):.2f}".strip()
        if text:
            tw, th = text_size(draw, text, 11)
            y = max(corners[1] - th - 2, 0)
            draw.rectangle([corners[0], y, corners[0] + tw + 3, y + th + 1], fill=color)
            draw.text((corners[0] + 2, y), text, fill=(255, 255, 255), font=font(11))
    return picture


def caption(image: Image.Image, text: str, height: int = 16) -> Image.Image:
    """``image`` with a line of text in a white band below it."""
    out = Image.new("RGB", (image.width, image.height + height), (255, 255, 255))
    out.paste(image.convert("RGB"), (0, 0))
    ImageDraw.Draw(out).text((2, image.height + 1), text, fill=(0, 0, 0), font=font(11))
    return out
