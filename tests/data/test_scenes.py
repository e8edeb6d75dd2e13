"""SyntheticScenes: deterministic rendered rooms whose depth, normals and labels agree with each
other, with normals_from_depth, and with the transforms (flip, rotation, crop, resize)."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch
import torch.nn.functional as F

from cnnkit.data.batch import collate_samples
from cnnkit.data.datasets.catalog import open_split
from cnnkit.data.normals import backproject, normals_from_depth
from cnnkit.data.scenes import (BOX, FLOOR, SCENE_CLASSES, SPHERE, WALL, SyntheticScenes,
                                render)
from cnnkit.data.transforms import (Affine, Compose, HorizontalFlip, RandomCrop,
                                    RandomResizedCrop, Resize)
from cnnkit.data.transforms.affine import affine_matrix, warp_affine

DATA = SyntheticScenes(6, (48, 64), seed=3, noise=0.0)


def flat(normals: torch.Tensor, mask: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Pixels whose k x k neighbourhood has one class and one normal (inside a flat face)."""
    pad = k // 2
    n = F.pad(normals[None], (pad,) * 4, mode="replicate")[0].unfold(1, k, 1).unfold(2, k, 1)
    m = F.pad(mask[None, None].float(), (pad,) * 4, mode="replicate")[0, 0]
    m = m.unfold(0, k, 1).unfold(1, k, 1)
    same_normal = (n - normals[..., None, None]).abs().amax((0, 3, 4)) < 1e-6
    return same_normal & (m == mask[..., None, None].float()).all(-1).all(-1)


def test_samples_have_every_dense_target() -> None:
    s = DATA[0]
    assert s.image.shape == (3, 48, 64) and 0 <= float(s.image.min()) <= float(s.image.max()) <= 1
    assert s.depth.dtype == torch.float32 and s.normals.shape == (3, 48, 64)
    assert bool(s.valid.all()) and bool((s.depth > 0).all())
    assert torch.allclose(s.normals.norm(dim=0), torch.ones(48, 64), atol=1e-5)
    points = backproject(s.depth, **s.meta["intrinsics"])
    assert bool(((s.normals * points).sum(0) < 0).all())  # every surface faces the camera
    assert bool((s.normals[2] <= 0).all())  # (side walls are seen at n_z = 0)
    assert set(s.mask.unique().tolist()) <= {FLOOR, WALL, BOX, SPHERE}
    assert DATA.label_space.mask == SCENE_CLASSES and DATA.num_classes == 4
    assert s.meta["intrinsics"] == {"fx": 64.0, "fy": 64.0, "cx": 31.5, "cy": 23.5}
    assert DATA.intrinsics.fx == 64.0 and DATA.keys[2] == "scenes/2"
    classes = torch.cat([DATA[i].mask.flatten() for i in range(len(DATA))]).unique().tolist()
    assert classes == [FLOOR, WALL, BOX, SPHERE]


def test_sample_depends_only_on_seed_and_index() -> None:
    again = SyntheticScenes(6, (48, 64), seed=3, noise=0.0)
    forward = [DATA[i] for i in (4, 0, 2)]
    backward = {i: again[i] for i in (2, 0, 4)}
    for i, s in zip((4, 0, 2), forward):
        for key in ("image", "mask", "depth", "normals", "valid"):
            assert torch.equal(getattr(s, key), getattr(backward[i], key)), key
    assert not torch.equal(DATA[0].depth, SyntheticScenes(6, (48, 64), seed=4)[0].depth)
    assert not torch.equal(DATA[0].depth, DATA[1].depth)
    with pytest.raises(IndexError):
        DATA[6]


def test_floor_normal_is_constant_and_points_up() -> None:
    for i in range(3):
        s = DATA[i]
        floor = s.normals[:, s.mask == FLOOR]
        pitch = math.radians(s.meta["pitch"])
        expected = torch.tensor([0.0, -math.cos(pitch), -math.sin(pitch)])
        assert floor.shape[1] > 100
        assert torch.allclose(floor, expected[:, None].expand_as(floor), atol=1e-6)


def test_normals_from_depth_agree_on_planes() -> None:
    k = DATA.intrinsics
    for i in range(len(DATA)):
        s = DATA[i]
        normals, valid = normals_from_depth(s.depth, k.fx, k.fy, k.cx, k.cy)
        planes = flat(s.normals, s.mask) & valid & ((s.mask == FLOOR) | (s.mask == WALL))
        assert int(planes.sum()) > 0.5 * s.depth.numel()
        angle = torch.acos((normals * s.normals).sum(0).clamp(-1, 1))[planes]
        assert float(angle.max()) < 2e-3


def mirrored(scene):
    """The scene mirrored in the camera's y-z plane (x -> -x)."""
    things = tuple(dataclasses.replace(t, centre=(-t.centre[0], *t.centre[1:]), yaw=-t.yaw)
                   for t in scene.things)
    return dataclasses.replace(scene, left=scene.right, right=scene.left, things=things,
                               light=(-scene.light[0], *scene.light[1:]))


def test_mirrored_scene_equals_flipped_sample() -> None:
    for i in range(3):
        scene = DATA.scene(i)
        assert scene.things and any(t.kind == BOX and t.yaw != 0 for t in scene.things)
        flipped = HorizontalFlip(p=1.0)(DATA[i])
        out = render(mirrored(scene), 48, 64, DATA.intrinsics)
        assert torch.equal(out["mask"], flipped.mask)
        assert torch.allclose(out["depth"], flipped.depth, rtol=1e-6)
        assert torch.allclose(out["normals"], flipped.normals, atol=1e-6)
        assert torch.allclose(out["normals"][0], -DATA[i].normals[0].flip(-1), atol=1e-6)


@pytest.mark.parametrize("angle", [12.0, -25.0])
def test_rotated_sample_equals_rolled_camera(angle) -> None:
    """Affine rotation by angle == rendering with the camera rolled so the picture turns by it."""
    for i in range(3):
        upright, rolled = DATA.render(i), DATA.render(i, roll=angle)
        turned = warp_affine(upright, affine_matrix(upright.size, angle=angle))
        inside = flat(rolled.normals, rolled.mask, 5) & turned.valid
        assert int(inside.sum()) > 0.4 * inside.numel()
        assert torch.allclose(turned.normals[:, inside], rolled.normals[:, inside], atol=1e-5)
        assert float((turned.mask == rolled.mask)[turned.valid].float().mean()) > 0.98
        relative = (turned.depth - rolled.depth).abs() / rolled.depth
        assert float(relative[inside].median()) < 0.01
        wrong = warp_affine(upright, affine_matrix(upright.size, angle=-angle))
        assert not torch.allclose(wrong.normals[:, inside], rolled.normals[:, inside], atol=1e-2)


def test_depth_and_valid_move_together() -> None:
    s = DATA[1]
    depth, normals, valid = s.depth.clone(), s.normals.clone(), s.valid.clone()
    depth[10:20, 5:30], normals[:, 10:20, 5:30], valid[10:20, 5:30] = 0, 0, False  # a hole
    holed = s.replace(depth=depth, normals=normals, valid=valid)
    values = set(depth.unique().tolist())
    pipelines = [Resize((30, 37)), Resize((97, 130)), RandomResizedCrop((40, 40)),
                 Compose([Resize(80), RandomCrop((70, 90), pad_if_needed=True)]),
                 Affine(degrees=20, translate=(0.2, 0.2), scale=(0.7, 1.3))]
    for seed, transform in enumerate(pipelines):
        out = transform(holed, torch.Generator().manual_seed(seed))
        assert torch.equal(out.valid, out.depth > 0), transform
        assert set(out.depth.unique().tolist()) <= values  # nearest: no new depth values
        assert bool((out.normals[:, ~out.valid] == 0).all())


def test_catalog_kind_and_speed() -> None:
    train, val = open_split("scenes", None, "train"), open_split("scenes", None, "val")
    assert isinstance(train, SyntheticScenes) and (len(train), len(val)) == (256, 64)
    assert not torch.equal(train[0].image, val[0].image)
    data = SyntheticScenes(16, (96, 128), seed=1)
    start = time.perf_counter()
    batch = collate_samples([data[i] for i in range(16)])
    assert time.perf_counter() - start < 2.0  # about 0.15 s on a 2-core CPU
    assert batch["depth"].shape == (16, 96, 128) and batch["normals"].shape == (16, 3, 96, 128)
