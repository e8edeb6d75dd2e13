"""Affine warps and lens distortion move keypoints onto the same image content as the image."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.data.transforms import Affine, LensDistortion
from cnnkit.data.transforms.affine import affine_matrix, lens_distort, warp_affine
from test_transforms_geometric import blob_image, centroids

RANDOM_AFFINE = Affine(degrees=30, translate=(0.1, 0.1), scale=(0.8, 1.25), stretch=(0.8, 1.25),
                       shear=15)


@pytest.mark.parametrize("size", [7, 8])
def test_rotation_by_90_degrees_is_rot90_to_the_pixel(size) -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, size, size, generator=g)
    mask = torch.randint(0, 5, (size, size), generator=g)
    points = torch.tensor([[1.0, 2.0], [size - 1.0, 0.0]])
    out = Affine(degrees=(90, 90))(Sample(image, mask=mask, keypoints=points,
                                          boxes=torch.tensor([[0.5, 1.0, 2.5, 4.0]])))
    expected = torch.rot90(image, 1, (1, 2))  # counter-clockwise on the screen
    assert torch.allclose(out.image, expected, atol=1e-5)
    assert torch.equal(out.mask, torch.rot90(mask, 1, (0, 1)))
    # counter-clockwise about the centre: (x, y) -> (y, W - 1 - x)
    assert torch.allclose(out.keypoints, torch.tensor([[2.0, size - 2.0], [0.0, 0.0]]), atol=1e-5)
    for k, (x, y) in enumerate(out.keypoints.round().long().tolist()):
        ox, oy = points[k].long().tolist()
        assert torch.allclose(out.image[:, y, x], image[:, oy, ox], atol=1e-5)
    assert torch.allclose(out.boxes, torch.tensor([[1.0, size - 3.5, 4.0, size - 1.5]]), atol=1e-5)


def test_integer_translation_is_exact_and_pads_with_ignore() -> None:
    image, mask = torch.rand(1, 6, 9), torch.randint(0, 3, (6, 9))
    matrix = torch.tensor([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]])
    out = warp_affine(Sample(image, mask=mask, keypoints=torch.tensor([[1.0, 4.0], [7.0, 1.0]])),
                      matrix, fill=0.25)
    assert torch.allclose(out.image[:, :4, 3:], image[:, 2:, :6], atol=1e-6)
    assert torch.allclose(out.image[:, :, :3], torch.tensor(0.25), atol=1e-6)
    assert torch.equal(out.mask[:4, 3:], mask[2:, :6])
    assert (out.mask[:, :3] == IGNORE_INDEX).all() and (out.mask[4:] == IGNORE_INDEX).all()
    assert out.keypoints.tolist() == [[4.0, 2.0], [10.0, -1.0]]
    assert out.visible.tolist() == [True, False]  # left the image: invisible but kept


def test_bright_pixels_follow_their_keypoints() -> None:
    points = torch.tensor([[20.0, 20.0], [44.0, 18.0], [31.0, 33.0], [17.0, 45.0], [46.0, 44.0]])
    image = torch.zeros(1, 64, 64)
    image[0, points[:, 1].long(), points[:, 0].long()] = 1.0
    sample = Sample(image, keypoints=points)
    worst = 0.0
    for seed in range(10):
        out = RANDOM_AFFINE(sample, torch.Generator().manual_seed(seed))
        for x, y in out.keypoints[out.visible].tolist():
            x0, y0 = round(x) - 3, round(y) - 3
            window = out.image[0, max(y0, 0):y0 + 7, max(x0, 0):x0 + 7]
            iy, ix = divmod(int(window.argmax()), window.shape[1])
            worst = max(worst, ((max(x0, 0) + ix - x) ** 2 + (max(y0, 0) + iy - y) ** 2) ** 0.5)
    assert worst <= 0.75  # nearest pixel centre: at most sqrt(0.5^2 + 0.5^2) = 0.71 away


@pytest.mark.parametrize("size", [(48, 48), (47, 56)])
def test_blob_centres_follow_their_keypoints_subpixel(size) -> None:
    height, width = size
    points = torch.tensor([[18.3, 17.6], [width - 17.5, 20.0], [23.0, height - 16.2]])
    sample = Sample(blob_image(height, width, points, sigma=2.0), keypoints=points,
                    mask=torch.randint(0, 4, size))
    for seed in range(5):
        out = RANDOM_AFFINE(sample, torch.Generator().manual_seed(seed))
        assert (centroids(out.image) - out.keypoints).abs().max() < 0.05
        assert set(out.mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}


def test_identity_matrix_changes_nothing() -> None:
    sample = Sample(torch.rand(3, 5, 7), mask=torch.randint(0, 4, (5, 7)),
                    keypoints=torch.tensor([[1.5, 2.25]]),
                    boxes=torch.tensor([[0.0, 1.0, 3.0, 4.0]]))
    out = warp_affine(sample, affine_matrix((5, 7)))
    assert torch.allclose(out.image, sample.image, atol=1e-6)
    assert torch.equal(out.mask, sample.mask)
    assert torch.allclose(out.keypoints, sample.keypoints)
    assert torch.allclose(out.boxes, sample.boxes)


@pytest.mark.parametrize("k1", [-0.12, 0.15])
def test_lens_distortion_moves_points_with_the_content(k1) -> None:
    points = torch.tensor([[10.0, 10.0], [50.3, 12.7], [30.0, 30.0], [14.5, 40.0], [52.0, 42.0]])
    sample = Sample(blob_image(52, 64, points, sigma=1.5), keypoints=points)
    out = lens_distort(sample, k1)
    assert (centroids(out.image) - out.keypoints).abs().max() < 0.1
    moved = (out.keypoints - points).norm(dim=1)
    assert moved[2] < 0.1 and moved[0] > 1.0  # the centre stays, the corners move
    identity = lens_distort(sample, 0.0)
    assert torch.allclose(identity.image, sample.image, atol=1e-6)


def test_seeded_determinism_and_bad_arguments() -> None:
    sample = Sample(torch.rand(3, 16, 16), keypoints=torch.tensor([[3.0, 4.0]]))
    pipeline_a = RANDOM_AFFINE(sample, torch.Generator().manual_seed(3))
    pipeline_b = RANDOM_AFFINE(sample, torch.Generator().manual_seed(3))
    assert torch.equal(pipeline_a.image, pipeline_b.image)
    assert torch.equal(pipeline_a.keypoints, pipeline_b.keypoints)
    lens = LensDistortion((-0.1, 0.1))
    assert torch.equal(lens(sample, torch.Generator().manual_seed(1)).image,
                       lens(sample, torch.Generator().manual_seed(1)).image)
    with pytest.raises(ValueError, match="Affine scale"):
        Affine(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="Affine shear"):
        Affine(shear=90)
    with pytest.raises(ValueError, match="k1"):
        LensDistortion((-0.5, 0.1))
