"""Batch transforms: flips and shifts of whole batches (image and mask together), refusal of
coordinate labels, configuration errors, and the trainer applying them to training batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.runs.data import build_batch_transforms
from cnnkit.config.loader import ConfigError
from cnnkit.data.transforms.batched import (BatchHorizontalFlip, BatchRandomErasing,
                                            BatchRandomShift)
from cnnkit.runs import RunFolder
from cnnkit.engine import Trainer
from cnnkit.errors import CnnkitError
from helpers.engine import TinyNet, TinyTask, shuffled_loader, tiny_data


def batch(n: int = 6) -> dict:
    image = torch.arange(n * 2 * 5 * 7, dtype=torch.float32).view(n, 2, 5, 7)
    mask = torch.arange(n * 5 * 7).view(n, 5, 7) % 11
    return {"image": image, "mask": mask, "label": torch.arange(n)}


def test_flip_mirrors_image_and_mask_together_or_not_at_all() -> None:
    data = batch()
    flipped = BatchHorizontalFlip(p=1.0)(data)
    assert torch.equal(flipped["image"], data["image"].flip(-1))
    assert torch.equal(flipped["mask"], data["mask"].flip(-1))
    assert torch.equal(flipped["label"], data["label"])
    kept = BatchHorizontalFlip(p=0.0)(data)
    assert torch.equal(kept["image"], data["image"]) and torch.equal(kept["mask"], data["mask"])
    torch.manual_seed(0)
    mixed = BatchHorizontalFlip(p=0.5)(batch(64))
    which = [torch.equal(mixed["image"][i], batch(64)["image"][i].flip(-1)) for i in range(64)]
    for i, was_flipped in enumerate(which):  # the mask follows its own image
        expected = batch(64)["mask"][i].flip(-1) if was_flipped else batch(64)["mask"][i]
        assert torch.equal(mixed["mask"][i], expected)
    assert 0 < sum(which) < 64


def test_shift_is_a_crop_of_the_padded_sample_with_the_fills() -> None:
    torch.manual_seed(0)
    data, pad = batch(), 2
    shifted = BatchRandomShift(padding=pad, fill=-1.0, mask_fill=255)(data)
    padded_image = F.pad(data["image"], (pad,) * 4, value=-1.0)
    padded_mask = F.pad(data["mask"], (pad,) * 4, value=255)
    offsets = set()
    for i in range(6):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(shifted["image"][i], padded_image[i, :, dy:dy + 5, dx:dx + 7])]
        assert len(matches) == 1
        dy, dx = matches[0]
        assert torch.equal(shifted["mask"][i], padded_mask[i, dy:dy + 5, dx:dx + 7])
        offsets.add((dy, dx))
    assert len(offsets) > 1 and shifted["image"].shape == data["image"].shape


def test_shift_keeps_channels_last_and_coordinates_are_refused() -> None:
    data = batch()
    data["image"] = data["image"].contiguous(memory_format=torch.channels_last)
    out = BatchRandomShift(padding=1)(data)["image"]
    assert out.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(CnnkitError, match="BatchHorizontalFlip moves images and masks only.*"
                                          "keypoints"):
        BatchHorizontalFlip()({**batch(), "keypoints": torch.zeros(6, 4, 2)})
    with pytest.raises(ValueError, match="padding must be >= 0"):
        BatchRandomShift(padding=-1)


def test_erasing_fills_one_rectangle_of_the_drawn_area_per_chosen_image() -> None:
    torch.manual_seed(0)
    images = torch.ones(400, 1, 20, 30)
    erased = BatchRandomErasing(p=0.5, scale=(0.1, 0.2), ratio=(0.5, 2.0), value=-1.0)(
        {"image": images, "label": torch.zeros(400)})["image"]
    holes = erased[:, 0] == -1.0
    counts = holes.flatten(1).sum(1)
    chosen = counts > 0
    assert 150 < int(chosen.sum()) < 250  # p = 0.5
    assert torch.equal(erased[~chosen], images[~chosen])
    for hole in holes[chosen]:  # one filled rectangle each
        rows, cols = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
        height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert hole.sum() == height * width
        assert 0.5 / 2.0 <= height / width <= 2.0 * 2.0  # rounding of small sides
    share = counts[chosen].float() / 600
    assert share.min() >= 0.08 and share.max() <= 0.22
    with pytest.raises(CnnkitError, match="erases image pixels only; this batch also holds mask"):
        BatchRandomErasing()(batch())
    with pytest.raises(CnnkitError, match="scale must be"):
        BatchRandomErasing(scale=(0.5, 0.1))


def test_batch_transforms_from_configuration_entries() -> None:
    built = build_batch_transforms([{"BatchRandomShift": {"padding": 2}}, "BatchHorizontalFlip"])
    assert [type(t).__name__ for t in built.transforms] == ["BatchRandomShift",
                                                             "BatchHorizontalFlip"]
    assert build_batch_transforms([]) is None
    with pytest.raises(ConfigError, match=r"data.batch_transforms\[0\].*did you mean "
                                          "BatchHorizontalFlip"):
        build_batch_transforms(["BatchHorizontalFlp"])


def test_trainer_applies_the_batch_transform_to_training_batches_only(tmp_path) -> None:
    seen: list[int] = []

    def record(data: dict) -> dict:
        seen.append(data["image"].shape[0])
        return {**data, "image": data["image"] * 0}

    trainer = Trainer(TinyNet(), TinyTask(), shuffled_loader(tiny_data(16)),
                      shuffled_loader(tiny_data(8, seed=3)), epochs=1, files=RunFolder(tmp_path),
                      device="cpu", quiet=True, tensorboard=False, batch_transform=record)
    trainer.fit()
    assert seen == [8, 8]  # two training batches; validation (8 samples) untouched
