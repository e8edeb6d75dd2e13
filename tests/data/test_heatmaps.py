"""Keypoint heatmap targets: stride convention, flip equivariance to the pixel, visibility."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.data.heatmaps import HeatmapTarget, keypoint_heatmaps
from cnnkit.data.sample import Sample
from cnnkit.geometry import Skeleton
from cnnkit.data.transforms import HorizontalFlip, VerticalFlip
from cnnkit.tasks.keypoint_decode import decode_heatmaps

SKELETON = Skeleton.from_names(["nose", "left_eye", "right_eye", "left_hand", "right_hand"],
                               [("left_eye", "right_eye"), ("left_hand", "right_hand")])
PERM = SKELETON.flip_permutation()


def make_sample(height: int, width: int, seed: int = 0) -> Sample:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(5, 2, generator=g) * torch.tensor([width - 1.0, height - 1.0])
    points[0] = torch.tensor([width - 1.0, 0.0])  # on the border pixels
    visible = torch.tensor([True, True, True, False, True])
    return Sample(torch.rand(1, height, width, generator=g), keypoints=points, visible=visible,
                  skeleton=SKELETON)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_cell_centre_convention(stride) -> None:
    # image x = j * s + (s - 1) / 2 is the centre of map cell j: peak exactly 1 there
    x, y = 2 * stride + (stride - 1) / 2, 1 * stride + (stride - 1) / 2
    maps, weights = keypoint_heatmaps(torch.tensor([[x, y]]), torch.tensor([True]),
                                      (8 * stride, 8 * stride), stride, sigma=1.5)
    assert maps.shape == (1, 8, 8) and weights.tolist() == [1.0]
    assert maps[0, 1, 2] == 1.0 and maps.max() == 1.0
    assert math.isclose(maps[0, 1, 3].item(), math.exp(-1 / (2 * 1.5**2)), rel_tol=1e-6)


# (height, width, stride): odd and even image widths at stride 1, odd and even map widths at 2, 4
CASES = [(5, 7, 1), (6, 8, 1), (8, 10, 2), (6, 12, 2), (8, 12, 4), (12, 16, 4)]


@pytest.mark.parametrize("height,width,stride", CASES)
@pytest.mark.parametrize("normalize,background", [("peak", False), ("sum", False),
                                                  ("onehot", True), ("peak", True)])
def test_flipped_keypoints_give_the_flipped_heatmap(height, width, stride, normalize,
                                                    background) -> None:
    sample = make_sample(height, width, seed=stride)
    maps, weights = keypoint_heatmaps(sample.keypoints, sample.visible, sample.size, stride,
                                      1.0, background, normalize)
    order = PERM + ([5] if background else [])
    for flip, dim in [(HorizontalFlip(p=1.0), -1), (VerticalFlip(p=1.0), -2)]:
        flipped = flip(sample)
        maps_f, weights_f = keypoint_heatmaps(flipped.keypoints, flipped.visible, flipped.size,
                                              stride, 1.0, background, normalize)
        torch.testing.assert_close(maps_f, maps.flip(dim)[order], rtol=0, atol=1e-6)
        assert torch.equal(weights_f, weights[order])
    if normalize != "onehot":  # without swapping the pairs the channels would not match
        assert not torch.allclose(maps_f[1], maps.flip(-2)[1], atol=1e-3)


@pytest.mark.parametrize("width,stride", [(11, 2), (29, 4)])
def test_decoded_points_agree_when_width_is_not_a_multiple_of_stride(width, stride) -> None:
    # interior points (the parabola refinement needs both neighbours of the peak cell)
    frac = torch.tensor([[0.0, 0.1], [0.3, 1.0], [0.55, 0.4], [0.8, 0.7], [1.0, 0.95]])
    low = torch.tensor([1.5 * stride, 1.5 * stride])
    high = torch.tensor([width - 2.5 * stride, 6.0 * stride])
    sample = Sample(torch.rand(1, 8 * stride, width), keypoints=low + frac * (high - low),
                    skeleton=SKELETON)
    flipped = HorizontalFlip(p=1.0)(sample)
    for s in (sample, flipped):
        maps, _ = keypoint_heatmaps(s.keypoints, s.visible, s.size, stride, sigma=1.0)
        assert maps.shape[-1] == math.ceil(width / stride)
        decoded = decode_heatmaps(maps[None], stride=stride, refinement="parabola").xy[0]
        assert (decoded - s.keypoints).abs().max() < 1e-3


def test_visibility_normalisation_and_background() -> None:
    sample = make_sample(16, 20)
    peak, weights = keypoint_heatmaps(sample.keypoints, sample.visible, sample.size, 2, 1.0)
    assert weights.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert peak[3].abs().sum() == 0  # invisible: all zeros
    summed, _ = keypoint_heatmaps(sample.keypoints, sample.visible, sample.size, 2, 1.0,
                                  normalize="sum")
    torch.testing.assert_close(summed.sum((1, 2)), torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]))
    onehot, _ = keypoint_heatmaps(sample.keypoints, sample.visible, sample.size, 2,
                                  normalize="onehot")
    assert onehot.sum((1, 2)).tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert onehot[0, 0, 9] == 1.0  # x = 19 -> (19 - 0.5) / 2 = 9.25 -> cell 9; y = 0 -> cell 0
    with_bg, weights_bg = keypoint_heatmaps(sample.keypoints, sample.visible, sample.size, 2, 1.0,
                                            background=True)
    assert with_bg.shape == (6, 8, 10) and weights_bg.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(with_bg.sum(0), torch.ones(8, 10))
    assert (with_bg >= 0).all()


def test_heatmap_target_transform_and_errors() -> None:
    sample = make_sample(16, 24)
    out = HeatmapTarget(stride=4, sigma=1.0)(sample)
    assert out.meta["heatmaps"].shape == (5, 4, 6)
    assert out.meta["heatmap_weights"].tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert "heatmaps" not in sample.meta
    with pytest.raises(ValueError, match="stride"):
        keypoint_heatmaps(sample.keypoints, sample.visible, sample.size, stride=0)
    with pytest.raises(ValueError, match="normalize"):
        HeatmapTarget(normalize="softmax")
    image_only = Sample(torch.rand(1, 4, 4))  # an image to predict on: nothing to render
    assert HeatmapTarget()(image_only) is image_only
