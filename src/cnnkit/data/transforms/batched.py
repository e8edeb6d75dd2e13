"""Augmentation of whole collated batches, on the device the batch is on.

The per-sample transforms run in the loader's worker processes, one Python call per sample and
transform. For small images that overhead dominates: on Fashion-MNIST (28x28) pad + crop + flip
cost more CPU per image than a small network's training step, and on a 2-core machine the workers
take that time from the step (BENCHMARKS.md). These transforms do the same on the whole batch in
a few tensor operations, after :func:`~cnnkit.data.batch.to_device` (so on the GPU when training
there), with one random draw per sample from torch's generator of the batch's device (seeded and
checkpointed with the run).

They move the image and, when the batch has them, the mask and the dense targets (depth,
normals, valid: a flip negates the normals' x component; new pixels of a shift get depth 0,
normals 0, valid False) together; batches with keypoints, boxes or instances are refused (their
coordinates would need moving too: use the per-sample transforms).
Configured as ``data.batch_transforms`` (training only; evaluation sees the images unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.errors import ArgumentError, CnnkitError

Batch = dict[str, Any]
COORDINATE_KEYS = ("keypoints", "boxes", "heatmaps", "instances")


def _check_movable(batch: Batch, name: str) -> None:
    held = [key for key in COORDINATE_KEYS if key in batch]
    if held:
        raise CnnkitError(f"batch transform {name} moves images and masks only; this batch also "
                          f"holds {', '.join(held)}: use the per-sample transforms")


class BatchHorizontalFlip:
    """Mirror each sample (image, mask, dense targets) left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ArgumentError(f"BatchHorizontalFlip p must be in [0, 1]; got {p}")
        self.p = p

    def __call__(self, batch: Batch) -> Batch:
        _check_movable(batch, type(self).__name__)
        image = batch["image"]
        chosen = torch.rand(image.shape[0], device=image.device) < self.p
        out = dict(batch)
        for key in ("image", "mask", "depth", "normals", "valid"):
            if key in batch:
                value = batch[key]
                flipped = value.flip(-1)
                if key == "normals":
                    flipped = flipped * flipped.new_tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
                where = chosen.view(-1, *([1] * (value.dim() - 1)))
                out[key] = torch.where(where, flipped, value)
        return out


class BatchRandomShift:
    """Shift each sample by up to ``padding`` pixels in x and y: the batch padded by ``padding``
    on every side and each sample cropped back to its size at a random offset (the per-sample
    ``Pad`` + ``RandomCrop``). New image pixels get ``fill`` (in the batch's units: after
    ``Normalize``, black is ``-mean / std``); new mask pixels get ``mask_fill`` (the ignore
    index by default)."""

    def __init__(self, padding: int = 2, fill: float = 0.0, mask_fill: int = 255) -> None:
        if padding < 0:
            raise ArgumentError(f"BatchRandomShift padding must be >= 0; got {padding}")
        self.padding, self.fill, self.mask_fill = padding, fill, mask_fill

    def __call__(self, batch: Batch) -> Batch:
        _check_movable(batch, type(self).__name__)
        if self.padding == 0:
            return batch
        image = batch["image"]
        n, height, width, p = image.shape[0], image.shape[-2], image.shape[-1], self.padding
        offsets = torch.randint(0, 2 * p + 1, (n, 2), device=image.device).tolist()
        out = dict(batch)
        fills = (("image", self.fill), ("mask", self.mask_fill), ("depth", 0.0),
                 ("normals", 0.0), ("valid", False))
        for key, fill in fills:
            if key not in batch:
                continue
            value = batch[key]
            padded = F.pad(value, (p, p, p, p), value=fill)
            out[key] = torch.stack([padded[i, ..., dy:dy + height, dx:dx + width]
                                    for i, (dy, dx) in enumerate(offsets)])
            if key == "image":
                out[key] = out[key].contiguous(memory_format=_memory_format(value))
        return out


class BatchRandomErasing:
    """Random erasing (Zhong, Zheng, Kang, Li & Yang, "Random Erasing Data Augmentation", AAAI
    2020): with probability ``p`` a sample's image gets one rectangle filled with ``value``; the
    rectangle's area is a uniform share ``scale`` of the image and its aspect ratio (height /
    width) log-uniform in ``ratio``, its position uniform where it fits. The paper draws again
    until the rectangle fits; here its sides are clipped to the image instead (one draw, no
    loop). Images only: a batch with masks or dense targets is refused (erasing does not change
    a pixel's class, so those labels would describe pixels the network cannot see)."""

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.4),
                 ratio: Sequence[float] = (0.3, 3.3), value: float = 0.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ArgumentError(f"BatchRandomErasing p must be in [0, 1]; got {p}")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ArgumentError(f"BatchRandomErasing scale must be [low, high] with 0 < low <= "
                                f"high <= 1; got {list(scale)}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ArgumentError(f"BatchRandomErasing ratio must be [low, high] with 0 < low <= "
                                f"high; got {list(ratio)}")
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), value

    def __call__(self, batch: Batch) -> Batch:
        _check_movable(batch, type(self).__name__)
        held = [key for key in ("mask", "depth", "normals", "valid") if key in batch]
        if held:
            raise CnnkitError(f"batch transform BatchRandomErasing erases image pixels only; "
                              f"this batch also holds {', '.join(held)}")
        image = batch["image"]
        n, height, width = image.shape[0], image.shape[-2], image.shape[-1]
        device = image.device
        draw = torch.rand(n, 5, device=device)
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * draw[:, 0])
        low, high = torch.log(torch.tensor(self.ratio, device=device))
        aspect = torch.exp(low + (high - low) * draw[:, 1])
        h = torch.sqrt(area * aspect).round().clamp(1, height)
        w = torch.sqrt(area / aspect).round().clamp(1, width)
        top = ((height - h + 1) * draw[:, 2]).floor().clamp(max=height - h)
        left = ((width - w + 1) * draw[:, 3]).floor().clamp(max=width - w)
        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
                  & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1)))
        erase = inside & (draw[:, 4] < self.p).view(-1, 1, 1)
        out = dict(batch)
        out["image"] = image.masked_fill(erase.unsqueeze(1), self.value)
        return out


def _memory_format(tensor: torch.Tensor) -> torch.memory_format:
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) \
            and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class BatchCompose:
    """Apply batch transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Batch], Batch]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, batch: Batch) -> Batch:
        for transform in self.transforms:
            batch = transform(batch)
        return batch

    def __repr__(self) -> str:
        return f"BatchCompose({', '.join(type(t).__name__ for t in self.transforms)})"


BATCH_TRANSFORMS: dict[str, Callable[..., Callable[[Batch], Batch]]] = {
    "BatchHorizontalFlip": BatchHorizontalFlip,
    "BatchRandomShift": BatchRandomShift,
    "BatchRandomErasing": BatchRandomErasing,
}
