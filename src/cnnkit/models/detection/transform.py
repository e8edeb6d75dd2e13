"""The detectors' input transform and cnnkit's frame <-> the reference frame.

As torchvision's ``GeneralizedRCNNTransform``: each image (C x H x W, values in [0, 1]) is
normalised with the ImageNet mean and standard deviation, resized bilinearly
(``align_corners=False``, ``recompute_scale_factor=True``) by ``s = min(min_size / short side,
max_size / long side)`` to ``floor(H s) x floor(W s)`` (in training ``min_size`` is drawn at
random from the tuple given, at evaluation its last entry is used), and the images are batched,
zero-padded at the bottom and right to a multiple of 32. Target boxes and keypoints are scaled by
the ratio of the new size to the old one per axis, masks resized by nearest neighbour. After
inference, boxes and keypoints are scaled back to the original size and masks pasted into the
original image (:func:`~cnnkit.models.detection.masks.paste_masks_in_image`).

Frames. cnnkit puts pixel centres at integer coordinates (:mod:`cnnkit.geometry`: the image is
the box ``(-0.5, -0.5, W - 0.5, H - 0.5)``); the reference puts pixel ``j`` on ``[j, j + 1]``.
The detectors run internally in the reference frame, so a reference checkpoint computes exactly
what it computes there: :func:`to_reference_frame` adds 0.5 to incoming boxes and keypoints,
:func:`from_reference_frame` subtracts it from outgoing ones. Scaling by ``s`` in the reference
frame is cnnkit's ``x -> (x + 0.5) s - 0.5``, so resizing agrees in both frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.models.detection.masks import paste_masks_in_image
from cnnkit.ops import ImageList

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHIFT = 0.5  # reference frame = cnnkit frame + 0.5


def to_reference_frame(target: dict) -> dict:
    """A copy of ``target`` with ``boxes`` and keypoint ``(x, y)`` moved to the reference frame."""
    out = dict(target)
    if "boxes" in out:
        out["boxes"] = out["boxes"] + SHIFT
    if "keypoints" in out:
        kp = out["keypoints"]
        out["keypoints"] = torch.cat([kp[..., :2] + SHIFT, kp[..., 2:]], dim=-1)
    return out


def from_reference_frame(result: dict) -> dict:
    """The inverse of :func:`to_reference_frame` (for predictions)."""
    out = dict(result)
    if "boxes" in out:
        out["boxes"] = out["boxes"] - SHIFT
    if "keypoints" in out:
        kp = out["keypoints"]
        out["keypoints"] = torch.cat([kp[..., :2] - SHIFT, kp[..., 2:]], dim=-1)
    return out


def scale_points(points: torch.Tensor, old_size, new_size) -> torch.Tensor:
    """Scale ``(x, y, ...)`` along the last dimension (x at 0, y at 1; boxes give (x1, y1, x2,
    y2) as two points) from an image of ``old_size`` (h, w) to ``new_size``, as the reference."""
    ratio_h, ratio_w = (torch.tensor(float(n), dtype=torch.float32, device=points.device)
                        / torch.tensor(float(o), dtype=torch.float32, device=points.device)
                        for n, o in zip(new_size, old_size))
    scaled = points.clone()
    if points.shape[-1] == 4:
        scaled[..., 0::2] = points[..., 0::2] * ratio_w
        scaled[..., 1::2] = points[..., 1::2] * ratio_h
    else:
        scaled[..., 0] = points[..., 0] * ratio_w
        scaled[..., 1] = points[..., 1] * ratio_h
    return scaled


class RCNNTransform(nn.Module):
    """Normalise, resize and batch images (and their targets); map predictions back."""

    def __init__(self, min_size=800, max_size: int = 1333, image_mean=IMAGENET_MEAN,
                 image_std=IMAGENET_STD, size_divisible: int = 32,
                 mask_paste: str = "exact") -> None:
        super().__init__()
        sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
        if not sizes:
            raise ArgumentError("min_size must be a positive int or a non-empty tuple of them")
        require_positive(**{f"min_size[{i}]": s for i, s in enumerate(sizes)})
        require_positive(max_size=max_size, size_divisible=size_divisible)
        if len(image_mean) != len(image_std) or any(s <= 0 for s in image_std):
            raise ArgumentError(f"image_std must be positive and as long as image_mean; got "
                                f"{tuple(image_std)} and {tuple(image_mean)}")
        self.min_size, self.max_size = sizes, max_size
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.size_divisible, self.mask_paste = size_divisible, mask_paste

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[0] != len(self.image_mean):
            raise ArgumentError(f"images must have {len(self.image_mean)} channels (image_mean "
                                f"has {len(self.image_mean)} values); got {image.shape[0]}")
        mean = torch.as_tensor(self.image_mean, dtype=image.dtype, device=image.device)
        std = torch.as_tensor(self.image_std, dtype=image.dtype, device=image.device)
        return (image - mean[:, None, None]) / std[:, None, None]

    def pick_size(self) -> float:
        if not self.training:
            return float(self.min_size[-1])
        return float(self.min_size[int(torch.empty(1).uniform_(0.0, len(self.min_size)).item())])

    def resize(self, image: torch.Tensor, target: dict | None):
        height, width = image.shape[-2:]
        size = self.pick_size()
        scale = min(size / min(height, width), float(self.max_size) / max(height, width))
        image = F.interpolate(image[None], scale_factor=scale, mode="bilinear",
                              recompute_scale_factor=True, align_corners=False)[0]
        if target is None:
            return image, None
        target = dict(target)
        new_size = tuple(image.shape[-2:])
        target["boxes"] = scale_points(target["boxes"], (height, width), new_size)
        if "keypoints" in target:
            target["keypoints"] = scale_points(target["keypoints"], (height, width), new_size)
        if "masks" in target:
            masks = target["masks"][:, None].float()
            target["masks"] = F.interpolate(masks, scale_factor=scale,
                                            recompute_scale_factor=True)[:, 0].byte()
        return image, target

    def batch_images(self, images: list[torch.Tensor]) -> torch.Tensor:
        stride = float(self.size_divisible)
        height = int(math.ceil(max(i.shape[-2] for i in images) / stride) * stride)
        width = int(math.ceil(max(i.shape[-1] for i in images) / stride) * stride)
        batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
        for image, slot in zip(images, batch):
            slot[:, : image.shape[-2], : image.shape[-1]].copy_(image)
        return batch

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        out_images, out_targets = [], [] if targets is not None else None
        for i, image in enumerate(images):
            image, target = self.resize(self.normalize(image),
                                        None if targets is None else targets[i])
            out_images.append(image)
            if out_targets is not None:
                out_targets.append(target)
        sizes = [tuple(int(v) for v in image.shape[-2:]) for image in out_images]
        return ImageList(self.batch_images(out_images), sizes), out_targets

    def postprocess(self, results: list[dict], image_sizes, original_sizes) -> list[dict]:
        for result, size, original in zip(results, image_sizes, original_sizes):
            result["boxes"] = scale_points(result["boxes"], size, original)
            if "masks" in result:
                result["masks"] = paste_masks_in_image(result["masks"], result["boxes"],
                                                       original, self.mask_paste)
            if "keypoints" in result:
                result["keypoints"] = scale_points(result["keypoints"], size, original)
        return results
