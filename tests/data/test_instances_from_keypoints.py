"""A single-animal keypoint dataset as instances: one animal per frame, boxed by its keypoints."""

from __future__ import annotations

import pytest
import torch
from helpers.data import need_data
from torch.utils.data import Dataset

from cnnkit.data.datasets import LabelSpace, label_space
from cnnkit.data.datasets.catalog import open_split
from cnnkit.data.instances import InstancesFromKeypoints
from cnnkit.data.sample import Sample
from cnnkit.data.transforms import HorizontalFlip
from cnnkit.errors import ArgumentError
from cnnkit.geometry import Skeleton

SKELETON = Skeleton.from_names(["nose", "left", "right", "tail"], [("left", "right")])


class _Frames(Dataset):
    label_space = LabelSpace(skeleton=SKELETON)
    keys = ["a", "b", "c"]

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Sample:
        points = torch.tensor([[10.0, 20.0], [14.0, 18.0], [14.0, 22.0], [50.0, 20.0]])
        visible = torch.tensor([[True] * 4, [True, True, True, False], [False] * 4])[index]
        return Sample(torch.rand(3, 40, 60), keypoints=points, visible=visible,
                      skeleton=SKELETON)


def test_the_box_is_the_keypoint_hull_grown_by_the_margin_of_its_longer_side() -> None:
    data = InstancesFromKeypoints(_Frames(), margin=0.25)
    sample = data[0]
    # hull x 10..50, y 18..22: longer side 40, 10 px per side, clipped to the image
    assert sample.boxes.tolist() == [[0.0, 8.0, 59.5, 32.0]]
    assert sample.box_labels.tolist() == [1] and sample.keypoints is None
    assert torch.equal(sample.instance_keypoints[0], _Frames()[0].keypoints)
    assert sample.instance_visible.tolist() == [[True] * 4]
    assert data[1].boxes.tolist() == [[9.0, 17.0, 15.0, 23.0]]  # no tail: hull 4 px, 1 px more
    assert data[2].boxes.shape == (0, 4) and data[2].instance_keypoints.shape == (0, 4, 2)
    assert label_space(data).instances.names == ("background", "animal")
    assert data.keys == ["a", "b", "c"] and len(data) == 3


def test_a_flip_swaps_the_left_and_right_keypoints_of_the_instance() -> None:
    sample = InstancesFromKeypoints(_Frames(), margin=0.0)[0]
    flipped = HorizontalFlip(p=1.0)(sample)
    assert flipped.boxes.tolist() == [[9.0, 18.0, 49.0, 22.0]]  # x -> 59 - x
    assert flipped.instance_keypoints[0].tolist() == [[49.0, 20.0], [45.0, 22.0], [45.0, 18.0],
                                                      [9.0, 20.0]]


def test_bad_margin_and_a_dataset_without_keypoints_are_one_line_errors() -> None:
    with pytest.raises(ArgumentError, match="margin must be a number >= 0"):
        InstancesFromKeypoints(_Frames(), margin=-1)

    class _Plain(_Frames):
        label_space = LabelSpace()

    with pytest.raises(ArgumentError, match="needs a keypoint dataset"):
        InstancesFromKeypoints(_Plain())


def test_deeplabcut_frames_are_one_mouse_each() -> None:
    root = need_data("dlc-openfield")
    data = open_split("dlc-instances", root, "val")
    sample = data[0]
    assert sample.boxes.shape == (1, 4) and sample.instance_keypoints.shape == (1, 4, 2)
    assert label_space(data).skeleton.flip_pairs == ((1, 2),)
