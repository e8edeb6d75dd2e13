"""Unpooling, bilinear kernels and transposed convolution: hand-computed cases from the lectures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers.unpool import BedOfNailsUnpool, IndexedMaxPool2d, MaxUnpool, NearestUnpool
from cnnkit.layers.upsample import (Interpolate, UpsampleConv, bilinear_conv_transpose,
                                    bilinear_kernel, conv_transpose_as_conv, init_bilinear_)

GRID = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)


def test_nearest_unpool_copies_each_value_into_its_block() -> None:
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]).float()
    assert torch.equal(NearestUnpool(2)(GRID)[0, 0], expected)
    assert torch.equal(Interpolate(2, "nearest")(GRID)[0, 0], expected)


def test_bed_of_nails_puts_values_top_left_and_zeros_elsewhere() -> None:
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]).float()
    assert torch.equal(BedOfNailsUnpool(2)(GRID)[0, 0], expected)
    assert BedOfNailsUnpool(3)(GRID).shape == (1, 1, 6, 6)


def test_max_unpool_puts_values_back_at_the_argmax_positions() -> None:
    x = torch.tensor([[1.0, 6.0, 3.0, 4.0],
                      [5.0, 2.0, 7.0, 8.0],
                      [9.0, 1.0, 0.0, 2.0],
                      [3.0, 4.0, 5.0, 1.0]]).view(1, 1, 4, 4)
    pooled, indices = IndexedMaxPool2d(2)(x)
    assert torch.equal(pooled[0, 0], torch.tensor([[6.0, 8.0], [9.0, 5.0]]))
    decoded = torch.tensor([[10.0, 20.0], [30.0, 40.0]]).view(1, 1, 2, 2)
    expected = torch.tensor([[0, 10, 0, 0],
                             [0, 0, 0, 20],
                             [30, 0, 0, 0],
                             [0, 0, 40, 0]]).float()
    assert torch.equal(MaxUnpool(2)(decoded, indices)[0, 0], expected)
    # odd input size: output_size restores it
    odd = torch.randn(1, 2, 5, 7)
    pooled, indices = IndexedMaxPool2d(2)(odd)
    assert MaxUnpool(2)(pooled, indices, odd.shape).shape == (1, 2, 5, 7)
    with pytest.raises(ValueError, match="same shape"):
        MaxUnpool(2)(pooled[..., :1], indices)


def test_bilinear_kernels_match_the_lecture_and_fcn() -> None:
    lecture = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    assert torch.allclose(bilinear_kernel(2, kernel_size=3), lecture)
    taps2 = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(bilinear_kernel(2), torch.outer(taps2, taps2))  # FCN: 4x4 for factor 2
    taps3 = torch.tensor([1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])
    assert torch.allclose(bilinear_kernel(3), torch.outer(taps3, taps3))  # 5x5 for factor 3
    weight = bilinear_kernel(2, channels=3)
    assert weight.shape == (3, 3, 4, 4)
    assert torch.equal(weight[1, 1], bilinear_kernel(2)) and weight[0, 1].abs().sum() == 0


def test_init_bilinear_sets_a_diagonal_or_depthwise_weight() -> None:
    layer = init_bilinear_(nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1))
    assert torch.equal(layer.weight, bilinear_kernel(2, 4)) and layer.bias.abs().sum() == 0
    depthwise = init_bilinear_(nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1, groups=4))
    assert torch.equal(depthwise.weight[:, 0], bilinear_kernel(2).expand(4, 4, 4))
    with pytest.raises(ValueError, match="in_channels must equal out_channels"):
        init_bilinear_(nn.ConvTranspose2d(4, 2, 4, stride=2))


def test_1d_transposed_convolution_of_the_lecture() -> None:
    # kernel (x, y, z) = (1, 10, 100), stride 2, padding 0, inputs (a, b) = (2, 3):
    # output (ax, ay, az + bx, by, bz)
    out = F.conv_transpose1d(torch.tensor([[[2.0, 3.0]]]), torch.tensor([[[1.0, 10.0, 100.0]]]),
                             stride=2)
    assert out.flatten().tolist() == [2.0, 20.0, 203.0, 30.0, 300.0]


@pytest.mark.parametrize("kernel, stride, padding, output_padding",
                         [(3, 1, 0, 0), (2, 2, 0, 0), (3, 2, 1, 0), (3, 2, 1, 1), (4, 2, 1, 0),
                          (5, 3, 2, 1), (7, 4, 0, 3)])
def test_transposed_conv_equals_zero_insertion_padding_and_rotated_kernel(
        kernel: int, stride: int, padding: int, output_padding: int) -> None:
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    weight = torch.randn(3, 4, kernel, kernel, dtype=torch.float64)
    expected = F.conv_transpose2d(x, weight, stride=stride, padding=padding,
                                  output_padding=output_padding)
    got = conv_transpose_as_conv(x, weight, stride=stride, padding=padding,
                                 output_padding=output_padding)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bilinear_conv_transpose_equals_interpolation_away_from_the_borders(factor: int) -> None:
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    layer = bilinear_conv_transpose(3, factor).double()
    assert layer.kernel_size[0] == 2 * factor - factor % 2
    out = layer(x)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert out.shape == reference.shape == (2, 3, 7 * factor, 6 * factor)
    inner = (..., slice(factor, -factor), slice(factor, -factor))
    assert torch.allclose(out[inner], reference[inner])
    # a ramp image is reproduced exactly in the interior
    ramp = (torch.arange(8.0, dtype=torch.float64).view(1, 1, 8, 1) * 3
            + torch.arange(8.0, dtype=torch.float64).view(1, 1, 1, 8)).expand(1, 3, 8, 8)
    up = layer(ramp)[inner]
    coords = (torch.arange(8 * factor, dtype=torch.float64) + 0.5) / factor - 0.5
    exact = (coords.view(-1, 1) * 3 + coords.view(1, -1))[factor:-factor, factor:-factor]
    assert torch.allclose(up, exact.expand_as(up))


def test_lecture_3x3_transposed_conv_copies_inputs_and_averages_between() -> None:
    layer = bilinear_conv_transpose(2, 2, kernel_size=3)
    assert (layer.kernel_size, layer.stride, layer.padding, layer.output_padding) == (
        (3, 3), (2, 2), (1, 1), (1, 1))
    ramp = (torch.arange(5.0).view(1, 1, 5, 1) * 4 + torch.arange(5.0).view(1, 1, 1, 5)).expand(
        1, 2, 5, 5)
    out = layer(ramp)
    assert out.shape == (1, 2, 10, 10)
    half = torch.arange(10.0) / 2  # output pixel i samples the input at i / 2
    exact = half.view(-1, 1) * 4 + half.view(1, -1)
    assert torch.allclose(out[0, 0, :9, :9], exact[:9, :9])
    assert torch.allclose(out[0, 1, 0, 9], ramp[0, 0, 0, 4] / 2)  # the border sees one input


def test_interpolate_align_corners_and_upsample_conv() -> None:
    x = torch.randn(1, 2, 4, 4)
    aligned = Interpolate(2, align_corners=True)(x)
    assert torch.allclose(aligned[..., 0, 0], x[..., 0, 0])
    assert torch.allclose(aligned[..., -1, -1], x[..., -1, -1])
    block = UpsampleConv(2, 5, 2)
    assert block(x).shape == (1, 5, 8, 8)
    assert UpsampleConv(2, 5, 3, kernel_size=1, mode="nearest")(x).shape == (1, 5, 12, 12)
    with pytest.raises(ValueError, match="factor"):
        Interpolate(0)
