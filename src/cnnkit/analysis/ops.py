"""Functional ops seen in a forward: which ones become rows, and their receptive-field rules.

Torch functions are identified by ``__name__`` (``x + y``, ``torch.add`` and ``x.add_`` are all
"add"). Every op called outside a leaf module propagates receptive fields; only the ops in
``RECORDED`` called on activations become rows (arithmetic needs two activations, so ``x * 0.5``
is no row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction

import torch

from cnnkit.analysis import receptive as R
from cnnkit.analysis.costs import POINTWISE, _arg
from cnnkit.analysis.rules import by_shape, flatten_rf, interpolate_rf, linear_rf, sizes

ALIASES = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add", "add_": "add",
    "__sub__": "sub", "__rsub__": "sub", "__isub__": "sub", "sub_": "sub", "subtract": "sub",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul", "mul_": "mul", "multiply": "mul",
    "__truediv__": "div", "__itruediv__": "div", "div_": "div", "true_divide": "div",
    "concat": "cat", "concatenate": "cat",
    "__matmul__": "matmul", "__rmatmul__": "matmul", "bmm": "matmul", "mm": "matmul",
    "relu_": "relu", "leaky_relu_": "leaky_relu", "hardtanh_": "hardtanh", "elu_": "elu",
    "dropout1d": "dropout", "dropout2d": "dropout", "dropout3d": "dropout",
    "alpha_dropout": "dropout", "feature_alpha_dropout": "dropout",
    **{f"{kind}_pool{n}d_with_indices": f"{kind}_pool{n}d"
       for kind in ("max", "adaptive_max") for n in (1, 2, 3)},
}
ARITHMETIC = {"add", "sub", "mul", "div"}
RECORDED = ARITHMETIC | POINTWISE | {
    "cat", "stack", "interpolate", "flatten", "dropout", "softmax", "log_softmax", "mean",
    "matmul", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "linear", "batch_norm", "layer_norm", "group_norm", "instance_norm",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
}
# Never return a tensor: skipped before any bookkeeping.
IGNORED = {"size", "dim", "numel", "is_contiguous", "__len__", "__bool__", "__format__",
           "__repr__", "item", "tolist", "is_floating_point", "_set_grad_enabled",
           "__setstate__", "__hash__", "stride", "storage_offset", "element_size", "data_ptr",
           "untyped_storage", "get_device", "__index__", "__int__", "__float__"}


# Return tensors that do not depend on the values of their tensor arguments: no field.
CONSTRUCTORS = {"new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "zeros_like",
                "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
                "randint_like", "zero_"}


def canonical(name: str) -> str:
    return ALIASES.get(name, name)


def is_recorded(op: str, activations: int) -> bool:
    """``activations``: how many tensor arguments carry a receptive field."""
    if op not in RECORDED or activations == 0:
        return False
    return activations >= 2 if op in ARITHMETIC else True


def _crop(rf: R.TensorRF, x: torch.Tensor, key) -> R.TensorRF | None:
    """``x[key]`` with ints, slices, None and Ellipsis; None when the key is something else."""
    items = list(key) if isinstance(key, tuple) else [key]
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in items):
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        used = sum(1 for i in items if i is not None and i is not Ellipsis)
        items[at:at + 1] = [slice(None)] * (x.dim() - used)
    items += [slice(None)] * (x.dim() - sum(1 for i in items if i is not None))
    offsets, steps, axes, src, dst = [], [], [], 0, 0
    spatial = {a: d for d, a in enumerate(rf.axes)}
    dropped = False
    for item in items:
        if item is None:
            dst += 1
            continue
        if src in spatial:
            if isinstance(item, int):
                dropped = True
            else:
                start, _, step = item.indices(x.shape[src])
                offsets.append(start)
                steps.append(step)
                axes.append(dst)
        if not isinstance(item, int):
            dst += 1
        src += 1
    if dropped:  # indexing one position keeps its field but not the axis
        return None
    return replace(R.shift(rf, offsets, steps), axes=tuple(axes))


def setitem_rf(target: torch.Tensor, key, value: torch.Tensor, rf: R.TensorRF,
               old: R.TensorRF | None) -> R.TensorRF | None:
    """``target[key] = value`` with slices on the spatial axes (e.g. one value every f positions,
    "bed of nails" unpooling): target unit ``start + step * i`` gets value unit i, a transposed
    window of one tap. None for other keys."""
    items = list(key) if isinstance(key, tuple) else [key]
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (target.dim() - len(items) + 1)
    items += [slice(None)] * (target.dim() - len(items))
    if (rf.dims is None or rf.axes is None or target.dim() != value.dim()
            or not all(isinstance(i, slice) for i in items)):
        return None
    bounds = [items[a].indices(target.shape[a]) for a in rf.axes]
    placed = R.transposed(rf, 1, [b[2] for b in bounds], [-b[0] for b in bounds])
    return placed if old is None else R.union([old, placed])


def _pad(rf: R.TensorRF, x: torch.Tensor, pad: Sequence[int]) -> R.TensorRF:
    befores = {x.dim() - 1 - i: pad[2 * i] for i in range(len(pad) // 2)}
    return R.shift(rf, [-befores.get(a, 0) for a in rf.axes])


def _permute(rf: R.TensorRF, x: torch.Tensor, name: str, args: Sequence, kwargs: dict):
    n = x.dim()
    if name == "permute":
        dims = args[1] if len(args) == 2 and isinstance(args[1], Sequence) else args[1:]
        dims = kwargs.get("dims", dims)
        order = [d % n for d in dims]
    elif name in ("transpose", "swapaxes", "swapdims"):
        a, b = (_arg(args, kwargs, 1, "dim0") % n, _arg(args, kwargs, 2, "dim1") % n)
        order = list(range(n))
        order[a], order[b] = order[b], order[a]
    else:
        return None
    return replace(rf, axes=tuple(order.index(a) for a in rf.axes))


def _spatial_rule(name: str, rf: R.TensorRF, x: torch.Tensor, args, kwargs,
                  out: torch.Tensor) -> R.TensorRF | None:
    """Rules that need the op's own arguments; None: fall back to the shape rule."""
    n = len(rf.dims)
    if name.startswith("conv_transpose"):
        weight = _arg(args, kwargs, 1, "weight")
        return R.transposed(rf, tuple(weight.shape[2:]), _arg(args, kwargs, 3, "stride", 1),
                            _arg(args, kwargs, 4, "padding", 0),
                            _arg(args, kwargs, 7, "dilation", 1))
    if name in ("conv1d", "conv2d", "conv3d"):
        kernel = tuple(_arg(args, kwargs, 1, "weight").shape[2:])
        padding = _arg(args, kwargs, 4, "padding", 0)
        dilation = _arg(args, kwargs, 5, "dilation", 1)
        if padding == "valid":
            padding = 0
        elif padding == "same":
            dils = R.per_dim(dilation, n)
            padding = tuple(int(d * (k - 1)) // 2 for k, d in zip(kernel, dils))
        return R.window(rf, kernel, _arg(args, kwargs, 3, "stride", 1), padding, dilation)
    if name.startswith(("max_pool", "avg_pool")):
        kernel = _arg(args, kwargs, 1, "kernel_size")
        stride = _arg(args, kwargs, 2, "stride") or kernel
        dilation = _arg(args, kwargs, 4, "dilation", 1) if name.startswith("max") else 1
        return R.window(rf, kernel, stride, _arg(args, kwargs, 3, "padding", 0), dilation)
    if name.startswith("adaptive_"):
        return R.adaptive(rf, sizes(x, rf), sizes(out, rf))
    if name == "interpolate":
        scale = None if _arg(args, kwargs, 5, "recompute_scale_factor") else _arg(
            args, kwargs, 2, "scale_factor")
        return interpolate_rf(rf, x, out, _arg(args, kwargs, 3, "mode", "nearest"),
                              _arg(args, kwargs, 4, "align_corners"), scale)
    if name == "linear":
        return linear_rf(rf, x)
    if name == "flatten":
        return flatten_rf(rf, x, _arg(args, kwargs, 1, "start_dim", 0),
                          _arg(args, kwargs, 2, "end_dim", -1))
    if name == "__getitem__":
        return _crop(rf, x, args[1])
    if name == "pad":
        return _pad(rf, x, _arg(args, kwargs, 1, "pad"))
    if name in ("permute", "transpose", "swapaxes", "swapdims"):
        return _permute(rf, x, name, args, kwargs)
    repeats = _arg(args, kwargs, 1, "repeats")
    if name == "repeat_interleave" and isinstance(repeats, int):
        dim = _arg(args, kwargs, 2, "dim")
        if dim is not None and dim % x.dim() in rf.axes:  # nearest upsampling along dim
            ratios = [Fraction(1, repeats) if a == dim % x.dim() else Fraction(1)
                      for a in rf.axes]
            return R.resample(rf, sizes(x, rf), ratios, [Fraction(0)] * n,
                              lambda v: [math.floor(v)])
    if name.startswith("max_unpool"):  # a value goes back somewhere in its pooling window
        kernel = _arg(args, kwargs, 2, "kernel_size")
        return R.transposed(rf, kernel, _arg(args, kwargs, 3, "stride") or kernel,
                            _arg(args, kwargs, 4, "padding", 0))
    return None


def function_rf(name: str, args: Sequence, kwargs: dict,
                pairs: Sequence[tuple[torch.Tensor, R.TensorRF]], out: torch.Tensor) -> R.TensorRF:
    """Field of ``out``, one output of op ``name`` (canonical), from its inputs' fields."""
    x, rf = pairs[0]
    if rf.dims is not None and rf.axes is not None and args and x is args[0] and (
            len(pairs) == 1 or name.startswith("max_unpool")):  # (indices carry a field too)
        result = _spatial_rule(name, rf, x, args, kwargs, out)
        if result is not None:
            return result
    return by_shape(pairs, out, name)
