"""Heatmap decoding: argmax + sub-pixel refinement, soft-argmax, stride mapping, confidence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.data.heatmaps import gaussian_heatmaps
from cnnkit.geometry import image_to_map, map_to_image, normalized_to_pixels, pixels_to_normalized
from cnnkit.tasks.keypoint_decode import argmax_2d, decode_heatmaps, refine, soft_argmax

# off-grid centres (x, y) on a 32 x 40 (H x W) map, away from the borders
CENTRES = torch.tensor([[[10.3, 7.8], [20.4, 15.1], [5.9, 22.45], [30.0, 12.0], [17.2, 9.66]]])


def test_gaussian_targets_peak_at_the_given_point() -> None:
    maps = gaussian_heatmaps(torch.tensor([[[3.0, 5.0]]]), 8, 10, sigma=1.5)
    assert maps.shape == (1, 1, 8, 10)
    assert maps[0, 0, 5, 3] == 1.0 and maps.argmax() == 5 * 10 + 3


def test_argmax_finds_the_nearest_pixel_and_its_value() -> None:
    maps = gaussian_heatmaps(CENTRES, 32, 40, sigma=2.0)
    xy, maxvals = argmax_2d(maps)
    assert torch.equal(xy, CENTRES.round())
    assert maxvals.shape == (1, 5) and (maxvals <= 1).all() and (maxvals > 0.9).all()


def test_quarter_refinement_is_within_a_quarter_pixel() -> None:
    maps = gaussian_heatmaps(CENTRES, 32, 40, sigma=2.0)
    xy = refine(maps, argmax_2d(maps)[0], "quarter")
    error = (xy - CENTRES).abs()
    assert error.max() < 0.25
    # it beats the plain argmax on off-grid points and keeps on-grid points exact
    assert error.sum() < (CENTRES.round() - CENTRES).abs().sum()
    assert torch.equal(xy[0, 3], CENTRES[0, 3])


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_parabola_refinement_on_log_is_exact_for_a_gaussian(sigma: float) -> None:
    maps = gaussian_heatmaps(CENTRES, 32, 40, sigma=sigma)
    xy = refine(maps, argmax_2d(maps)[0], "parabola")
    assert (xy - CENTRES).abs().max() < 0.05
    assert (xy - CENTRES).abs().max() < 1e-3  # exact up to float32 rounding


def test_no_refinement_at_the_border() -> None:
    maps = gaussian_heatmaps(torch.tensor([[[0.2, 0.0]]]), 8, 8, sigma=1.0)
    for method in ("quarter", "parabola"):
        assert torch.equal(refine(maps, argmax_2d(maps)[0], method), torch.zeros(1, 1, 2))


def test_soft_argmax_is_exact_on_a_delta_with_a_large_beta() -> None:
    maps = torch.zeros(2, 3, 16, 20)
    points = torch.tensor([[[3, 4], [19, 0], [7, 15]], [[0, 0], [10, 10], [12, 5]]])
    for n in range(2):
        for k in range(3):
            maps[n, k, points[n, k, 1], points[n, k, 0]] = 1.0
    assert torch.equal(soft_argmax(maps, beta=200.0), points.float())


def test_soft_argmax_is_exact_on_a_symmetric_blob_for_any_beta() -> None:
    # a blob centred on the map's centre is symmetric together with the flat background
    maps = gaussian_heatmaps(torch.tensor([[[7.0, 4.0]]]), 9, 15, sigma=1.5)
    for beta in (0.5, 1.0, 10.0):
        assert torch.allclose(soft_argmax(maps, beta), torch.tensor([[[7.0, 4.0]]]), atol=1e-5)


def test_soft_argmax_background_bias_shrinks_with_beta() -> None:
    target = torch.tensor([[[5.0, 6.0]]])
    maps = gaussian_heatmaps(target, 32, 32, sigma=1.5)
    errors = [(soft_argmax(maps, b) - target).abs().max().item() for b in (1.0, 10.0, 50.0)]
    assert errors[0] > 1.0 and errors[0] > errors[1] > errors[2] and errors[2] < 0.01


def test_soft_argmax_is_differentiable() -> None:
    maps = gaussian_heatmaps(CENTRES, 32, 40, sigma=2.0).requires_grad_()
    soft_argmax(maps, beta=5.0)[..., 0].sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_map_to_image_uses_pixel_centres(stride: int) -> None:
    # a symmetric blob over the pixels of one stride x stride cell: pooling puts the map peak on
    # that cell, with equal neighbours, so decoding is exact only with the (s - 1) / 2 offset
    cell = torch.tensor([[[5.0, 3.0]]])
    centre = cell * stride + (stride - 1) / 2
    image = gaussian_heatmaps(centre, 16 * stride, 16 * stride, sigma=1.0 * stride)
    pooled = F.avg_pool2d(image, stride)
    for method in ("argmax", "soft"):
        decoded = decode_heatmaps(pooled, stride=stride, method=method, beta=100.0).xy
        assert torch.allclose(decoded, centre, atol=1e-4), (method, decoded)
    assert torch.allclose(map_to_image(cell, stride), centre)
    assert torch.allclose(image_to_map(centre, stride), cell)


def test_normalised_coordinates_round_trip_and_borders() -> None:
    xy = torch.tensor([[[-0.5, -0.5], [63.5, 47.5], [10.0, 20.0]]])
    uv = pixels_to_normalized(xy, height=48, width=64)
    assert torch.allclose(uv[0, :2], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(normalized_to_pixels(uv, height=48, width=64), xy)


def test_decode_confidence_visibility_and_background_channel() -> None:
    maps = gaussian_heatmaps(CENTRES[:, :2], 32, 40, sigma=2.0)
    maps[:, 1] *= 0.2  # a weak keypoint
    with_background = torch.cat([maps, torch.ones(1, 1, 32, 40)], dim=1)
    out = decode_heatmaps(with_background, refinement="parabola", threshold=0.5, background=True)
    assert out.xy.shape == (1, 2, 2)
    assert torch.allclose(out.xy, CENTRES[:, :2], atol=1e-3)
    assert torch.allclose(out.confidence, maps.flatten(2).amax(-1))
    assert out.visible.tolist() == [[True, False]]


def test_decode_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="N x K x H x W"):
        decode_heatmaps(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="method"):
        decode_heatmaps(torch.zeros(1, 1, 8, 8), method="mean")
    with pytest.raises(ValueError, match="refine"):
        decode_heatmaps(torch.zeros(1, 1, 8, 8), refinement="cubic")
    with pytest.raises(ValueError, match="stride"):
        map_to_image(torch.zeros(1, 1, 2), 0)
