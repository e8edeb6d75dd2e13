"""How each module and functional op maps the receptive fields of its inputs to its outputs.

Ops without a rule are handled by shape: an output with the same sizes along the spatial axes as
its inputs is elementwise (the union of their fields); one whose spatial axes were reduced away
(or to 1) sees the whole input map; anything else is unknown and noted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction

import torch
from torch import nn

from cnnkit.analysis import receptive as R


def sizes(t: torch.Tensor, rf: R.TensorRF) -> tuple[int, ...]:
    return tuple(t.shape[a] for a in rf.axes)


def _aligned(rf: R.TensorRF, src: torch.Tensor, out: torch.Tensor) -> tuple[int, ...] | None:
    """rf's spatial axes counted from the end of ``out``, if ``out`` keeps their sizes there."""
    shift = out.dim() - src.dim()
    axes = tuple(a + shift for a in rf.axes)
    if all(0 <= a < out.dim() for a in axes):
        if all(out.shape[a] == src.shape[b] or src.shape[b] == 1 for a, b in zip(axes, rf.axes)):
            return axes
    return None


def by_shape(pairs: Sequence[tuple[torch.Tensor, R.TensorRF]], out: torch.Tensor,
             op: str) -> R.TensorRF:
    """The fallback rule: elementwise, whole map, or unknown (see the module docstring).

    Inputs whose positions are already gone (``axes`` None) or that have size 1 along a spatial
    axis broadcast over the output: their field counts, their jump does not.
    """
    unknowns = [rf for _, rf in pairs if rf.dims is None]
    if unknowns:
        return unknowns[0]
    spatial = [(t, rf) for t, rf in pairs if rf.axes is not None]
    flat = [rf for _, rf in pairs if rf.axes is None]
    if not spatial:
        return R.union(flat)
    n = len(spatial[0][1].dims)
    moved, flags = [], []
    for t, rf in spatial:
        axes = _aligned(rf, t, out)
        if axes is None:
            break
        flags.append([t.shape[b] == 1 and out.shape[a] > 1 for a, b in zip(axes, rf.axes)])
        moved.append(replace(rf, axes=axes))
    else:
        return R.union(moved + flat, flags + [[True] * n for _ in flat])
    t, rf = spatial[0]
    if out.dim() < t.dim():
        keep = False
    elif out.dim() == t.dim() and all(out.shape[a] == 1 for a in rf.axes):
        keep = True
    else:
        return R.unknown(f"no receptive-field rule for {op} {tuple(t.shape)} -> {tuple(out.shape)}")
    return R.union([R.whole(r, sizes(s, r), keep) for s, r in spatial] + flat)


def _padding(module: nn.Module, n: int) -> tuple:
    pad = module.padding
    if pad == "valid":
        return (0,) * n
    if pad == "same":
        k, d = R.per_dim(module.kernel_size, n), R.per_dim(module.dilation, n)
        return tuple((dd * (kk - 1)) // 2 for kk, dd in zip(k, d))
    return pad


def module_rf(module: nn.Module, inputs: Sequence[torch.Tensor], rfs: Sequence[R.TensorRF | None],
              out: torch.Tensor) -> R.TensorRF | None:
    pairs = [(t, rf) for t, rf in zip(inputs, rfs) if rf is not None]
    if not pairs:
        return None
    x, rf = pairs[0]
    if rf.dims is None or rf.axes is None:
        return by_shape(pairs, out, type(module).__name__)
    n = len(rf.dims)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return R.transposed(rf, module.kernel_size, module.stride, module.padding, module.dilation)
    if isinstance(module, nn.modules.conv._ConvNd):
        return R.window(rf, module.kernel_size, module.stride, _padding(module, n), module.dilation)
    window = getattr(module, "receptive_window", None)
    if callable(window):  # a layer that states its window: (kernel, stride, padding before)
        kernel, stride, padding = window()
        return R.window(rf, kernel, stride, padding)
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
                           nn.AvgPool3d, nn.LPPool1d, nn.LPPool2d)):
        stride = module.stride or module.kernel_size
        return R.window(rf, module.kernel_size, stride, getattr(module, "padding", 0),
                        getattr(module, "dilation", 1))
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd,
                           nn.modules.pooling._AdaptiveMaxPoolNd)):
        return R.adaptive(rf, sizes(x, rf), sizes(out, rf))
    if isinstance(module, nn.Upsample):
        scale = None if module.recompute_scale_factor else module.scale_factor
        return interpolate_rf(rf, x, out, module.mode, module.align_corners, scale)
    if isinstance(module, (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d)):
        # a value goes back to some position of its pooling window: a transposed window
        return R.transposed(rf, module.kernel_size, module.stride, module.padding)
    if isinstance(module, (nn.Linear, nn.Bilinear)):
        return linear_rf(rf, x)
    if isinstance(module, nn.Flatten):
        return flatten_rf(rf, x, module.start_dim, module.end_dim)
    return by_shape(pairs, out, type(module).__name__)


def linear_rf(rf: R.TensorRF, x: torch.Tensor) -> R.TensorRF:
    """A linear layer mixes its last axis: a spatial one there means the whole map."""
    if rf.axes is not None and x.dim() - 1 in rf.axes:
        return R.whole(rf, sizes(x, rf), False)
    return rf


def flatten_rf(rf: R.TensorRF, x: torch.Tensor, start: int, end: int) -> R.TensorRF:
    if rf.axes is None or rf.dims is None:
        return rf
    start, end = start % max(x.dim(), 1), end % max(x.dim(), 1)
    if not any(start <= a <= end for a in rf.axes) or start == end:
        shrink = end - start
        return replace(rf, axes=tuple(a - shrink if a > end else a for a in rf.axes))
    return R.whole(rf, sizes(x, rf), False)


def _linear_taps(x: Fraction) -> list[int]:
    i = math.floor(x)
    return [i] if x == i else [i, i + 1]


def _cubic_taps(x: Fraction) -> list[int]:
    i = math.floor(x)
    return [i] if x == i else [i - 1, i, i + 1, i + 2]


TAPS = {"nearest": lambda x: [math.floor(x)],
        "nearest-exact": lambda x: [math.floor(x + Fraction(1, 2))],
        "linear": _linear_taps, "bilinear": _linear_taps, "trilinear": _linear_taps,
        "bicubic": _cubic_taps}


def interpolate_rf(rf: R.TensorRF, x: torch.Tensor, out: torch.Tensor, mode: str,
                   align_corners: bool | None, scale_factor=None) -> R.TensorRF:
    """PyTorch's sampling: output o reads ``(o + 1/2) * r - 1/2`` (``o * r`` for "nearest" and
    align_corners), r = 1/scale_factor when given, else in/out; inputs with a zero weight (an
    exact hit) are not in the field."""
    n_in, n_out = sizes(x, rf), sizes(out, rf)
    if mode == "area":
        return R.adaptive(rf, n_in, n_out)
    if mode not in TAPS:
        return R.unknown(f"no receptive-field rule for interpolation mode {mode!r}")
    scales = R.per_dim(scale_factor, len(n_in)) if scale_factor is not None else None
    ratios = []
    for d, (i, o) in enumerate(zip(n_in, n_out)):
        if align_corners:
            ratios.append(Fraction(i - 1, o - 1) if o > 1 else Fraction(0))
        elif scales is not None and float(scales[d]).is_integer():
            ratios.append(Fraction(1, int(scales[d])))
        else:
            ratios.append(Fraction(i, o))
    offset = Fraction(0) if mode == "nearest" or align_corners else Fraction(1, 2)
    return R.resample(rf, n_in, ratios, [offset] * len(n_in), TAPS[mode])
