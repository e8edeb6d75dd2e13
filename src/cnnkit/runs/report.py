"""A self-contained HTML report of a run folder (``report.html``, pictures linked relatively).

What it reads from the run folder (:class:`~cnnkit.runs.folder.RunFolder`; each part is left
out when its file is absent):

- ``config.yaml``: the resolved configuration, shown as written;
- ``metrics.csv`` (``epoch,step,split,name,value``): drawn as ``curves.png``; the figures of the
  last validation epoch make the final-metrics table (with the best epoch of each), and
  figures named ``metric/class`` (e.g. ``iou/Road``) the per-class table;
- ``eval.json`` (optional): ``{"metrics": {name: value}, "confusion": K x K counts,
  "class_names": [...]}``: its metrics replace the last validation epoch's; a confusion matrix
  is drawn as ``confusion.png`` (an existing ``confusion.png`` is linked as it is);
- PNG pictures in ``samples/`` (sample predictions) and other PNGs at the top of the folder.

The page has no scripts and no external resources, so it opens from the folder in a browser.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cnnkit.errors import CnnkitError
from cnnkit.runs.folder import RunFolder
from cnnkit.tasks.base import metric_and_class

Direction = Callable[[str], bool]  # figure name -> whether higher is better (Task's)
PerClass = Callable[[str], "tuple[str, str] | None"]  # figure -> (metric, class) (Task's)
STYLE = """body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px}
td.num{text-align:right;font-family:monospace}th{background:#f2f2f2}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}figure{display:inline-block;margin:6px}
figcaption{font-size:12px;color:#555}"""


def _loss_lower(name: str) -> bool:
    """Without a task only losses are known to improve downwards."""
    return name.split("/")[0] != "loss"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return html.escape(str(value))


def _link(run_dir: Path, path: Path) -> str:
    return quote(path.relative_to(run_dir).as_posix())


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_fmt(v)}</td>' if isinstance(v, (int, float)) else f"<td>{_fmt(v)}</td>"
        for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def summarize_metrics(rows: Sequence[dict[str, Any]], split: str = "val",
                      higher_is_better: Direction = _loss_lower
                      ) -> tuple[dict[str, float], dict[str, tuple[float, int]]]:
    """The figures of the last epoch of ``split`` and each figure's best (value, epoch), in
    the direction the task gives (:meth:`cnnkit.tasks.Task.higher_is_better_for`)."""
    from cnnkit.viz.curves import epoch_curves

    curves = epoch_curves([r for r in rows if r["split"] == split])
    final, best = {}, {}
    for name, by_split in curves.items():
        xs, ys = by_split[split]
        final[name] = ys[-1]
        pairs = [(y, int(x)) for x, y in zip(xs, ys) if not math.isnan(y)]
        if pairs:
            best[name] = (max if higher_is_better(name) else min)(pairs, key=lambda p: p[0])
    return final, best


def _split_per_class(metrics: dict[str, float], per_class: PerClass = metric_and_class
                     ) -> tuple[dict[str, float], dict[str, dict]]:
    overall: dict[str, float] = {}
    by_class: dict[str, dict] = {}
    for name, value in metrics.items():
        parts = per_class(name)
        if parts is None:
            overall[name] = value
        else:
            by_class.setdefault(parts[1], {})[parts[0]] = value
    return overall, by_class


def write_report(run_dir: str | Path | RunFolder, *, title: str | None = None,
                 final_metrics: dict[str, float] | None = None,
                 confusion: Sequence[Sequence[float]] | None = None,
                 class_names: Sequence[str] | None = None,
                 higher_is_better: Direction = _loss_lower,
                 primary_metric: str | None = None, per_class: PerClass | None = None) -> Path:
    """Write the run's ``report.html`` (and ``curves.png``/``confusion.png``); returns its path.

    ``final_metrics``, ``confusion`` and ``class_names`` override what ``eval.json`` holds;
    ``higher_is_better`` is the task's direction of each figure (for the "best" column);
    ``primary_metric`` gets the first curve after the loss; ``per_class`` says which figures
    are per class (the task's :meth:`~cnnkit.tasks.Task.per_class`; default: ``metric/class``).
    """
    from cnnkit.viz import (
        confusion_matrix_image,
        plot_training_curves,
        read_metrics_csv,
    )

    folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    run_dir = folder.path
    if not run_dir.is_dir():
        raise CnnkitError(f"{run_dir}: run folder not found")
    evaluation: dict[str, Any] = {}
    if folder.evaluation().is_file():
        evaluation = json.loads(folder.evaluation().read_text())
    final_metrics = final_metrics if final_metrics is not None else evaluation.get("metrics")
    confusion = confusion if confusion is not None else evaluation.get("confusion")
    class_names = class_names if class_names is not None else evaluation.get("class_names")
    sections = []
    config_path = folder.config
    best: dict[str, tuple[float, int]] = {}
    if folder.metrics.is_file():
        rows = read_metrics_csv(folder.metrics)
        last, best = summarize_metrics(rows, higher_is_better=higher_is_better)
        if final_metrics is None:
            final_metrics = last
        if rows:
            plot_training_curves(rows, first=[primary_metric] if primary_metric else ()).save(
                folder.curves)
    if final_metrics:
        overall, by_class = _split_per_class(final_metrics, per_class or metric_and_class)
        table_rows = [[name, float(value), *(_best(best, name))] for name, value in overall.items()]
        sections.append("<h2>Final metrics</h2>" + _table(["metric", "final", "best", "best epoch"],
                                                          table_rows))
        if by_class:
            metrics = sorted({m for v in by_class.values() for m in v})
            sections.append("<h2>Per class</h2>" + _table(
                ["class", *metrics],
                [[cls, *(float(v.get(m, float("nan"))) for m in metrics)]
                 for cls, v in by_class.items()]))
    if folder.curves.is_file():
        sections.append(f'<h2>Training curves</h2><img src="{folder.CURVES}" '
                        'alt="training curves">')
    if confusion is not None:
        confusion_matrix_image(confusion, class_names).save(folder.confusion)
    if folder.confusion.is_file():
        sections.append(f'<h2>Confusion matrix</h2><img src="{folder.CONFUSION}" '
                        'alt="confusion matrix">')
    sections.append(_pictures(folder))
    if config_path.is_file():
        sections.append(f'<h2>Configuration</h2><p><a href="{folder.CONFIG}">{folder.CONFIG}'
                        f"</a></p><pre>{html.escape(config_path.read_text())}</pre>")
    title = title or run_dir.resolve().name
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(s for s in sections if s) + "\n</body></html>\n")
    folder.report.write_text(page)
    return folder.report


def _best(best: dict[str, tuple[float, int]], name: str) -> list[Any]:
    return [float(best[name][0]), best[name][1]] if name in best else ["", ""]


def _pictures(folder: RunFolder) -> str:
    run_dir, parts = folder.path, []
    samples = sorted(folder.samples.glob("*.png")) if folder.samples.is_dir() else []
    if samples:
        parts.append("<h2>Sample predictions</h2>" + "".join(
            f'<figure><img src="{_link(run_dir, p)}" alt="{html.escape(p.stem)}">'
            f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in samples))
    seen = sorted(folder.seen.glob("*.png")) if folder.seen.is_dir() else []
    if seen:
        parts.append("<h2>What the network sees</h2>" + "".join(
            f'<figure><img src="{_link(run_dir, p)}" alt="{html.escape(p.stem)}">'
            f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in seen))
    others = [p for p in sorted(run_dir.glob("*.png"))
              if p.name not in (folder.CURVES, folder.CONFUSION)]
    if others:
        parts.append("<h2>Other figures</h2>" + "".join(
            f'<figure><img src="{_link(run_dir, p)}" alt="{html.escape(p.stem)}">'
            f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in others))
    return "\n".join(parts)
