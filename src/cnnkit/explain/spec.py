"""The small grammar of :func:`cnnkit.explain.explain_layer`'s layer descriptions.

::

    SPEC  := OP TOKEN* "on" SIZE            (words separated by spaces; tokens in any order)
    OP    := conv | convT | maxpool | avgpool   (case-insensitive)
    TOKEN := k<K>          kernel size K x K (required)
           | s<S>          stride (default 1; for pooling the kernel size, as in PyTorch)
           | p<P>          zero padding on every side (default 0)
           | d<D>          dilation (default 1; not for avgpool)
           | op<O>         output padding, convT only (default 0, must be < S)
           | c<IN>-><OUT>  channels (default c1->1; IN = OUT for pooling)
    SIZE  := <H>x<W> | <N>  the input's height and width (N: N x N)

Examples: ``conv k3 s2 p1 on 7x7``, ``convT k3 s2 p1 on 3x3``, ``conv k3 d2 c3->8 on 9x9``,
``maxpool k3 s2 on 55x55``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cnnkit.errors import CnnkitError

GRAMMAR = ("conv|convT|maxpool|avgpool k<K> [s<S>] [p<P>] [d<D>] [op<O> (convT)] "
           "[c<IN>-><OUT>] on <H>x<W>")
OPS = {"conv": "conv", "convt": "convT", "maxpool": "maxpool", "avgpool": "avgpool"}
TOKENS = {"k": r"k(\d+)", "s": r"s(\d+)", "p": r"p(\d+)", "d": r"d(\d+)", "op": r"op(\d+)",
          "c": r"c(\d+)->(\d+)"}
MEANING = {"k": "kernel size", "s": "stride", "p": "padding", "d": "dilation",
           "op": "output padding", "c": "channels"}


@dataclass(frozen=True)
class LayerSpec:
    """One parsed description; sizes are ints, ``op`` one of conv, convT, maxpool, avgpool."""

    op: str
    kernel: int
    stride: int
    padding: int
    dilation: int
    output_padding: int
    in_channels: int
    out_channels: int
    height: int
    width: int

    @property
    def extent(self) -> int:
        """``K_eff = D(K - 1) + 1``, the span of the dilated kernel."""
        return self.dilation * (self.kernel - 1) + 1


def _fail(spec: str, token: str, why: str = "bad token") -> CnnkitError:
    return CnnkitError(f"{why} {token!r} in layer spec {spec!r}; expected {GRAMMAR}, "
                       f"e.g. 'conv k3 s2 p1 on 7x7'")


def parse_layer(spec: str) -> LayerSpec:
    """Parse ``spec`` (grammar in the module docstring); a one-line :class:`CnnkitError` names
    the bad token and the valid form."""
    if not isinstance(spec, str) or not spec.split():
        raise CnnkitError(f"layer spec must be a non-empty string like 'conv k3 s2 p1 on 7x7' "
                          f"({GRAMMAR}); got {spec!r}")
    words = spec.split()
    op = OPS.get(words[0].lower())
    if op is None:
        raise _fail(spec, words[0], "bad layer type")
    if len(words) < 3 or words[-2].lower() != "on":
        raise _fail(spec, words[-1], "missing 'on <H>x<W>' at the end, near")
    size = re.fullmatch(r"(\d+)(?:x(\d+))?", words[-1].lower())
    if size is None:
        raise _fail(spec, words[-1], "bad input size")
    values: dict[str, tuple[int, ...]] = {}
    for word in words[1:-2]:
        found = [(key, m) for key, pattern in TOKENS.items()
                 if (m := re.fullmatch(pattern, word.lower()))]
        if not found:
            raise _fail(spec, word)
        key, match = found[0]
        if key in values:
            raise _fail(spec, word, f"repeated {MEANING[key]}")
        if key == "op" and op != "convT":
            raise _fail(spec, word, "output padding is for convT only:")
        if key == "d" and op == "avgpool":
            raise _fail(spec, word, "avgpool has no dilation:")
        numbers = tuple(int(g) for g in match.groups())
        if key not in ("p", "op") and min(numbers) < 1:
            raise _fail(spec, word, f"{MEANING[key]} must be >= 1:")
        if key == "c" and op.endswith("pool") and numbers[0] != numbers[1]:
            raise _fail(spec, word, "pooling keeps the channels (use c<C>-><C>):")
        values[key] = numbers
    if "k" not in values:
        raise _fail(spec, spec, "missing kernel size k<K> in")
    h = int(size.group(1))
    w = int(size.group(2)) if size.group(2) else h
    if min(h, w) < 1:
        raise _fail(spec, words[-1], "input size must be >= 1:")
    kernel = values["k"][0]
    stride = values.get("s", (kernel if op.endswith("pool") else 1,))[0]
    channels = values.get("c", (1, 1))
    out_pad = values.get("op", (0,))[0]
    if out_pad >= stride:
        raise _fail(spec, f"op{out_pad}", f"output padding must be < stride {stride}:")
    return LayerSpec(op, kernel, stride, values.get("p", (0,))[0], values.get("d", (1,))[0],
                     out_pad, channels[0], channels[1], h, w)
