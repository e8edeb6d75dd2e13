"""Resize, crop, pad, random crops and flips move the image and every label consistently."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.geometry import Skeleton
from cnnkit.data.transforms import (CenterCrop, Compose, Crop, HorizontalFlip, Pad, RandomCrop,
                                    RandomResizedCrop, ResNetScale, Resize, VerticalFlip)

SKELETON = Skeleton.from_names(["nose", "left_eye", "right_eye", "left_ear", "right_ear"],
                               [("left_eye", "right_eye"), ("left_ear", "right_ear")])
MASK_VALUES = (0, 1, 3, 4, 7)


def make_sample(height: int = 12, width: int = 15, seed: int = 0) -> Sample:
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor(MASK_VALUES)
    mask = values[torch.randint(len(MASK_VALUES), (height, width), generator=g)]
    keypoints = torch.tensor([[3.0, 4.0], [1.25, 2.5], [width - 2.0, 1.0], [0.0, height - 1.0],
                              [width - 1.0, 0.0]])
    boxes = torch.tensor([[1.0, 2.0, 5.5, 7.0], [-0.5, -0.5, width - 0.5, height - 0.5]])
    return Sample(torch.rand(3, height, width, generator=g), label=2, mask=mask,
                  keypoints=keypoints, visible=torch.tensor([True, True, False, True, True]),
                  skeleton=SKELETON, boxes=boxes, box_labels=torch.tensor([1, 2]))


def assert_same(a: Sample, b: Sample) -> None:
    assert torch.equal(a.image, b.image)
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.keypoints, b.keypoints)
    assert torch.equal(a.visible, b.visible)
    assert torch.equal(a.boxes, b.boxes)


@pytest.mark.parametrize("size", [(12, 15), (9, 8)])
@pytest.mark.parametrize("flip", [HorizontalFlip(p=1.0, mask_remap={3: 4}),
                                  VerticalFlip(p=1.0, mask_remap={3: 4})])
def test_flip_twice_is_identity(size, flip) -> None:
    sample = make_sample(*size)
    once = flip(sample)
    assert not torch.equal(once.image, sample.image)
    assert_same(flip(once), sample)


def test_horizontal_flip_mirrors_and_swaps_left_right() -> None:
    sample = make_sample(12, 15)
    flipped = HorizontalFlip(p=1.0)(sample)
    perm = SKELETON.flip_permutation()
    assert perm == [0, 2, 1, 4, 3]
    for new, old in enumerate(perm):  # "left eye" now sits where the mirrored right eye is
        assert flipped.keypoints[new].tolist() == [14 - sample.keypoints[old, 0].item(),
                                                   sample.keypoints[old, 1].item()]
        assert flipped.visible[new] == sample.visible[old]
    # the image content under each keypoint follows it
    for new, old in enumerate(perm):
        x, y = flipped.keypoints[new].round().long().tolist()
        ox, oy = sample.keypoints[old].round().long().tolist()
        assert torch.equal(flipped.image[:, y, x], sample.image[:, oy, ox])
    assert flipped.boxes[0].tolist() == [14 - 5.5, 2.0, 14 - 1.0, 7.0]
    assert flipped.boxes[1].tolist() == [-0.5, -0.5, 14.5, 11.5]


def test_flip_remaps_mask_classes_both_ways() -> None:
    sample = make_sample(6, 7)
    flipped = HorizontalFlip(p=1.0, mask_remap={3: 4})(sample)
    mirrored = sample.mask.flip(-1)
    assert torch.equal(flipped.mask[mirrored == 3], torch.full_like(flipped.mask[mirrored == 3], 4))
    assert torch.equal(flipped.mask[mirrored == 4], torch.full_like(flipped.mask[mirrored == 4], 3))
    keep = (mirrored != 3) & (mirrored != 4)
    assert torch.equal(flipped.mask[keep], mirrored[keep])
    with pytest.raises(ValueError, match="mask_remap"):
        HorizontalFlip(mask_remap={3: 4, 4: 5})


def test_flip_probability_zero_returns_input() -> None:
    sample = make_sample()
    assert HorizontalFlip(p=0.0)(sample) is sample


def test_resized_mask_only_has_original_values() -> None:
    sample = make_sample(12, 15)
    for size in [(5, 7), (29, 31), (12, 40), 9]:
        out = Resize(size)(sample)
        assert set(out.mask.unique().tolist()) <= set(MASK_VALUES)
    assert Resize(9)(sample).size == (9, 11)  # short side 9, 15 * 9 / 12 = 11.25 -> 11


def test_resize_upscale_by_two_is_exact() -> None:
    sample = make_sample(6, 5)
    out = Resize((12, 10))(sample)
    assert torch.equal(out.mask, sample.mask.repeat_interleave(2, 0).repeat_interleave(2, 1))
    # x -> (x + 0.5) * 2 - 0.5: pixel 3 -> 6.5, the centre of output pixels 6 and 7
    assert out.keypoints[0].tolist() == [6.5, 8.5]
    assert out.boxes[1].tolist() == [-0.5, -0.5, 9.5, 11.5]


def blob_image(height: int, width: int, centres: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    image = torch.zeros(len(centres), height, width)
    for k, (x, y) in enumerate(centres.tolist()):
        image[k] = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return image


def centroids(image: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(image.shape[1], dtype=torch.float32),
                            torch.arange(image.shape[2], dtype=torch.float32), indexing="ij")
    total = image.sum((1, 2))
    return torch.stack([(image * xs).sum((1, 2)) / total, (image * ys).sum((1, 2)) / total], 1)


@pytest.mark.parametrize("size", [(27, 41), (83, 61)])
def test_resize_keeps_points_on_the_content(size) -> None:
    points = torch.tensor([[20.3, 15.7], [12.0, 30.5]])
    sample = Sample(blob_image(48, 40, points, sigma=2.5), keypoints=points)
    out = Resize(size)(sample)
    assert (centroids(out.image) - out.keypoints).abs().max() < 0.05


def test_crop_and_pad_shift_points_exactly() -> None:
    sample = make_sample(12, 15)
    out = Crop(top=2, left=3, height=5, width=6)(sample)
    assert torch.equal(out.image, sample.image[:, 2:7, 3:9])
    assert torch.equal(out.mask, sample.mask[2:7, 3:9])
    assert torch.equal(out.keypoints, sample.keypoints - torch.tensor([3.0, 2.0]))
    # inside the 6 x 5 window: only (0, 2) -> x 0, y 2
    assert out.visible.tolist() == [True, False, False, False, False]
    assert out.keypoints.shape == (5, 2)  # nothing dropped
    assert out.boxes.tolist() == [[-0.5, 0.0, 2.5, 4.5], [-0.5, -0.5, 5.5, 4.5]]
    assert out.box_labels.tolist() == [1, 2]

    padded = Pad((1, 2, 3, 4), fill=0.5)(sample)
    assert padded.size == (18, 19)
    assert torch.equal(padded.image[:, 2:14, 1:16], sample.image)
    assert torch.equal(padded.keypoints, sample.keypoints + torch.tensor([1.0, 2.0]))
    assert torch.equal(padded.visible, sample.visible)
    border = torch.ones(18, 19, dtype=torch.bool)
    border[2:14, 1:16] = False
    assert (padded.image[:, border] == 0.5).all()
    assert (padded.mask[border] == IGNORE_INDEX).all()


def test_box_outside_the_crop_becomes_empty_but_is_kept() -> None:
    sample = make_sample(12, 15)
    out = Crop(top=8, left=10, height=4, width=5)(sample)
    assert out.boxes.shape == (2, 4)
    x1, y1, x2, y2 = out.boxes[0].tolist()
    assert x1 == x2 == -0.5 and y1 == y2 == -0.5  # zero area on the border


def test_center_and_random_crop() -> None:
    sample = make_sample(12, 15)
    out = CenterCrop(6)(sample)
    assert torch.equal(out.image, sample.image[:, 3:9, 4:10])
    with pytest.raises(ValueError, match="RandomCrop size"):
        RandomCrop(13)(sample)
    assert RandomCrop(14, pad_if_needed=True)(sample).size == (14, 14)
    for seed in range(5):
        crop = RandomCrop((5, 7))(sample, torch.Generator().manual_seed(seed))
        _, params = crop.meta["transforms"][-1]
        top, left = params["top"], params["left"]
        assert torch.equal(crop.image, sample.image[:, top:top + 5, left:left + 7])
        assert torch.equal(crop.keypoints, sample.keypoints - torch.tensor([left, top]))


def test_random_resized_crop() -> None:
    sample = make_sample(40, 50)
    for seed in range(5):
        out = RandomResizedCrop(16, scale=(0.2, 1.0))(sample, torch.Generator().manual_seed(seed))
        assert out.size == (16, 16)
        assert set(out.mask.unique().tolist()) <= set(MASK_VALUES)
        _, crop = out.meta["transforms"][0]
        h, w = crop["size"]
        assert 0.2 * 2000 - 50 <= h * w <= 2000 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(16, scale=(0.0, 1.0))


def test_resnet_scale_short_side_and_crop() -> None:
    sample = Sample(torch.rand(3, 60, 80), mask=torch.zeros(60, 80, dtype=torch.long),
                    keypoints=torch.tensor([[40.0, 30.0]]))
    shorts = []
    for seed in range(6):
        out = ResNetScale()(sample, torch.Generator().manual_seed(seed))
        assert out.size == (224, 224) and out.mask.shape == (224, 224)
        name, params = out.meta["transforms"][0]
        assert name == "resize"
        shorts.append(min(params["size"]))
        assert 256 <= shorts[-1] <= 480
        assert params["size"][1] == round(80 * shorts[-1] / 60)
    assert len(set(shorts)) > 1
    fixed = ResNetScale(short_side=(256, 256))(sample, torch.Generator().manual_seed(0))
    assert fixed.meta["transforms"][0][1]["size"] == (256, 341)


def test_seeded_determinism() -> None:
    pipeline = Compose([ResNetScale((40, 60), 32), HorizontalFlip(), VerticalFlip(),
                        RandomResizedCrop(24)])
    sample = make_sample(30, 40)
    a = pipeline(sample, torch.Generator().manual_seed(7))
    b = pipeline(sample, torch.Generator().manual_seed(7))
    assert_same(a, b)
    c = [pipeline(sample, torch.Generator().manual_seed(s)) for s in range(8, 12)]
    assert any(not torch.equal(a.image, other.image) for other in c)
    assert sample.meta == {}  # the input was not modified
