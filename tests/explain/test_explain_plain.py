"""Pooling and batch normalization written plainly, against PyTorch; true convolution vs
cross-correlation (the kernel flip)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.explain import (
    avg_pool2d_plain,
    batch_norm_plain,
    convolve2d,
    max_pool2d_plain,
)

POOLS = [(k, s, p) for k, s, p in itertools.product([1, 2, 3, (2, 3)], [None, 1, 2, (1, 2)],
                                                     [0, 1, (1, 0)])
         if all(pp <= kk // 2 for pp, kk in zip(*(((v, v) if isinstance(v, int) else v)
                                                 for v in (p, k))))]


@pytest.mark.parametrize("k, s, p", POOLS)
def test_pooling_equals_pytorch(k, s, p) -> None:
    x = torch.randn(2, 3, 7, 6) - 3  # mostly negative: a zero-padded max would differ
    assert torch.equal(max_pool2d_plain(x, k, s, p), F.max_pool2d(x, k, s, p))
    assert torch.allclose(avg_pool2d_plain(x, k, s, p), F.avg_pool2d(x, k, s, p), atol=1e-6)


@pytest.mark.parametrize("k, s, p, d", [(3, 1, 1, 2), (2, 2, 1, 2), (3, 2, 0, 3)])
def test_dilated_max_pooling(k, s, p, d) -> None:
    x = torch.randn(1, 2, 9, 8)
    assert torch.equal(max_pool2d_plain(x, k, s, p, d), F.max_pool2d(x, k, s, p, d))
    assert torch.equal(max_pool2d_plain(x[0], k, s, p, d), F.max_pool2d(x, k, s, p, d)[0])


def test_the_decks_alexnet_pool() -> None:
    # Pool1 of AlexNet: 3x3 at stride 2 on 55x55 -> (55 - 3)/2 + 1 = 27
    assert max_pool2d_plain(torch.randn(1, 2, 55, 55), 3, 2).shape == (1, 2, 27, 27)


def _stats(c: int):
    return torch.randn(c), torch.rand(c) + 0.5


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (8, 2), (3, 4, 6), (2, 5, 1, 1)])
@pytest.mark.parametrize("momentum, affine", [(0.1, True), (0.3, False), (1.0, True)])
def test_batch_norm_training_and_running_update(shape, momentum, affine) -> None:
    x = torch.randn(*shape) * 2 + 1
    c = shape[1]
    mean, var = _stats(c)
    weight, bias = (torch.randn(c), torch.randn(c)) if affine else (None, None)
    ours_mean, ours_var = mean.clone(), var.clone()
    ref_mean, ref_var = mean.clone(), var.clone()
    ours = batch_norm_plain(x, ours_mean, ours_var, weight, bias, True, momentum, 1e-5)
    ref = F.batch_norm(x, ref_mean, ref_var, weight, bias, True, momentum, 1e-5)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(ours_mean, ref_mean, atol=1e-6)
    assert torch.allclose(ours_var, ref_var, atol=1e-5)  # unbiased variance, with momentum
    assert not torch.allclose(ours_var, var)


def test_batch_norm_statistics_are_per_channel() -> None:
    # the decks: mu, sigma are 1 x C x 1 x 1 (over N, H, W); the running variance is unbiased
    x = torch.randn(4, 3, 5, 5)
    mean, var = torch.zeros(3), torch.ones(3)
    y = batch_norm_plain(x, mean, var, training=True, momentum=1.0, eps=0.0)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(mean, x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(var, x.var(dim=(0, 2, 3), unbiased=True), atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (8, 2)])
def test_batch_norm_eval(shape) -> None:
    x = torch.randn(*shape)
    c = shape[1]
    mean, var = _stats(c)
    weight, bias = torch.randn(c), torch.randn(c)
    before = mean.clone(), var.clone()
    ours = batch_norm_plain(x, mean, var, weight, bias, training=False)
    assert torch.allclose(ours, F.batch_norm(x, mean, var, weight, bias, False), atol=1e-6)
    assert torch.equal(mean, before[0]) and torch.equal(var, before[1])  # not updated


def test_batch_norm_matches_the_module() -> None:
    bn = torch.nn.BatchNorm2d(3, momentum=0.2)
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    for _ in range(3):
        x = torch.randn(2, 3, 4, 4)
        expected = bn(x)
        got = batch_norm_plain(x, mean, var, bn.weight, bn.bias, True, 0.2, bn.eps)
        assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(mean, bn.running_mean) and torch.allclose(var, bn.running_var)
    bn.eval()
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(batch_norm_plain(x, mean, var, bn.weight, bn.bias), bn(x), atol=1e-5)


def test_convolution_flips_the_kernel() -> None:
    x = torch.randn(2, 3, 8, 7)
    k = torch.randn(4, 3, 3, 3)  # asymmetric
    assert torch.allclose(convolve2d(x, k), F.conv2d(x, k.flip(-1, -2)), atol=1e-5)
    assert not torch.allclose(convolve2d(x, k), F.conv2d(x, k), atol=1e-3)
    symmetric = k + k.flip(-1, -2)  # unchanged by a 180-degree rotation
    assert torch.allclose(convolve2d(x, symmetric), F.conv2d(x, symmetric), atol=1e-5)


def test_convolving_a_delta_gives_the_kernel() -> None:
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1.0
    k = torch.arange(1.0, 10.0).view(3, 3)
    assert torch.equal(convolve2d(delta, k, padding=1)[1:4, 1:4], k)
    # cross-correlation (F.conv2d) gives the kernel rotated by 180 degrees
    assert torch.equal(F.conv2d(delta[None, None], k[None, None], padding=1)[0, 0, 1:4, 1:4],
                       k.flip(-1, -2))
    full = convolve2d(torch.ones(1, 1), k, padding=2)  # "full" mode: (1 + 3 - 1) = 3
    assert torch.equal(full, k)


@pytest.mark.parametrize("call, word", [
    (lambda: max_pool2d_plain(torch.randn(1, 1, 5, 5), 2, padding=2), "padding"),
    (lambda: avg_pool2d_plain(torch.randn(1, 1, 5, 5), 0), "kernel_size"),
    (lambda: max_pool2d_plain(torch.ones(1, 1, 4, 4, dtype=torch.long), 2), "floating"),
    (lambda: batch_norm_plain(torch.randn(2, 3), None, None), "running_mean"),
    (lambda: batch_norm_plain(torch.randn(1, 3), None, None, training=True), "more than 1"),
    (lambda: batch_norm_plain(torch.randn(2, 3), torch.zeros(2), torch.ones(3)), "(3,)"),
    (lambda: batch_norm_plain(torch.randn(2, 3), None, None, training=True, momentum=None),
     "momentum"),
    (lambda: convolve2d(torch.randn(5, 5), torch.randn(3)), "kernel"),
])
def test_bad_arguments_raise_one_line(call, word) -> None:
    with pytest.raises(CnnkitError) as info:
        call()
    assert word in str(info.value) and "\n" not in str(info.value)
