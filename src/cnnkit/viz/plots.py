"""Line plots with axes, ticks and a legend, drawn with Pillow."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from cnnkit.viz.style import (AXIS_COLOR, BACKGROUND, CATEGORICAL, GRID_COLOR, RGB, font,
                              text_size)
from cnnkit.errors import ArgumentError

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 30, 42


@dataclass
class Series:
    """One line: points ``(xs[i], ys[i])``; NaN or None values break the line."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: RGB | None = None
    dashed: bool = False


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """At most about ``count`` round tick values (steps of 1, 2 or 5 x 10^k) covering
    [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ArgumentError(f"tick range must be finite; got {low}, {high}")
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def format_tick(value: float, step: float) -> str:
    if abs(value) >= 1e5 or (value and abs(value) < 1e-3):
        return f"{value:.1e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))  # steps are 1, 2 or 5 x 10^k
    return f"{value:.{decimals}f}"


def _valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _dashed_line(draw: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float],
                 color: RGB, width: int, dash: float = 6.0) -> None:
    length = math.dist(a, b)
    pieces = max(1, int(length // dash))
    for i in range(0, pieces, 2):
        t0, t1 = i / pieces, min((i + 1) / pieces, 1.0)
        draw.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                   (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)], fill=color,
                  width=width)


def line_plot(series: Sequence[Series], *, title: str = "", xlabel: str = "", ylabel: str = "",
              size: tuple[int, int] = (480, 320), line_width: int = 2,
              markers: bool | None = None) -> Image.Image:
    """An RGB picture of ``size`` (width, height) with the series drawn on shared axes.

    Axes span the round ticks around the data; the legend sits in the right corner (top or
    bottom) of the plot area with fewer points. ``markers`` (default: when a series has at
    most 30 points) draws dots at the points.
    """
    width, height = size
    if width < MARGIN_LEFT + MARGIN_RIGHT + 40 or height < MARGIN_TOP + MARGIN_BOTTOM + 40:
        raise ArgumentError(f"plot size {size} is too small (at least "
                         f"{MARGIN_LEFT + MARGIN_RIGHT + 40} x {MARGIN_TOP + MARGIN_BOTTOM + 40})")
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    points = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if _valid(y) and _valid(x)]
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [p[1] for p in points] or [0.0, 1.0]
    xticks, yticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = width - MARGIN_RIGHT, height - MARGIN_BOTTOM

    def to_px(x: float, y: float) -> tuple[float, float]:
        fx = (x - xticks[0]) / (xticks[-1] - xticks[0])
        fy = (y - yticks[0]) / (yticks[-1] - yticks[0])
        return left + fx * (right - left), bottom - fy * (bottom - top)

    for ticks, vertical in ((xticks, True), (yticks, False)):
        step = ticks[1] - ticks[0]
        for value in ticks:
            if vertical:
                px = to_px(value, yticks[0])[0]
                draw.line([(px, top), (px, bottom)], fill=GRID_COLOR)
                draw.line([(px, bottom), (px, bottom + 4)], fill=AXIS_COLOR)
                text = format_tick(value, step)
                tw, _ = text_size(draw, text, 11)
                draw.text((px - tw / 2, bottom + 6), text, fill=AXIS_COLOR, font=font(11))
            else:
                py = to_px(xticks[0], value)[1]
                draw.line([(left, py), (right, py)], fill=GRID_COLOR)
                draw.line([(left - 4, py), (left, py)], fill=AXIS_COLOR)
                text = format_tick(value, step)
                tw, th = text_size(draw, text, 11)
                draw.text((left - 6 - tw, py - th / 2 - 1), text, fill=AXIS_COLOR, font=font(11))
    draw.rectangle([left, top, right, bottom], outline=AXIS_COLOR)
    if title:
        tw, _ = text_size(draw, title, 14)
        draw.text(((width - tw) / 2, 8), title, fill=AXIS_COLOR, font=font(14))
    if xlabel:
        tw, _ = text_size(draw, xlabel, 12)
        draw.text(((left + right - tw) / 2, height - 18), xlabel, fill=AXIS_COLOR, font=font(12))
    if ylabel:
        draw.text((4, top - 18), ylabel, fill=AXIS_COLOR, font=font(12))
    for i, s in enumerate(series):
        color = s.color or CATEGORICAL[i % len(CATEGORICAL)]
        segment: list[tuple[float, float]] = []
        pts = list(zip(s.xs, s.ys))
        show_markers = markers if markers is not None else len(pts) <= 30
        for x, y in [*pts, (None, None)]:
            if _valid(x) and _valid(y):
                segment.append(to_px(x, y))
                continue
            for a, b in zip(segment, segment[1:]):
                if s.dashed:
                    _dashed_line(draw, a, b, color, line_width)
                else:
                    draw.line([a, b], fill=color, width=line_width)
            if show_markers or len(segment) == 1:
                for px, py in segment:
                    draw.ellipse([px - 2.5, py - 2.5, px + 2.5, py + 2.5], fill=color)
            segment = []
    pixels = [to_px(x, y) for x, y in points]
    upper = sum(1 for px, py in pixels if px > (left + right) / 2 and py < (top + bottom) / 2)
    lower = sum(1 for px, py in pixels if px > (left + right) / 2 and py >= (top + bottom) / 2)
    _legend(draw, series, right, top if upper <= lower else None, bottom)
    return image


def _legend(draw: ImageDraw.ImageDraw, series: Sequence[Series], right: int, top: int | None,
            bottom: int) -> None:
    """The legend in the top-right corner, or the bottom-right one when ``top`` is None."""
    if not series:
        return
    rows = [(s.label, s.color or CATEGORICAL[i % len(CATEGORICAL)], s.dashed)
            for i, s in enumerate(series)]
    text_w = max(text_size(draw, label, 11)[0] for label, _, _ in rows)
    box_w, row_h = text_w + 36, 15
    box_h = row_h * len(rows) + 6
    x0, y0 = right - box_w - 6, top + 6 if top is not None else bottom - 6 - box_h
    draw.rectangle([x0, y0, x0 + box_w, y0 + box_h], fill=(255, 255, 255),
                   outline=(160, 160, 160))
    for i, (label, color, dashed) in enumerate(rows):
        y = y0 + 4 + i * row_h + row_h / 2
        if dashed:
            _dashed_line(draw, (x0 + 6, y), (x0 + 26, y), color, 2, dash=4)
        else:
            draw.line([(x0 + 6, y), (x0 + 26, y)], fill=color, width=2)
        draw.text((x0 + 31, y - 7), label, fill=AXIS_COLOR, font=font(11))


def panels(images: Sequence[Image.Image], columns: int = 2,
           background: RGB = BACKGROUND) -> Image.Image:
    """Pictures of one size tiled row by row, ``columns`` per row."""
    if not images:
        raise ArgumentError("panels needs at least one picture")
    w, h = images[0].size
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (w * columns, h * rows), background)
    for i, picture in enumerate(images):
        sheet.paste(picture, ((i % columns) * w, (i // columns) * h))
    return sheet
