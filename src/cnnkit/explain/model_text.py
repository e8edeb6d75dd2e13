"""``explain_model``: where a network's memory, parameters and multiply-adds are, as text.

Source: the decks' AlexNet and VGG16 case studies ("Most of the memory usage is in the early
convolution layers"; "Nearly all parameters are in the fully-connected layers" (AlexNet), "Most
parameters in the early fully connected layers" (VGG16); "Most floating-point ops occur in the
convolution layers"). Here each observation is computed with :func:`cnnkit.analysis.analyze`
for the given model and input, and the wording follows the figures (">= 90%": "nearly all",
"> 50%": "most"), so another model may get other conclusions. Memory is the analyzer's
activation count (outputs of every layer for one image; in-place ReLUs and views add nothing, the
input is counted apart), which is what the decks' VGG16 table adds up.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit import models
from cnnkit.analysis import analyze
from cnnkit.errors import CnnkitError
from cnnkit.explain.textutil import plural


def _kind(row) -> str:
    name = row.type.lower()
    if "conv" in name:
        return "conv"
    return "fc" if name.endswith("linear") else "other"


def _shape(shape) -> str:
    if shape and isinstance(shape[0], int):
        return "x".join(map(str, shape))
    return " ".join("x".join(map(str, s)) for s in shape)


def _si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= factor:
            return f"{value / factor:.2f}{prefix}{unit}"
    return f"{value:g}{unit}"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def _amount(share: float) -> str:
    return "nearly all" if share >= 0.9 else "most" if share > 0.5 else "only part"


def _split(rows, key: str, total: int, noun: str) -> list[str]:
    """Shares of conv and fully connected layers, the largest row and a verdict."""
    sums = {kind: sum(getattr(r, key) for r in rows if _kind(r) == kind) for kind in ("conv", "fc")}
    counts = {kind: sum(1 for r in rows if _kind(r) == kind) for kind in ("conv", "fc")}
    words = {"conv": "conv layer", "fc": "fully connected layer"}
    verbs = ("do", "does") if key == "macs" else ("hold", "holds")
    parts = [f"the {plural(counts[k], words[k])} {verbs[counts[k] == 1]} {sums[k]:,} "
             f"({_pct(sums[k], total)})" for k in ("conv", "fc") if counts[k]]
    text = "; ".join(parts)
    lines = ["  " + text[:1].upper() + text[1:] + "." if parts else "  No conv or linear layers."]
    top = max(rows, key=lambda r: getattr(r, key), default=None)
    if top is not None and getattr(top, key):
        kind = _kind(top)
        first = (f", the first {words[kind]}" if kind != "other"
                 and next(r for r in rows if _kind(r) == kind) is top else "")
        lines.append(f"  Largest: {top.name} ({top.type}, {_shape(top.output_shape)}{first}), "
                     f"{getattr(top, key):,} ({_pct(getattr(top, key), total)}).")
    if total:
        kind = max(sums, key=sums.get)
        share = sums[kind] / total
        lines.append(f"  -> {_amount(share)} {noun} {'is' if noun == 'compute' else 'are'} in the "
                     f"{words[kind]}s.")
    return lines


def _memory(rows, totals) -> list[str]:
    total = totals["activations"]
    lines = [f"Memory: {total:,} activation values = {_si(totals['activation_bytes'], 'B')} per "
             f"image, forward only (the input adds {totals['input_elements']:,}; in-place ReLUs "
             f"and views add none; training keeps them all for the backward pass)."]
    convs = [i for i, r in enumerate(rows) if _kind(r) == "conv"]
    share = {"conv": sum(r.activations for r in rows if _kind(r) == "conv"),
             "fc": sum(r.activations for r in rows if _kind(r) == "fc")}
    if not convs or not total:
        return lines + [f"  The fully connected layers output {share['fc']:,} "
                        f"({_pct(share['fc'], total)})."]
    running, first = 0, 0
    for count, stop in enumerate(convs, start=1):  # smallest prefix up to a conv holding half
        running = sum(r.activations for r in rows[:stop + 1])
        if 2 * running >= total:
            first = count
            break
    text = (f"  The {plural(len(convs), 'conv layer')} output{'s' if len(convs) == 1 else ''} "
            f"{share['conv']:,} ({_pct(share['conv'], total)})")
    if first:
        last = rows[convs[first - 1]]
        text += (f"; the first {first} of them (up to {last.name}, {_shape(last.output_shape)}, "
                 f"with the layers between) hold {running:,} ({_pct(running, total)})")
    top = max(rows, key=lambda r: r.activations)
    lines += [text + ".", f"  Largest: {top.name} ({top.type}, {_shape(top.output_shape)}), "
              f"{top.activations:,} values ({_pct(top.activations, total)})."]
    verdict = ("most of the memory is in the early conv layers, where the maps are large"
               if first and 2 * first <= len(convs) else "the memory is spread over the layers")
    return lines + [f"  -> {verdict}."]


def _input_size(input_size) -> tuple[int, ...]:
    if isinstance(input_size, int) and not isinstance(input_size, bool) and input_size > 0:
        return (3, input_size, input_size)
    if isinstance(input_size, (tuple, list)) and input_size and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size):
        return tuple(input_size)
    raise CnnkitError(f"input_size must be (C, H, W) like (3, 224, 224), or an int N for "
                      f"3xNxN; got {input_size!r}")


def explain_model(name_or_model: str | nn.Module, input_size=None) -> str:
    """Where the memory, parameters and multiply-adds of a model are, computed with
    :func:`cnnkit.analysis.analyze` (one image, float32, forward pass; the model is built on
    the meta device, so nothing is allocated). ``name_or_model``: a registered name
    (``cnnkit.models.create``) or an ``nn.Module``; ``input_size``: ``(C, H, W)`` or an int N for
    3xNxN (default for a name: the registry's input size).
    """
    if isinstance(name_or_model, str):
        try:
            info = models.get_info(name_or_model)
        except KeyError as err:
            raise CnnkitError(str(err)) from None
        with torch.device("meta"):
            model = models.create(name_or_model)
        name, size = name_or_model, _input_size(input_size or info.input_size)
    elif isinstance(name_or_model, nn.Module):
        if input_size is None:
            raise CnnkitError("input_size is required for a model object, e.g. (3, 224, 224)")
        model, name, size = name_or_model, type(name_or_model).__name__, _input_size(input_size)
    else:
        raise CnnkitError(f"name_or_model must be a model name (see `cnnkit models`) or an "
                          f"nn.Module; got {type(name_or_model).__name__}")
    report = analyze(model, size, name=name)
    rows, totals = report.layers, report.totals
    title = (f"{name} on a {'x'.join(map(str, size))} input (cnnkit analyzer: one image, float32,"
             f" forward pass)")
    params = [f"Parameters: {totals['params']:,} = {_si(totals['param_bytes'], 'B')} in float32."]
    params += _split(rows, "params", totals["params"], "parameters")
    macs = [f"Compute: {_si(totals['macs'])} multiply-adds ({totals['macs']:,}; FLOPs about 2x)."]
    macs += _split(rows, "macs", totals["macs"], "compute")
    return "\n".join([title, *_memory(rows, totals), *params, *macs])
