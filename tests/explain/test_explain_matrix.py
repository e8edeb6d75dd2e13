"""The convolution matrix M: M vec(x) is the convolution, M^T vec(y) the transposed convolution
and the input gradient; sparse and dense agree; the decks' 4x16 examples; the transposed
convolution as M^T and as the decks' zero-insertion recipe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.explain import (
    conv_matrix,
    transposed_conv_as_matmul,
    transposed_conv_by_zero_insertion,
)

CASES = [  # (C_in, C_out, groups, H, W, kernel, stride, padding, dilation)
    (1, 1, 1, 4, 4, 3, 1, 0, 1), (1, 1, 1, 5, 5, 3, 2, 1, 1), (1, 1, 1, 7, 7, 3, 3, 0, 1),
    (2, 3, 1, 6, 5, 3, 2, 1, 1), (3, 2, 1, 8, 7, 2, 2, 0, 1), (2, 2, 1, 9, 9, 3, 1, 2, 2),
    (4, 6, 2, 6, 6, 3, 2, 1, 1), (3, 3, 3, 5, 6, 3, 1, 1, 1), (2, 4, 1, 8, 8, 5, 3, 2, 1),
]


def _output_padding(size: int, out: int, k: int, s: int, p: int, d: int) -> int:
    return size - ((out - 1) * s - 2 * p + d * (k - 1) + 1)


@pytest.mark.parametrize("cin, cout, g, h, w, k, s, p, d", CASES)
@pytest.mark.parametrize("sparse", [False, True])
def test_m_and_its_transpose(cin, cout, g, h, w, k, s, p, d, sparse) -> None:
    weight = torch.randn(cout, cin // g, k, k, dtype=torch.float64)
    x = torch.randn(cin, h, w, dtype=torch.float64, requires_grad=True)
    m = conv_matrix(weight, (h, w), s, p, d, sparse=sparse, groups=g)
    assert m.is_sparse == sparse
    y = F.conv2d(x[None], weight, None, s, p, d, g)[0]
    assert m.shape == (y.numel(), x.numel())
    assert torch.allclose(m @ x.detach().flatten(), y.detach().flatten())
    # M^T is the transposed convolution back to the input size ...
    upstream = torch.randn_like(y)
    op = tuple(_output_padding(n, o, k, s, p, d) for n, o in zip((h, w), y.shape[1:]))
    back = F.conv_transpose2d(upstream[None], weight, None, s, p, op, g, d)[0]
    mt_y = (m.t() @ upstream.flatten()).reshape(cin, h, w)
    assert torch.allclose(mt_y, back)
    # ... and the gradient of the convolution with respect to its input
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert torch.allclose(mt_y, grad)


def test_sparse_and_dense_agree_and_the_threshold() -> None:
    weight = torch.randn(4, 4, 3, 3)
    dense = conv_matrix(weight, (12, 12), 1, 1, sparse=False)
    assert torch.equal(conv_matrix(weight, (12, 12), 1, 1, sparse=True).to_dense(), dense)
    assert not conv_matrix(weight, (12, 12), 1, 1).is_sparse  # 576 x 576: small, dense
    big = conv_matrix(weight, (40, 40), 1, 1)  # 6,400 x 6,400 > 2**22 entries: sparse
    assert big.is_sparse and big._nnz() == 4 * 4 * (3 * 40 - 2) ** 2
    x = torch.randn(4, 40, 40)
    assert torch.allclose(big @ x.flatten(), F.conv2d(x[None], weight, padding=1).flatten(),
                          atol=1e-4)


def test_the_decks_4x16_matrices() -> None:
    # 3x3 filter F11..F33 on a 4x4 input, stride 1, no padding: rows of M_F as in the deck
    f = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    m = conv_matrix(f, (4, 4)).long().tolist()
    assert m[0] == [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0]
    assert m[3] == [0, 0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9]
    # 2x2 filter at stride 2
    f2 = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    m2 = conv_matrix(f2, (4, 4), stride=2).long().tolist()
    assert m2[0] == [1, 2, 0, 0, 3, 4] + [0] * 10
    assert m2[3] == [0] * 10 + [1, 2, 0, 0, 3, 4]
    # the deck's 1-D example, kernel [x y z] = [1 2 3], stride 2, pad 1 on 4 inputs:
    # rows [y z 0 0] and [x y z 0] once the padding columns are dropped
    m1 = conv_matrix(torch.tensor([[[[1.0, 2.0, 3.0]]]]), (1, 4), stride=(1, 2),
                     padding=(0, 1)).long().tolist()
    assert m1 == [[2, 3, 0, 0], [0, 1, 2, 3]]


def test_m_is_differentiable_in_the_weight() -> None:
    weight = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 5, 5, dtype=torch.float64)
    (conv_matrix(weight, (5, 5), padding=1) @ x.flatten()).sum().backward()
    w2 = weight.detach().clone().requires_grad_()
    F.conv2d(x[None], w2, padding=1).sum().backward()
    assert torch.allclose(weight.grad, w2.grad)


TRANSPOSED = [  # (C_in_T, C_out_T, groups, h, w, kernel, stride, padding, output_padding, dilation)
    (1, 1, 1, 3, 3, 3, 2, 1, 0, 1), (1, 1, 1, 3, 3, 3, 2, 1, 1, 1), (2, 3, 1, 4, 3, 4, 2, 1, 0, 1),
    (2, 2, 1, 2, 2, 2, 2, 0, 0, 1), (4, 6, 2, 3, 4, 3, 3, 1, 2, 1), (3, 3, 3, 5, 5, 3, 1, 1, 0, 1),
    (2, 2, 1, 4, 4, 3, 2, 0, 1, 2), (1, 2, 1, 6, 7, 3, 1, 3, 0, 1),
]


@pytest.mark.parametrize("cin, cout, g, h, w, k, s, p, op, d", TRANSPOSED)
def test_transposed_convolution(cin, cout, g, h, w, k, s, p, op, d) -> None:
    y = torch.randn(2, cin, h, w, dtype=torch.float64)
    weight = torch.randn(cin, cout // g, k, k, dtype=torch.float64)
    bias = torch.randn(cout, dtype=torch.float64)
    expected = F.conv_transpose2d(y, weight, bias, s, p, op, g, d)
    for sparse in (False, True):
        got = transposed_conv_as_matmul(y, weight, bias, s, p, op, g, d, sparse=sparse)
        assert torch.allclose(got, expected)
    assert torch.allclose(transposed_conv_by_zero_insertion(y, weight, bias, s, p, op, g, d),
                          expected)
    assert torch.allclose(transposed_conv_by_zero_insertion(y[0], weight, bias, s, p, op, g, d),
                          expected[0])


def test_the_decks_3x3_to_5x5_upsampling() -> None:
    # conv 5x5 -> 3x3 (k3 s2 p1); its transpose takes 3x3 back to 5x5 (zeros inserted -> 5x5,
    # padded by f - p - 1 = 1 -> 7x7, convolved with the flipped filter)
    y = torch.randn(1, 1, 3, 3)
    w = torch.randn(1, 1, 3, 3)
    up = transposed_conv_as_matmul(y, w, stride=2, padding=1)
    assert up.shape == (1, 1, 5, 5)
    assert torch.allclose(up, F.conv_transpose2d(y, w, stride=2, padding=1), atol=1e-6)


@pytest.mark.parametrize("call, word", [
    (lambda: conv_matrix(torch.randn(1, 1, 3, 3), (5, 5), sparse="yes"), "sparse"),
    (lambda: conv_matrix(torch.randn(1, 1, 3, 3), (2, 2)), "input size 2x2"),
    (lambda: conv_matrix(torch.randn(1, 1, 3, 3), 0), "input_size"),
    (lambda: conv_matrix(torch.randn(3, 1, 3, 3), (5, 5), groups=2), "groups"),
    (lambda: transposed_conv_as_matmul(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 3, 3),
                                       stride=2, output_padding=2), "output_padding"),
    (lambda: transposed_conv_as_matmul(torch.randn(1, 2, 3, 3), torch.randn(1, 1, 3, 3)),
     "channels"),
    (lambda: transposed_conv_as_matmul(torch.randn(1, 1, 3, 3), torch.randn(1, 2, 3, 3),
                                       torch.randn(1)), "bias"),
])
def test_bad_arguments_raise_one_line(call, word) -> None:
    with pytest.raises(CnnkitError) as info:
        call()
    assert word in str(info.value) and "\n" not in str(info.value)
