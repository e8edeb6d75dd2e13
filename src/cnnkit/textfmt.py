"""Plain-text, Markdown and CSV tables: the one formatter every report and listing uses."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def _cells(rows: Sequence[Sequence[object]]) -> list[list[str]]:
    return [["" if v is None else str(v) for v in row] for row in rows]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
               right: Sequence[bool] | None = None) -> str:
    """Aligned columns; ``right[i]`` right-aligns column i (numbers)."""
    body = _cells(rows)
    right = list(right) if right is not None else [False] * len(headers)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in body)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                   right: Sequence[bool] | None = None) -> str:
    right = list(right) if right is not None else [False] * len(headers)
    esc = [[c.replace("|", "\\|") for c in r] for r in _cells(rows)]
    align = ["---:" if r else "---" for r in right]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def csv_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(_cells(rows))
    return buf.getvalue()


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes), for totals shown to people."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{prefix}{unit}"
    return f"{n:g}{unit}"
