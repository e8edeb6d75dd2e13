"""Pooling, batch normalization and true convolution written out plainly.

Sources: the decks' pooling slides (``H' = (H - K)/S + 1``, "learnable parameters: none"), their
"Batch Normalization for ConvNets" slide (``x: N x C x H x W``, ``mu, sigma: 1 x C x 1 x 1``,
``y = (x - mu)/sigma * gamma + beta``; Ioffe & Szegedy 2015) and the convolution vs
cross-correlation distinction (the decks' formula ``S_lm = sum_ij X_{l+i-1,m+j-1} F_ij`` is a
cross-correlation, which is what ``F.conv2d`` computes). Each function equals its PyTorch
counterpart; what is not supported is named in its docstring.
"""

from __future__ import annotations

import torch

from cnnkit.errors import CnnkitError
from cnnkit.explain.im2col import batched, im2col, output_hw, pair
from cnnkit.explain.matrix import conv2d_as_matmul


def _windows(x, kernel_size, stride, padding, dilation, pad_value, what):
    """``(N, C, K, H_out, W_out)``: the pooling windows of every channel, via :func:`im2col`."""
    x4, added = batched(x, "x", 4)
    if not x4.is_floating_point():
        raise CnnkitError(f"x must be a floating-point tensor for {what}; got {x4.dtype}")
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p, d = pair(padding, "padding", 0), pair(dilation, "dilation")
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise CnnkitError(f"padding must be at most half the kernel size {k} for {what} "
                          f"(as in PyTorch: padding <= kernel_size // 2); got {p}")
    n, c, h, w = x4.shape
    oh, ow = output_hw((h, w), k, s, p, d)
    cols = im2col(x4, k, s, p, d, pad_value=pad_value)  # (N, C*K, L)
    return cols.reshape(n, c, k[0] * k[1], oh, ow), added


def max_pool2d_plain(x: torch.Tensor, kernel_size, stride=None, padding=0,
                     dilation=1) -> torch.Tensor:
    """``F.max_pool2d`` as the maximum of each :func:`im2col` window; the padding is ``-inf`` so
    it never wins. ``stride`` defaults to ``kernel_size``; no ``ceil_mode``, no indices."""
    windows, added = _windows(x, kernel_size, stride, padding, dilation, float("-inf"),
                              "max pooling")
    out = windows.amax(dim=2)
    return out[0] if added else out


def avg_pool2d_plain(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    """``F.avg_pool2d`` (defaults: ``count_include_pad=True``) as the mean of each window; the
    zero padding counts in the divisor ``kh*kw``. No ``ceil_mode``, no ``divisor_override``."""
    windows, added = _windows(x, kernel_size, stride, padding, 1, 0.0, "average pooling")
    out = windows.mean(dim=2)
    return out[0] if added else out


def _per_channel(t, name: str, channels: int) -> None:
    if t is not None and (not isinstance(t, torch.Tensor) or t.shape != (channels,)):
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else t
        raise CnnkitError(f"{name} must be a tensor of shape ({channels},) or None; got {shape!r}")


def batch_norm_plain(x: torch.Tensor, running_mean: torch.Tensor | None,
                     running_var: torch.Tensor | None, weight: torch.Tensor | None = None,
                     bias: torch.Tensor | None = None, training: bool = False,
                     momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """``F.batch_norm`` with the decks' statistics of shape ``1 x C x 1 x 1`` (one mean and
    variance per channel, over the batch and all positions; any ``N x C x ...`` input).

    Training: normalise with the batch mean and the *biased* variance (divide by ``n``, the values
    per channel) and update the running statistics in place,
    ``running = (1 - momentum) * running + momentum * batch``, with the *unbiased* variance
    (divide by ``n - 1``), as PyTorch does. Evaluation: normalise with the running statistics.
    ``momentum=None`` (PyTorch's cumulative average) is not supported.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise CnnkitError(f"x must be a tensor N x C x ...; got "
                          f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _per_channel(t, name, c)
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) \
            or not 0 <= momentum <= 1:
        raise CnnkitError(f"momentum must be a number in [0, 1]; got {momentum!r}")
    shape = (1, c) + (1,) * (x.dim() - 2)  # the decks' 1 x C x 1 x 1
    dims = [0] + list(range(2, x.dim()))
    if training:
        n = x.numel() // c
        if n < 2:
            raise CnnkitError(f"training batch norm needs more than 1 value per channel; x has "
                              f"shape {tuple(x.shape)}")
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)  # biased: divide by n
        with torch.no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(momentum * mean.reshape(c))
            if running_var is not None:
                running_var.mul_(1 - momentum).add_(momentum * var.reshape(c) * n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise CnnkitError("running_mean and running_var are required when training=False")
        mean, var = running_mean.view(shape), running_var.view(shape)
    out = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out


def convolve2d(x: torch.Tensor, kernel: torch.Tensor, padding=0) -> torch.Tensor:
    """True (signal-processing) convolution: ``(x * k)[i, j] = sum_uv x[i - u, j - v] k[u, v]``,
    i.e. cross-correlation with the kernel rotated by 180 degrees.

    Note: what deep-learning libraries and the decks call convolution (``F.conv2d``, the decks'
    ``S_lm = sum_ij X_{l+i-1, m+j-1} F_ij``) does not flip the kernel: it is a cross-correlation.
    For learned filters this does not matter (the network learns the flipped filter); it does for a
    given, asymmetric kernel (a Sobel or shift filter), and it is why the transposed convolution is
    a convolution with the flipped filter. ``x`` and ``kernel`` are 2-D (one image, one kernel;
    the result is 2-D) or ``N x C_in x H x W`` and ``C_out x C_in x kh x kw``. ``padding=K-1``
    gives the "full" convolution of signal processing; the default 0 is its "valid" part.
    """
    if isinstance(x, torch.Tensor) and isinstance(kernel, torch.Tensor) \
            and x.dim() == 2 and kernel.dim() == 2:
        return conv2d_as_matmul(x[None, None], kernel.flip(-1, -2)[None, None],
                                padding=padding)[0, 0]
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 4:
        shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else kernel
        raise CnnkitError(f"kernel must be 2-D (with a 2-D x) or C_out x C_in x kh x kw; got "
                          f"{shape!r}")
    return conv2d_as_matmul(x, kernel.flip(-1, -2), padding=padding)
