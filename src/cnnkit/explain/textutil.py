"""Helpers shared by the layer texts: index listings, overlap words, tap counts, matrix print."""

from __future__ import annotations

import string

import torch

from cnnkit import arith
from cnnkit.explain.matrix import conv_matrix
from cnnkit.explain.spec import LayerSpec

MATRIX_MAX = 8  # M is printed for 1 channel and sizes up to 8x8


def axes(layer: LayerSpec) -> list[tuple[str, int, str]]:
    """``(label, size, index word)`` per distinct axis: one when the input is square."""
    if layer.height == layer.width:
        return [("", layer.height, "rows and columns")]
    return [("height: ", layer.height, "rows"), ("width: ", layer.width, "columns")]


def listing(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0..2, 5' (at most 6 runs shown)."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = [f"{a}" if a == b else f"{a}..{b}" for a, b in runs[:6]]
    return ", ".join(text) + (f", ... ({len(values)} in all)" if len(runs) > 6 else "")


def overlap(extent: int, stride: int) -> str:
    if extent > stride:
        return f"overlap by {extent - stride}"
    return "touch without overlap" if extent == stride else f"skip {stride - extent} between them"


def taps(n_in: int, n_out: int, layer: LayerSpec) -> list[int]:
    """Per output index (0..n_out-1): how many (input index, kernel tap) pairs of a window at
    ``i*S - P + j*D`` land there; for a convolution n_in is its output, n_out its input."""
    counts = [0] * n_out
    for i in range(n_in):
        for j in range(layer.kernel):
            at = i * layer.stride - layer.padding + j * layer.dilation
            if 0 <= at < n_out:
                counts[at] += 1
    return counts


def _kernel_legend(k: int) -> tuple[str, list[str]]:
    symbols = (list(string.ascii_lowercase[:k * k]) if k * k <= 26
               else [str(i + 1) for i in range(k * k)])
    rows = [" ".join(symbols[r * k:(r + 1) * k]) for r in range(k)]
    return "[" + "; ".join(rows) + "]", symbols


def matrix_lines(layer: LayerSpec, size: tuple[int, int], transpose: bool) -> list[str]:
    """The convolution matrix M of ``layer`` on an input of ``size`` (or M^T), built by
    :func:`conv_matrix` from the weights 1..K*K and printed with those weights as letters."""
    legend, symbols = _kernel_legend(layer.kernel)
    weight = torch.arange(1, layer.kernel ** 2 + 1, dtype=torch.float64)
    m = conv_matrix(weight.view(1, 1, layer.kernel, layer.kernel), size, layer.stride,
                    layer.padding, layer.dilation, sparse=False).round().long()
    m = m.T if transpose else m
    out_w = size[1] if transpose else arith.conv_output_size(
        size[1], layer.kernel, layer.stride, layer.padding, layer.dilation, floor=True)
    width = max(len(s) for s in symbols)
    lines = [f"  Kernel {legend}; '.' = 0; column j is input x[j // W, j % W] (vec: row-major)."]
    for r, row in enumerate(m.tolist()):
        cells = " ".join((symbols[v - 1] if v else ".").rjust(width) for v in row)
        lines.append(f"  y[{r // out_w},{r % out_w}]".ljust(11) + cells)
    return lines


def plural(n: int, word: str) -> str:
    """``plural(1, "bias")`` -> '1 bias'; ``plural(3, "zero")`` -> '3 zeros'."""
    if n == 1:
        return f"{n} {word}"
    return f"{n:,} {word}{'es' if word.endswith(('s', 'x')) else 's'}"
