"""Keypoint coordinates from heatmaps (and back): argmax, sub-pixel refinement, soft-argmax.

Coordinate convention, used by every function here and by the keypoint networks, is
that of :mod:`cnnkit.geometry`: points ``(x, y)`` in pixels with pixel centres at integer
coordinates; a heatmap at output stride ``s`` has cell ``j`` centred at image coordinate
``j*s + (s - 1) / 2`` (:func:`~cnnkit.geometry.map_to_image`); normalised coordinates (direct
regression) put the image borders at 0 and 1 (:func:`~cnnkit.geometry.normalized_to_pixels`).

Decoding a heatmap (:func:`decode_heatmaps`):

- ``method="argmax"``: the best pixel, then ``refinement``:
  ``"quarter"`` moves a quarter pixel towards the higher neighbour along x and along y (Newell,
  Yang & Deng, "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016; Xiao, Wu & Wei,
  "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018), error <= 0.25 px;
  ``"parabola"`` fits a parabola through the logarithm of the peak and its two neighbours, per
  axis (the 1-D form of the Taylor expansion of Zhang et al., "Distribution-Aware Coordinate
  Representation for Human Pose Estimation", CVPR 2020), exact for a Gaussian peak;
  ``None`` keeps the integer pixel. No refinement at a map border; neighbours that differ by
  less than ``TIE_TOLERANCE`` times the peak (float rounding) count as equal: no quarter shift.
- ``method="soft"``: soft-argmax, the expectation of the coordinates under
  ``softmax(beta * heatmap)`` over all pixels (Sun et al., "Integral Human Pose Regression",
  ECCV 2018); differentiable. A large ``beta`` approaches the argmax; with a small one the flat
  background pulls the estimate towards the map centre.

The confidence of a keypoint is the maximum of its heatmap; it is visible when the confidence
exceeds ``threshold``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from cnnkit.errors import ArgumentError
from cnnkit.geometry import map_to_image

Refinement = Literal["quarter", "parabola"] | None
LOG_FLOOR = 1e-10  # heatmap values below this are clamped before the parabola's logarithm
TIE_TOLERANCE = 1e-5  # neighbours closer than this fraction of the peak count as equal


class Keypoints(NamedTuple):
    """Decoded keypoints: ``xy`` N x K x 2 (x, y) pixels, ``confidence`` and ``visible`` N x K."""

    xy: torch.Tensor
    confidence: torch.Tensor
    visible: torch.Tensor


def _check_maps(heatmaps: torch.Tensor) -> None:
    if heatmaps.dim() != 4:
        raise ArgumentError(f"heatmaps must be N x K x H x W; got shape {tuple(heatmaps.shape)}")


def argmax_2d(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer peak positions (N x K x 2, x then y, as floats) and peak values (N x K)."""
    _check_maps(heatmaps)
    width = heatmaps.shape[-1]
    maxvals, index = heatmaps.flatten(2).max(dim=-1)
    xy = torch.stack([index % width, index // width], dim=-1).to(heatmaps.dtype)
    return xy, maxvals


def _peak_and_neighbours(heatmaps: torch.Tensor, xy: torch.Tensor):
    """Values at the peak and its left/right/up/down neighbours, and masks of interior peaks."""
    n, k, height, width = heatmaps.shape
    maps = heatmaps.reshape(n * k, height, width)
    ix = xy[..., 0].reshape(-1).long()
    iy = xy[..., 1].reshape(-1).long()
    rows = torch.arange(n * k, device=maps.device)
    left, right = (ix - 1).clamp(min=0), (ix + 1).clamp(max=width - 1)
    up, down = (iy - 1).clamp(min=0), (iy + 1).clamp(max=height - 1)
    values = {"centre": maps[rows, iy, ix], "left": maps[rows, iy, left],
              "right": maps[rows, iy, right], "up": maps[rows, up, ix],
              "down": maps[rows, down, ix]}
    inner_x = (ix > 0) & (ix < width - 1)
    inner_y = (iy > 0) & (iy < height - 1)
    return values, inner_x, inner_y


def _quarter_shift(low: torch.Tensor, centre: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    difference = high - low
    tie = difference.abs() <= TIE_TOLERANCE * centre.abs()
    return torch.where(tie, torch.zeros_like(difference), 0.25 * torch.sign(difference))


def _parabola_shift(low: torch.Tensor, centre: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    low, centre, high = (v.clamp(min=LOG_FLOOR).log() for v in (low, centre, high))
    curvature = low - 2 * centre + high
    safe = torch.where(curvature < 0, curvature, torch.ones_like(curvature))
    shift = torch.where(curvature < 0, 0.5 * (low - high) / safe, torch.zeros_like(curvature))
    return shift.clamp(-0.5, 0.5)


def refine(heatmaps: torch.Tensor, xy: torch.Tensor,
           method: Refinement = "quarter") -> torch.Tensor:
    """Sub-pixel refinement of integer peaks ``xy`` (from :func:`argmax_2d`); see the module doc."""
    if method is None:
        return xy
    if method not in ("quarter", "parabola"):
        raise ArgumentError(f"refine must be 'quarter', 'parabola' or None; got {method!r}")
    v, inner_x, inner_y = _peak_and_neighbours(heatmaps, xy)
    if method == "quarter":
        dx = _quarter_shift(v["left"], v["centre"], v["right"])
        dy = _quarter_shift(v["up"], v["centre"], v["down"])
    else:
        dx = _parabola_shift(v["left"], v["centre"], v["right"])
        dy = _parabola_shift(v["up"], v["centre"], v["down"])
    shift = torch.stack([dx * inner_x, dy * inner_y], dim=-1).to(xy.dtype)
    return xy + shift.reshape(xy.shape)


def soft_argmax(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Differentiable expected position (N x K x 2) under ``softmax(beta * heatmap)``."""
    _check_maps(heatmaps)
    if beta <= 0:
        raise ArgumentError(f"beta (inverse temperature) must be > 0; got {beta}")
    height, width = heatmaps.shape[-2:]
    probs = torch.softmax(beta * heatmaps.flatten(2), dim=-1).unflatten(-1, (height, width))
    xs = torch.arange(width, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = torch.arange(height, dtype=heatmaps.dtype, device=heatmaps.device)
    x = (probs.sum(dim=-2) * xs).sum(dim=-1)
    y = (probs.sum(dim=-1) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def decode_heatmaps(heatmaps: torch.Tensor, *, stride: int = 1,
                    method: Literal["argmax", "soft"] = "argmax",
                    refinement: Refinement = "quarter", beta: float = 1.0,
                    threshold: float = 0.0, background: bool = False) -> Keypoints:
    """Keypoints in image pixels from N x K x H x W heatmaps at output stride ``stride``.

    ``background=True`` drops the last channel (the K+1-th, background map) first.
    """
    _check_maps(heatmaps)
    if background:
        if heatmaps.shape[1] < 2:
            raise ArgumentError("background=True needs K + 1 >= 2 channels; "
                             f"got {heatmaps.shape[1]}")
        heatmaps = heatmaps[:, :-1]
    if method == "argmax":
        xy, confidence = argmax_2d(heatmaps)
        xy = refine(heatmaps, xy, refinement)
    elif method == "soft":
        xy = soft_argmax(heatmaps, beta)
        confidence = heatmaps.flatten(2).amax(dim=-1)
    else:
        raise ArgumentError(f"method must be 'argmax' or 'soft'; got {method!r}")
    return Keypoints(map_to_image(xy, stride), confidence, confidence > threshold)
