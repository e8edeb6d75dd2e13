"""Geometric transforms move instances (boxes, masks, keypoints, crowd) with the image, drop and
count the ones that leave, and leave every other label as it was."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cnnkit.data.batch import collate_samples, to_device
from cnnkit.data.sample import Sample
from cnnkit.data.synthetic_instances import SyntheticInstances, instance_labels
from cnnkit.data.transforms import (Affine, ColorJitter, Compose, Crop, HorizontalFlip, Pad,
                                    RandomCrop, Resize, ScaleJitter, VerticalFlip)
from cnnkit.data.transforms.affine import affine_matrix, warp_affine
from cnnkit.data.transforms.instances import mask_boxes
from cnnkit.errors import ArgumentError
from cnnkit.geometry import Skeleton

SKELETON = Skeleton.from_names(["top", "left", "right"], [("left", "right")])
FIELDS = ("boxes", "box_labels", "instance_masks", "instance_keypoints", "instance_visible",
          "crowd")


def make_sample(height: int = 20, width: int = 24) -> Sample:
    """Three instances: an L shape, a square, a one-pixel-wide bar at the right (crowd)."""
    masks = torch.zeros(3, height, width, dtype=torch.bool)
    masks[0, 2:10, 2:5] = True
    masks[0, 8:10, 2:12] = True  # L: vertical bar and foot
    masks[1, 12:18, 14:20] = True
    masks[2, 3:15, width - 2] = True
    points = torch.tensor([[[3.0, 2.0], [2.0, 9.0], [11.0, 9.0]],
                           [[16.0, 12.0], [14.0, 17.0], [19.0, 17.0]],
                           [[22.0, 3.0], [22.0, 14.0], [22.0, 10.0]]])
    g = torch.Generator().manual_seed(0)
    return Sample(torch.rand(3, height, width, generator=g), skeleton=SKELETON,
                  boxes=mask_boxes(masks), box_labels=torch.tensor([1, 2, 1]),
                  instance_masks=masks, instance_keypoints=points,
                  instance_visible=torch.tensor([[True, True, False], [True] * 3, [True] * 3]),
                  crowd=torch.tensor([False, False, True]), meta={"path": "toy"})


def assert_instances_equal(a: Sample, b: Sample) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("flip", [HorizontalFlip(p=1.0), VerticalFlip(p=1.0)])
def test_flip_twice_is_identity(flip) -> None:
    sample = make_sample()
    once = flip(sample)
    assert not torch.equal(once.instance_masks, sample.instance_masks)
    twice = flip(once)
    assert torch.equal(twice.image, sample.image)
    assert_instances_equal(twice, sample)


def test_flip_matches_the_mirrored_scene_rendered_independently() -> None:
    data = SyntheticInstances(8, size=(48, 64), seed=3)
    for index in range(8):
        sample, shapes = data[index], data.shapes(index)
        flipped = HorizontalFlip(p=1.0)(sample)
        mirrored = [dataclasses.replace(s, cx=63 - s.cx) for s in shapes]
        expected = instance_labels(mirrored, 48, 64)
        assert torch.equal(flipped.instance_masks, expected["masks"])
        assert torch.equal(flipped.boxes, expected["boxes"])
        assert torch.equal(flipped.box_labels, expected["labels"])
        # keypoint "left" of the flipped sample is the mirrored shape's own "left"
        torch.testing.assert_close(flipped.instance_keypoints, expected["keypoints"])
        assert torch.equal(flipped.instance_visible, expected["visible"])
        assert torch.equal(flipped.mask, expected["mask"])


EXACT = [HorizontalFlip(p=1.0), VerticalFlip(p=1.0), Crop(3, 4, 12, 15), Pad((2, 3, 1, 4)),
         Resize((40, 48)), ScaleJitter(3.0, 3.0), RandomCrop(16, pad_if_needed=True),
         Affine(degrees=25, translate=(0.1, 0.1), scale=(0.8, 1.2)),
         Compose([Pad(6), RandomCrop((18, 20)), HorizontalFlip()])]


@pytest.mark.parametrize("transform", EXACT, ids=lambda t: type(t).__name__)
def test_boxes_stay_the_hull_of_their_masks(transform) -> None:
    """Nothing shifts by a pixel: box == hull of the mask's pixel centres +- 0.5."""
    sample = make_sample()
    assert torch.equal(sample.boxes, mask_boxes(sample.instance_masks))
    for seed in range(4):
        out = transform(sample, torch.Generator().manual_seed(seed))
        assert len(out.boxes) + out.meta.get("dropped_instances", 0) == 3
        assert torch.equal(out.boxes, mask_boxes(out.instance_masks))
        assert bool(out.instance_masks.flatten(1).any(1).all())


def test_crop_drops_and_counts_instances_that_leave() -> None:
    sample = make_sample()
    out = Crop(0, 0, 11, 13)(sample)  # keeps most of the L, none of the square and the bar
    assert out.meta["dropped_instances"] == 2
    assert out.box_labels.tolist() == [1] and out.crowd.tolist() == [False]
    assert out.boxes.tolist() == [[1.5, 1.5, 11.5, 9.5]]
    again = Crop(0, 0, 5, 13)(out)  # cuts the foot off the L: its box is refitted
    assert again.meta["dropped_instances"] == 2
    assert again.boxes.tolist() == [[1.5, 1.5, 4.5, 4.5]]
    assert again.instance_visible.tolist() == [[True, False, False]]  # the others left
    gone = Crop(0, 0, 1, 13)(again)  # the L starts at row 2: nothing is left
    assert gone.meta["dropped_instances"] == 3 and gone.boxes.shape == (0, 4)
    assert gone.instance_masks.shape == (0, 1, 13) and gone.instance_keypoints.shape == (0, 3, 2)


def test_crop_cutting_a_box_without_masks_clips_it_and_drops_slivers() -> None:
    sample = make_sample().replace(instance_masks=None)
    out = Crop(0, 0, 11, 23)(sample)  # the bar's box [21.5, 22.5]: 0.5 px of it inside
    assert out.box_labels.tolist() == [1, 1] and out.meta["dropped_instances"] == 1
    assert out.boxes[1].tolist() == [21.5, 2.5, 22.5, 10.5]


def test_downscale_drops_instances_thinner_than_a_pixel() -> None:
    out = Resize((10, 12))(make_sample())  # the 1-px bar becomes 0.5 px wide
    assert out.meta["dropped_instances"] == 1 and out.crowd.tolist() == [False, False]
    assert out.meta["transforms"][-1][0] == "resize"


def test_affine_quarter_turn_turns_masks_and_boxes_exactly() -> None:
    sample = make_sample(20, 20)
    out = warp_affine(sample, affine_matrix((20, 20), angle=90.0))
    turned = torch.rot90(sample.instance_masks, 1, (1, 2))  # counter-clockwise on the screen
    assert torch.equal(out.instance_masks, turned)
    assert torch.equal(out.boxes, mask_boxes(turned))
    x, y = sample.instance_keypoints[..., 0], sample.instance_keypoints[..., 1]
    torch.testing.assert_close(out.instance_keypoints, torch.stack([y, 19 - x], -1))


def test_keypoints_that_leave_become_invisible_and_colour_leaves_instances() -> None:
    sample = make_sample()
    out = Crop(0, 0, 20, 20)(sample)  # the bar (x = 22) is dropped, the square keeps x <= 19
    assert out.instance_visible.tolist() == [[True, True, False], [True, True, True]]
    shifted = Crop(0, 3, 20, 21)(sample)  # x -> x - 3: the L's left keypoint (x = 2) leaves
    assert shifted.instance_visible[0].tolist() == [True, False, False]
    coloured = ColorJitter(0.4, 0.4, 0.4)(sample, torch.Generator().manual_seed(0))
    assert_instances_equal(coloured, sample)


def test_samples_without_instances_keep_every_box() -> None:
    plain = Sample(torch.rand(3, 10, 10), boxes=torch.tensor([[1.0, 1.0, 3.0, 3.0]]),
                   box_labels=torch.tensor([0]))
    out = Crop(5, 5, 5, 5)(plain)
    assert out.boxes.tolist() == [[-0.5, -0.5, -0.5, -0.5]] and not out.has_instances
    assert "dropped_instances" not in out.meta


def test_scale_jitter_draws_sizes_in_range() -> None:
    sample = make_sample()
    sizes = {ScaleJitter(0.5, 1.5)(sample, torch.Generator().manual_seed(s)).size
             for s in range(12)}
    assert len(sizes) > 3 and all(10 <= h <= 30 and 12 <= w <= 36 for h, w in sizes)
    out = ScaleJitter(short_side=(30, 30))(sample)
    assert out.size == (30, 36)
    with pytest.raises(ArgumentError, match="min_scale"):
        ScaleJitter(2.0, 1.0)


def test_collate_lists_instances_per_sample() -> None:
    a, b = make_sample(), Crop(0, 0, 20, 24)(make_sample()).replace(boxes=torch.zeros(0, 4),
                                                                    box_labels=None,
                                                                    instance_masks=None,
                                                                    instance_keypoints=None,
                                                                    instance_visible=None,
                                                                    crowd=torch.zeros(0).bool())
    batch = collate_samples([a, b])
    first, second = batch["instances"]
    assert set(first) == {"boxes", "labels", "masks", "keypoints", "crowd"}
    assert set(second) == {"boxes", "crowd"}
    assert first["keypoints"].shape == (3, 3, 3)
    assert first["keypoints"][0, :, 2].tolist() == [2.0, 2.0, 0.0]
    assert torch.equal(first["keypoints"][..., :2], a.instance_keypoints)
    assert "boxes" not in batch  # b has no box: the localization key needs one per sample
    moved = to_device(batch, "cpu")
    assert torch.equal(moved["instances"][0]["masks"], a.instance_masks)
    single = collate_samples([a, a])
    assert torch.equal(single["boxes"], torch.stack([a.boxes[0], a.boxes[0]]))


def test_sample_checks_instance_shapes() -> None:
    sample = make_sample()
    with pytest.raises(ArgumentError, match="instance_masks must be bool B x H x W"):
        sample.replace(instance_masks=sample.instance_masks[:, :5])
    with pytest.raises(ArgumentError, match="needs boxes"):
        sample.replace(boxes=None)
    with pytest.raises(ArgumentError, match="crowd must be bool"):
        sample.replace(crowd=torch.zeros(3))
    with pytest.raises(ArgumentError, match="instance_keypoints must be B x K x 2"):
        sample.replace(instance_keypoints=torch.zeros(2, 3, 2), instance_visible=None)
    with pytest.raises(ArgumentError, match="box_labels"):
        sample.replace(box_labels=torch.tensor([1]))
    filled = Sample(torch.rand(3, 4, 4), boxes=torch.zeros(1, 4),
                    instance_masks=torch.ones(1, 4, 4, dtype=torch.bool))
    assert filled.has_instances and filled.crowd.tolist() == [False]
