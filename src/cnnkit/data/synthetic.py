"""Synthetic shapes on textured backgrounds, with every kind of label, from a seed.

Each sample draws 1..``max_shapes`` shapes (circle, square, triangle) on a background of
coloured stripes with noise. The last shape drawn is the *main* shape: it is never occluded,
its kind is ``label``, and its four keypoints (top, left, right, centre; left/right are a flip
pair) lie inside it. ``mask`` holds 0 for background and ``kind + 1`` for the visible pixels of
each shape; ``boxes`` bound each shape's full (unoccluded) raster with ``box_labels = kind``.
Sample ``i`` depends only on ``(seed, i)``, so it is the same whatever order it is read in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.datasets.transformed import sample_seed
from cnnkit.data.sample import Sample
from cnnkit.geometry import Skeleton
from cnnkit.data.transforms.base import randint, uniform
from cnnkit.errors import ArgumentError

SHAPES = ("circle", "square", "triangle")
KEYPOINT_NAMES = ("top", "left", "right", "centre")
SKELETON = Skeleton.from_names(KEYPOINT_NAMES, [("left", "right")])
# keypoints as offsets from the centre in units of the radius: inside all three shapes
KEYPOINT_OFFSETS = ((0.0, -0.5), (-0.5, 0.5), (0.5, 0.5), (0.0, 0.0))


@dataclass(frozen=True)
class Shape:
    kind: int  # index into SHAPES
    cx: int
    cy: int
    radius: float
    color: tuple[float, float, float]


def shape_region(shape: Shape, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Boolean map of the pixels whose centres lie inside ``shape``."""
    dx, dy, r = xs - shape.cx, ys - shape.cy, shape.radius
    if SHAPES[shape.kind] == "circle":
        return dx * dx + dy * dy <= r * r
    if SHAPES[shape.kind] == "square":
        return (dx.abs() <= 0.8 * r) & (dy.abs() <= 0.8 * r)
    return (dy <= r) & (dx.abs() <= (dy + r) / 2)  # triangle, apex up at (cx, cy - r)


class SyntheticShapes(Dataset):
    """``num_samples`` images of ``size`` (int or (height, width)) pixels, 3 channels."""

    classes = ("background",) + SHAPES
    skeleton = SKELETON

    def __init__(self, num_samples: int = 64, size: int | tuple[int, int] = 64, seed: int = 0,
                 max_shapes: int = 3) -> None:
        self.height, self.width = (size, size) if isinstance(size, int) else size
        if min(self.height, self.width) < 24:
            raise ArgumentError(f"size must be at least 24 x 24; got {self.width} x {self.height}")
        if num_samples < 1 or max_shapes < 1:
            raise ArgumentError(f"num_samples and max_shapes must be >= 1; got {num_samples}, "
                             f"{max_shapes}")
        self.num_samples, self.seed, self.max_shapes = num_samples, seed, max_shapes

    num_classes = len(classes)  # mask classes, background included

    @property
    def label_space(self) -> LabelSpace:
        """Labels are the main shape's kind; mask values 0 (background) then 1 + kind."""
        return LabelSpace(label=ClassList(SHAPES), mask=ClassList(self.classes),
                          skeleton=SKELETON)

    def __len__(self) -> int:
        return self.num_samples

    @property
    def keys(self) -> list[str]:
        return [f"synthetic/{i}" for i in range(self.num_samples)]

    def image_size(self, index: int) -> tuple[int, int]:
        return self.height, self.width

    def shapes(self, index: int, rng: torch.Generator | None = None) -> list[Shape]:
        """The shapes of sample ``index`` (the main one last), without rendering."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        rng = rng or torch.Generator().manual_seed(sample_seed(self.seed, 0, index))
        side = min(self.height, self.width)
        out = []
        for _ in range(randint(rng, 1, self.max_shapes)):
            radius = uniform(rng, 0.12 * side, 0.25 * side)
            margin = math.ceil(radius)
            out.append(Shape(randint(rng, 0, len(SHAPES) - 1),
                             randint(rng, margin, self.width - 1 - margin),
                             randint(rng, margin, self.height - 1 - margin), radius,
                             tuple(uniform(rng, 0.0, 1.0) for _ in range(3))))
        return out

    @property
    def labels(self) -> list[int]:
        return [self.shapes(i)[-1].kind for i in range(self.num_samples)]

    def __getitem__(self, index: int) -> Sample:
        rng = torch.Generator().manual_seed(sample_seed(self.seed, 0, index))
        shapes = self.shapes(index, rng)
        h, w = self.height, self.width
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                torch.arange(w, dtype=torch.float32), indexing="ij")
        image = self._background(rng, xs, ys)
        mask = torch.zeros(h, w, dtype=torch.int64)
        boxes = []
        for shape in shapes:
            region = shape_region(shape, xs, ys)
            shade = 0.85 + 0.15 * torch.rand(h, w, generator=rng)
            color = torch.tensor(shape.color).view(3, 1, 1) * shade
            image = torch.where(region, color, image)
            mask[region] = shape.kind + 1
            rows, cols = region.any(1).nonzero().view(-1), region.any(0).nonzero().view(-1)
            boxes.append([cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5, rows.max() + 0.5])
        main = shapes[-1]
        keypoints = torch.tensor([[main.cx + ox * main.radius, main.cy + oy * main.radius]
                                  for ox, oy in KEYPOINT_OFFSETS])
        return Sample(image.clamp(0, 1), label=main.kind, mask=mask, keypoints=keypoints,
                      visible=torch.ones(len(KEYPOINT_NAMES), dtype=torch.bool),
                      skeleton=SKELETON, boxes=torch.tensor(boxes, dtype=torch.float32),
                      box_labels=torch.tensor([s.kind for s in shapes], dtype=torch.int64),
                      meta={"path": f"synthetic/{index}", "index": index, "seed": self.seed})

    def _background(self, rng: torch.Generator, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        angle, period = uniform(rng, 0, math.pi), uniform(rng, 4.0, 16.0)
        phase = uniform(rng, 0, 2 * math.pi)
        stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle))
                                         / period + phase)
        a, b = torch.rand(3, 1, 1, generator=rng), torch.rand(3, 1, 1, generator=rng)
        noise = 0.05 * torch.randn(3, *xs.shape, generator=rng)
        return a * stripes + b * (1 - stripes) + noise

    def masks(self) -> Iterator[torch.Tensor]:
        for i in range(self.num_samples):
            yield self[i].mask  # type: ignore[misc]
