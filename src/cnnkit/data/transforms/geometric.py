"""Resize, crop, pad and the random crops/scales of the classic ImageNet recipes.

Every transform moves the image and all labels together, in the pixel-centre convention of
:mod:`cnnkit.data.sample` (an image of width W spans ``x in [-0.5, W - 0.5]``):

- image: bilinear, antialiased when shrinking; padding uses ``fill``;
- mask: nearest neighbour on pixel centres (never a new label value); padding is
  :data:`~cnnkit.data.sample.IGNORE_INDEX`;
- keypoints: moved exactly; a point that ends outside ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` is
  marked invisible but kept (its coordinates too), so ``K`` never changes;
- boxes: moved, then clipped to the image; the count never changes (a box that leaves the image
  becomes an empty, zero-area box on the border; ``box_labels`` stay aligned).
- depth, normals, valid: nearest neighbour like the mask, values kept; padding is depth 0,
  normals 0, valid False (see :mod:`cnnkit.data.transforms.dense`).
- instances (a sample whose ``crowd`` is set): masks like the mask (padding False), keypoints
  like the keypoints, boxes moved and clipped (refitted to the mask where a crop cut the
  instance), then instances that left the image are dropped and counted in
  ``meta["dropped_instances"]`` (see :mod:`cnnkit.data.transforms.instances`).

Each transform appends ``(name, parameters)`` to ``sample.meta["transforms"]`` (a new list; the
input sample is never modified).

The random scale augmentation follows He, Zhang, Ren & Sun, "Deep Residual Learning for Image
Recognition" (CVPR 2016), after Simonyan & Zisserman (ICLR 2015): short side L drawn in
[256, 480], then a random 224 x 224 crop. :class:`RandomResizedCrop` is the "Inception"
crop of Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015): area fraction in
[0.08, 1] and aspect ratio in [3/4, 4/3] (log-uniform), as popularised by the torchvision
recipe; after 10 failed draws it falls back to a centre crop of the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.data.transforms.base import Transform, randint, uniform
from cnnkit.data.transforms.dense import crop_dense, dense_fields, take_dense
from cnnkit.data.transforms.instances import crop_masks, move_instances
from cnnkit.errors import ArgumentError

PointMap = Callable[[torch.Tensor], torch.Tensor]  # N x 2 (x, y) -> N x 2


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair; positive integers only."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ArgumentError(f"{name} must be a positive int or (height, width); got {value!r}")
    return int(pair[0]), int(pair[1])


def log_transform(sample: Sample, name: str, **params: Any) -> dict[str, Any]:
    """A copy of ``sample.meta`` with ``(name, params)`` appended to ``meta["transforms"]``."""
    meta = dict(sample.meta)
    meta["transforms"] = [*meta.get("transforms", []), (name, params)]
    return meta


def inside(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Which ``N x 2`` points lie in the image ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``."""
    x, y = points[:, 0], points[:, 1]
    return (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip ``B x 4`` boxes to the image (count kept; boxes outside become zero-area)."""
    low = boxes.new_tensor([-0.5, -0.5, -0.5, -0.5])
    high = boxes.new_tensor([width - 0.5, height - 0.5, width - 0.5, height - 0.5])
    return torch.maximum(torch.minimum(boxes, high), low)


def box_corners_map(point_map: PointMap, boxes: torch.Tensor) -> torch.Tensor:
    """Boxes through a point map: the axis-aligned hull of the four mapped corners."""
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1),
                           torch.stack([x1, y2], 1), torch.stack([x2, y2], 1)], 1)  # B x 4 x 2
    moved = point_map(corners.reshape(-1, 2)).reshape(-1, 4, 2)
    return torch.cat([moved.amin(1), moved.amax(1)], 1)


def _floating(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_floating_point() else t.float()


def move_labels(sample: Sample, point_map: PointMap, height: int, width: int,
                box_map: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, Any]:
    """Keypoints, visibility and boxes after ``point_map``, for an output of ``height x width``."""
    changes: dict[str, Any] = {}
    if sample.keypoints is not None:
        points = point_map(_floating(sample.keypoints))
        changes["keypoints"] = points
        changes["visible"] = sample.visible & inside(points, height, width)
    if sample.boxes is not None:
        boxes = _floating(sample.boxes)
        moved = box_map(boxes) if box_map else box_corners_map(point_map, boxes)
        changes["boxes"] = clip_boxes(moved, height, width)
    if sample.instance_keypoints is not None:
        points = _floating(sample.instance_keypoints)
        moved = point_map(points.reshape(-1, 2)).reshape(points.shape)
        changes["instance_keypoints"] = moved
        changes["instance_visible"] = sample.instance_visible & inside(
            moved.reshape(-1, 2), height, width).reshape(points.shape[:2])
    return changes


def resize_sample(sample: Sample, height: int, width: int) -> Sample:
    """Resize to ``height x width``: ``x -> (x + 0.5) * W'/W - 0.5`` (and the same for y)."""
    in_h, in_w = sample.size
    sx, sy = width / in_w, height / in_h
    downscale = height < in_h or width < in_w
    image = F.interpolate(sample.image[None].float(), size=(height, width), mode="bilinear",
                          align_corners=False, antialias=downscale)[0]
    changes: dict[str, Any] = {"image": image}
    masks = None
    if sample.mask is not None or dense_fields(sample) or sample.instance_masks is not None:
        # nearest source pixel centre: floor((i + 0.5) * in / out), clamped
        rows = ((torch.arange(height) + 0.5) * (in_h / height)).floor().long().clamp(0, in_h - 1)
        cols = ((torch.arange(width) + 0.5) * (in_w / width)).floor().long().clamp(0, in_w - 1)
        if sample.mask is not None:
            changes["mask"] = sample.mask[rows][:, cols]
        changes.update(take_dense(sample, rows, cols))
        if sample.instance_masks is not None:
            masks = sample.instance_masks[:, rows][:, :, cols]
    def point_map(p: torch.Tensor) -> torch.Tensor:
        return (p + 0.5) * p.new_tensor([sx, sy]) - 0.5

    changes.update(move_labels(sample, point_map, height, width))
    changes["meta"] = log_transform(sample, "resize", size=(height, width))
    return sample.replace(**move_instances(sample, changes, masks))


def crop_sample(sample: Sample, top: int, left: int, height: int, width: int,
                fill: float = 0.0) -> Sample:
    """Window ``[top, top + height) x [left, left + width)``; parts outside the image are padded.

    Output pixel ``(i, j)`` is input pixel ``(i + top, j + left)``; points move by
    ``(-left, -top)`` exactly. The image is padded with ``fill``, the mask with IGNORE_INDEX,
    depth and normals with 0, valid with False.
    """
    in_h, in_w = sample.size
    src_r0, src_r1 = max(top, 0), min(top + height, in_h)
    src_c0, src_c1 = max(left, 0), min(left + width, in_w)
    image = sample.image.new_full((sample.image.shape[0], height, width), fill)
    mask = None
    if sample.mask is not None:
        mask = sample.mask.new_full((height, width), IGNORE_INDEX)
    if src_r1 > src_r0 and src_c1 > src_c0:
        dst = (slice(src_r0 - top, src_r1 - top), slice(src_c0 - left, src_c1 - left))
        image[(slice(None), *dst)] = sample.image[:, src_r0:src_r1, src_c0:src_c1]
        if mask is not None:
            mask[dst] = sample.mask[src_r0:src_r1, src_c0:src_c1]
    changes = move_labels(sample, lambda p: p - p.new_tensor([left, top]), height, width)
    changes.update(crop_dense(sample, top, left, height, width))
    changes["meta"] = log_transform(sample, "crop", top=top, left=left, size=(height, width))
    masks = None if sample.instance_masks is None else \
        crop_masks(sample.instance_masks, top, left, height, width)
    changes = move_instances(sample, changes, masks, "cut")  # boxes of cut instances refitted
    return sample.replace(image=image, mask=mask, **changes)


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """Output ``(height, width)`` with the short side ``short`` and the aspect ratio kept."""
    if height <= width:
        return short, max(1, round(width * short / height))
    return max(1, round(height * short / width)), short


class Resize(Transform):
    """Resize to ``size``: an int sets the short side (aspect kept), a pair is ``(H, W)``."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        pair = _pair(size, "Resize size")  # validates both forms
        self.size = size if isinstance(size, int) else pair

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        if isinstance(self.size, int):
            return resize_sample(sample, *short_side_size(*sample.size, self.size))
        return resize_sample(sample, *self.size)


class Crop(Transform):
    """Fixed window ``(top, left, height, width)`` (may extend past the image: padded)."""

    def __init__(self, top: int, left: int, height: int, width: int, fill: float = 0.0) -> None:
        _pair((height, width), "Crop height/width")
        self.top, self.left, self.height, self.width, self.fill = top, left, height, width, fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        return crop_sample(sample, self.top, self.left, self.height, self.width, self.fill)


class Pad(Transform):
    """Pad by ``(left, top, right, bottom)`` pixels (an int pads all sides)."""

    def __init__(self, padding: int | tuple[int, int, int, int], fill: float = 0.0) -> None:
        pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(pads) != 4 or not all(isinstance(p, int) and p >= 0 for p in pads):
            raise ArgumentError(f"Pad padding must be an int >= 0 or (left, top, right, bottom); "
                             f"got {padding!r}")
        self.padding, self.fill = pads, fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        left, top, right, bottom = self.padding
        h, w = sample.size
        return crop_sample(sample, -top, -left, h + top + bottom, w + left + right, self.fill)


class CenterCrop(Transform):
    """Central ``size`` window (top/left rounded down; padded if the image is smaller)."""

    def __init__(self, size: int | tuple[int, int], fill: float = 0.0) -> None:
        self.size, self.fill = _pair(size, "CenterCrop size"), fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        (h, w), (ch, cw) = sample.size, self.size
        return crop_sample(sample, (h - ch) // 2, (w - cw) // 2, ch, cw, self.fill)


class RandomCrop(Transform):
    """Uniformly placed ``size`` window; ``pad_if_needed`` pads small images, else an error."""

    def __init__(self, size: int | tuple[int, int], pad_if_needed: bool = False,
                 fill: float = 0.0) -> None:
        self.size = _pair(size, "RandomCrop size")
        self.pad_if_needed, self.fill = pad_if_needed, fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        (h, w), (ch, cw) = sample.size, self.size
        if (h < ch or w < cw) and not self.pad_if_needed:
            raise ArgumentError(f"RandomCrop size {ch} x {cw} (H x W) is larger than the image "
                             f"{h} x {w}; resize first or pass pad_if_needed=True")
        top = randint(rng, 0, h - ch) if h >= ch else (h - ch) // 2
        left = randint(rng, 0, w - cw) if w >= cw else (w - cw) // 2
        return crop_sample(sample, top, left, ch, cw, self.fill)


class RandomResizedCrop(Transform):
    """Random window of area fraction ``scale`` and aspect ``ratio``, resized to ``size``."""

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ArgumentError(f"RandomResizedCrop scale must satisfy 0 < low <= high <= 1; "
                             f"got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ArgumentError(f"RandomResizedCrop ratio must satisfy 0 < low <= high; got {ratio}")
        self.size, self.scale, self.ratio = _pair(size, "RandomResizedCrop size"), scale, ratio
        self.attempts = attempts

    def window(self, height: int, width: int, rng: torch.Generator | None):
        """``(top, left, h, w)`` of the window to crop."""
        area = height * width
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(self.attempts):
            target = area * uniform(rng, *self.scale)
            aspect = math.exp(uniform(rng, log_low, log_high))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return randint(rng, 0, height - h), randint(rng, 0, width - w), h, w
        aspect = width / height  # fallback: largest central window within the ratio range
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        top, left, h, w = self.window(*sample.size, rng)
        return resize_sample(crop_sample(sample, top, left, h, w), *self.size)


class ResNetScale(Transform):
    """Short side resized to a random ``L`` in ``short_side`` (both ends), then a random crop."""

    def __init__(self, short_side: tuple[int, int] = (256, 480), crop: int = 224) -> None:
        low, high = short_side
        if not 0 < low <= high or crop > low:
            raise ArgumentError(f"ResNetScale needs 0 < short_side[0] <= short_side[1] and "
                             f"crop <= short_side[0]; got short_side={short_side}, crop={crop}")
        self.short_side, self.crop = (low, high), crop

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        short = randint(rng, *self.short_side)
        resized = resize_sample(sample, *short_side_size(*sample.size, short))
        return RandomCrop(self.crop)(resized, rng)
