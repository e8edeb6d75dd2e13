"""Measure a receptive field by back-propagation, to check the analytic one.

Method (after Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks", NeurIPS 2016, who back-propagate from one output unit; here only
the support of the gradient is kept, not its profile): run the model once on the CPU in float64
with an input that requires grad, back-propagate from one output unit (the centre position of
the final output or of a named layer's output, summed over channels) and return the bounding box
of the input pixels with a non-zero gradient.

Trained or random weights can hide part of the field (a ReLU that is off, a max that picks one
input, weights that cancel), so the model runs as a positive, linear stand-in of itself, without
being changed: weights with 2+ dimensions are ``1 / fan_in``, other parameters 1, biases 0,
batch-norm statistics mean 0 and variance 1 (eval mode), the input uniform in [0.5, 1.5];
ReLU-like activations become the identity and max pooling becomes average pooling with the same
window (a depthwise all-ones convolution when dilated). Max pooling with ``return_indices`` or
dilated max pooling with ``ceil_mode`` is left as it is, and so are ops that subtract
(normalisation over positions, ``x - y``): they can make the measured field smaller.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnkit.analysis.analyzer import input_shapes
from cnnkit.analysis.costs import _arg
from cnnkit.analysis.receptive import format_value
from cnnkit.analysis.trace import tensors
from cnnkit.errors import ArgumentError, NotFoundError

IDENTITY = {"relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "hardtanh", "hardtanh_",
            "elu", "elu_", "selu", "celu", "gelu", "silu", "mish", "hardswish", "hardsigmoid",
            "prelu", "rrelu", "threshold", "threshold_"}


class _Linearised(TorchFunctionMode):
    """ReLU-like activations -> identity, max pooling -> average pooling."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in IDENTITY:
            x = args[0]
            return x if name.endswith("_") or kwargs.get("inplace") else x.clone()
        if name.startswith(("max_pool", "adaptive_max_pool")) and not _arg(
                args, kwargs, 6 if name.startswith("max") else 2, "return_indices", False):
            averaged = _average(name, args, kwargs)
            return func(*args, **kwargs) if averaged is None else averaged
        return func(*args, **kwargs)


def _average(name: str, args, kwargs):
    x = args[0]
    n = int(name[-2])
    if name.startswith("adaptive"):
        return getattr(F, f"adaptive_avg_pool{n}d")(x, _arg(args, kwargs, 1, "output_size"))
    kernel = _arg(args, kwargs, 1, "kernel_size")
    kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,) * n
    stride = _arg(args, kwargs, 2, "stride") or kernel
    padding = _arg(args, kwargs, 3, "padding", 0)
    dilation = _arg(args, kwargs, 4, "dilation", 1)
    ceil_mode = _arg(args, kwargs, 5, "ceil_mode", False)
    if dilation in (1, (1,) * n, [1] * n):
        return getattr(F, f"avg_pool{n}d")(x, kernel, stride, padding, ceil_mode, True)
    if ceil_mode:
        return None
    weight = torch.ones(x.shape[1], 1, *kernel, dtype=x.dtype) / math.prod(kernel)
    return getattr(F, f"conv{n}d")(x, weight, None, stride, padding, dilation, x.shape[1])


def _positive_stand_ins(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if name.endswith("bias"):
            value = 0.0
        elif p.dim() >= 2:
            value = 1.0 / math.prod(p.shape[1:])
        else:
            value = 1.0
        out[name] = torch.full(p.shape, value, dtype=torch.float64)
    for name, b in model.named_buffers(remove_duplicate=False):
        if name.endswith("running_mean"):
            out[name] = torch.zeros(b.shape, dtype=torch.float64)
        elif name.endswith("running_var"):
            out[name] = torch.ones(b.shape, dtype=torch.float64)
        elif b.is_floating_point():
            out[name] = b.detach().to("cpu", torch.float64) if not b.is_meta else torch.zeros(
                b.shape, dtype=torch.float64)
        else:
            out[name] = b.detach().cpu() if not b.is_meta else torch.zeros(b.shape, dtype=b.dtype)
    return out


def empirical_receptive_field(model: nn.Module, input_size, *, output="center",
                              layer: str | None = None) -> dict:
    """Bounding box of the input pixels that reach one output unit (see the module docstring).

    ``output`` is ``"center"`` (or None) or a tuple of indices along the spatial dimensions of
    the output (of ``layer``, a dotted module name, when given). Returns ``{"size", "box",
    "unit", "center"}``: ``box`` is ``[[lo, hi], ...]`` (inclusive, per spatial dimension),
    ``size`` ``hi - lo + 1`` (one number when the dimensions agree), ``unit`` the index used
    (None for a non-spatial output such as logits: all of it).
    """
    shape = input_shapes(input_size)[0]
    spatial = len(shape) - 1
    captured: list[torch.Tensor] = []
    handle = None
    if layer is not None:
        handle = _submodule(model, layer).register_forward_hook(
            lambda _m, _i, out: captured.append(out) if not captured else None)
    modes = [(m, m.training) for m in model.modules()]
    leaf = (torch.rand((1, *shape), dtype=torch.float64) + 0.5).requires_grad_()
    try:
        model.eval()
        with _Linearised():
            result = torch.func.functional_call(model, _positive_stand_ins(model), (leaf * 1.0,))
    finally:
        if handle is not None:
            handle.remove()
        for m, mode in modes:
            m.training = mode
    out = next(tensors(captured[0] if captured else result))
    if out.dim() >= spatial + 2:
        sizes = out.shape[-spatial:]
        unit = tuple(s // 2 for s in sizes) if output in (None, "center") else tuple(output)
        if len(unit) != spatial or any(not 0 <= u < s for u, s in zip(unit, sizes)):
            raise ArgumentError(f"output must be 'center' or {spatial} indices within {tuple(sizes)}; "
                             f"got {output!r}")
        target = out[(0, Ellipsis, *unit)].sum()
    else:
        unit, target = None, out[0].sum()
    target.backward()
    reached = leaf.grad[0].abs().sum(0) != 0
    bounds = []
    for d in range(spatial):
        other = tuple(i for i in range(spatial) if i != d)
        hits = reached.any(dim=other) if other else reached
        idx = hits.nonzero().flatten().tolist()
        bounds.append([idx[0], idx[-1]] if idx else [0, -1])
    return {"size": format_value([hi - lo + 1 for lo, hi in bounds]), "box": bounds,
            "unit": list(unit) if unit is not None else None,
            "center": format_value([Fraction(lo + hi, 2) for lo, hi in bounds])}


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise NotFoundError(f"{type(model).__name__} has no submodule {name!r}") from None
