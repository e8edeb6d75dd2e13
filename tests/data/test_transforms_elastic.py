"""Elastic deformations (U-Net) and quarter turns move every label with the image content."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.data.transforms import ElasticDeform, QuarterTurn
from cnnkit.data.transforms.affine import quarter_turn_matrix, warp_affine
from cnnkit.data.transforms.elastic import elastic_warp
from cnnkit.errors import ArgumentError
from test_transforms_geometric import blob_image, centroids


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_a_quarter_turn_is_rot90_to_the_pixel(turns) -> None:
    g = torch.Generator().manual_seed(turns)
    image, mask = torch.rand(2, 7, 7, generator=g), torch.randint(0, 5, (7, 7), generator=g)
    points = torch.tensor([[1.0, 2.0], [6.0, 0.0], [3.0, 3.0]])
    image[:, points[:, 1].long(), points[:, 0].long()] = 2.0  # marks where the points are
    out = warp_affine(Sample(image, mask=mask, keypoints=points), quarter_turn_matrix(7, turns))
    assert torch.allclose(out.image, torch.rot90(image, turns, (1, 2)), atol=1e-5)
    assert torch.equal(out.mask, torch.rot90(mask, turns, (0, 1)))
    for x, y in out.keypoints.round().long().tolist():
        assert out.image[0, y, x] == pytest.approx(2.0, abs=1e-5)


def test_quarter_turn_draws_all_four_and_refuses_a_non_square_sample() -> None:
    image = torch.arange(16.0).reshape(1, 4, 4)
    seen = set()
    for seed in range(20):
        out = QuarterTurn()(Sample(image), torch.Generator().manual_seed(seed)).image
        seen |= {k for k in range(4) if torch.allclose(out, torch.rot90(image, k, (1, 2)),
                                                       atol=1e-4)}
    assert seen == {0, 1, 2, 3}
    with pytest.raises(ArgumentError, match="QuarterTurn needs square samples .* got 4x6"):
        QuarterTurn()(Sample(torch.rand(1, 4, 6)))


def test_no_displacement_changes_nothing_and_a_constant_one_translates() -> None:
    image, mask = torch.rand(1, 6, 9), torch.randint(0, 3, (6, 9))
    points = torch.tensor([[1.0, 4.0], [7.0, 1.0]])
    sample = Sample(image, mask=mask, keypoints=points)
    same = elastic_warp(sample, torch.zeros(2, 3, 3))
    assert torch.allclose(same.image, image, atol=1e-6) and torch.equal(same.mask, mask)
    assert torch.allclose(same.keypoints, points, atol=1e-9)
    shift = torch.tensor([-3.0, 2.0])[:, None, None].expand(2, 3, 3)  # reads q + (-3, 2)
    out = elastic_warp(sample, shift, fill=0.25)
    assert torch.allclose(out.image[:, :4, 3:], image[:, 2:, :6], atol=1e-6)
    assert torch.equal(out.mask[:4, 3:], mask[2:, :6])
    assert (out.mask[:, :3] == IGNORE_INDEX).all() and (out.mask[4:] == IGNORE_INDEX).all()
    assert torch.allclose(out.keypoints, torch.tensor([[4.0, 2.0], [10.0, -1.0]]), atol=1e-6)
    assert out.visible.tolist() == [True, False]


def test_blob_centres_follow_their_keypoints_through_random_deformations() -> None:
    points = torch.tensor([[18.3, 17.6], [45.5, 20.0], [23.0, 47.8], [32.0, 32.0]])
    sample = Sample(blob_image(64, 64, points, sigma=1.0), keypoints=points,
                    mask=torch.randint(0, 4, (64, 64)))
    moved = 0.0
    for seed in range(5):
        out = ElasticDeform(sigma=4.0)(sample, torch.Generator().manual_seed(seed))
        assert (centroids(out.image) - out.keypoints).abs().max() < 0.12
        assert set(out.mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}
        moved = max(moved, float((out.keypoints - points).abs().max()))
    assert moved > 2.0  # the deformations were not trivial


def test_same_generator_same_deformation_and_bad_arguments() -> None:
    sample = Sample(torch.rand(1, 16, 16))
    first = ElasticDeform()(sample, torch.Generator().manual_seed(3)).image
    assert torch.equal(first, ElasticDeform()(sample, torch.Generator().manual_seed(3)).image)
    assert torch.equal(ElasticDeform(p=0.0)(sample).image, sample.image)
    with pytest.raises(ArgumentError, match="ElasticDeform grid must be an integer >= 2; got 1"):
        ElasticDeform(grid=1)
    with pytest.raises(ArgumentError, match="ElasticDeform sigma must be >= 0 pixels"):
        ElasticDeform(sigma=-1)
    normals = Sample(torch.rand(3, 8, 8), normals=torch.nn.functional.normalize(
        torch.rand(3, 8, 8), dim=0))
    with pytest.raises(ArgumentError, match="ElasticDeform cannot move surface normals"):
        ElasticDeform()(normals)
