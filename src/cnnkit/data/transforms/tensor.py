"""Pictures to tensors, per-channel normalisation and the channels-last memory format.

- :func:`to_tensor`: a PIL image or a ``H x W x C`` (or ``H x W``) numpy array / tensor -> a
  ``C x H x W`` float tensor; uint8 values are divided by 255 (so in [0, 1]), float values are
  kept as they are.
- :class:`Normalize`: ``(image - mean) / std`` per channel, with the statistics of the training
  set from :func:`cnnkit.data.stats_color.mean_std`. It is the last transform of a pipeline:
  afterwards the image is no longer in [0, 1]. Labels are untouched.
- :func:`to_channels_last`: an ``N x C x H x W`` batch (or a model) in
  ``torch.channels_last`` memory format (same shape and values, NHWC strides), which convolution
  kernels on recent GPUs and CPUs run faster; convert the model and the batches alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform
from cnnkit.errors import ArgumentError

Tensorish = TypeVar("Tensorish", torch.Tensor, nn.Module)


def to_tensor(picture: Any) -> torch.Tensor:
    """PIL image, numpy array or tensor ``H x W [x C]`` -> float32 ``C x H x W`` (uint8 / 255)."""
    if hasattr(picture, "getbands") and hasattr(picture, "mode"):  # a PIL image, no import needed
        array = np.array(picture)  # a writable copy
        if picture.mode in ("I;16", "I;16B", "I;16L"):
            array = array.astype(np.float32) / 65535.0
    elif isinstance(picture, (np.ndarray, torch.Tensor)):
        array = picture
    else:
        raise ArgumentError(f"to_tensor takes a PIL image, a numpy array or a tensor (H x W or "
                         f"H x W x C); got {type(picture).__name__}")
    if isinstance(array, np.ndarray) and not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array, order="C")
    tensor = torch.as_tensor(array)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(-1)
    if tensor.dim() != 3:
        raise ArgumentError(f"to_tensor needs H x W or H x W x C; got shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.float32) / 255.0
    elif tensor.dtype == torch.bool:
        tensor = tensor.to(torch.float32)
    elif not tensor.is_floating_point():
        raise ArgumentError(f"to_tensor handles uint8, bool and float pictures; got {tensor.dtype} "
                         f"(scale it to [0, 1] floats first)")
    return tensor.permute(2, 0, 1).contiguous()


class ToTensor:
    """Callable form of :func:`to_tensor`, for dataset pipelines that start from pictures."""

    def __call__(self, picture: Any) -> torch.Tensor:
        return to_tensor(picture)

    def __repr__(self) -> str:
        return "ToTensor()"


def _channel_stats(mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
    if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
        raise ArgumentError(f"Normalize needs one mean and one std per channel; got "
                         f"{mean_t.numel()} means and {std_t.numel()} stds")
    if bool((std_t <= 0).any()):
        raise ArgumentError(f"Normalize std must be > 0 for every channel; got {std_t.tolist()}")
    return mean_t, std_t


def _broadcast(stat: torch.Tensor, image: torch.Tensor, name: str) -> torch.Tensor:
    channels = image.shape[-3]
    if stat.numel() != channels:
        raise ArgumentError(f"{name} has {stat.numel()} channel(s) but the image has {channels} "
                         f"(shape {tuple(image.shape)})")
    return stat.to(image.device, image.dtype)[:, None, None]


def normalize(image: torch.Tensor, mean: Sequence[float] | torch.Tensor,
              std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``(image - mean) / std`` per channel for ``C x H x W`` or ``N x C x H x W``."""
    mean_t, std_t = _channel_stats(mean, std)
    return (image - _broadcast(mean_t, image, "mean")) / _broadcast(std_t, image, "std")


def denormalize(image: torch.Tensor, mean: Sequence[float] | torch.Tensor,
                std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize` (to display a network input)."""
    mean_t, std_t = _channel_stats(mean, std)
    return image * _broadcast(std_t, image, "std") + _broadcast(mean_t, image, "mean")


class Normalize(Transform):
    """Per-channel ``(image - mean) / std`` of the sample's image; labels untouched."""

    batchable = True

    def __init__(self, mean: Sequence[float] | torch.Tensor,
                 std: Sequence[float] | torch.Tensor) -> None:
        self.mean, self.std = _channel_stats(mean, std)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        return sample.replace(image=normalize(sample.image, self.mean, self.std))

    def apply_batch(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images, self.mean, self.std)


def to_channels_last(batch: Tensorish) -> Tensorish:
    """A 4-D batch (or a model's parameters) in ``torch.channels_last`` memory format."""
    if isinstance(batch, nn.Module):
        return batch.to(memory_format=torch.channels_last)
    if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
        shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ArgumentError(f"to_channels_last needs an N x C x H x W batch or a module; got {shape}")
    return batch.contiguous(memory_format=torch.channels_last)
