"""Synthetic indoor scenes with exact depth, surface normals and semantic labels, from a seed.

A stand-in for NYU Depth v2 (Silberman et al., ECCV 2012), the data of Eigen & Fergus,
"Predicting Depth, Surface Normals and Semantic Labels with a Common Multi-Scale Convolutional
Architecture" (ICCV 2015): one image with all three dense targets, but rendered, so the targets
are exact and complete (no sensor holes, no fitted normals) and the scenes are simple.

Each scene is a room seen by a pinhole camera: a floor (checkered), a back wall and two side
walls, and a few boxes (cuboids standing on the floor, turned about the vertical axis) and
spheres resting on the floor, rendered by :func:`cnnkit.data.raycast.render` (vectorised ray
casting, one ray per pixel centre). The world frame has y pointing down (gravity) and the
camera at its origin, pitched down by 8 to 22 degrees, 1.2 to 1.8 m above the floor:

- ``depth``: camera z of the first hit, in metres (exact); ``valid`` is True where a ray hits;
- ``normals``: analytic (planes: their normal; spheres: radial; boxes: the face normal), in the
  camera frame of OpenCV (x right, y down, z forward), facing the camera;
- ``mask``: the classes of :data:`SCENE_CLASSES`: 0 floor, 1 wall, 2 box, 3 sphere; a pixel
  that sees nothing would get the ignore index 255 and depth 0 (the walls close the room, so it
  does not happen with the default ranges);
- ``image``: Lambertian shading, ``albedo * (ambient + (1 - ambient) max(0, n . l))`` with one
  directional light, a colour per object and a small Gaussian noise; no shadows.

Intrinsics (:class:`~cnnkit.data.normals.Intrinsics`): ``fx = fy = focal * W`` (``focal=1``:
53 degrees across), principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``.
Sample ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.datasets.transformed import sample_seed
from cnnkit.data.normals import Intrinsics
from cnnkit.data.raycast import BOX, FLOOR, SPHERE, WALL, Scene, Thing, Vec, render
from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import randint, uniform
from cnnkit.errors import ArgumentError

SCENE_CLASSES = ClassList(("floor", "wall", "box", "sphere"),
                          colors=((128, 64, 128), (70, 70, 70), (220, 160, 30), (60, 120, 230)))
__all__ = ["BOX", "FLOOR", "SCENE_CLASSES", "SPHERE", "WALL", "Scene", "SyntheticScenes", "Thing",
           "random_scene", "render"]


def _color(rng: torch.Generator, low: float = 0.2, high: float = 0.95) -> Vec:
    return (uniform(rng, low, high), uniform(rng, low, high), uniform(rng, low, high))


def random_scene(rng: torch.Generator, max_boxes: int = 3, max_spheres: int = 2) -> Scene:
    """A room and up to ``max_boxes`` boxes and ``max_spheres`` spheres on its floor, placed
    without overlapping (a thing that finds no free place in 20 tries is left out)."""
    height, pitch = uniform(rng, 1.2, 1.8), uniform(rng, 8.0, 22.0)
    back, left, right = uniform(rng, 4.5, 7.0), uniform(rng, 1.8, 3.0), uniform(rng, 1.8, 3.0)
    kinds = [BOX] * randint(rng, 1, max_boxes) + [SPHERE] * randint(rng, 0, max_spheres)
    things: list[Thing] = []
    placed: list[tuple[float, float, float]] = []  # footprint circles (x, z, radius)
    for kind in kinds:
        half = (uniform(rng, 0.2, 0.5), uniform(rng, 0.2, 0.6), uniform(rng, 0.2, 0.5))
        if kind == SPHERE:
            half = (half[0], half[0], half[0])
        reach = math.hypot(half[0], half[2])
        for _ in range(20):
            z = uniform(rng, 2.2, back - reach - 0.1)
            x = uniform(rng, -0.35 * z, 0.35 * z)
            if -left + reach < x < right - reach and all(
                    math.hypot(x - px, z - pz) > reach + pr + 0.05 for px, pz, pr in placed):
                break
        else:
            continue
        placed.append((x, z, reach))
        yaw = uniform(rng, 0.0, math.pi / 2) if kind == BOX else 0.0
        things.append(Thing(kind, (x, height - half[1], z), half, yaw, _color(rng)))
    light = torch.tensor([uniform(rng, -0.6, 0.6), -1.0, -uniform(rng, 0.2, 0.8)])
    light = light / light.norm()
    return Scene(height, pitch, back, left, right, tuple(things),
                 (_color(rng, 0.5, 0.9), _color(rng, 0.1, 0.45)), _color(rng, 0.4, 0.9),
                 tuple(light.tolist()), uniform(rng, 0.25, 0.4))


class SyntheticScenes(Dataset):
    """``num_samples`` rendered rooms of ``size`` (int or (height, width)) pixels.

    ``focal``: focal length over the image width (``fx = fy = focal * W``); ``noise``: standard
    deviation of the Gaussian pixel noise. Each sample has ``image``, ``mask`` (the classes of
    :data:`SCENE_CLASSES`), ``depth``, ``normals``, ``valid`` and ``meta["intrinsics"]``.
    """

    classes = SCENE_CLASSES
    num_classes = len(SCENE_CLASSES)

    def __init__(self, num_samples: int = 64, size: int | tuple[int, int] = (96, 128),
                 seed: int = 0, max_boxes: int = 3, max_spheres: int = 2, focal: float = 1.0,
                 noise: float = 0.01) -> None:
        self.height, self.width = (size, size) if isinstance(size, int) else tuple(size)
        if min(self.height, self.width) < 8:
            raise ArgumentError(f"size must be at least 8 x 8; got {self.width} x {self.height}")
        if num_samples < 1 or max_boxes < 1 or max_spheres < 0:
            raise ArgumentError(f"num_samples and max_boxes must be >= 1 and max_spheres >= 0; "
                                f"got {num_samples}, {max_boxes}, {max_spheres}")
        if noise < 0:
            raise ArgumentError(f"noise must be >= 0; got {noise}")
        self.num_samples, self.seed, self.noise = num_samples, seed, noise
        self.max_boxes, self.max_spheres = max_boxes, max_spheres
        self.intrinsics = Intrinsics.centred(self.height, self.width, focal)

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(mask=SCENE_CLASSES)

    def __len__(self) -> int:
        return self.num_samples

    @property
    def keys(self) -> list[str]:
        return [f"scenes/{i}" for i in range(self.num_samples)]

    def image_size(self, index: int) -> tuple[int, int]:
        return self.height, self.width

    def _generator(self, index: int) -> torch.Generator:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        return torch.Generator().manual_seed(sample_seed(self.seed, 0, index))

    def scene(self, index: int) -> Scene:
        """The scene of sample ``index``, without rendering."""
        return random_scene(self._generator(index), self.max_boxes, self.max_spheres)

    def render(self, index: int, roll: float = 0.0) -> Sample:
        """Sample ``index``; ``roll`` (degrees) turns the camera about its optical axis."""
        rng = self._generator(index)
        scene = random_scene(rng, self.max_boxes, self.max_spheres)
        out = render(scene, self.height, self.width, self.intrinsics, roll, self.noise, rng)
        meta = {"path": f"scenes/{index}", "index": index, "seed": self.seed,
                "intrinsics": self.intrinsics.as_dict(), "camera_height": scene.height,
                "pitch": scene.pitch}
        return Sample(out["image"], mask=out["mask"], depth=out["depth"],
                      normals=out["normals"], valid=out["valid"], meta=meta)

    def __getitem__(self, index: int) -> Sample:
        return self.render(index)

    def masks(self) -> Iterator[torch.Tensor]:
        for i in range(self.num_samples):
            yield self[i].mask  # type: ignore[misc]

    def depths(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(depth, valid)`` of every sample in order (for statistics)."""
        for i in range(self.num_samples):
            sample = self[i]
            yield sample.depth, sample.valid  # type: ignore[misc]
