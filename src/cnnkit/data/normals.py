"""Surface normals from a depth map and pinhole intrinsics.

Conventions (see :mod:`cnnkit.data.sample` and :mod:`cnnkit.geometry`): the camera frame of
OpenCV, x right, y down, z forward; pixel centres at integer ``(u, v)``; depth is the camera z
of the surface at each pixel, in metres, 0 where unknown.

Method of :func:`normals_from_depth`:

1. back-project every pixel to a 3-D point with the pinhole model,
   ``X = (u - cx) Z / fx``, ``Y = (v - cy) Z / fy``, ``Z = depth``;
2. two tangent vectors by finite differences of these points along the image rows and
   columns: central ``(P[u+1] - P[u-1]) / 2`` where both neighbours are valid, one-sided
   ``P[u+1] - P[u]`` or ``P[u] - P[u-1]`` where only one is, none (pixel invalid) where
   neither is; the same along v;
3. the normal is their cross product ``t_v x t_u``, turned to face the camera (``n . P < 0``)
   and scaled to unit length; pixels without both tangents, or with a degenerate cross product,
   get 0 and ``valid`` False.

On a plane every difference lies in the plane, so the result is exact; on curved surfaces
central differences are second-order accurate. Across an occlusion border the difference joins
two surfaces; pass ``max_step`` to treat a neighbour whose depth differs by more than
``max_step * Z`` as unknown.

Eigen & Fergus ("Predicting Depth, Surface Normals and Semantic Labels with a Common Multi-Scale
Convolutional Architecture", ICCV 2015) train on normals derived from the NYU Depth v2 depth
maps by fitting least-squares planes to neighbourhoods of the point cloud; the finite
differences here are the cheapest version of that (a 3-pixel neighbourhood, no fitting), exact
on clean synthetic depth but noisier on raw sensor depth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from cnnkit.errors import ArgumentError


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, principal point in the pixel-centre convention."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def centred(cls, height: int, width: int, focal: float = 1.0) -> Intrinsics:
        """``fx = fy = focal * width``, principal point at the image centre
        ``((W - 1) / 2, (H - 1) / 2)`` (``focal=1``: a horizontal field of view of 53.1 deg)."""
        if not focal > 0:
            raise ArgumentError(f"focal must be > 0 (focal length / image width); got {focal}")
        return cls(focal * width, focal * width, (width - 1) / 2, (height - 1) / 2)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def backproject(depth: torch.Tensor, fx: float, fy: float, cx: float,
                cy: float) -> torch.Tensor:
    """``3 x H x W`` camera-frame points ``(X, Y, Z)`` of an ``H x W`` depth map."""
    height, width = depth.shape
    v, u = torch.meshgrid(torch.arange(height, dtype=depth.dtype, device=depth.device),
                          torch.arange(width, dtype=depth.dtype, device=depth.device),
                          indexing="ij")
    return torch.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth])


def _shift(t: torch.Tensor, dim: int, step: int, fill: float | bool) -> torch.Tensor:
    """``out[i] = t[i + step]`` along ``dim``, ``fill`` past the border."""
    size = t.shape[dim]
    out = torch.full_like(t, fill)
    out.narrow(dim, max(-step, 0), size - abs(step)).copy_(
        t.narrow(dim, max(step, 0), size - abs(step)))
    return out


def _tangent(points: torch.Tensor, known: torch.Tensor, dim: int,
             max_step: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite-difference tangent along ``dim`` (-1: u, -2: v) and where it exists."""
    nxt, prv = _shift(points, dim, 1, 0.0), _shift(points, dim, -1, 0.0)
    nxt_ok = _shift(known, dim, 1, False) & known
    prv_ok = _shift(known, dim, -1, False) & known
    if max_step is not None:
        z = points[2]
        nxt_ok = nxt_ok & ((nxt[2] - z).abs() <= max_step * z)
        prv_ok = prv_ok & ((prv[2] - z).abs() <= max_step * z)
    one_sided = torch.where(nxt_ok, nxt - points, torch.where(prv_ok, points - prv, 0.0))
    return torch.where(nxt_ok & prv_ok, (nxt - prv) / 2, one_sided), nxt_ok | prv_ok


def normals_from_depth(depth: torch.Tensor, fx: float, fy: float, cx: float, cy: float,
                       valid: torch.Tensor | None = None, max_step: float | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals (``3 x H x W``, camera frame, facing the camera) and their ``H x W`` valid
    map, from an ``H x W`` depth map in metres and the intrinsics in pixels.

    ``valid`` defaults to ``depth > 0`` (finite); ``max_step`` (relative depth jump) cuts
    differences across occlusion borders. Invalid pixels get the zero vector.
    """
    if depth.dim() != 2 or not depth.is_floating_point():
        raise ArgumentError(f"normals_from_depth needs an H x W float depth map; got "
                            f"{depth.dtype} {tuple(depth.shape)}")
    if not (fx > 0 and fy > 0):
        raise ArgumentError(f"focal lengths fx, fy must be > 0 (pixels); got {fx}, {fy}")
    if max_step is not None and not max_step > 0:
        raise ArgumentError(f"max_step must be > 0 (a relative depth jump) or None; got {max_step}")
    known = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        if tuple(valid.shape) != tuple(depth.shape) or valid.dtype != torch.bool:
            raise ArgumentError(f"valid must be a bool map of the depth's shape "
                                f"{tuple(depth.shape)}; got {valid.dtype} {tuple(valid.shape)}")
        known = known & valid
    work = depth.double() if depth.dtype != torch.float64 else depth
    work = torch.where(known, work, torch.zeros_like(work))
    points = backproject(work, fx, fy, cx, cy)
    t_u, ok_u = _tangent(points, known, -1, max_step)
    t_v, ok_v = _tangent(points, known, -2, max_step)
    normal = torch.cross(t_v, t_u, dim=0)
    facing = (normal * points).sum(0)
    normal = torch.where(facing > 0, -normal, normal)
    length = normal.norm(dim=0)
    ok = known & ok_u & ok_v & (length > 0) & torch.isfinite(length)
    unit = normal / length.clamp(min=torch.finfo(work.dtype).tiny)
    unit = torch.where(ok, unit, torch.zeros_like(unit))
    return unit.to(depth.dtype), ok
