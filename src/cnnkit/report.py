"""A self-contained HTML report of a run folder (``report.html``, pictures linked relatively).

What it reads from the run folder (each part is left out when its file is absent):

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

LOWER_IS_BETTER = ("loss", "error", "err", "mae", "mse", "rmse", "distance", "nme")
GENERATED = ("curves.png", "confusion.png")
STYLE = """body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px}
td.num{text-align:right;font-family:monospace}th{background:#f2f2f2}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}figure{display:inline-block;margin:6px}
figcaption{font-size:12px;color:#555}"""


def lower_is_better(name: str) -> bool:
    """Whether smaller values of figure ``name`` are better (losses, errors, distances)."""
    base = name.split("/")[0].lower()
    return any(word in base for word in LOWER_IS_BETTER)


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


def summarize_metrics(rows: Sequence[dict[str, Any]], split: str = "val"
                      ) -> tuple[dict[str, float], dict[str, tuple[float, int]]]:
    """The figures of the last epoch of ``split`` and each figure's best (value, epoch)."""
    from cnnkit.viz.curves import epoch_curves

    curves = epoch_curves([r for r in rows if r["split"] == split])
    final, best = {}, {}
    for name, by_split in curves.items():
        xs, ys = by_split[split]
        final[name] = ys[-1]
        pairs = [(y, int(x)) for x, y in zip(xs, ys) if not math.isnan(y)]
        if pairs:
            best[name] = (min if lower_is_better(name) else max)(pairs, key=lambda p: p[0])
    return final, best


def _split_per_class(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, dict]]:
    overall, per_class = {}, {}
    for name, value in metrics.items():
        if "/" in name:
            metric, cls = name.split("/", 1)
            per_class.setdefault(cls, {})[metric] = value
        else:
            overall[name] = value
    return overall, per_class


def write_report(run_dir: str | Path, *, title: str | None = None,
                 final_metrics: dict[str, float] | None = None,
                 confusion: Sequence[Sequence[float]] | None = None,
                 class_names: Sequence[str] | None = None) -> Path:
    """Write ``run_dir/report.html`` (and ``curves.png``/``confusion.png``); returns its path.

    ``final_metrics``, ``confusion`` and ``class_names`` override what ``eval.json`` holds.
    """
    from cnnkit.viz import confusion_matrix_image, plot_training_curves, read_metrics_csv

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder not found")
    evaluation: dict[str, Any] = {}
    if (run_dir / "eval.json").is_file():
        evaluation = json.loads((run_dir / "eval.json").read_text())
    final_metrics = final_metrics if final_metrics is not None else evaluation.get("metrics")
    confusion = confusion if confusion is not None else evaluation.get("confusion")
    class_names = class_names if class_names is not None else evaluation.get("class_names")
    sections = []
    config_path = run_dir / "config.yaml"
    best: dict[str, tuple[float, int]] = {}
    if (run_dir / "metrics.csv").is_file():
        rows = read_metrics_csv(run_dir / "metrics.csv")
        last, best = summarize_metrics(rows)
        if final_metrics is None:
            final_metrics = last
        if rows:
            plot_training_curves(rows).save(run_dir / "curves.png")
    if final_metrics:
        overall, per_class = _split_per_class(final_metrics)
        table_rows = [[name, float(value), *(_best(best, name))] for name, value in overall.items()]
        sections.append("<h2>Final metrics</h2>" + _table(["metric", "final", "best", "best epoch"],
                                                          table_rows))
        if per_class:
            metrics = sorted({m for v in per_class.values() for m in v})
            sections.append("<h2>Per class</h2>" + _table(
                ["class", *metrics],
                [[cls, *(float(v.get(m, float("nan"))) for m in metrics)]
                 for cls, v in per_class.items()]))
    if (run_dir / "curves.png").is_file():
        sections.append('<h2>Training curves</h2><img src="curves.png" alt="training curves">')
    if confusion is not None:
        confusion_matrix_image(confusion, class_names).save(run_dir / "confusion.png")
    if (run_dir / "confusion.png").is_file():
        sections.append('<h2>Confusion matrix</h2><img src="confusion.png" alt="confusion matrix">')
    sections.append(_pictures(run_dir))
    if config_path.is_file():
        sections.append("<h2>Configuration</h2><p><a href=\"config.yaml\">config.yaml</a></p>"
                        f"<pre>{html.escape(config_path.read_text())}</pre>")
    title = title or run_dir.resolve().name
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(s for s in sections if s) + "\n</body></html>\n")
    out = run_dir / "report.html"
    out.write_text(page)
    return out


def _best(best: dict[str, tuple[float, int]], name: str) -> list[Any]:
    return [float(best[name][0]), best[name][1]] if name in best else ["", ""]


def _pictures(run_dir: Path) -> str:
    parts = []
    samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    if samples:
        parts.append("<h2>Sample predictions</h2>" + "".join(
            f'<figure><img src="{_link(run_dir, p)}" alt="{html.escape(p.stem)}">'
            f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in samples))
    others = [p for p in sorted(run_dir.glob("*.png")) if p.name not in GENERATED]
    if others:
        parts.append("<h2>Other figures</h2>" + "".join(
            f'<figure><img src="{_link(run_dir, p)}" alt="{html.escape(p.stem)}">'
            f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in others))
    return "\n".join(parts)
