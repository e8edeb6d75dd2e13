"""Training curves from a run's ``metrics.csv`` (long format: epoch, step, split, name, value).

Figures are averaged per epoch and split. Train figures logged *during* epoch e (the CSV's
epoch counts completed epochs, so they carry e, from 0) are drawn at x = e + 1, the end of that
epoch, where the validation figures computed after it (epoch e + 1) are drawn.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from cnnkit.errors import ArgumentError
from cnnkit.viz.plots import Series, line_plot, panels
from cnnkit.viz.style import CATEGORICAL

Curves = dict[str, dict[str, tuple[list[float], list[float]]]]
SPLIT_STYLE = {"train": (CATEGORICAL[0], False), "val": (CATEGORICAL[1], True)}


def read_metrics_csv(path: str | Path) -> list[dict[str, object]]:
    """Rows of ``metrics.csv`` as dicts with int epoch/step and float value."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"{path}: metrics file not found")
    rows = []
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), 2):
            try:
                rows.append({"epoch": int(row["epoch"]), "step": int(row["step"]),
                             "split": row["split"], "name": row["name"],
                             "value": float(row["value"])})
            except (KeyError, TypeError, ValueError):
                raise ArgumentError(f"{path}:{number}: expected columns epoch, step, split, name, "
                                 f"value; got {row}") from None
    return rows


def epoch_curves(rows: Sequence[dict[str, object]]) -> Curves:
    """``{name: {split: (epochs, means)}}`` with the train shift of the module docstring."""
    sums: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for row in rows:
        sums[(str(row["name"]), str(row["split"]), int(row["epoch"]))].append(float(row["value"]))
    first_epoch: dict[str, int] = {}
    for name, split, epoch in sums:
        first_epoch[split] = min(epoch, first_epoch.get(split, epoch))
    curves: Curves = defaultdict(dict)
    for (name, split, epoch) in sorted(sums, key=lambda k: (k[0], k[1], k[2])):
        values = [v for v in sums[(name, split, epoch)] if math.isfinite(v)]
        shift = 1 if split == "train" and first_epoch.get("train") == 0 else 0
        xs, ys = curves[name].setdefault(split, ([], []))
        xs.append(float(epoch + shift))
        ys.append(sum(values) / len(values) if values else float("nan"))
    return dict(curves)


def curve_names(curves: Curves, limit: int = 6, first: Sequence[str] = ()) -> list[str]:
    """The figures worth a panel: the loss, then ``first`` (e.g. the task's primary metric),
    then the others without a per-class ``/``."""
    wanted = [n for n in first if n in curves]
    names = [n for n in curves if "/" not in n and n not in wanted]
    names.sort(key=lambda n: (n != "loss", not n.startswith("loss"), n))
    return (names[:1] + wanted + names[1:] if names[:1] == ["loss"] else wanted + names)[:limit]


def plot_training_curves(metrics: str | Path | Sequence[dict[str, object]],
                         names: Sequence[str] | None = None, *, first: Sequence[str] = (),
                         columns: int = 2,
                         panel_size: tuple[int, int] = (420, 280)) -> Image.Image:
    """One panel per figure (train solid, val dashed) against the epoch, tiled ``columns``
    wide. ``metrics``: a ``metrics.csv`` path or its rows; ``names``: the figures to draw
    (default: :func:`curve_names`, with ``first`` drawn right after the loss)."""
    rows = read_metrics_csv(metrics) if isinstance(metrics, (str, Path)) else metrics
    curves = epoch_curves(rows)
    names = list(names) if names is not None else curve_names(curves, first=first)
    missing = [n for n in names if n not in curves]
    if missing:
        raise ArgumentError(f"no figures named {', '.join(missing)} in the metrics; they have "
                         f"{', '.join(sorted(curves)) or 'none'}")
    pictures = []
    for name in names:
        series = []
        for i, (split, (xs, ys)) in enumerate(sorted(curves[name].items(),
                                                     key=lambda kv: kv[0] != "train")):
            color, dashed = SPLIT_STYLE.get(split, (CATEGORICAL[(i + 2) % 10], False))
            series.append(Series(split, xs, ys, color=color, dashed=dashed))
        pictures.append(line_plot(series, title=name, xlabel="epoch", size=panel_size))
    if not pictures:
        pictures.append(line_plot([], title="no figures logged", xlabel="epoch", size=panel_size))
    return panels(pictures, columns)
