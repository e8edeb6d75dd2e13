"""Keypoint heatmap targets at an output stride, in cnnkit's pixel-centre convention.

A map at stride ``s`` has ``ceil(H / s) x ceil(W / s)`` cells; cell ``j`` covers image pixels
``j*s .. j*s + s - 1`` and its centre is at image coordinate ``x = j*s + (s - 1)/2``
(:func:`cnnkit.geometry.map_to_image`), so a keypoint lands at map coordinate
``image_to_map(x, s)``, sub-cell precise. When W and H are multiples of ``s`` the map grid is
symmetric about the image centre and the target of a flipped sample is exactly the flipped map;
otherwise the last cell hangs over the border and a flip shifts the grid (the decoded image
coordinates still agree).

Formulations (``normalize``):

- ``"peak"``: ``exp(-d^2 / (2 sigma^2))`` with peak 1 (``sigma`` in map cells), the L2
  regression target of Tompson et al., "Joint Training of a Convolutional Network and a
  Graphical Model for Human Pose Estimation" (NIPS 2014) and Newell et al. (ECCV 2016);
- ``"sum"``: the same Gaussian divided by its sum, a distribution over cells for a per-keypoint
  spatial softmax + cross-entropy;
- ``"onehot"``: 1 at the cell nearest the keypoint (the per-keypoint classification target of
  Mask R-CNN's keypoint head, He et al., ICCV 2017).

``background=True`` adds a last channel for a per-cell softmax over K + 1 classes (the pose
machines of Wei et al., CVPR 2016, use such a background map): where the keypoint channels sum
to more than 1 they are scaled to sum to 1, and background = 1 - their sum, so every cell is a
distribution over the K + 1 classes. Invisible keypoints give all-zero maps and weight 0 (the
background channel has weight 1).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform
from cnnkit.geometry import image_to_map
from cnnkit.errors import ArgumentError

Normalize = Literal["peak", "sum", "onehot"]


def heatmap_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(ceil(H / stride), ceil(W / stride))``."""
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


def gaussian_heatmaps(xy: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Target maps ``exp(-d^2 / (2 sigma^2))``, peak 1, around ``xy`` (N x K x 2, map pixels)."""
    if xy.dim() != 3 or xy.shape[-1] != 2:
        raise ArgumentError(f"xy must be N x K x 2 (x, y); got shape {tuple(xy.shape)}")
    if sigma <= 0:
        raise ArgumentError(f"sigma must be > 0; got {sigma}")
    xs = torch.arange(width, dtype=xy.dtype, device=xy.device)
    ys = torch.arange(height, dtype=xy.dtype, device=xy.device)
    dx2 = (xs - xy[..., 0:1]).square()  # N x K x W
    dy2 = (ys - xy[..., 1:2]).square()  # N x K x H
    return torch.exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2 * sigma**2))


def keypoint_heatmaps(keypoints: torch.Tensor, visible: torch.Tensor, size: tuple[int, int],
                      stride: int = 1, sigma: float = 2.0, background: bool = False,
                      normalize: Normalize = "peak") -> tuple[torch.Tensor, torch.Tensor]:
    """Target maps ``K (+1) x ceil(H/s) x ceil(W/s)`` and per-channel weights ``K (+1)``.

    ``keypoints``: K x 2 (x, y) in image pixels; ``visible``: K bool; ``size``: the image's
    ``(H, W)``; ``sigma`` in map cells (ignored by ``"onehot"``).
    """
    if keypoints.dim() != 2 or keypoints.shape[1] != 2:
        raise ArgumentError(f"keypoints must be K x 2 (x, y); got shape {tuple(keypoints.shape)}")
    if visible.shape != keypoints.shape[:1]:
        raise ArgumentError(f"visible must have one flag per keypoint ({keypoints.shape[0]}); "
                         f"got shape {tuple(visible.shape)}")
    if not isinstance(stride, int) or stride < 1:
        raise ArgumentError(f"stride must be a positive integer; got {stride!r}")
    if normalize not in ("peak", "sum", "onehot"):
        raise ArgumentError(f"normalize must be 'peak', 'sum' or 'onehot'; got {normalize!r}")
    height, width = heatmap_size(size, stride)
    xy = image_to_map(keypoints.to(torch.float32), stride)
    visible = visible.bool() & torch.isfinite(xy).all(1)
    xy = torch.where(visible[:, None], xy, torch.zeros_like(xy))
    if normalize == "onehot":
        maps = torch.zeros(len(xy), height, width)
        cell = torch.floor(xy + 0.5).long()
        cell[:, 0].clamp_(0, width - 1)
        cell[:, 1].clamp_(0, height - 1)
        maps[torch.arange(len(xy)), cell[:, 1], cell[:, 0]] = 1.0
    else:
        maps = gaussian_heatmaps(xy[None], height, width, sigma)[0]
        if normalize == "sum":
            maps = maps / maps.sum((1, 2), keepdim=True)
    maps = maps * visible[:, None, None]
    weights = visible.float()
    if background:
        total = maps.sum(0, keepdim=True)
        maps = maps / total.clamp(min=1.0)
        maps = torch.cat([maps, (1 - maps.sum(0, keepdim=True)).clamp(min=0.0)])
        weights = torch.cat([weights, torch.ones(1)])
    return maps, weights


class HeatmapTarget(Transform):
    """Render targets into ``meta["heatmaps"]`` (maps) and ``meta["heatmap_weights"]``.

    Place it last in a pipeline, after every geometric transform, so the maps match the final
    image. A sample without keypoints (an image to predict on) passes unchanged. See
    :func:`keypoint_heatmaps` for the arguments.
    """

    def __init__(self, stride: int = 4, sigma: float = 2.0, background: bool = False,
                 normalize: Normalize = "peak") -> None:
        if normalize not in ("peak", "sum", "onehot"):
            raise ArgumentError(f"HeatmapTarget normalize must be 'peak', 'sum' or 'onehot'; "
                             f"got {normalize!r}")
        if not isinstance(stride, int) or stride < 1 or sigma <= 0:
            raise ArgumentError(f"HeatmapTarget needs an int stride >= 1 and sigma > 0; got "
                             f"stride={stride!r}, sigma={sigma!r}")
        self.stride, self.sigma = stride, sigma
        self.background, self.normalize = background, normalize

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        if sample.keypoints is None:  # an image to predict on: no target to render
            return sample
        maps, weights = keypoint_heatmaps(sample.keypoints, sample.visible, sample.size,
                                          self.stride, self.sigma, self.background, self.normalize)
        return sample.replace(meta={**sample.meta, "heatmaps": maps, "heatmap_weights": weights})
