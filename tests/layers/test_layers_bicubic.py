"""Bicubic upsampling (Interpolate / UpsampleConv ``mode="bicubic"``): PyTorch's cubic
convolution kernel (Keys, a = -0.75) by hand, its overshoot, and its cost in the analyzer
(4 taps per dimension: 2 x 16 FLOPs per output element in 2-D)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.analysis import analyze
from cnnkit.errors import ArgumentError
from cnnkit.layers.upsample import Interpolate, UpsampleConv

A = -0.75


def keys(d: float) -> float:
    d = abs(d)
    if d <= 1:
        return (A + 2) * d ** 3 - (A + 3) * d ** 2 + 1
    return A * d ** 3 - 5 * A * d ** 2 + 8 * A * d - 4 * A if d < 2 else 0.0


def test_bicubic_weights_by_hand() -> None:
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[..., 2, 2] = 1.0
    out = Interpolate(2, "bicubic")(impulse)[0, 0]
    assert out.shape == (10, 10)
    # output row i samples input row (i + 0.5) / 2 - 0.5: rows 4, 3, 2 -> 1.75, 1.25, 0.75,
    # at distances 0.25, 0.75, 1.25 from the impulse
    assert keys(0.25) == 0.87890625 and keys(0.75) == 0.26171875 and keys(1.25) == -0.10546875
    assert out[4, 4].item() == pytest.approx(0.87890625 ** 2, abs=1e-7)
    assert out[3, 4].item() == pytest.approx(0.26171875 * 0.87890625, abs=1e-7)
    assert out[2, 4].item() == pytest.approx(-0.10546875 * 0.87890625, abs=1e-7)  # negative lobe


def test_bicubic_matches_interpolate_keeps_constants_and_overshoots() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 7)
    for align in (False, True):
        layer = Interpolate(3, "bicubic", align_corners=align)
        assert layer.align_corners is align
        assert torch.equal(layer(x), F.interpolate(x, scale_factor=3, mode="bicubic",
                                                   align_corners=align))
    assert torch.allclose(Interpolate(2, "bicubic")(torch.full((1, 1, 4, 4), 2.5)),
                          torch.full((1, 1, 8, 8), 2.5))
    step = torch.zeros(1, 1, 1, 8)
    step[..., 4:] = 1.0
    up = F.interpolate(step.expand(1, 1, 4, 8), scale_factor=2, mode="bicubic")
    assert up.min() < 0 and up.max() > 1  # ringing at the edge; bilinear stays in [0, 1]
    linear = Interpolate(2, "bilinear")(step.expand(1, 1, 4, 8))
    assert linear.min() >= 0 and linear.max() <= 1


def test_upsample_conv_with_bicubic_and_its_cost() -> None:
    layer = UpsampleConv(4, 2, 2, mode="bicubic")
    assert tuple(layer(torch.randn(1, 4, 5, 6)).shape) == (1, 2, 10, 12)
    report = analyze(Interpolate(2, "bicubic"), (1, 5, 5))
    assert report.totals["flops"] == 2 * 16 * 10 * 10 and report.totals["macs"] == 0
    rf = report.layers[-1].rf
    assert rf["size"] == 4 and rf["jump"] == 0.5
    with pytest.raises(ArgumentError, match="'nearest', 'bilinear', 'bicubic'; got 'area'"):
        Interpolate(2, "area")
