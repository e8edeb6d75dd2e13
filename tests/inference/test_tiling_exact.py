"""Exact tiled inference: tiles that are crops of the image at multiples of the network's total
stride, overlapping by twice its receptive-field radius, give the single pass's output.

Bit-for-bit comparisons use integer weights and inputs in float64: every sum is then exact,
so the result cannot depend on the order in which a BLAS adds (MKL's dgemm rounds the same
output column differently for matrices of different widths, which makes float outputs agree
only to ~1e-15; the float test checks that too)."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.inference import exact_tiled_inference, sliding_window_inference, tiling_geometry
from cnnkit.inference.sliding import _exact_plan
from cnnkit.models import create


def integer_weights(model: nn.Module) -> nn.Module:
    """Weights and biases drawn from {-1, 0, 1}, float64, eval mode."""
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randint(-1, 2, p.shape))
    return model


def conv_stack() -> nn.Module:
    """Padded convolution, max pool, strided convolution, two transposed convolutions."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(6, 4, 2, stride=2), nn.ReLU(),
                         nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1))


def small_unet() -> nn.Module:
    return create("unet_padded", base_width=2, depth=3, in_channels=3, num_classes=2)


def test_geometry_from_the_analyzer() -> None:
    assert tiling_geometry(conv_stack(), (3, 32, 32)).stride == 4
    assert tiling_geometry(conv_stack(), (3, 32, 32)).halo == (7, 7)
    geometry = tiling_geometry(small_unet(), (3, 64, 64))
    assert geometry.stride == 8 and geometry.halo == (51, 51)


@pytest.mark.parametrize("tile", [24, 32, (40, 28)])
def test_conv_stack_tiles_equal_the_single_pass(tile) -> None:
    model = integer_weights(conv_stack())
    x = torch.randint(-3, 4, (2, 3, 100, 72)).double()
    with torch.no_grad():
        full = model(x)
    assert (full != 0).float().mean() > 0.5
    out = exact_tiled_inference(model, x, tile, batch_size=3)
    assert torch.equal(out, full)


def test_unet_tiles_equal_the_single_pass_and_each_ingredient_matters() -> None:
    model = integer_weights(small_unet())
    x = torch.randint(-2, 3, (1, 3, 192, 144)).double()
    with torch.no_grad():
        full = model(x)
    assert full.abs().max() < 2 ** 40 and (full != 0).all()  # exact sums, a live network
    assert torch.equal(exact_tiled_inference(model, x, 128, batch_size=2), full)
    assert torch.equal(exact_tiled_inference(model, x, (112, 136)), full)
    assert torch.equal(exact_tiled_inference(model, x, 120, halo=53, stride=8), full)
    # too little context, or origins off the stride-8 grid (here 12 apart), and seams show
    assert not torch.equal(exact_tiled_inference(model, x, 128, halo=40, stride=8), full)
    assert not torch.equal(exact_tiled_inference(model, x, 120, halo=53, stride=4), full)
    # the blended mode differs from the single pass near its seams
    blended = sliding_window_inference(model, x, 128, 32)
    assert not torch.allclose(blended, full)


def test_float_weights_agree_to_rounding() -> None:
    torch.manual_seed(0)
    model = small_unet().double().eval()
    x = torch.randn(2, 3, 160, 200, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)
    out = exact_tiled_inference(model, x, 128)
    assert torch.allclose(out, full, rtol=0, atol=1e-12 * full.abs().max().item())


@pytest.mark.parametrize("length, tile, halo, stride", [(100, 24, 7, 4), (72, 24, 7, 4),
                                                        (200, 128, 51, 8), (130, 128, 51, 8),
                                                        (128, 128, 51, 8), (50, 128, 5, 8)])
def test_plan_covers_each_pixel_once_with_enough_context(length, tile, halo, stride) -> None:
    plan = _exact_plan(length, tile, halo, stride)
    assert plan[0][2] == 0 and plan[-1][3] == length
    assert all(a[3] == b[2] for a, b in pairwise(plan))  # consecutive kept regions
    for index, (origin, size, keep_lo, keep_hi) in enumerate(plan):
        assert origin % stride == 0 and origin + size <= length
        assert size == tile or index == len(plan) - 1
        assert keep_lo - origin >= (halo if origin > 0 else 0)
        assert origin + size - keep_hi >= (halo if origin + size < length else 0)


def test_bad_arguments_and_models() -> None:
    model = conv_stack().eval()
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ArgumentError, match=r"tile must be >= 2 \* halo \+ stride = 18"):
        exact_tiled_inference(model, x, 16)
    with pytest.raises(ArgumentError, match="multiple of the network's stride 4; got"):
        exact_tiled_inference(model, x, 30)
    with pytest.raises(ArgumentError, match="outputs of the input's size"):
        exact_tiled_inference(nn.MaxPool2d(2), x, 16, halo=2, stride=2)
    pooled = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.AdaptiveAvgPool2d(1))

    class Global(nn.Module):  # adds an image-level feature to every pixel
        def __init__(self) -> None:
            super().__init__()
            self.pooled = pooled

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images + self.pooled(images)

    with pytest.raises(ArgumentError, match="no image-level"):
        exact_tiled_inference(Global().eval(), x, 32)
    with pytest.raises(ArgumentError, match="N x C x H x W"):
        exact_tiled_inference(model, x[0], 32)
