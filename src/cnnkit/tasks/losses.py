"""Losses beyond plain cross-entropy: soft IoU and Dice for segmentation, heatmap losses.

Segmentation (``probs`` N x C x H x W, ``target`` N x H x W class indices, ``valid`` N x H x W
bool: pixels to count):

- soft IoU (the lecture's "alternative loss", after Rahman & Wang, "Optimizing Intersection-
  Over-Union in Deep Neural Networks for Image Segmentation", ISVC 2016):
  ``I = sum X*Y``, ``U = sum (X + Y - X*Y)`` over the pixels of the batch, with X the softmax
  probabilities and Y the one-hot target of one class; loss ``1 - I/U`` per class, averaged over
  the classes (every class has ``U > 0`` under a softmax, so all of them count);
- Dice (Milletari, Navab & Ahmadi, "V-Net", 3DV 2016): ``1 - 2 sum X*Y / (sum X + sum Y)`` per
  class, averaged over the classes that occur in the target or get probability mass.

Both sum over the whole batch (one I and one U per class, not one per image) and skip pixels
where ``valid`` is false. Both are 0 for a perfect one-hot prediction.

Keypoint heatmaps (``pred``/``target`` N x C x h x w, ``weights`` N x C, 0 for invisible
keypoints), the two losses of the lecture:

- :func:`heatmap_mse`: L2 on Gaussian maps (Tompson et al., NIPS 2014): mean over pixels of the
  squared error of each map, times its weight, averaged over the N x C maps;
- :func:`heatmap_spatial_ce`: cross-entropy of a softmax over the h*w cells of each keypoint's
  map against a target that sums to one; :func:`heatmap_pixel_ce`: softmax over the C = K + 1
  channels of every cell (background last) against per-cell distributions. Both are returned as
  cross-entropy minus the target's entropy (the KL divergence), so a perfect prediction gives 0;
  the gradients are those of the cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from cnnkit.errors import ArgumentError

EPS = 1e-12  # guards divisions by sums that are 0 only when nothing is counted


def _one_hot(target: torch.Tensor, valid: torch.Tensor, num_classes: int) -> torch.Tensor:
    """N x C x H x W one-hot of ``target`` (0 where not ``valid``)."""
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2)
    return onehot * valid[:, None]


def _class_sums(probs: torch.Tensor, target: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class: sum X*Y, sum X, sum Y over the valid pixels of the batch."""
    if probs.dim() != 4 or target.shape != probs.shape[:1] + probs.shape[2:]:
        raise ArgumentError(f"probs must be N x C x H x W and target N x H x W; got "
                         f"{tuple(probs.shape)} and {tuple(target.shape)}")
    onehot = _one_hot(target, valid, probs.shape[1]).to(probs.dtype)
    x = probs * valid[:, None]
    dims = (0, 2, 3)
    return (x * onehot).sum(dims), x.sum(dims), onehot.sum(dims)


def soft_iou_loss(probs: torch.Tensor, target: torch.Tensor,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_c (1 - I_c / U_c)`` over probabilities ``probs`` (see the module docstring)."""
    valid = torch.ones_like(target, dtype=torch.bool) if valid is None else valid
    inter, sum_x, sum_y = _class_sums(probs, target, valid)
    union = sum_x + sum_y - inter
    counted = union > 0
    iou = inter[counted] / union[counted]
    return (1 - iou).mean() if counted.any() else probs.sum() * 0


def dice_loss(probs: torch.Tensor, target: torch.Tensor,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_c (1 - 2 I_c / (sum X_c + sum Y_c))`` over probabilities ``probs``."""
    valid = torch.ones_like(target, dtype=torch.bool) if valid is None else valid
    inter, sum_x, sum_y = _class_sums(probs, target, valid)
    total = sum_x + sum_y
    counted = total > 0
    dice = 2 * inter[counted] / total[counted]
    return (1 - dice).mean() if counted.any() else probs.sum() * 0


def _check_maps(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> None:
    if pred.dim() != 4 or pred.shape != target.shape or weights.shape != pred.shape[:2]:
        raise ArgumentError(f"heatmap loss needs pred and target N x C x h x w and weights N x C; "
                         f"got {tuple(pred.shape)}, {tuple(target.shape)}, "
                         f"{tuple(weights.shape)}")


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted L2: ``mean_{n,c} w_nc * mean_pixels (pred - target)^2``."""
    _check_maps(pred, target, weights)
    per_map = (pred - target).square().mean((2, 3))
    return (per_map * weights).mean()


def _kl(log_probs: torch.Tensor, target: torch.Tensor, dim: int | tuple[int, ...]) -> torch.Tensor:
    """``sum t (log t - log p)`` along ``dim`` (0 * log 0 = 0)."""
    entropy_part = torch.xlogy(target, target)
    return (entropy_part - target * log_probs).sum(dim)


def heatmap_spatial_ce(pred: torch.Tensor, target: torch.Tensor,
                       weights: torch.Tensor) -> torch.Tensor:
    """Per-map softmax over the h*w cells; KL to ``target`` (each map sums to 1), weighted,
    averaged over the maps with weight > 0."""
    _check_maps(pred, target, weights)
    log_probs = torch.log_softmax(pred.flatten(2), dim=-1)
    per_map = _kl(log_probs, target.flatten(2), dim=-1)
    return (per_map * weights).sum() / weights.sum().clamp(min=EPS)


def heatmap_pixel_ce(pred: torch.Tensor, target: torch.Tensor,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-cell softmax over the K + 1 channels; KL to ``target`` (per cell a distribution over
    the channels), averaged over the cells. ``weights`` are not used: an invisible keypoint's
    all-zero target map already says "not here"."""
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ArgumentError(f"heatmap loss needs pred and target N x C x h x w; got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    log_probs = torch.log_softmax(pred, dim=1)
    return _kl(log_probs, target, dim=1).mean()
