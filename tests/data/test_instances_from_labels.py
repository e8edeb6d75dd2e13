"""Label image -> instances: 4-connected components of each class, min_area, the dataset
wrapper, and agreement with a plain flood fill."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from helpers.data import need_data
from torch.utils.data import Dataset

from cnnkit.data.datasets import ClassList, LabelSpace, label_space
from cnnkit.data.datasets.catalog import open_split
from cnnkit.data.instances import InstancesFromSemantic, instances_from_labels
from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.data.transforms.instances import mask_boxes
from cnnkit.errors import ArgumentError


def test_squares_touching_at_a_corner_are_two_instances() -> None:
    mask = torch.zeros(6, 6, dtype=torch.int64)
    mask[0:2, 0:2] = 1
    mask[2:4, 2:4] = 1
    found = instances_from_labels(mask)
    assert found["labels"].tolist() == [1, 1]
    assert found["boxes"].tolist() == [[-0.5, -0.5, 1.5, 1.5], [1.5, 1.5, 3.5, 3.5]]
    mask[1, 2] = 1  # now they share an edge
    assert len(instances_from_labels(mask)["labels"]) == 1


def test_min_area_classes_and_separators() -> None:
    mask = torch.zeros(8, 10, dtype=torch.int64)
    mask[0:3, 0:4] = 2
    mask[0:3, 4:8] = 3  # touches class 2: a different class is a different instance
    mask[7, 9] = 2  # a speck
    mask[5, :] = 2
    mask[5, 4] = IGNORE_INDEX  # the ignore value splits the row in two
    found = instances_from_labels(mask, min_area=2)
    assert found["labels"].tolist() == [2, 3, 2, 2]
    assert found["masks"].flatten(1).sum(1).tolist() == [12, 12, 4, 5]
    assert len(instances_from_labels(mask)["labels"]) == 5  # the speck is back
    only = instances_from_labels(mask, classes=[3])
    assert only["labels"].tolist() == [3] and torch.equal(only["masks"][0], mask == 3)
    assert instances_from_labels(torch.zeros(4, 4, dtype=torch.int64))["masks"].shape == (0, 4, 4)
    with pytest.raises(ArgumentError, match="min_area"):
        instances_from_labels(mask, min_area=0)
    with pytest.raises(ArgumentError, match="integer class map"):
        instances_from_labels(mask.float())


def _flood_fill(mask: np.ndarray, classes) -> tuple[np.ndarray, int]:
    height, width = mask.shape
    seen, count = np.full(mask.shape, -1), 0
    for i in range(height):
        for j in range(width):
            if mask[i, j] in classes and seen[i, j] < 0:
                stack, seen[i, j] = [(i, j)], count
                while stack:
                    y, x = stack.pop()
                    for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                        if 0 <= yy < height and 0 <= xx < width and seen[yy, xx] < 0 \
                                and mask[yy, xx] == mask[y, x]:
                            seen[yy, xx] = count
                            stack.append((yy, xx))
                count += 1
    return seen, count


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_a_flood_fill(seed) -> None:
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, 3, (30, 41), generator=g)
    reference, count = _flood_fill(mask.numpy(), (1, 2))
    found = instances_from_labels(mask, [1, 2])
    ids = torch.full(mask.shape, -1)
    for k, m in enumerate(found["masks"]):
        ids[m] = k
    assert len(found["labels"]) == count and np.array_equal(ids.numpy(), reference)
    assert torch.equal(found["boxes"], mask_boxes(found["masks"]))


def test_fast_on_512_by_512() -> None:
    grid = torch.from_numpy((np.arange(512) % 32 > 1)[:, None] & (np.arange(512) % 32 > 1))
    snake = torch.zeros(512, 512, dtype=torch.int64)
    snake[::2] = 1
    snake[1::4, -1] = 1
    snake[3::4, 0] = 1
    start = time.perf_counter()
    cells = instances_from_labels(grid.long())
    one = instances_from_labels(snake)
    assert time.perf_counter() - start < 1.5
    assert len(cells["labels"]) == 256 and len(one["labels"]) == 1


class _Semantic(Dataset):
    label_space = LabelSpace(mask=ClassList(("sky", "road", "car")))
    keys = ["a", "b"]

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Sample:
        mask = torch.zeros(6, 8, dtype=torch.int64)
        mask[1:3, 1:3] = 2
        mask[4:6, 5:8] = 2
        mask[0, 7] = 1
        return Sample(torch.rand(3, 6, 8), mask=mask, meta={"path": f"{index}.png"})


def test_wrapper_turns_a_semantic_dataset_into_instances() -> None:
    data = InstancesFromSemantic(_Semantic(), classes=[2, 1])
    sample = data[0]
    assert sample.box_labels.tolist() == [2, 1, 1]  # road (class 1) is label 2, car label 1
    assert sample.has_instances and torch.equal(sample.boxes, mask_boxes(sample.instance_masks))
    assert label_space(data).instances.names == ("background", "car", "road")
    assert data.keys == ["a", "b"] and len(data) == 2
    assert len(InstancesFromSemantic(_Semantic(), classes=[2], min_area=5)[1].boxes) == 1


def test_membrane_cells_are_instances() -> None:
    root = need_data("membrane")
    data = open_split("membrane-instances", root, "val")
    sample = data[0]
    assert len(sample.boxes) > 50 and set(sample.box_labels.tolist()) == {1}
    assert torch.equal(sample.instance_masks.any(0), sample.mask == 1)
    assert label_space(data).instances.names == ("background", "cell")
