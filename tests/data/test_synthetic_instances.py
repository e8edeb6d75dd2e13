"""Synthetic instances: deterministic per (seed, index), exact visible masks under occlusion,
boxes of the visible masks, occluded keypoints invisible, and fast."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from cnnkit.data.datasets import label_space
from cnnkit.data.synthetic import shape_region
from cnnkit.data.synthetic_instances import SyntheticInstances, instance_labels
from cnnkit.data.transforms.instances import mask_boxes
from cnnkit.errors import ArgumentError

FIELDS = ("image", "mask", "boxes", "box_labels", "instance_masks", "instance_keypoints",
          "instance_visible", "crowd")


def test_sample_depends_only_on_seed_and_index() -> None:
    a, b = SyntheticInstances(6, size=64, seed=5), SyntheticInstances(20, size=64, seed=5)
    for index in (4, 0, 2):  # any order, any dataset length
        for name in FIELDS:
            assert torch.equal(getattr(a[index], name), getattr(b[index], name)), name
    assert not torch.equal(a[0].image, SyntheticInstances(6, size=64, seed=6)[0].image)
    assert not torch.equal(a[0].image, a[1].image)


def test_masks_are_what_is_visible_and_boxes_are_theirs() -> None:
    data = SyntheticInstances(16, size=(56, 72), seed=2)
    ys, xs = torch.meshgrid(torch.arange(56.0), torch.arange(72.0), indexing="ij")
    occluded_points = hidden_shapes = 0
    for index in range(len(data)):
        sample, shapes = data[index], data.shapes(index)
        masks = sample.instance_masks
        assert masks.sum(0).max() <= 1  # disjoint
        assert torch.equal(masks.any(0), sample.mask > 0)
        assert torch.equal(sample.boxes, mask_boxes(masks))
        assert not sample.crowd.any() and sample.has_instances
        regions = [shape_region(s, xs, ys) for s in shapes]
        row = 0
        for i, region in enumerate(regions):
            visible = region.clone()
            for later in regions[i + 1:]:
                visible &= ~later
            if not visible.any():
                hidden_shapes += 1
                continue
            assert torch.equal(masks[row], visible)
            assert sample.box_labels[row] == shapes[i].kind + 1
            for k, (x, y) in enumerate(sample.instance_keypoints[row].tolist()):
                covered = any(bool(r[round(y), round(x)]) for r in regions[i + 1:])
                assert bool(sample.instance_visible[row, k]) == (not covered)
                occluded_points += covered
            row += 1
        assert row == len(masks)
    assert occluded_points > 0  # the check above saw occlusion at work


def test_labels_of_one_shape_hidden_by_another() -> None:
    data = SyntheticInstances(1, size=48)
    shape = data.shapes(0)[0]
    big = dataclasses.replace(shape, kind=1, cx=24, cy=24, radius=12.0)
    small = dataclasses.replace(shape, kind=0, cx=24, cy=24, radius=7.0)
    front = instance_labels([small, big], 48, 48)  # the small circle is behind the square
    assert front["labels"].tolist() == [2]
    both = instance_labels([big, small], 48, 48)
    assert both["labels"].tolist() == [2, 1]
    assert both["visible"][0].tolist() == [False, True, True, False]  # top (24, 18) and centre under the circle


def test_label_space_and_arguments() -> None:
    space = label_space(SyntheticInstances(2))
    assert space.instances.names == ("background", "circle", "square", "triangle")
    assert space.skeleton.flip_pairs == ((1, 2),)
    with pytest.raises(ArgumentError, match="min_instances"):
        SyntheticInstances(2, min_instances=3, max_instances=2)


def test_fast_enough() -> None:
    data = SyntheticInstances(64, size=128)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads only add overhead on a busy machine
    try:
        start = time.perf_counter()
        samples = [data[i] for i in range(64)]
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 2.0 and sum(len(s.boxes) for s in samples) > 64
