"""im2col and col2im written with index arithmetic: the decks' "convolution as matrix product".

The lecture decks (CS231n-style "im2col"/"col2im" slides; Dumoulin & Visin, *A guide to
convolution arithmetic for deep learning*, 2016) show a convolution as a product of the weights
with a matrix whose columns are the input patches. Here the patches are read with one
``index_select`` over a precomputed index tensor (built with ``arange`` and broadcasting, no loop)
and written back by ``col2im`` with one ``index_add``: the same numbers as PyTorch's
``F.unfold`` / ``F.fold``, which do this in C++. Differences: the index tensors are rebuilt on each
call (PyTorch's kernels compute them on the fly) and the padded input is materialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit import arith
from cnnkit.errors import CnnkitError

Pair = tuple[int, int]


def pair(value, name: str, minimum: int = 1) -> Pair:
    """``3 -> (3, 3)``; ``(3, 5)`` kept; anything else raises a one-line :class:`CnnkitError`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                    for v in value)):
        return (value[0], value[1])
    raise CnnkitError(f"{name} must be an int >= {minimum} or a pair of them; got {value!r}")


def output_hw(size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """``(N - K_eff + 2P) // S + 1`` per axis (:func:`cnnkit.arith.conv_output_size`, floored as
    PyTorch does)."""
    try:
        return tuple(arith.conv_output_size(n, k, s, p, d, floor=True)  # type: ignore[return-value]
                     for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    except ValueError as err:
        raise CnnkitError(f"input size {size[0]}x{size[1]} does not take kernel {kernel[0]}x"
                          f"{kernel[1]} (dilation {dilation}, padding {padding}): {err}") from None


def window_index(size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
                 device=None) -> tuple[torch.Tensor, Pair]:
    """Flat indices into the *padded* ``H+2P x W+2P`` image of every window element.

    Returns ``(index, (H_out, W_out))`` with ``index`` of shape ``(kh*kw, H_out*W_out)``: row
    ``ki*kw + kj`` (the kernel element), column ``oi*W_out + oj`` (the output position), value
    ``(oi*S + ki*D) * W_padded + (oj*S + kj*D)``. The layout of ``F.unfold``'s columns.
    """
    out = output_hw(size, kernel, stride, padding, dilation)
    width = size[1] + 2 * padding[1]
    rows = (torch.arange(kernel[0], device=device)[:, None] * dilation[0]
            + torch.arange(out[0], device=device)[None, :] * stride[0])  # (kh, H_out)
    cols = (torch.arange(kernel[1], device=device)[:, None] * dilation[1]
            + torch.arange(out[1], device=device)[None, :] * stride[1])  # (kw, W_out)
    index = rows[:, None, :, None] * width + cols[None, :, None, :]  # (kh, kw, H_out, W_out)
    return index.reshape(kernel[0] * kernel[1], out[0] * out[1]), out


def batched(x, name: str, dims: int) -> tuple[torch.Tensor, bool]:
    """``x`` with a batch dimension (added when it has ``dims - 1`` dimensions) and whether one
    was added."""
    if not isinstance(x, torch.Tensor):
        raise CnnkitError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() == dims:
        return x, False
    if x.dim() == dims - 1:
        return x.unsqueeze(0), True
    raise CnnkitError(f"{name} must have {dims} dimensions (or {dims - 1} without the batch); "
                      f"got shape {tuple(x.shape)}")


def im2col(x: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1, *,
           pad_value: float = 0.0) -> torch.Tensor:
    """The patches of ``x`` as columns: ``(N, C, H, W) -> (N, C*kh*kw, L)``, ``L = H_out*W_out``.

    Equal to ``F.unfold(x, kernel_size, dilation, padding, stride)`` (also for an unbatched
    ``(C, H, W)`` input, giving ``(C*kh*kw, L)``). Row ``c*kh*kw + ki*kw + kj`` holds input channel
    ``c`` at kernel position ``(ki, kj)`` of every window. ``pad_value`` fills the padding (0 as in
    ``F.unfold``; ``-inf`` for max pooling); differentiable (the backward of ``index_select`` is
    ``index_add``, i.e. :func:`col2im`).
    """
    x4, added = batched(x, "x", 4)
    k = pair(kernel_size, "kernel_size")
    s, p, d = pair(stride, "stride"), pair(padding, "padding", 0), pair(dilation, "dilation")
    n, c, h, w = x4.shape
    index, _ = window_index((h, w), k, s, p, d, device=x4.device)
    padded = F.pad(x4, (p[1], p[1], p[0], p[0]), value=pad_value) if any(p) else x4
    cols = padded.reshape(n, c, -1).index_select(2, index.flatten())  # (N, C, K*L)
    cols = cols.reshape(n, c * index.shape[0], index.shape[1])
    return cols[0] if added else cols


def col2im(cols: torch.Tensor, output_size, kernel_size, stride=1, padding=0,
           dilation=1) -> torch.Tensor:
    """Sum the columns back into an image: ``(N, C*kh*kw, L) -> (N, C, H, W)``.

    Equal to ``F.fold(cols, output_size, kernel_size, dilation, padding, stride)``: where windows
    overlap their values are added (so ``col2im(im2col(x))`` is ``x`` times the number of windows
    covering each pixel, not ``x``); padding positions are dropped. It is the adjoint of
    :func:`im2col`, and the core of the transposed convolution.
    """
    cols3, added = batched(cols, "cols", 3)
    size, k = pair(output_size, "output_size"), pair(kernel_size, "kernel_size")
    s, p, d = pair(stride, "stride"), pair(padding, "padding", 0), pair(dilation, "dilation")
    index, out = window_index(size, k, s, p, d, device=cols3.device)
    area, length = index.shape
    n, rows, found = cols3.shape
    if found != length or rows % area:
        raise CnnkitError(
            f"cols must have shape (N, C*{k[0]}*{k[1]}, {length}) for output_size {size[0]}x"
            f"{size[1]} ({out[0]}x{out[1]} windows); got {tuple(cols.shape)}")
    c = rows // area
    hp, wp = size[0] + 2 * p[0], size[1] + 2 * p[1]
    image = cols3.new_zeros(n, c, hp * wp).index_add(2, index.flatten(),
                                                     cols3.reshape(n, c, area * length))
    image = image.reshape(n, c, hp, wp)[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]
    return image[0] if added else image
