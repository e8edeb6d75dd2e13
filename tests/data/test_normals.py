"""normals_from_depth: exact on planes, radial on a sphere, holes and borders handled."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.data.normals import Intrinsics, backproject, normals_from_depth
from cnnkit.errors import ArgumentError

K = Intrinsics.centred(40, 50, focal=1.2)


def rays(height: int = 40, width: int = 50) -> torch.Tensor:
    """3 x H x W ray directions with camera z = 1 through the pixel centres."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                          torch.arange(width, dtype=torch.float64), indexing="ij")
    return torch.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, torch.ones_like(u)])


def plane_depth(normal: torch.Tensor, offset: float) -> torch.Tensor:
    """Depth of the plane ``n . X = offset`` (``offset < 0``: the camera sees its front)."""
    return offset / torch.einsum("i,ihw->hw", normal, rays())


def test_intrinsics_centred() -> None:
    assert K == Intrinsics(60.0, 60.0, 24.5, 19.5)
    assert K.as_dict() == {"fx": 60.0, "fy": 60.0, "cx": 24.5, "cy": 19.5}
    with pytest.raises(ArgumentError, match="focal must be > 0"):
        Intrinsics.centred(4, 4, 0)


@pytest.mark.parametrize("normal", [(0.0, 0.0, -1.0), (0.3, -0.5, -0.8), (-0.6, 0.2, -0.4),
                                    (0.0, -0.8, -0.6)])
def test_plane_gives_its_exact_normal(normal) -> None:
    n = torch.tensor(normal, dtype=torch.float64)
    n = n / n.norm()
    depth = plane_depth(n, -2.0)
    assert bool((depth > 0).all())
    normals, valid = normals_from_depth(depth, K.fx, K.fy, K.cx, K.cy)
    assert bool(valid.all()) and normals.dtype == torch.float64
    assert torch.allclose(normals, n[:, None, None].expand_as(normals), atol=1e-9)
    points = backproject(depth, K.fx, K.fy, K.cx, K.cy)
    assert torch.allclose(torch.einsum("i,ihw->hw", n, points), torch.full_like(depth, -2.0))


def test_float32_depth_and_holes_use_one_sided_differences() -> None:
    n = torch.tensor([0.2, -0.4, -0.9])
    n = n / n.norm()
    depth = plane_depth(n.double(), -1.5).float()
    depth[10, 10:14] = 0  # a hole: its neighbours fall back to one-sided differences
    depth[20, 5] = float("nan")
    depth[0, 1] = 0  # the corner pixel (0, 0) loses its only right neighbour
    depth[1, 0] = 0  # ... and its only lower neighbour: it has no tangents at all
    normals, valid = normals_from_depth(depth, K.fx, K.fy, K.cx, K.cy)
    assert normals.dtype == torch.float32
    assert not bool(valid[10, 10:14].any()) and not bool(valid[20, 5]) and not bool(valid[0, 0])
    assert bool((normals[:, ~valid] == 0).all())
    assert int(valid.sum()) == 40 * 50 - 4 - 1 - 2 - 1
    err = (normals - n[:, None, None])[:, valid].norm(dim=0)
    assert float(err.max()) < 1e-3


def test_sphere_normals_are_radial_away_from_the_rim() -> None:
    centre, radius = torch.tensor([0.1, -0.05, 3.0], dtype=torch.float64), 1.0
    d = rays()
    a, b = (d * d).sum(0), torch.einsum("i,ihw->hw", centre, d)
    disc = b * b - a * (float(centre @ centre) - radius ** 2)
    t = (b - disc.clamp(min=0).sqrt()) / a
    hit = disc > 0
    depth = torch.where(hit, t, torch.zeros_like(t))
    truth = (t * d - centre[:, None, None]) / radius
    normals, valid = normals_from_depth(depth, K.fx, K.fy, K.cx, K.cy)
    assert torch.equal(valid, hit)
    inner = torch.zeros_like(hit)  # central differences: all four neighbours on the sphere
    inner[1:-1, 1:-1] = hit[1:-1, 1:-1] & hit[:-2, 1:-1] & hit[2:, 1:-1] & hit[1:-1, :-2] \
        & hit[1:-1, 2:]
    inner &= (truth * rays()).sum(0) < -0.5 * rays().norm(dim=0)  # away from the rim
    angle = torch.acos((normals * truth).sum(0).clamp(-1, 1))[inner]
    assert int(inner.sum()) > 300 and float(angle.max()) < 0.01
    assert bool((normals[2][valid] < 0).all())  # every normal faces the camera


def test_max_step_cuts_occlusion_borders() -> None:
    depth = plane_depth(torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), -4.0)
    depth[:, 25:] = 2.0  # a nearer fronto-parallel plane: a step at the column border
    blurred, _ = normals_from_depth(depth, K.fx, K.fy, K.cx, K.cy)
    assert float(blurred[2, 5, 24]) > -0.99  # the difference across the step tilts it
    cut, valid = normals_from_depth(depth, K.fx, K.fy, K.cx, K.cy, max_step=0.1)
    assert bool(valid.all())
    assert torch.allclose(cut, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)[:, None, None]
                          .expand_as(cut))


def test_valid_argument_and_errors() -> None:
    depth = torch.full((6, 7), 2.0)
    keep = torch.ones(6, 7, dtype=torch.bool)
    keep[3, 3] = False
    normals, valid = normals_from_depth(depth, 5.0, 5.0, 3.0, 2.5, valid=keep)
    assert torch.equal(valid, keep) and bool((normals[:, 3, 3] == 0).all())
    assert torch.allclose(normals[:, 0, 0], torch.tensor([0.0, 0.0, -1.0]))
    with pytest.raises(ArgumentError, match=r"normals_from_depth needs an H x W float depth map"):
        normals_from_depth(torch.ones(1, 6, 7), 5, 5, 3, 2.5)
    with pytest.raises(ArgumentError, match=r"focal lengths fx, fy must be > 0"):
        normals_from_depth(depth, 0, 5, 3, 2.5)
    with pytest.raises(ArgumentError, match=r"valid must be a bool map of the depth's shape"):
        normals_from_depth(depth, 5, 5, 3, 2.5, valid=torch.ones(6, 7))
    with pytest.raises(ArgumentError, match=r"max_step must be > 0"):
        normals_from_depth(depth, 5, 5, 3, 2.5, max_step=0)
    assert math.isclose(float(normals.norm(dim=0)[valid].min()), 1.0, rel_tol=1e-6)
