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

Flips for every task (:class:`FlipTTA`): ``(f(x) + g(f(flip(x)))) / 2``, where ``g`` is the
task's :meth:`~cnnkit.tasks.Task.flip_back` (pixel-centre convention of :mod:`cnnkit.geometry`:
a flip is ``x -> W - 1 - x``). For heatmaps at output stride ``s`` a map cell ``j`` covers image
pixels ``j*s .. j*s + s - 1``; when the image width is exactly ``s`` times the map width the
flip of the image maps cell ``j`` onto cell ``W_map - 1 - j`` exactly, so flipping the map tensor
is exact and no one-pixel shift is needed (the shift some pose code applies compensates a
different, inconsistent convention); otherwise the task refuses.

The eight symmetries of the square for per-pixel maps that do not change when the image turns
(:class:`DihedralTTA`, "d4"): segmentation scores and depth, for images with no upright.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

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


def _parts(output: Any, count: int) -> list[Any]:
    """The outputs of ``count`` equal parts of a batch (tensors or tuples of them)."""
    if isinstance(output, torch.Tensor):
        return list(output.chunk(count))
    if isinstance(output, tuple):
        columns = zip(*(_parts(o, count) for o in output))
        return [_same_tuple(output, column) for column in columns]
    raise CnnkitError(f"test-time augmentation needs tensor outputs; the model returned "
                      f"{type(output).__name__}")


def _halves(output: Any) -> tuple[Any, Any]:
    first, second = _parts(output, 2)
    return first, second


def _same_tuple(like: tuple, values: Sequence[Any]) -> tuple:
    return type(like)(*values) if hasattr(like, "_fields") else type(like)(values)


def _mean(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return (a + b) / 2
    return _same_tuple(a, [_mean(x, y) for x, y in zip(a, b)])


class FlipTTA(nn.Module):
    """``model`` evaluated on the images and their mirrors; the mirrored outputs are brought back
    by the task (:meth:`cnnkit.tasks.Task.flip_back`: class scores stay, dense maps flip, left and
    right keypoints swap, boxes and coordinates mirror) and the two are averaged.

    The images are one batch of ``2N``, so batch-norm layers in evaluation mode see each image
    as before. Works for every task that defines ``flip_back``; refused in one line otherwise.
    """

    def __init__(self, model: nn.Module, task: Any) -> None:
        super().__init__()
        if not callable(getattr(task, "flip_back", None)):
            raise CnnkitError(f"flip test-time augmentation needs a task with flip_back; got "
                              f"{type(task).__name__}")
        self.model, self.task = model, task
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, images: torch.Tensor) -> Any:
        _check_batch(images)
        plain, mirrored = _halves(self.model(torch.cat([images, images.flip(-1)])))
        return _mean(plain, self.task.flip_back(mirrored, images.shape[-1]))


class DihedralTTA(nn.Module):
    """``model`` evaluated on the eight symmetries of the square (the dihedral group D4): the
    images, their mirrors and both turned by one, two and three quarter turns. The task brings
    each output back (:meth:`cnnkit.tasks.Task.dihedral_back`) and the eight are averaged.

    For per-pixel outputs that do not change when the image turns: class scores of
    segmentation, depth. Suits images with no upright, such as microscopy (the ISBI membranes)
    and aerial views. The views with an even number of turns keep the image's height and width
    and go through the model as one batch of ``4N``; the odd ones, ``W x H``, as another.
    """

    def __init__(self, model: nn.Module, task: Any) -> None:
        super().__init__()
        self.model, self.task = model, task
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        mirrored = images.flip(-1)
        total = None
        for turns in ((0, 2), (1, 3)):
            views = [(t, m) for t in turns for m in (False, True)]
            batch = torch.cat([torch.rot90(mirrored if m else images, t, dims=(-2, -1))
                               for t, m in views])
            for (t, m), output in zip(views, _parts(self.model(batch), len(views))):
                back = self.task.dihedral_back(output, t, m)
                _check_map(back, images)
                total = back if total is None else total + back
        return total / 8


def _check_map(maps: torch.Tensor, images: torch.Tensor) -> None:
    """Turning a map is exact when its height and width divide the image's."""
    (height, width), (rows, cols) = images.shape[-2:], maps.shape[-2:]
    if height % rows or width % cols:
        raise CnnkitError(f"d4 test-time augmentation needs maps whose height and width divide "
                          f"the input's {height}x{width}; the model gives {rows}x{cols}")
