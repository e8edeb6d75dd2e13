"""Convolution arithmetic of the decks, with exact values, checked against PyTorch where it applies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit import arith


def test_7x7_input_3x3_filter_strides() -> None:
    assert arith.conv_output_size(7, 3, stride=1) == 5
    assert arith.conv_output_size(7, 3, stride=2) == 3
    with pytest.raises(arith.FractionalSizeError, match=r"2\.33: fractions are illegal"):
        arith.conv_output_size(7, 3, stride=3)
    assert arith.conv_output_size(7, 3, stride=3, floor=True) == 2  # PyTorch's floor


@pytest.mark.parametrize("width,kernel,pad", [(7, 3, 1), (7, 5, 2), (32, 7, 3), (10, 3, 0)])
def test_padding_formula_w_minus_k_plus_1_plus_2p(width: int, kernel: int, pad: int) -> None:
    assert arith.conv_output_size(width, kernel, 1, pad) == width - kernel + 1 + 2 * pad


@pytest.mark.parametrize("kernel,expected", [(3, 1), (5, 2), (7, 3)])
def test_same_padding_is_k_minus_1_over_2(kernel: int, expected: int) -> None:
    assert arith.same_padding(kernel) == expected
    assert arith.conv_output_size(17, kernel, 1, expected) == 17


def test_same_padding_dilated_and_even() -> None:
    assert arith.same_padding(3, dilation=2) == 2
    assert arith.same_padding(3, dilation=4) == 4
    with pytest.raises(ValueError, match="odd kernel extent"):
        arith.same_padding(4)


def test_alexnet_first_layers() -> None:
    assert arith.conv_output_size(227, 11, stride=4) == 55  # (227-11)/4 + 1
    assert arith.pool_output_size(55, 3, stride=2) == 27  # (55-3)/2 + 1
    assert arith.conv_params(3, 96, 11, bias=False) == 34_848


@pytest.mark.parametrize("size,kernel,stride,pad,dil", [
    (224, 7, 2, 3, 1), (56, 3, 2, 1, 1), (65, 3, 1, 2, 2), (33, 3, 2, 0, 3), (100, 5, 3, 2, 1)])
def test_floor_mode_matches_pytorch_conv(size, kernel, stride, pad, dil) -> None:
    conv = nn.Conv2d(1, 1, kernel, stride, pad, dil, device="meta")
    expected = conv(torch.empty(1, 1, size, size, device="meta")).shape[-1]
    assert arith.conv_output_size(size, kernel, stride, pad, dil, floor=True) == expected


@pytest.mark.parametrize("size,kernel,stride,pad", [(112, 3, 2, 1), (13, 3, 2, 0), (14, 3, 2, 1),
                                                    (7, 2, 2, 0), (27, 3, 2, 1)])
def test_ceil_mode_matches_pytorch_pool(size, kernel, stride, pad) -> None:
    pool = nn.MaxPool2d(kernel, stride, pad, ceil_mode=True)
    expected = pool(torch.empty(1, 1, size, size, device="meta")).shape[-1]
    assert arith.pool_output_size(size, kernel, stride, pad, ceil=True) == expected


@pytest.mark.parametrize("size,kernel,stride,pad,outpad", [(4, 3, 2, 1, 1), (16, 4, 2, 1, 0),
                                                           (7, 2, 2, 0, 0), (5, 64, 32, 16, 0)])
def test_transposed_output_size_matches_pytorch(size, kernel, stride, pad, outpad) -> None:
    layer = nn.ConvTranspose2d(1, 1, kernel, stride, pad, outpad, device="meta")
    expected = layer(torch.empty(1, 1, size, size, device="meta")).shape[-1]
    assert arith.transposed_output_size(size, kernel, stride, pad, output_padding=outpad) == expected


def test_transposed_inverts_conv_size() -> None:
    assert arith.transposed_output_size(3, 3, stride=2) == 7  # undoes 7 -> 3
    with pytest.raises(ValueError, match="output_padding"):
        arith.transposed_output_size(3, 3, stride=2, output_padding=2)


@pytest.mark.parametrize("layers", [1, 2, 3, 5])
def test_stacked_3x3_receptive_field_is_1_plus_2L(layers: int) -> None:
    rf = arith.receptive_field([(3, 1, 1)] * layers)
    assert [r.size for r in rf] == [1 + 2 * (i + 1) for i in range(layers)]
    assert rf[-1].jump == 1


def test_three_3x3_equal_one_7x7() -> None:
    assert arith.receptive_field([(3,)] * 3)[-1].size == arith.receptive_field([(7,)])[0].size == 7


def test_dilated_stack_1_2_4_gives_3_7_15() -> None:
    rf = arith.receptive_field([arith.Layer(3, 1, d, d) for d in (1, 2, 4)])
    assert [r.size for r in rf] == [3, 7, 15]
    assert all(r.start == 0 for r in rf)  # 'same' padding keeps fields centred on pixel 0


def test_receptive_field_with_strides_and_padding() -> None:
    # 7x7/2 pad 3, then 3x3/2 pad 1 (the ResNet stem): size 11, jump 4, first centre at 0.
    rf = arith.receptive_field([(7, 2, 3), (3, 2, 1)])
    assert [(r.size, r.jump, r.start) for r in rf] == [(7, 2, 0.0), (11, 4, 0.0)]
    # No padding: the first output's field is centred inside the image.
    assert arith.receptive_field([(11, 4, 0), (3, 2, 0)])[-1] == arith.ReceptiveField(19, 8, 9.0)  # AlexNet conv1 + pool1


def test_costs_of_the_decks() -> None:
    c, h, w = 64, 32, 32
    assert arith.conv_params(c, c, 5, bias=False) == 25 * c * c
    assert arith.conv_macs(c, c, 5, h, w) == 25 * c * c * h * w
    assert 2 * arith.conv_params(c, c, 3, bias=False) == 18 * c * c
    assert 3 * arith.conv_params(c, c, 3, bias=False) == 27 * c * c
    assert arith.conv_params(c, c, 7, bias=False) == 49 * c * c
    # Inception's 5x5 conv 200 -> 92 at 32x32, and with a 1x1 reduction to 16 channels first.
    assert arith.conv_macs(200, 92, 5, 32, 32) == 471_040_000
    assert arith.conv_macs(200, 16, 1, 32, 32) == 3_276_800
    assert arith.conv_macs(16, 92, 5, 32, 32) == 37_683_200
    # Depthwise separable: 256 filters 5x5x3 over 8x8 outputs vs depthwise + pointwise.
    assert arith.conv_macs(3, 256, 5, 8, 8) == 1_228_800
    assert arith.conv_macs(3, 3, 5, 8, 8, groups=3) == 4_800
    assert arith.conv_macs(3, 256, 1, 8, 8) == 49_152


def test_fully_vs_locally_connected_weights() -> None:
    pixels, hidden = 200 * 200, 40_000
    assert pixels * hidden == 1_600_000_000
    assert hidden * 10 * 10 == 4_000_000


@pytest.mark.parametrize("kwargs,match", [
    (dict(size=0, kernel=3), "size must be a positive integer"),
    (dict(size=5, kernel=3, padding=-1), "padding must be >= 0"),
    (dict(size=3, kernel=7), "larger than the padded input"),
])
def test_bad_arguments_name_the_argument(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        arith.conv_output_size(**kwargs)


def test_groups_must_divide_channels() -> None:
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        arith.conv_params(3, 64, 3, groups=2)
