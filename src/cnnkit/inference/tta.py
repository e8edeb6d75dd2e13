"""Test-time augmentation: ten crops and multiple scales for classifiers, flips for dense maps.

Classification (:func:`classify_tta`):

- ten crops: the four corner crops and the centre crop of size ``crop``, and their horizontal
  mirrors (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
  Neural Networks", NIPS 2012: "averaging the predictions made by the network's softmax layer
  on the ten patches");
- multiple scales: the image's short side is resized to each of ``scales`` (the lecture's
  ResNet recipe uses 224, 256, 384, 480, 640, :data:`DECK_SCALES`), ten crops each, so
  ``len(scales) * 10`` views. He, Zhang, Ren & Sun, "Deep Residual Learning for Image
  Recognition", CVPR 2016, evaluate the fully convolutional network on the whole resized
  images instead; here every view is a ``crop x crop`` input, so any classifier works.
- ``average="probs"`` averages softmax probabilities (AlexNet's choice; returns probabilities),
  ``average="logits"`` averages the raw scores (returns logits; softmax them yourself). Both
  give the same ranking when only one view is used; with many views the probability average
  gives each view a bounded vote while a very confident view can dominate the logit average.

Dense flips (pixel-centre convention of :mod:`cnnkit.data.sample`: a flip is x -> W - 1 - x):

- :func:`segment_flip_tta`: ``(f(x) + flip(f(flip(x)))) / 2``; exact re-alignment because the
  logits are at the input resolution.
- :func:`heatmap_flip_tta`: the same, and the left/right keypoint channels are swapped with the
  skeleton's permutation. At output stride ``s`` a map cell ``j`` covers image pixels
  ``j*s .. j*s + s - 1``; when the image width is exactly ``s`` times the map width the flip of
  the image maps cell ``j`` onto cell ``W_map - 1 - j`` exactly, so flipping the map tensor is
  exact and no one-pixel shift is needed (the shift some pose code applies compensates a
  different, inconsistent convention). When the width is not a multiple of the map width the
  flipped map would be misaligned by a fraction of a cell, and the function refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.geometry import Skeleton
from cnnkit.errors import ArgumentError, CnnkitError

Average = Literal["probs", "logits"]
Model = Callable[[torch.Tensor], torch.Tensor]
DECK_SCALES = (224, 256, 384, 480, 640)  # short sides of the multi-scale test (lecture slides)


def _check_batch(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ArgumentError(f"{name} must be an N x C x H x W batch; got {shape}")


def _check_average(average: str) -> None:
    if average not in ("probs", "logits"):
        raise ArgumentError(f"average must be 'probs' or 'logits'; got {average!r}")


def five_crop_positions(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of the top-left, top-right, bottom-left, bottom-right and centre crops.

    The centre crop starts at ``((height - size) // 2, (width - size) // 2)``.
    """
    if size < 1 or size > height or size > width:
        raise ArgumentError(f"crop size must be in [1, min(H, W)] = [1, {min(height, width)}] for a "
                         f"{width} x {height} image; got {size}")
    bottom, right = height - size, width - size
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]


def ten_crop(images: torch.Tensor, size: int, flip: bool = True) -> list[torch.Tensor]:
    """The five crops (:func:`five_crop_positions` order) then their mirrors: 10 (or 5) batches."""
    _check_batch(images)
    positions = five_crop_positions(images.shape[-2], images.shape[-1], size)
    crops = [images[..., top:top + size, left:left + size] for top, left in positions]
    return crops + [crop.flip(-1) for crop in crops] if flip else crops


def resize_short_side(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize so that the shorter side is ``size``.

    The long side becomes ``round(long * size / short)``; ``align_corners=False`` follows the
    convention x -> (x + 0.5) * s - 0.5.
    """
    _check_batch(images)
    if size < 1:
        raise ArgumentError(f"short side size must be >= 1; got {size}")
    height, width = images.shape[-2:]
    short = min(height, width)
    new = (size, round(width * size / short)) if height <= width else \
        (round(height * size / short), size)
    if new == (height, width):
        return images
    return F.interpolate(images, size=new, mode="bilinear", align_corners=False,
                         antialias=size < short)


def multi_scale_views(images: torch.Tensor, scales: Sequence[int] = DECK_SCALES,
                      crop: int = 224, flip: bool = True) -> Iterator[torch.Tensor]:
    """Ten crops at every scale (``len(scales) * 10`` batches, 5 per scale without flips).

    Views are produced lazily, one resized image at a time.
    """
    if not scales:
        raise ArgumentError("scales must name at least one short-side size")
    for scale in scales:
        if scale < crop:
            raise ArgumentError(f"every scale must be >= the crop size {crop}; got {scale}")
        yield from ten_crop(resize_short_side(images, scale), crop, flip)


@torch.no_grad()
def classify_tta(model: Model, images: torch.Tensor, *, crop: int = 224,
                 scales: Sequence[int] | None = None, flip: bool = True,
                 average: Average = "probs", views_per_call: int = 10) -> torch.Tensor:
    """Class scores (N x classes) averaged over ten crops, at one or several scales.

    ``scales=None`` crops the images as given (resize them first); otherwise see
    :func:`multi_scale_views`. ``views_per_call`` views are concatenated into one model call
    (batch ``views_per_call * N``) to bound memory. See the module docstring for ``average``.
    """
    _check_batch(images)
    _check_average(average)
    if views_per_call < 1:
        raise ArgumentError(f"views_per_call must be >= 1; got {views_per_call}")
    views = iter(ten_crop(images, crop, flip)) if scales is None else \
        multi_scale_views(images, scales, crop, flip)
    sums: list[torch.Tensor] = []
    count, pending = 0, []

    def flush() -> None:
        scores = model(torch.cat(pending))
        if average == "probs":
            scores = scores.softmax(dim=1)
        sums.append(scores.reshape(len(pending), images.shape[0], *scores.shape[1:]).sum(dim=0))
        pending.clear()

    for view in views:
        pending.append(view)
        count += 1
        if len(pending) == views_per_call:
            flush()
    if pending:
        flush()
    total = torch.stack(sums).sum(dim=0)
    return total / count


@torch.no_grad()
def segment_flip_tta(model: Model, images: torch.Tensor,
                     average: Average = "logits") -> torch.Tensor:
    """Mean of the logits (or softmax probabilities) on the images and on their mirrors.

    The model must return N x classes x H x W at the input resolution.
    """
    _check_batch(images)
    _check_average(average)
    outputs = model(torch.cat([images, images.flip(-1)]))
    if outputs.dim() != 4 or outputs.shape[-1] != images.shape[-1]:
        raise ArgumentError(f"segment_flip_tta needs logits N x classes x H x W at the input width "
                         f"{images.shape[-1]}; the model returned {tuple(outputs.shape)}")
    if average == "probs":
        outputs = outputs.softmax(dim=1)
    plain, mirrored = outputs.chunk(2)
    return (plain + mirrored.flip(-1)) / 2


def _permutation(flip: Skeleton | Sequence[int], channels: int) -> list[int]:
    perm = flip.flip_permutation() if isinstance(flip, Skeleton) else [int(i) for i in flip]
    if sorted(perm) != list(range(len(perm))):
        raise ArgumentError(f"flip permutation must be a permutation of 0..{len(perm) - 1}; "
                         f"got {perm}")
    if channels == len(perm) + 1:  # a background map stays in place
        perm = perm + [len(perm)]
    if channels != len(perm):
        raise ArgumentError(f"the model returned {channels} heatmaps but the flip permutation has "
                         f"{len(perm)} keypoints (K or K + 1 with a background map)")
    return perm


@torch.no_grad()
def heatmap_flip_tta(model: Model, images: torch.Tensor, flip: Skeleton | Sequence[int]
                     ) -> torch.Tensor:
    """Mean of the heatmaps on the images and the un-flipped, left/right-swapped mirror maps.

    ``flip`` is the skeleton (its ``flip_permutation``) or that permutation. The model returns
    ``... x K x h x w`` maps (K at dim -3, so ``N x T x K x h x w`` stage outputs work too; a
    K+1-th background map stays in place). The output stride ``s = W / w`` is read from the
    shapes and must be an integer with ``W == s * w`` (see the module docstring).
    """
    _check_batch(images)
    outputs = model(torch.cat([images, images.flip(-1)]))
    if outputs.dim() < 4:
        raise ArgumentError(f"heatmap_flip_tta needs maps ... x K x h x w; the model returned "
                         f"{tuple(outputs.shape)}")
    width, map_width = images.shape[-1], outputs.shape[-1]
    if width % map_width:
        raise ArgumentError(f"image width {width} is not a multiple of the heatmap width {map_width}: "
                         f"the flipped maps would be misaligned by a fraction of a cell; pad or "
                         f"resize the images to a multiple of the output stride")
    perm = _permutation(flip, outputs.shape[-3])
    plain, mirrored = outputs.chunk(2)
    return (plain + mirrored.flip(-1)[..., perm, :, :]) / 2


FLIP_TASKS = ("classification", "segmentation", "keypoints-heatmap")


class FlipTTA(nn.Module):
    """``model`` evaluated on the images and their mirrors, outputs averaged (logits).

    ``task``: "classification" (class scores of both views), "segmentation"
    (:func:`segment_flip_tta`) or "keypoints-heatmap" (:func:`heatmap_flip_tta`, which needs
    ``flip``: the skeleton or its left/right permutation). Regression outputs (boxes, keypoint
    coordinates) are not averaged: a mirrored coordinate needs the image width and the
    keypoints' left/right swap, which only heatmaps carry in their layout.
    """

    def __init__(self, model: nn.Module, task: str,
                 flip: Skeleton | Sequence[int] | None = None) -> None:
        super().__init__()
        if task not in FLIP_TASKS:
            raise CnnkitError(f"flip test-time augmentation works for {', '.join(FLIP_TASKS)}; "
                              f"the task is {task!r}")
        if task == "keypoints-heatmap" and flip is None:
            raise CnnkitError("flip test-time augmentation of heatmaps needs the skeleton's "
                              "left/right pairs; the dataset declares none")
        self.model, self.task, self.flip = model, task, flip
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.task == "segmentation":
            return segment_flip_tta(self.model, images)
        if self.task == "keypoints-heatmap":
            return heatmap_flip_tta(self.model, images, self.flip)
        _check_batch(images)
        plain, mirrored = self.model(torch.cat([images, images.flip(-1)])).chunk(2)
        return (plain + mirrored) / 2
