"""Convolution as one matrix product, the convolution matrix M, and the transposed convolution.

Sources: the decks' "Convolution as Matrix Multiplication" slides (a 1-D kernel ``[x y z]`` at
stride 2, pad 1 as a 2 x 6 matrix; the 4 x 16 matrix ``M_F`` of a 3x3 filter on a 4x4 input) and
their transposed convolution: "convolution transpose multiplies by the transpose of the same
matrix", equivalently "convolution with fractional input stride 1/2": insert ``S - 1`` zeros
between the inputs, pad with ``D(K-1) - P`` and convolve with the flipped filter (Long et al.,
FCN, 2015; Dumoulin & Visin 2016). Differences from PyTorch: ``F.conv2d`` and
``F.conv_transpose2d`` never build ``M``; here it is built explicitly (dense, or sparse when big),
which costs memory but shows the mechanism.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit import arith
from cnnkit.errors import CnnkitError
from cnnkit.explain.im2col import batched, im2col, output_hw, pair

DENSE_LIMIT = 1 << 22  # entries of M (16 MiB in float32) above which conv_matrix goes sparse


def _weight(weight, groups) -> tuple[int, int, int, int]:
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise CnnkitError(f"weight must be a 4-D tensor (C_out, C_in/groups, kh, kw); got {shape}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1 \
            or weight.shape[0] % groups:
        raise CnnkitError(f"groups must be a positive int dividing C_out={weight.shape[0]}; "
                          f"got {groups!r}")
    return tuple(weight.shape)  # type: ignore[return-value]


def _check_channels(found: int, weight_channels: int, groups: int, name: str) -> None:
    if found != weight_channels * groups:
        raise CnnkitError(f"{name} has {found} channels; the weight expects "
                          f"{weight_channels} x groups={groups} = {weight_channels * groups}")


def _check_bias(bias, channels: int) -> None:
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (channels,)):
        raise CnnkitError(f"bias must be a tensor of shape ({channels},) or None; got "
                          f"{tuple(bias.shape) if isinstance(bias, torch.Tensor) else bias!r}")


def conv2d_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride=1, padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` as ONE (batched) matrix product: weights ``(g, C_out/g, C_in/g*kh*kw)`` times
    the :func:`im2col` columns ``(N, g, C_in/g*kh*kw, L)``.

    The decks: "we're still doing matrix multiplications, just localized & shared": each column is
    one receptive field, each weight row one filter. Groups (and depthwise, ``groups = C_in``)
    split the columns' rows into ``g`` blocks, one product per block, batched in one ``matmul``.
    """
    c_out, c_group, kh, kw = _weight(weight, groups)
    x4, added = batched(x, "x", 4)
    n, c, h, w = x4.shape
    _check_channels(c, c_group, groups, "x")
    _check_bias(bias, c_out)
    s, p, d = pair(stride, "stride"), pair(padding, "padding", 0), pair(dilation, "dilation")
    oh, ow = output_hw((h, w), (kh, kw), s, p, d)
    cols = im2col(x4, (kh, kw), s, p, d).reshape(n, groups, c_group * kh * kw, oh * ow)
    weights = weight.reshape(groups, c_out // groups, c_group * kh * kw)
    out = torch.matmul(weights, cols).reshape(n, c_out, oh, ow)  # the one product
    if bias is not None:
        out = out + bias.view(1, c_out, 1, 1)
    return out[0] if added else out


def conv_matrix(weight: torch.Tensor, input_size, stride=1, padding=0, dilation=1,
                sparse: bool | None = None, groups: int = 1) -> torch.Tensor:
    """The convolution matrix ``M``: ``(C_out*H_out*W_out) x (C_in*H*W)``.

    ``M @ x.flatten()`` is ``F.conv2d(x[None], weight, ...)`` flattened (row-major ``vec``, as in
    the decks' ``vec(S) = M_F vec(X)``); ``M.T @ y.flatten()`` is the transposed convolution and
    the gradient of the convolution with respect to its input. Row ``(o, i, j)`` holds the filter
    ``o`` placed at window ``(i, j)``; entries that fall on the padding are dropped (the padding is
    zero). Built without loops from broadcast index tensors; differentiable in ``weight`` (dense).
    ``sparse=None`` gives a dense matrix up to ``DENSE_LIMIT`` entries, a coalesced sparse COO
    matrix above; ``True``/``False`` force one.
    """
    c_out, c_group, kh, kw = _weight(weight, groups)
    h, w = pair(input_size, "input_size")
    s, p, d = pair(stride, "stride"), pair(padding, "padding", 0), pair(dilation, "dilation")
    if sparse is not None and not isinstance(sparse, bool):
        raise CnnkitError(f"sparse must be True, False or None (automatic); got {sparse!r}")
    oh, ow = output_hw((h, w), (kh, kw), s, p, d)

    def axis(n: int) -> torch.Tensor:  # arange(n) placed on its own axis of six
        return torch.arange(n, device=weight.device)

    o = axis(c_out).view(-1, 1, 1, 1, 1, 1)
    c = axis(c_group).view(1, -1, 1, 1, 1, 1)
    ki, kj = axis(kh).view(1, 1, -1, 1, 1, 1), axis(kw).view(1, 1, 1, -1, 1, 1)
    oi, oj = axis(oh).view(1, 1, 1, 1, -1, 1), axis(ow).view(1, 1, 1, 1, 1, -1)
    r = oi * s[0] - p[0] + ki * d[0]  # input row of each (kernel element, output position)
    q = oj * s[1] - p[1] + kj * d[1]
    channel = (o // (c_out // groups)) * c_group + c  # input channel: the group's block
    shape = (c_out, c_group, kh, kw, oh, ow)
    valid = ((r >= 0) & (r < h) & (q >= 0) & (q < w)).expand(shape)
    rows = ((o * oh + oi) * ow + oj).expand(shape)[valid]
    cols = ((channel * h + r) * w + q).expand(shape)[valid]
    values = weight[:, :, :, :, None, None].expand(shape)[valid]
    size = (c_out * oh * ow, c_group * groups * h * w)
    if sparse or (sparse is None and size[0] * size[1] > DENSE_LIMIT):
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, size,
                                       check_invariants=True).coalesce()
    return weight.new_zeros(size).index_put((rows, cols), values)


def _transposed_size(y_hw, kernel, s, p, d, op) -> tuple[int, int]:
    for axis in range(2):
        if op[axis] >= s[axis]:
            raise CnnkitError(
                f"output_padding must be < stride ({s[axis]}) here; got {op[axis]} (PyTorch also "
                f"allows < dilation, but that output is no longer M^T of a convolution)")
    try:
        return tuple(arith.transposed_output_size(n, k, st, pd, dl, o)  # type: ignore[return-value]
                     for n, k, st, pd, dl, o in zip(y_hw, kernel, s, p, d, op))
    except ValueError as err:
        raise CnnkitError(f"transposed convolution of a {y_hw[0]}x{y_hw[1]} input: {err}") from None


def transposed_conv_as_matmul(y: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor | None = None, stride=1, padding=0,
                              output_padding=0, groups: int = 1, dilation=1,
                              sparse: bool | None = None) -> torch.Tensor:
    """``F.conv_transpose2d(y, weight, ...)`` (same arguments, same order) as ``M^T @ vec(y)``.

    ``M`` is :func:`conv_matrix` of the convolution with the same ``weight`` (``C_in_T x
    C_out_T/g x kh x kw``, PyTorch's transposed layout, is the convolution's ``C_out x C_in/g``)
    on the transposed convolution's output size ``(H-1)S - 2P + D(K-1) + 1 + output_padding``.
    The decks: "convolution transpose multiplies by the transpose of the same matrix".
    ``output_padding`` (< stride) picks among the input sizes that the convolution maps to the same
    output size ("fractions are illegal": PyTorch floors, so 5x5 and 6x6 both give 3x3 at k3 s2 p1).
    """
    c_in, c_group, kh, kw = _weight(weight, groups)
    y4, added = batched(y, "y", 4)
    n, c, h, w = y4.shape
    _check_channels(c, c_in // groups, groups, "y")
    _check_bias(bias, c_group * groups)
    s, p, d = pair(stride, "stride"), pair(padding, "padding", 0), pair(dilation, "dilation")
    size = _transposed_size((h, w), (kh, kw), s, p, d, pair(output_padding, "output_padding", 0))
    m = conv_matrix(weight, size, s, p, d, sparse=sparse, groups=groups)
    flat = y4.reshape(n, -1).T  # (C*h*w, N): one column per image
    out = (torch.sparse.mm(m.t(), flat) if m.is_sparse else m.T @ flat).T
    out = out.reshape(n, c_group * groups, *size)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out[0] if added else out


def transposed_conv_by_zero_insertion(y: torch.Tensor, weight: torch.Tensor,
                                      bias: torch.Tensor | None = None, stride=1, padding=0,
                                      output_padding=0, groups: int = 1,
                                      dilation=1) -> torch.Tensor:
    """``F.conv_transpose2d`` by the decks' recipe ("convolution with fractional input stride"):
    insert ``S - 1`` zeros between neighbouring inputs, pad every side with ``D(K-1) - P`` zeros
    (plus ``output_padding`` at the bottom/right; a negative amount crops), then convolve at stride
    1 with the filter rotated by 180 degrees and its in/out channels swapped (per group).
    """
    c_in, c_group, kh, kw = _weight(weight, groups)
    y4, added = batched(y, "y", 4)
    n, c, h, w = y4.shape
    _check_channels(c, c_in // groups, groups, "y")
    s, p, d = pair(stride, "stride"), pair(padding, "padding", 0), pair(dilation, "dilation")
    op = pair(output_padding, "output_padding", 0)
    _transposed_size((h, w), (kh, kw), s, p, d, op)  # validates
    spread = y4.new_zeros(n, c, (h - 1) * s[0] + 1, (w - 1) * s[1] + 1)
    spread[:, :, ::s[0], ::s[1]] = y4
    edge = (d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1])
    spread = F.pad(spread, (edge[1], edge[1] + op[1], edge[0], edge[0] + op[0]))
    flipped = (weight.flip(-1, -2).reshape(groups, c_in // groups, c_group, kh, kw)
               .transpose(1, 2).reshape(groups * c_group, c_in // groups, kh, kw))
    out = conv2d_as_matmul(spread, flipped, bias, 1, 0, d, groups)
    return out[0] if added else out
