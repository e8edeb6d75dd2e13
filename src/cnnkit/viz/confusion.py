"""A confusion matrix as a heatmap with class names (rows: true class, columns: predicted)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw

from cnnkit.viz.style import AXIS_COLOR, BACKGROUND, font, sequential_color, text_size
from cnnkit.errors import ArgumentError


def _rotated_text(text: str, size: int = 11) -> Image.Image:
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    w, h = text_size(probe, text, size)
    label = Image.new("RGB", (w + 2, h + 2), BACKGROUND)
    ImageDraw.Draw(label).text((1, 0), text, fill=AXIS_COLOR, font=font(size))
    return label.rotate(90, expand=True)


def confusion_matrix_image(matrix: torch.Tensor | Sequence[Sequence[float]],
                           class_names: Sequence[str] | None = None, *, normalize: bool = True,
                           cell: int = 30, show_values: bool | None = None,
                           title: str = "confusion matrix (rows: true, columns: predicted)"
                           ) -> Image.Image:
    """RGB heatmap of a K x K matrix of counts.

    ``normalize``: colour (and print, in %) each row divided by its sum, i.e. the recall of
    each true class; otherwise the counts scaled by the largest one. ``show_values`` defaults
    to True for K <= 20. The cell of (true i, predicted j) spans ``cell`` pixels from
    ``(left + j * cell, top + i * cell)``; :func:`cell_origin` gives that corner.
    """
    counts = torch.as_tensor(matrix, dtype=torch.float64)
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1]:
        raise ArgumentError(f"confusion matrix must be K x K; got shape {tuple(counts.shape)}")
    k = counts.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ArgumentError(f"{k} x {k} confusion matrix but {len(names)} class names")
    if normalize:
        scaled = counts / counts.sum(1, keepdim=True).clamp(min=1)
    else:
        scaled = counts / counts.max().clamp(min=1)
    show_values = k <= 20 if show_values is None else show_values
    left, top = _margins(names)
    width, height = left + k * cell + 12, top + k * cell + 12
    title_w = text_size(ImageDraw.Draw(Image.new("RGB", (1, 1))), title, 12)[0]
    width = max(width, title_w + 16)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), title, fill=AXIS_COLOR, font=font(12))
    for i in range(k):
        tw, th = text_size(draw, names[i], 11)
        draw.text((left - 6 - tw, top + i * cell + (cell - th) / 2), names[i], fill=AXIS_COLOR,
                  font=font(11))
        label = _rotated_text(names[i])
        image.paste(label, (left + i * cell + (cell - label.width) // 2, top - 4 - label.height))
        for j in range(k):
            value = float(scaled[i, j])
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=sequential_color(value))
            if show_values:
                text = f"{100 * value:.0f}" if normalize else f"{int(counts[i, j])}"
                tw, th = text_size(draw, text, 10)
                draw.text((x0 + (cell - tw) / 2, y0 + (cell - th) / 2 - 1), text, font=font(10),
                          fill=(255, 255, 255) if value > 0.5 else AXIS_COLOR)
    draw.rectangle([left - 1, top - 1, left + k * cell, top + k * cell], outline=AXIS_COLOR)
    return image


def _margins(names: Sequence[str]) -> tuple[int, int]:
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    longest = max((text_size(probe, n, 11)[0] for n in names), default=0)
    return longest + 14, longest + 34


def cell_origin(class_names: Sequence[str], i: int, j: int, cell: int = 30) -> tuple[int, int]:
    """Top-left pixel of the cell (true ``i``, predicted ``j``) in the picture drawn with
    these class names and cell size."""
    left, top = _margins(class_names)
    return left + j * cell, top + i * cell
