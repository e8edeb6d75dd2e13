"""The transposed convolution's part of ``explain_layer``.

Sources: the decks' "Learnable Upsampling: Transposed Convolution" slides (3x3 transpose
convolution, stride 2 pad 1; "Q: Why is it called transpose convolution?" -> multiply by M^T), the
"backwards-strided convolution ... fractional input stride 1/2" slide (insert zeros, convolve with
the flipped filter), and the size formula ``(W - 1)S - 2P + K`` (+ PyTorch's output padding).
The checkerboard remark is Odena, Dumoulin & Olah, *Deconvolution and Checkerboard Artifacts*
(Distill, 2016); the decks do not make it.
"""

from __future__ import annotations

from cnnkit import arith
from cnnkit.errors import CnnkitError
from cnnkit.explain.spec import LayerSpec
from cnnkit.explain.textutil import (
    MATRIX_MAX,
    axes,
    matrix_lines,
    overlap,
    plural,
    taps,
)


def _sizes(layer: LayerSpec) -> list[str]:
    k, s, p, d, e, op = (layer.kernel, layer.stride, layer.padding, layer.dilation, layer.extent,
                         layer.output_padding)
    dil = f"; with dilation, K is K_eff = D(K - 1) + 1 = {d}*({k} - 1) + 1 = {e}" if d > 1 else ""
    lines = [f"Output size, (W - 1)S - 2P + K (+ output padding) (the decks' formula{dil}):"]
    for label, n, _ in axes(layer):
        try:
            out = arith.transposed_output_size(n, k, s, p, d, op)
        except ValueError as err:
            raise CnnkitError(f"transposed convolution k{k} s{s} p{p} on size {n}: {err}") from None
        lines.append(f"  {label}({n} - 1)*{s} - 2*{p} + {e}" + (f" + {op}" if op else "")
                     + f" = {out}")
    return lines


def transposed_lines(layer: LayerSpec) -> list[str]:
    """Output size, the convolution it transposes, the zero-insertion recipe, which inputs touch
    an output, the cost, the col2im shapes and M^T (small sizes)."""
    k, s, p, d, e, op = (layer.kernel, layer.stride, layer.padding, layer.dilation, layer.extent,
                         layer.output_padding)
    cin, cout, h, w = layer.in_channels, layer.out_channels, layer.height, layer.width
    lines = _sizes(layer)
    oh, ow = (arith.transposed_output_size(n, k, s, p, d, op) for n in (h, w))
    dil = f" d{d}" if d > 1 else ""
    lines.append(f"  So the output is {cout}x{oh}x{ow}: the transpose of conv k{k} s{s} p{p}{dil}"
                 f" on {oh}x{ow}, which gives {h}x{w}:")
    for label, n, _ in axes(layer):
        big = oh if n == h else ow
        span = big - e + 2 * p
        floor = f"{span}/{s} + 1" if span % s == 0 else f"floor({span}/{s}) + 1"
        lines.append(f"  {label}({big} - {e} + 2*{p})/{s} + 1 = {floor} = {n}")
        if s > 1:
            lines.append(f"  PyTorch floors, so that convolution maps sizes {big - op}.."
                         f"{big - op + s - 1} all to {n}: the output padding (op0..op{s - 1}) "
                         f"picks one; op{op} gives {big}.")
    spread = ((h - 1) * s + 1, (w - 1) * s + 1)
    edge = e - 1 - p
    padded = (spread[0] + 2 * edge + op, spread[1] + 2 * edge + op)
    how = (f"pad each side with D(K - 1) - P = {d}*({k} - 1) - {p} = {plural(edge, 'zero')}"
           if edge >= 0 else f"crop {-edge} from each side (D(K - 1) - P = {edge})")
    lines.append(f"Fractional input stride (the decks' recipe): insert S - 1 = "
                 f"{plural(s - 1, 'zero')} between neighbouring inputs ({h}x{w} -> "
                 f"{spread[0]}x{spread[1]}), {how}"
                 + (f", add {op} at the bottom and right" if op else "")
                 + f" (-> {padded[0]}x{padded[1]}), then convolve at stride 1 with the kernel "
                 f"rotated by 180 degrees" + (f" (dilation {d})" if d > 1 else "")
                 + f": {oh}x{ow}.")
    lines.append(f"Receptive field: each input value is spread, times the kernel, over a {e}x{e} "
                 f"window of the output; neighbouring inputs' windows are "
                 f"{plural(s, 'output pixel')} apart (the stride) and {overlap(e, s)}.")
    rows, cols = taps(h, oh, layer), taps(w, ow, layer)
    counts = sorted({a * b for a in set(rows) for b in set(cols)})
    pattern = " ".join(map(str, cols[:16])) + (" ..." if len(cols) > 16 else "")
    if len(counts) == 1:
        lines.append(f"  Going back, every output value is touched by "
                     f"{plural(counts[0], 'input')} (per axis, along a row: {pattern}): an even "
                     "overlap.")
    else:
        lines.append(f"  Going back, an output value is touched by {min(rows + cols)} to "
                     f"{max(rows + cols)} inputs per axis (along a row: {pattern}), so by "
                     f"{', '.join(map(str, counts))} inputs in all: uneven overlap, the source "
                     "of the checkerboard artifacts of transposed convolutions (Odena et al. "
                     "2016).")
    weights, macs = cin * cout * k * k, cin * h * w * cout * k * k
    nnz = cin * cout * sum(rows) * sum(cols)
    lines.append(f"Cost: {cin}*{cout}*{k}*{k} = {plural(weights, 'weight')} + "
                 f"{plural(cout, 'bias')} = {weights + cout:,} parameters; {cout * k * k} "
                 f"multiply-adds per input value x {plural(cin * h * w, 'value')} = {macs:,}"
                 + (f", of which {nnz:,} land inside the output (the rest on the cropped padding)."
                    if nnz < macs else "."))
    ckk, length = cout * k * k, h * w
    lines.append(f"im2col, backwards (col2im): the weights as a {ckk} x {cin} matrix (C_out*K*K x "
                 f"C_in) times the input as a {cin} x {length} matrix (C_in x H*W) give "
                 f"{ckk} x {length} columns, one {k}x{k} patch per input value; col2im (F.fold) "
                 f"adds the overlapping patches into the {cout}x{oh}x{ow} output"
                 + (f", dropping the padding P = {p}." if p else "."))
    if cin == cout == 1 and max(oh, ow) <= MATRIX_MAX:
        lines.append(f"M^T ({oh * ow} x {h * w}), the transpose of that convolution's matrix M "
                     f"({h * w} x {oh * ow}): vec(y) = M^T vec(x).")
        lines += matrix_lines(layer, (oh, ow), transpose=True)
    else:
        lines.append(f"M^T: {cout * oh * ow:,} x {cin * h * w:,}, {nnz:,} nonzeros; printed for "
                     f"1 channel and outputs up to {MATRIX_MAX}x{MATRIX_MAX} only.")
    return lines
