"""Depth, normals and valid on Sample: shape checks, collation, and every transform moving them
exactly like the mask (normals turned by flips and rotations), other labels unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.data.batch import collate_samples, to_device
from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.data.transforms import (Affine, CenterCrop, ColorJitter, Crop, Grayscale,
                                    HorizontalFlip, LensDistortion, Normalize, Pad, PCAColor,
                                    RandomCrop, RandomResizedCrop, ResNetScale, Resize,
                                    VerticalFlip)
from cnnkit.data.transforms.affine import affine_matrix, warp_affine
from cnnkit.data.transforms.batched import BatchHorizontalFlip, BatchRandomShift
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.geometry import Skeleton

H, W = 12, 15  # H * W < IGNORE_INDEX: the mask can hold each pixel's own index


def dense_sample(height: int = H, width: int = W, seed: int = 0, labels: bool = True) -> Sample:
    """Mask = pixel index (so it says where each output pixel came from), unique depths,
    random unit normals, a few unknown pixels."""
    g = torch.Generator().manual_seed(seed)
    index = torch.arange(height * width).view(height, width)
    depth = 1.0 + index.float() / 10
    normals = torch.randn(3, height, width, generator=g)
    normals[2] = -normals[2].abs() - 0.1  # facing the camera
    normals = normals / normals.norm(dim=0)
    valid = torch.rand(height, width, generator=g) > 0.2
    depth, normals = depth * valid, normals * valid
    extra = {}
    if labels:
        extra = {"keypoints": torch.tensor([[3.0, 4.0], [1.25, 2.5], [width - 2.0, 1.0]]),
                 "skeleton": Skeleton.from_names(["a", "l", "r"], [("l", "r")]),
                 "boxes": torch.tensor([[1.0, 2.0, 5.5, 7.0]]), "box_labels": torch.tensor([1])}
    return Sample(torch.rand(3, height, width, generator=g), label=1, mask=index, depth=depth,
                  normals=normals, valid=valid, **extra)


def without_dense(sample: Sample) -> Sample:
    return sample.replace(depth=None, normals=None, valid=None)


def test_sample_checks_shapes_and_fills_valid() -> None:
    image = torch.zeros(3, 4, 5)
    with pytest.raises(ArgumentError, match=r"depth must be H x W = 4 x 5 like the image; got "
                                            r"\(5, 4\)"):
        Sample(image, depth=torch.ones(5, 4))
    with pytest.raises(ArgumentError, match=r"normals must be 3 x H x W = 3 x 4 x 5"):
        Sample(image, normals=torch.ones(4, 5, 3))
    with pytest.raises(ArgumentError, match=r"depth must be float"):
        Sample(image, depth=torch.ones(4, 5, dtype=torch.int32))
    with pytest.raises(ArgumentError, match=r"valid must be a bool H x W = 4 x 5 map"):
        Sample(image, depth=torch.ones(4, 5), valid=torch.ones(4, 5))
    depth = torch.ones(4, 5)
    depth[0, 0] = 0
    assert torch.equal(Sample(image, depth=depth).valid, depth > 0)
    normals = torch.zeros(3, 4, 5)
    normals[2, 1, 1] = -1
    assert Sample(image, normals=normals).valid.sum() == 1
    assert Sample(image).valid is None


def test_collate_stacks_and_to_device_moves() -> None:
    samples = [dense_sample(seed=i, labels=False) for i in range(3)]
    batch = collate_samples(samples)
    assert batch["depth"].shape == (3, H, W) and batch["depth"].dtype == torch.float32
    assert batch["normals"].shape == (3, 3, H, W) and batch["valid"].dtype == torch.bool
    assert torch.equal(batch["valid"][1], samples[1].valid)
    moved = to_device(batch, "cpu")
    assert all(torch.equal(moved[k], batch[k]) for k in ("depth", "normals", "valid"))
    assert "depth" not in collate_samples([samples[0], without_dense(samples[1])])


GEOMETRIC = [Resize((20, 23)), Resize((7, 9)), Resize(10), Crop(-2, 3, 10, 16), Pad((1, 2, 3, 4)),
             CenterCrop((14, 9)), RandomCrop(8), RandomResizedCrop(10), ResNetScale((12, 20), 10),
             HorizontalFlip(p=1.0), VerticalFlip(p=1.0, swap_pairs=False),
             Affine(degrees=30, translate=(0.1, 0.1), scale=(0.8, 1.2)), LensDistortion((-0.1, 0.1))]


def normals_turn(transform, out: Sample) -> torch.Tensor:
    """The 2 x 2 matrix the transform should apply to the normals' (x, y)."""
    if isinstance(transform, HorizontalFlip):
        return torch.diag(torch.tensor([-1.0, 1.0]))
    if isinstance(transform, VerticalFlip):
        return torch.diag(torch.tensor([1.0, -1.0]))
    if isinstance(transform, Affine):
        linear = torch.tensor(out.meta["transforms"][-1][1]["matrix"])[:, :2]
        return linear / linear.det().abs().sqrt()
    return torch.eye(2)


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: type(t).__name__)
def test_dense_targets_move_like_the_mask(transform) -> None:
    sample = dense_sample()
    out = transform(sample, torch.Generator().manual_seed(3))
    source, inside = out.mask.clamp(max=H * W - 1), out.mask != IGNORE_INDEX
    assert bool(inside.any())
    flat_depth, flat_valid = sample.depth.flatten(), sample.valid.flatten()
    assert torch.equal(out.depth, torch.where(inside, flat_depth[source], 0.0))
    assert torch.equal(out.valid, inside & flat_valid[source])
    expected = sample.normals.flatten(1)[:, source] * inside
    turn = normals_turn(transform, out)
    expected = torch.cat([torch.einsum("ij,jhw->ihw", turn, expected[:2]), expected[2:]])
    assert torch.allclose(out.normals, expected, atol=1e-6)
    assert torch.allclose(out.normals.norm(dim=0)[out.valid], torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("transform", GEOMETRIC, ids=lambda t: type(t).__name__)
def test_other_labels_are_bit_identical_with_or_without_dense_targets(transform) -> None:
    sample = dense_sample()
    a = transform(sample, torch.Generator().manual_seed(5))
    b = transform(without_dense(sample), torch.Generator().manual_seed(5))
    for key in ("image", "mask", "keypoints", "visible", "boxes", "box_labels"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert a.meta == b.meta and a.label == b.label
    assert b.depth is None and b.normals is None and b.valid is None


def test_padding_is_unknown() -> None:
    out = Pad((2, 1, 0, 3))(dense_sample(labels=False))
    border = torch.ones(H + 4, W + 2, dtype=torch.bool)
    border[1:1 + H, 2:2 + W] = False
    assert bool((out.depth[border] == 0).all()) and bool((out.normals[:, border] == 0).all())
    assert not bool(out.valid[border].any())


def test_flips_negate_one_component_and_undo_themselves() -> None:
    sample = dense_sample(labels=False)
    h = HorizontalFlip(p=1.0)(sample)
    assert torch.equal(h.normals[0], -sample.normals[0].flip(-1))
    assert torch.equal(h.normals[1:], sample.normals[1:].flip(-1))
    v = VerticalFlip(p=1.0)(sample)
    assert torch.equal(v.normals[1], -sample.normals[1].flip(-2))
    for flip in (HorizontalFlip(p=1.0), VerticalFlip(p=1.0)):
        twice = flip(flip(sample))
        assert all(torch.equal(getattr(twice, k), getattr(sample, k))
                   for k in ("depth", "normals", "valid"))


def test_rotation_turns_normals_with_the_picture() -> None:
    """90 degrees counter-clockwise on screen: a normal facing right (+x) now faces up (-y)."""
    image = torch.zeros(3, 9, 9)
    normals = torch.zeros(3, 9, 9)
    normals[0] = 0.6
    normals[2] = -0.8
    out = warp_affine(Sample(image, depth=torch.ones(9, 9), normals=normals),
                      affine_matrix((9, 9), angle=90.0))
    assert torch.allclose(out.normals[:, 4, 4], torch.tensor([0.0, -0.6, -0.8]), atol=1e-6)
    assert torch.allclose(out.depth, torch.ones(9, 9)) and bool(out.valid.all())


def test_isotropic_scale_keeps_normals_and_stretch_or_shear_is_refused() -> None:
    sample = dense_sample(labels=False)
    zoomed = warp_affine(sample, affine_matrix((H, W), scale=1.3, translate=(1.0, -2.0)))
    inside = zoomed.mask != IGNORE_INDEX
    source = zoomed.mask.clamp(max=H * W - 1)
    assert torch.equal(zoomed.normals, sample.normals.flatten(1)[:, source] * inside)
    for kwargs in ({"stretch": 1.2}, {"shear": 10.0}):
        with pytest.raises(CnnkitError, match=r"cannot move surface normals: it is not a camera "
                                              r"rotation"):
            warp_affine(sample, affine_matrix((H, W), angle=10.0, **kwargs))
        with pytest.raises(CnnkitError, match="stretch or shear"):
            Affine(stretch=(1.2, 1.3))(sample)
        stretched = warp_affine(sample.replace(normals=None), affine_matrix((H, W), **kwargs))
        assert torch.equal(stretched.valid, stretched.depth > 0)  # depth alone may be stretched


def test_mirror_matrix_mirrors_normals_like_the_flip() -> None:
    sample = dense_sample(labels=False)
    mirror = torch.tensor([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0]])
    assert torch.allclose(warp_affine(sample, mirror).normals,
                          HorizontalFlip(p=1.0)(sample).normals)


def test_colour_transforms_and_normalize_leave_dense_targets_alone() -> None:
    sample = dense_sample(labels=False)
    eigvecs = torch.eye(3)
    for transform in (ColorJitter(0.4, 0.4, 0.4, 0.1), Grayscale(), PCAColor([0.2, 0.1, 0.05],
                      eigvecs, sigma=0.5), Normalize([0.5, 0.4, 0.3], [0.2, 0.2, 0.2])):
        out = transform(sample, torch.Generator().manual_seed(0))
        assert not torch.equal(out.image, sample.image)
        for key in ("depth", "normals", "valid", "mask"):
            assert torch.equal(getattr(out, key), getattr(sample, key)), (transform, key)


def test_batch_transforms_move_dense_targets() -> None:
    batch = collate_samples([dense_sample(seed=i, labels=False) for i in range(4)])
    flipped = BatchHorizontalFlip(p=1.0)(batch)
    assert torch.equal(flipped["depth"], batch["depth"].flip(-1))
    assert torch.equal(flipped["valid"], batch["valid"].flip(-1))
    assert torch.equal(flipped["normals"][:, 0], -batch["normals"][:, 0].flip(-1))
    torch.manual_seed(1)
    shifted = BatchRandomShift(padding=3)(batch)
    for i in range(4):
        inside = shifted["mask"][i] != 255
        source = shifted["mask"][i].clamp(max=H * W - 1)
        assert torch.equal(shifted["depth"][i], torch.where(inside, batch["depth"][i].flatten()
                                                            [source], 0.0))
        assert torch.equal(shifted["valid"][i], inside & batch["valid"][i].flatten()[source])
        assert torch.equal(shifted["normals"][i], batch["normals"][i].flatten(1)[:, source] * inside)
    assert math.isclose(float(shifted["depth"].ne(0).float().mean()),
                        float(shifted["valid"].float().mean()))
