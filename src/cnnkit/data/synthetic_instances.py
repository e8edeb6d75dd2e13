"""Synthetic instances: overlapping shapes with exact masks, boxes and keypoints, from a seed.

A small stand-in for COCO instances (Lin et al., ECCV 2014) on which an instance segmentation
or keypoint model (Mask R-CNN, He et al., ICCV 2017) can be checked in seconds. Each sample
draws ``min_instances..max_instances`` shapes (circle, square, triangle: the shapes of
:mod:`cnnkit.data.synthetic`) at random places, sizes and colours, painted back to front on a
textured background (stripes and noise), so later shapes hide parts of earlier ones:

- ``instance_masks``: what is *visible* of each shape (its raster minus the later shapes);
  shapes with fewer than ``min_area`` visible pixels (entirely hidden ones) are left out;
- ``boxes``: the hull of each visible mask's pixel centres +- 0.5 (cnnkit's frame, see
  :mod:`cnnkit.geometry`), so a box is exactly its mask's;
- ``box_labels``: 1 + the shape's kind (0 is background), named in ``label_space.instances``;
- ``instance_keypoints``: top, left, right, centre of each shape (left/right are a flip pair of
  the skeleton), with ``instance_visible`` False where the pixel under the keypoint belongs to
  a later shape (occluded); ``crowd``: all False;
- ``mask``: the semantic map, 0 background and 1 + kind of the visible shape.

Sample ``i`` depends only on ``(seed, i)``. Unlike COCO, an occluded keypoint is marked not
visible (COCO's v = 1, "labelled but hidden", has no counterpart in cnnkit's one bit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.datasets.transformed import sample_seed
from cnnkit.data.sample import Sample
from cnnkit.data.synthetic import KEYPOINT_OFFSETS, SHAPES, SKELETON, Shape, shape_region
from cnnkit.data.transforms.base import randint, uniform
from cnnkit.data.transforms.instances import mask_boxes
from cnnkit.errors import ArgumentError

CLASSES = ClassList(("background",) + SHAPES)


def instance_labels(shapes: Sequence[Shape], height: int, width: int,
                    min_area: int = 1) -> dict[str, torch.Tensor]:
    """The exact labels of ``shapes`` painted in order (later ones in front) on a
    ``height x width`` image: ``masks``, ``boxes``, ``labels``, ``keypoints``, ``visible`` (of
    the shapes with at least ``min_area`` visible pixels), the semantic ``mask`` and ``owner``,
    the index of the shape seen at each pixel (-1: background)."""
    if not shapes:
        raise ArgumentError("instance_labels needs at least one shape")
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    owner = torch.full((height, width), -1, dtype=torch.int64)
    for i, shape in enumerate(shapes):
        owner[shape_region(shape, xs, ys)] = i
    masks = owner[None] == torch.arange(len(shapes))[:, None, None]  # what is visible of each
    kinds = torch.tensor([s.kind + 1 for s in shapes], dtype=torch.int64)
    semantic = torch.where(owner >= 0, kinds[owner.clamp(min=0)], 0)
    offsets = torch.tensor(KEYPOINT_OFFSETS)
    centres = torch.tensor([[s.cx, s.cy] for s in shapes], dtype=torch.float32)
    radii = torch.tensor([s.radius for s in shapes], dtype=torch.float32)
    points = centres[:, None] + offsets[None] * radii[:, None, None]  # N x K x 2
    pixel = torch.floor(points + 0.5).long()
    px, py = pixel[..., 0].clamp(0, width - 1), pixel[..., 1].clamp(0, height - 1)
    visible = owner[py, px] <= torch.arange(len(shapes))[:, None]  # no later shape covers it
    keep = masks.flatten(1).sum(1) >= min_area
    return {"masks": masks[keep], "boxes": mask_boxes(masks[keep]), "labels": kinds[keep],
            "keypoints": points[keep], "visible": visible[keep], "mask": semantic,
            "owner": owner}


class SyntheticInstances(Dataset):
    """``num_samples`` images of ``size`` (int or (height, width)) with 3 channels and
    ``min_instances..max_instances`` overlapping shapes each (see the module)."""

    def __init__(self, num_samples: int = 64, size: int | tuple[int, int] = 128, seed: int = 0,
                 max_instances: int = 6, min_instances: int = 1, min_area: int = 1) -> None:
        self.height, self.width = (size, size) if isinstance(size, int) else tuple(size)
        if min(self.height, self.width) < 24:
            raise ArgumentError(f"size must be at least 24 x 24; got {self.width} x {self.height}")
        if num_samples < 1 or not 1 <= min_instances <= max_instances or min_area < 1:
            raise ArgumentError(f"SyntheticInstances needs num_samples >= 1, 1 <= min_instances "
                                f"<= max_instances and min_area >= 1; got {num_samples}, "
                                f"{min_instances}, {max_instances}, {min_area}")
        self.num_samples, self.seed = num_samples, seed
        self.min_instances, self.max_instances = min_instances, max_instances
        self.min_area = min_area

    @property
    def label_space(self) -> LabelSpace:
        """Instance labels 1 + kind (0 background), the same as the semantic mask's classes."""
        return LabelSpace(mask=CLASSES, skeleton=SKELETON, instances=CLASSES)

    def __len__(self) -> int:
        return self.num_samples

    @property
    def keys(self) -> list[str]:
        return [f"synthetic-instances/{i}" for i in range(self.num_samples)]

    def image_size(self, index: int) -> tuple[int, int]:
        return self.height, self.width

    def _generator(self, index: int) -> torch.Generator:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        return torch.Generator().manual_seed(sample_seed(self.seed, 0, index))

    def shapes(self, index: int, rng: torch.Generator | None = None) -> list[Shape]:
        """The shapes of sample ``index``, back to front, without rendering."""
        rng = rng or self._generator(index)
        side = min(self.height, self.width)
        out = []
        for _ in range(randint(rng, self.min_instances, self.max_instances)):
            radius = uniform(rng, 0.1 * side, 0.22 * side)
            margin = math.ceil(radius)
            out.append(Shape(randint(rng, 0, len(SHAPES) - 1),
                             randint(rng, margin, self.width - 1 - margin),
                             randint(rng, margin, self.height - 1 - margin), radius,
                             tuple(uniform(rng, 0.0, 1.0) for _ in range(3))))
        return out

    def __getitem__(self, index: int) -> Sample:
        rng = self._generator(index)
        shapes = self.shapes(index, rng)
        h, w = self.height, self.width
        labels = instance_labels(shapes, h, w, self.min_area)
        image = _background(rng, h, w)
        colors = torch.tensor([s.color for s in shapes])  # N x 3
        shade = 0.85 + 0.15 * torch.rand(1, h, w, generator=rng)
        owner = labels["owner"]
        paint = colors[owner.clamp(min=0)].permute(2, 0, 1) * shade
        image = torch.where(owner >= 0, paint, image)
        count = len(labels["labels"])
        return Sample(image.clamp(0, 1), mask=labels["mask"], skeleton=SKELETON,
                      boxes=labels["boxes"], box_labels=labels["labels"],
                      instance_masks=labels["masks"], instance_keypoints=labels["keypoints"],
                      instance_visible=labels["visible"],
                      crowd=torch.zeros(count, dtype=torch.bool),
                      meta={"path": f"synthetic-instances/{index}", "index": index,
                            "seed": self.seed})


def _background(rng: torch.Generator, height: int, width: int) -> torch.Tensor:
    """Coloured stripes at a random angle and period, with pixel noise (``3 x H x W``)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    angle, period = uniform(rng, 0, math.pi), uniform(rng, 4.0, 16.0)
    wave = torch.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle)) / period)
    stripes = 0.5 + 0.5 * wave
    low, high = torch.rand(3, 1, 1, generator=rng), torch.rand(3, 1, 1, generator=rng)
    return low * stripes + high * (1 - stripes) + 0.05 * torch.randn(3, height, width,
                                                                     generator=rng)
