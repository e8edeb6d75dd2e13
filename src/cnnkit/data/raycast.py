"""Ray casting of simple rooms under a pinhole camera: exact depth, normals and classes.

A :class:`Scene` lives in world coordinates with y pointing down (gravity) and the camera at
the origin, pitched down by ``Scene.pitch`` degrees: a floor (the plane ``y = height``, in
checkered tiles of 0.5 m), a back wall and two side walls, and things (:class:`Thing`: cuboids
turned about the vertical axis, spheres). :func:`render` casts one ray per pixel centre, vectorised
over the pixels (the loop runs over the handful of surfaces), keeps the nearest hit per pixel
and returns, in the camera frame of OpenCV (x right, y down, z forward):

- ``depth``: camera z of the hit in metres (rays are scaled to camera z = 1, so the ray
  parameter is the depth); 0 and ``valid`` False where a ray hits nothing;
- ``normals``: analytic unit normals (a plane's, a sphere's radial one, a box face's), facing
  the camera; ``mask``: the class of the surface hit (:data:`FLOOR` ... :data:`SPHERE`, 255 for
  nothing);
- ``image``: Lambertian shading ``albedo * (ambient + (1 - ambient) max(0, n . l))`` with one
  directional light ``l``, plus optional Gaussian noise; no shadows, no inter-reflections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cnnkit.data.normals import Intrinsics
from cnnkit.data.sample import IGNORE_INDEX

FLOOR, WALL, BOX, SPHERE = range(4)  # the classes of the mask (scenes.SCENE_CLASSES)
Vec = tuple[float, float, float]


@dataclass(frozen=True)
class Thing:
    """A box (``size`` = half extents, ``yaw`` in radians) or a sphere (``size[0]`` = radius)."""

    kind: int  # BOX or SPHERE
    centre: Vec
    size: Vec
    yaw: float
    color: Vec


@dataclass(frozen=True)
class Scene:
    """A room in world coordinates (y down, camera at the origin) and its lighting."""

    height: float  # camera above the floor (the floor is the plane y = height)
    pitch: float  # degrees the camera looks down
    back: float  # back wall: z = back
    left: float  # side walls: x = -left and x = right
    right: float
    things: tuple[Thing, ...]
    floor_colors: tuple[Vec, Vec]
    wall_color: Vec
    light: Vec  # unit vector towards the light
    ambient: float


def _rotation_x(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[1, 0, 0], [0, math.cos(a), math.sin(a)], [0, -math.sin(a), math.cos(a)]],
                        dtype=torch.float64)


def camera_to_world(scene: Scene, roll: float = 0.0) -> torch.Tensor:
    """3 x 3 rotation of camera vectors into the world. ``roll`` (degrees) turns the camera
    about its optical axis so that the image turns like ``Affine`` with ``angle=roll``."""
    a = math.radians(roll)
    turn = torch.tensor([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]],
                        dtype=torch.float64)
    return _rotation_x(scene.pitch) @ turn.T


def _box_hit(thing: Thing, rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray parameter of the entry point (inf: missed) and the world normal there (slab method)."""
    c, s = math.cos(thing.yaw), math.sin(thing.yaw)
    turn = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)  # local->world
    origin = turn.T @ -torch.tensor(thing.centre, dtype=torch.float64)
    d = turn.T @ rays
    d = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    half = torch.tensor(thing.size, dtype=torch.float64)[:, None]
    t1, t2 = (-half - origin[:, None]) / d, (half - origin[:, None]) / d
    near, axis = torch.minimum(t1, t2).max(0)
    far = torch.maximum(t1, t2).min(0).values
    t = torch.where((near <= far) & (near > 0), near, torch.full_like(near, math.inf))
    local = torch.zeros_like(rays)
    local.scatter_(0, axis[None], -torch.sign(d.gather(0, axis[None])))
    return t, turn @ local


def _sphere_hit(thing: Thing, rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centre = torch.tensor(thing.centre, dtype=torch.float64)[:, None]
    radius = thing.size[0]
    a, b = (rays * rays).sum(0), (rays * centre).sum(0)
    disc = b * b - a * (float((centre * centre).sum()) - radius * radius)
    t = (b - disc.clamp(min=0).sqrt()) / a
    t = torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, math.inf))
    hit = torch.where(torch.isfinite(t), t, torch.zeros_like(t)) * rays
    return t, (hit - centre) / radius


def render(scene: Scene, height: int, width: int, intrinsics: Intrinsics, roll: float = 0.0,
           noise: float = 0.0, rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Ray-cast ``scene``: ``image``, ``mask``, ``depth``, ``normals`` and ``valid``.

    ``roll`` turns the camera about its optical axis (see :func:`camera_to_world`); ``noise`` is
    the standard deviation of Gaussian pixel noise drawn from ``rng``."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                          torch.arange(width, dtype=torch.float64), indexing="ij")
    k = intrinsics
    cam = torch.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, torch.ones_like(u)]).reshape(3, -1)
    rotation = camera_to_world(scene, roll)
    rays = rotation @ cam  # world directions whose camera z is 1: the ray parameter is the depth
    n = rays.shape[1]
    best = torch.full((n,), math.inf, dtype=torch.float64)
    label = torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
    normal, albedo = torch.zeros(3, n, dtype=torch.float64), torch.zeros(3, n, dtype=torch.float64)

    def keep(t: torch.Tensor, normals: torch.Tensor, cls: int, color: torch.Tensor) -> None:
        closer = t < best
        best[closer], label[closer] = t[closer], cls
        normal[:, closer] = normals.expand(3, n)[:, closer]
        albedo[:, closer] = color.expand(3, n)[:, closer]

    planes = ((1, scene.height, (0.0, -1.0, 0.0), FLOOR), (2, scene.back, (0.0, 0.0, -1.0), WALL),
              (0, -scene.left, (1.0, 0.0, 0.0), WALL), (0, scene.right, (-1.0, 0.0, 0.0), WALL))
    for axis, offset, facing, cls in planes:
        t = offset / rays[axis]
        t = torch.where((t > 0) & torch.isfinite(t), t, torch.full_like(t, math.inf))
        if cls == FLOOR:  # checkerboard of 0.5 m tiles in world x, z
            x, z = (t * rays[0]).nan_to_num(0), (t * rays[2]).nan_to_num(0)
            odd = ((torch.floor(x / 0.5) + torch.floor(z / 0.5)) % 2).bool()
            a, b = (torch.tensor(col, dtype=torch.float64)[:, None] for col in scene.floor_colors)
            color = torch.where(odd, a, b)
        else:
            color = torch.tensor(scene.wall_color, dtype=torch.float64)[:, None]
        keep(t, torch.tensor(facing, dtype=torch.float64)[:, None], cls, color)
    for thing in scene.things:
        t, normals = (_box_hit if thing.kind == BOX else _sphere_hit)(thing, rays)
        keep(t, normals, thing.kind, torch.tensor(thing.color, dtype=torch.float64)[:, None])
    valid = torch.isfinite(best)
    light = torch.tensor(scene.light, dtype=torch.float64)
    shade = scene.ambient + (1 - scene.ambient) * (light @ normal).clamp(min=0)
    image = (albedo * shade).reshape(3, height, width).float()
    if noise > 0:
        image = image + noise * torch.randn(image.shape, generator=rng)
    cam_normals = torch.where(valid, rotation.T @ normal, torch.zeros_like(normal))
    return {"image": image.clamp(0, 1), "mask": label.reshape(height, width),
            "depth": torch.where(valid, best, torch.zeros_like(best)).reshape(height, width).float(),
            "normals": cam_normals.reshape(3, height, width).float(),
            "valid": valid.reshape(height, width)}
