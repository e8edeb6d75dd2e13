"""``explain_layer``: one layer's arithmetic, receptive field, im2col shapes and matrix, as text.

Sources: the decks' output-size slides ("(N - K + 2P)/S + 1"; 7x7 input, 3x3 filter: stride 1
gives 5x5, stride 2 gives 3x3, stride 3 gives 2.33: "fractions are illegal"), the transposed
convolution slides ("(W - 1)S - 2P + K"; "insert S - 1 zeros, pad with f - p - 1, convolve with
the flipped filter"; 3x3 -> 5x5 at k3 s2 p1), im2col, and the convolution matrix ``M_F``. What
differs from the decks: PyTorch floors fractional sizes instead of refusing them, and this text
says which input rows and columns are then never used. The grammar is in
:mod:`cnnkit.explain.spec`.
"""

from __future__ import annotations

from cnnkit import arith
from cnnkit.errors import CnnkitError
from cnnkit.explain.spec import LayerSpec, parse_layer
from cnnkit.explain.textutil import (
    MATRIX_MAX,
    axes,
    listing,
    matrix_lines,
    overlap,
    plural,
    taps,
)
from cnnkit.explain.transposed_text import transposed_lines


def _output_size(layer: LayerSpec, label: str, n: int, word: str) -> tuple[int, list[str]]:
    k, s, p, e = layer.kernel, layer.stride, layer.padding, layer.extent
    span = n - e + 2 * p
    if span < 0:
        raise CnnkitError(f"kernel extent {e} is larger than the padded input {n} + 2*{p} = "
                          f"{n + 2 * p}: use a larger input, more padding or a smaller kernel")
    out = arith.conv_output_size(n, k, s, p, layer.dilation, floor=True)
    head = f"  {label}({n} - {e} + 2*{p})/{s} + 1 = {span}/{s} + 1"
    if span % s == 0:
        lines = [f"{head} = {out}"]
    else:
        lines = [f"{head} = {span / s + 1:.2f}: fractions are illegal: {e}x{e} windows at stride "
                 f"{s} don't fit ({span} is not divisible by {s}).",
                 f"  PyTorch takes the floor instead: floor({span}/{s}) + 1 = {out}."]
        fixes = []
        pad = next((q for q in range(p + 1, p + s) if (n - e + 2 * q) % s == 0), None)
        if pad is not None and pad < e:
            fixes.append(f"padding {pad} (({n} - {e} + 2*{pad})/{s} + 1 = "
                         f"{(n - e + 2 * pad) // s + 1})")
        t = max(t for t in range(1, s) if span % t == 0)
        fixes.append(f"stride {t} ({span}/{t} + 1 = {span // t + 1})")
        lines.append("  To fit: " + " or ".join(fixes) + ".")
    used = taps(out, n, layer)
    end = (out - 1) * s - p + e - 1
    after = [i for i in range(n) if not used[i] and i > end]
    between = [i for i in range(n) if not used[i] and i <= end]
    if after:
        lines.append(f"  The last window ends at input index {end}: input {_some(word, after)} "
                     f"{'is' if len(after) == 1 and word != 'rows and columns' else 'are'} "
                     "never used.")
    if between:
        lines.append(f"  Input {_some(word, between)} fall between the windows' taps (stride "
                     "or dilation gaps): never used.")
    return out, lines


def _some(word: str, values: list[int]) -> str:
    """'rows and columns' + [6] -> 'row and column 6'."""
    if len(values) == 1:
        word = word.replace("rows", "row").replace("columns", "column")
    return f"{word} {listing(values)}"


def _forward(layer: LayerSpec) -> list[str]:
    k, s, p, d, e = layer.kernel, layer.stride, layer.padding, layer.dilation, layer.extent
    cin, cout, conv = layer.in_channels, layer.out_channels, layer.op == "conv"
    dil = f"; with dilation, K is K_eff = D(K - 1) + 1 = {d}*({k} - 1) + 1 = {e}" if d > 1 else ""
    lines = [f"Output size, (W - K + 2P)/S + 1 (the decks' formula{dil}):"]
    outs = []
    for label, n, word in axes(layer):
        out, text = _output_size(layer, label, n, word)
        outs.append(out)
        lines += text
    oh, ow = outs[0], outs[-1]
    lines.append(f"  So the output is {cout}x{oh}x{ow}.")
    rf = arith.receptive_field([arith.Layer(k, s, p, d)])[-1]
    block = f" across all {cin} input channels ({cin}x{e}x{e})" if conv and cin > 1 else ""
    dilated = f", of which it uses {k}x{k} = {k * k} pixels (dilation {d})" if d > 1 else ""
    lines += [f"Receptive field: one output value sees a {rf.size}x{rf.size} window of the "
              f"input{block}{dilated}.",
              f"  Neighbouring outputs are {plural(rf.jump, 'input pixel')} apart (the stride): "
              f"their windows {overlap(e, s)}. Output (0, 0) sees input rows and columns "
              f"{-p}..{e - 1 - p}, centred on {rf.start:g}"
              + (" (negative indices are padding)." if p else ".")]
    length, ckk = oh * ow, cin * k * k
    nnz = cout * (cin if conv else 1) * sum(taps(oh, layer.height, layer)) \
        * sum(taps(ow, layer.width, layer))
    if conv:
        weights, macs = cout * ckk, arith.conv_macs(cin, cout, k, oh, ow)
        lines.append(f"Cost: {cout}*{cin}*{k}*{k} = {plural(weights, 'weight')} + "
                     f"{plural(cout, 'bias')} = {arith.conv_params(cin, cout, k):,} parameters; "
                     f"{ckk} multiply-adds per output value x {plural(cout * length, 'value')} "
                     f"= {macs:,}"
                     + (f", of which {nnz:,} use real input pixels (the rest multiply padding)."
                        if nnz < macs else "."))
        lines += [f"im2col: each of the L = {oh}*{ow} = {length} windows becomes a column of "
                  f"C_in*K*K = {cin}*{k}*{k} = {ckk} values: a {ckk} x {length} matrix "
                  f"(F.unfold), {ckk * length:,} values for the input's "
                  f"{cin * layer.height * layer.width:,}.",
                  f"  The weights reshape to a {cout} x {ckk} matrix (C_out x C_in*K*K); the "
                  f"product ({cout} x {ckk}) @ ({ckk} x {length}) = {cout} x {length} is the "
                  f"output, reshaped to {cout}x{oh}x{ow}."]
    else:
        how = ("max, the padding read as -inf so it never wins" if layer.op == "maxpool"
               else "mean, the padding counted as 0 (PyTorch's count_include_pad=True)")
        lines += [f"Cost: no learnable parameters; {k * k} values compared or added per output.",
                  f"im2col: the {ckk} x {length} columns (C*K*K x L) regrouped as {cin} x {k * k}"
                  f" x {length}; the {how}, over each window's {k * k} values gives the "
                  f"{cin}x{oh}x{ow} output."]
    size = (layer.height, layer.width)
    if conv and cin == cout == 1 and max(size) <= MATRIX_MAX:
        lines.append(f"Convolution matrix M ({length} x {size[0] * size[1]}): vec(y) = M vec(x); "
                     f"the transposed convolution multiplies by M^T.")
        lines += matrix_lines(layer, size, transpose=False)
    elif conv:
        total = length * cout * cin * size[0] * size[1]
        lines.append(f"Convolution matrix M: {cout * length:,} x {cin * size[0] * size[1]:,}, "
                     f"{nnz:,} nonzeros ({100 * nnz / total:.2g}%); printed for 1 channel and "
                     f"inputs up to {MATRIX_MAX}x{MATRIX_MAX} only.")
    return lines


def explain_layer(spec: str) -> str:
    """Text for a student about one layer described by ``spec`` (e.g. ``"conv k3 s2 p1 on 7x7"``,
    grammar in :mod:`cnnkit.explain.spec`): the output-size arithmetic with the numbers in the
    decks' formula (and the "fractions are illegal" case: what PyTorch does and which input rows
    and columns are never used), the receptive field, the cost, the im2col shapes and, for one
    channel and inputs up to 8x8, the matrix M (or M^T) with the kernel's weights as letters.
    Raises a one-line :class:`CnnkitError` for a bad description.
    """
    layer = parse_layer(spec)
    what = {"conv": "convolution", "convT": "transposed convolution", "maxpool": "max pooling",
            "avgpool": "average pooling"}[layer.op]
    parts = [f"stride {layer.stride}", f"padding {layer.padding}"]
    if layer.dilation > 1:
        parts.append(f"dilation {layer.dilation}")
    if layer.output_padding:
        parts.append(f"output padding {layer.output_padding}")
    if not layer.op.endswith("pool"):
        parts.append(f"{layer.in_channels} -> {plural(layer.out_channels, 'channel')}")
    title = (f"{spec.strip()}: {layer.kernel}x{layer.kernel} {what}, {', '.join(parts)}, on a "
             f"{layer.in_channels}x{layer.height}x{layer.width} input")
    body = transposed_lines(layer) if layer.op == "convT" else _forward(layer)
    return "\n".join([title, *body])
