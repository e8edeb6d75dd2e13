"""im2col / col2im against F.unfold / F.fold, conv as one matrix product against F.conv2d, and
gradcheck of all three (float64)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from cnnkit.errors import CnnkitError
from cnnkit.explain import col2im, conv2d_as_matmul, im2col

KERNELS = [1, 2, 3, (2, 3)]
STRIDES = [1, 2, (2, 1)]
PADDINGS = [0, 1, (1, 2)]
DILATIONS = [1, 2]
GRID = list(itertools.product(KERNELS, STRIDES, PADDINGS, DILATIONS))


def _pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("k, s, p, d", GRID)
def test_im2col_equals_unfold(k, s, p, d) -> None:
    x = torch.randn(2, 3, 7, 6)
    assert torch.equal(im2col(x, k, s, p, d), F.unfold(x, k, d, p, s))


@pytest.mark.parametrize("k, s, p, d", GRID)
def test_col2im_equals_fold(k, s, p, d) -> None:
    size = (7, 6)
    length = F.unfold(torch.zeros(1, 1, *size), k, d, p, s).shape[-1]
    kh, kw = _pair(k)
    cols = torch.randn(2, 3 * kh * kw, length, dtype=torch.float64)
    assert torch.allclose(col2im(cols, size, k, s, p, d), F.fold(cols, size, k, d, p, s))


def test_unbatched_and_pad_value() -> None:
    x = torch.randn(3, 5, 5)
    assert torch.equal(im2col(x, 3, padding=1), F.unfold(x[None], 3, padding=1)[0])
    cols = im2col(x, 2, padding=1, pad_value=float("-inf"))
    assert torch.isinf(cols).sum() > 0 and torch.equal(
        cols.nan_to_num(neginf=0.0), F.unfold(x[None], 2, padding=1)[0])
    assert torch.allclose(col2im(cols.nan_to_num(neginf=0.0), (5, 5), 2, padding=1),
                          F.fold(F.unfold(x[None], 2, padding=1), (5, 5), 2, padding=1)[0])


def test_col2im_of_im2col_counts_windows() -> None:
    ones = torch.ones(1, 1, 5, 5)
    counts = col2im(im2col(ones, 3), (5, 5), 3)[0, 0]
    assert counts[0, 0] == 1 and counts[2, 2] == 9 and counts[0, 2] == 3


CONV_CASES = [  # (C_in, C_out, groups, kernel, stride, padding, dilation)
    (3, 4, 1, 3, 1, 0, 1), (3, 4, 1, 3, 2, 1, 1), (3, 5, 1, (2, 3), (2, 1), (1, 0), 1),
    (4, 6, 2, 3, 1, 1, 2), (4, 4, 4, 3, 2, 1, 1), (6, 12, 3, 1, 1, 0, 1),
    (6, 6, 6, 5, 1, 2, 1), (2, 3, 1, 3, 3, 0, 1), (4, 8, 2, 2, 2, 0, 3),
]


@pytest.mark.parametrize("cin, cout, g, k, s, p, d", CONV_CASES)
def test_conv_as_matmul_equals_conv2d(cin, cout, g, k, s, p, d) -> None:
    x = torch.randn(2, cin, 9, 8, dtype=torch.float64)
    kh, kw = _pair(k)
    w = torch.randn(cout, cin // g, kh, kw, dtype=torch.float64)
    b = torch.randn(cout, dtype=torch.float64)
    expected = F.conv2d(x, w, b, s, p, d, g)
    assert torch.allclose(conv2d_as_matmul(x, w, b, s, p, d, g), expected)
    assert torch.allclose(conv2d_as_matmul(x[0], w, None, s, p, d, g),
                          F.conv2d(x[:1], w, None, s, p, d, g)[0])


def test_gradcheck_im2col_col2im() -> None:
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: im2col(t, 3, 2, 1, 1), (x,))
    assert gradcheck(lambda t: im2col(t, 2, 1, 0, 2), (x,))
    length = F.unfold(torch.zeros(1, 1, 5, 4), 3, 1, 1, 2).shape[-1]
    cols = torch.randn(1, 2 * 9, length, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: col2im(t, (5, 4), 3, 2, 1, 1), (cols,))


def test_gradcheck_conv_as_matmul() -> None:
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda *t: conv2d_as_matmul(*t, stride=2, padding=1, groups=2), (x, w, b))


@pytest.mark.parametrize("call, word", [
    (lambda: im2col(torch.randn(1, 1, 4, 4), 0), "kernel_size"),
    (lambda: im2col(torch.randn(1, 1, 4, 4), (3, 3, 3)), "kernel_size"),
    (lambda: im2col(torch.randn(1, 1, 4, 4), 3, padding=-1), "padding"),
    (lambda: im2col(torch.randn(4, 4), 3), "x must have 4 dimensions"),
    (lambda: im2col(torch.randn(1, 1, 2, 2), 3), "input size 2x2"),
    (lambda: col2im(torch.randn(1, 9, 5), (4, 4), 3), "cols must have shape"),
    (lambda: conv2d_as_matmul(torch.randn(1, 3, 5, 5), torch.randn(4, 2, 3, 3)), "channels"),
    (lambda: conv2d_as_matmul(torch.randn(1, 4, 5, 5), torch.randn(3, 2, 3, 3), groups=2),
     "groups"),
    (lambda: conv2d_as_matmul(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3)), "weight"),
    (lambda: conv2d_as_matmul(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3),
                              torch.randn(2)), "bias"),
])
def test_bad_arguments_raise_one_line(call, word) -> None:
    with pytest.raises(CnnkitError) as info:
        call()
    assert word in str(info.value) and "\n" not in str(info.value)
