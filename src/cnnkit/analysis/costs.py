"""MACs and FLOPs per layer type, with one stated convention (see docs/analyzer.md).

- MACs count multiply-accumulates of layers that are sums of products: convolution (grouped,
  depthwise, dilated): ``output elements x (C_in / groups x kernel area)``; transposed
  convolution, counted by *input* positions: ``input elements x (C_out / groups x kernel
  area)``; linear: ``in_features x out_features x rows``; locally connected: like convolution.
  Biases add no MAC. FLOPs of these layers are ``2 x MACs``.
- Every other layer has 0 MACs and FLOPs per element: batch norm (inference, folds into a
  scale and a shift) 2; layer/group/instance norm 6 (+2 with an affine transform); local
  response norm of size n ``2n + 3``; any pointwise activation 1; softmax 3; max pooling
  ``window - 1`` comparisons and average pooling ``window`` (adds and one divide) per output;
  add/sub/mul/div of activations 1 per output element (in place or not); mean over positions 1
  per input element; interpolation ``2 x taps`` (nearest 0, linear 4 in 2-D, cubic 32 in 2-D);
  concat, flatten, dropout, identity, padding, reshapes 0.
- A module of another library (or of cnnkit's own layers and operators) states its cost itself
  with a method ``analysis_cost(inputs, outputs) -> (MACs, FLOPs)``; the analyzer never needs to
  know its type. (Locally connected layers: like convolution, with their own weights.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU,
               nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish,
               nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink,
               nn.Threshold, nn.Hardshrink, nn.Softshrink)
SOFTMAXES = (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d)
FREE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
        nn.Flatten, nn.Unflatten, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle,
        nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
        nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
        nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d, nn.CircularPad1d,
        nn.CircularPad2d, nn.CircularPad3d, nn.Embedding, nn.MaxUnpool1d, nn.MaxUnpool2d,
        nn.MaxUnpool3d)
STAT_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
INTERP_TAPS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "bicubic": 4,
               "trilinear": 2, "area": 0}

Cost = tuple[int, int]  # (MACs, FLOPs)


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _multiply_add(macs: int) -> Cost:
    return macs, 2 * macs


def _window_total(in_sizes: Sequence[int], out_sizes: Sequence[int]) -> int:
    """Sum over the output positions of an adaptive pool of their window sizes."""
    total = 1
    for n_in, n_out in zip(in_sizes, out_sizes):
        total *= sum(-(-(i + 1) * n_in // n_out) - (i * n_in // n_out) for i in range(n_out))
    return total


def pool_cost(kind: str, kernel: Sequence[int], out_shape: Sequence[int]) -> Cost:
    area = math.prod(kernel)
    per_output = area - 1 if kind == "max" else area
    return 0, per_output * _numel(out_shape)


def adaptive_cost(kind: str, in_shape: Sequence[int], out_shape: Sequence[int], n: int) -> Cost:
    windows = _window_total(in_shape[-n:], out_shape[-n:]) * _numel(out_shape[:-n])
    outputs = _numel(out_shape)
    return 0, windows - outputs if kind == "max" else windows


def interp_cost(mode: str, in_shape: Sequence[int], out_shape: Sequence[int]) -> Cost:
    n = len(out_shape) - 2
    if mode == "area":
        return adaptive_cost("avg", in_shape, out_shape, n)
    taps = INTERP_TAPS.get(mode, 2) ** n
    return 0, 0 if taps == 1 else 2 * taps * _numel(out_shape)


def _tuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, Sequence) else (value,) * n


def module_cost(module: nn.Module, inputs: Sequence[torch.Tensor],
                outputs: Sequence[torch.Tensor]) -> Cost | None:
    """(MACs, FLOPs) of one call of a leaf module, or None for a type without a convention."""
    own = getattr(module, "analysis_cost", None)
    if callable(own):
        macs, flops = own(inputs, outputs)
        return int(macs), int(flops)
    out = tuple(outputs[0].shape) if outputs else ()
    x = tuple(inputs[0].shape) if inputs else ()
    out_elements = sum(_numel(o.shape) for o in outputs)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return _multiply_add(_numel(x) * _numel(module.weight.shape[1:]))
    if isinstance(module, nn.modules.conv._ConvNd):
        return _multiply_add(_numel(out) * _numel(module.weight.shape[1:]))
    if isinstance(module, nn.Linear):
        return _multiply_add(_numel(x) // module.in_features * module.in_features
                             * module.out_features)
    if isinstance(module, nn.Bilinear):
        rows = _numel(x) // module.in1_features
        return _multiply_add(rows * module.in1_features * module.in2_features
                             * module.out_features)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return 0, 2 * out_elements
    if isinstance(module, STAT_NORMS):
        affine = getattr(module, "elementwise_affine", getattr(module, "affine", False))
        return 0, (8 if affine else 6) * out_elements
    if isinstance(module, nn.LocalResponseNorm):
        return 0, (2 * module.size + 3) * out_elements
    if isinstance(module, ACTIVATIONS):
        return 0, out_elements
    if isinstance(module, SOFTMAXES):
        return 0, 3 * out_elements
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return pool_cost("max", _tuple(module.kernel_size, len(out) - 2), out)
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return pool_cost("avg", _tuple(module.kernel_size, len(out) - 2), out)
    if isinstance(module, nn.modules.pooling._AdaptiveMaxPoolNd):
        return adaptive_cost("max", x, out, len(out) - 2)
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd):
        return adaptive_cost("avg", x, out, len(out) - 2)
    if isinstance(module, nn.Upsample):
        return interp_cost(module.mode, x, out)
    if isinstance(module, FREE):
        return 0, 0
    return None


KNOWN = (nn.modules.conv._ConvNd, nn.Linear, nn.Bilinear,
         nn.modules.batchnorm._BatchNorm, *STAT_NORMS, nn.LocalResponseNorm, *ACTIVATIONS,
         *SOFTMAXES, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
         nn.AvgPool3d, nn.modules.pooling._AdaptiveMaxPoolNd,
         nn.modules.pooling._AdaptiveAvgPoolNd, nn.Upsample, *FREE)


def is_known(module: nn.Module) -> bool:
    """A leaf type with its own cost and receptive-field rule; other leaf modules are costed
    and traced through the torch functions their forward calls."""
    return isinstance(module, KNOWN) or callable(getattr(module, "analysis_cost", None))


def _arg(args: Sequence, kwargs: dict, index: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


# Functions that move or select data without arithmetic (0 FLOPs).
ZERO_COST = {"view", "reshape", "permute", "transpose", "swapaxes", "swapdims", "movedim",
             "contiguous", "flatten", "unflatten", "squeeze", "unsqueeze", "__getitem__",
             "__setitem__", "pad", "cat", "stack", "chunk", "split", "unbind", "narrow",
             "expand", "expand_as", "repeat", "repeat_interleave", "clone", "dropout",
             "max_unpool1d", "max_unpool2d", "max_unpool3d", "pixel_shuffle",
             "pixel_unshuffle", "channel_shuffle", "new_zeros", "zeros_like", "ones_like",
             "empty_like", "copy_", "fill_", "zero_", "index_select", "gather", "roll", "flip",
             "select", "t", "T", "mT", "__get__", "detach", "to", "float", "half", "double",
             "type", "type_as", "requires_grad_", "__setitem__"}
ELEMENTWISE = {"add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_", "__iadd__",
               "__isub__", "__imul__", "__itruediv__", "__radd__", "__rsub__", "__rmul__",
               "__add__", "__sub__", "__mul__", "__truediv__", "true_divide"}
POINTWISE = {"relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "gelu", "silu", "mish",
             "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "elu",
             "elu_", "selu", "celu", "softplus", "prelu"}


def function_cost(op: str, args: Sequence, kwargs: dict, out: tuple[int, ...]) -> Cost:
    """(MACs, FLOPs) of a recorded functional op (``op`` as listed in ``trace.RECORDED``)."""
    x = args[0] if args else None
    x_shape = tuple(x.shape) if isinstance(x, torch.Tensor) else ()
    n = len(out) - 2
    if op in ("conv1d", "conv2d", "conv3d"):
        return _multiply_add(_numel(out) * _numel(_arg(args, kwargs, 1, "weight").shape[1:]))
    if op.startswith("conv_transpose"):
        return _multiply_add(_numel(x_shape) * _numel(_arg(args, kwargs, 1, "weight").shape[1:]))
    if op == "linear":
        weight = _arg(args, kwargs, 1, "weight")
        return _multiply_add(_numel(out) * weight.shape[-1])
    if op == "matmul":
        return _multiply_add(_numel(out) * x_shape[-1])
    if op in ELEMENTWISE or op in POINTWISE:
        return 0, _numel(out)
    if op in ("softmax", "log_softmax"):
        return 0, 3 * _numel(out)
    if op == "batch_norm":
        return 0, 2 * _numel(out)
    if op in ("layer_norm", "group_norm", "instance_norm"):
        weight = _arg(args, kwargs, {"layer_norm": 2, "group_norm": 2}.get(op, 3), "weight")
        return 0, (6 if weight is None else 8) * _numel(out)
    if op == "mean":
        return 0, _numel(x_shape)
    if op.startswith(("max_pool", "avg_pool")):
        kernel = _tuple(_arg(args, kwargs, 1, "kernel_size"), n)
        return pool_cost("max" if op.startswith("max") else "avg", kernel, out)
    if op.startswith("adaptive_"):
        return adaptive_cost("max" if "max" in op else "avg", x_shape, out, n)
    if op == "interpolate":
        return interp_cost(_arg(args, kwargs, 3, "mode", "nearest"), x_shape, out)
    return 0, 0
