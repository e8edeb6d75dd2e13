"""Colourisation losses and measures after Zhang, Isola & Efros, "Colorful Image Colorization"
(ECCV 2016). The ab bins, encodings, rebalancing weights and decodings are in
:mod:`cnnkit.data.ab_bins`.

- :func:`rebalanced_cross_entropy`: the paper's loss, the multinomial cross-entropy between the
  soft-encoded target Z and the softmax of the logits, each pixel weighted by
  ``v(Z_hw) = w_q*`` with ``q* = argmax_q Z_hwq`` and w the rebalancing weights. The paper sums
  over the pixels; this averages over the valid pixels (the weights' normalisation
  ``E[w] = 1`` keeps the scale of the unweighted loss), so the value does not grow with the
  image size.
- :func:`ab_auc`: the paper's "AuC" (its quantitative evaluation): the fraction of pixels
  whose ab error (Euclidean distance in ab) is within a threshold, as a curve over thresholds
  0 to 150, and the area under it normalised to [0, 1]. The integration rule: the **mean over the
  thresholds** ``t_k = k * step``, ``k = 0 .. K - 1``, ``K = floor(max_threshold / step) + 1``
  (151 thresholds 0, 1, ..., 150 by default), a pixel being within ``t_k`` when its error is
  ``<= t_k``. (A trapezoid rule over [0, 150] differs from this mean M by
  ``(M - (f_0 + f_150) / 2) / 150``, at most 1/150.) It equals the mean over the pixels of
  ``#{k : e <= t_k} / K``, so a dataset-wide value is the pixel-count-weighted mean of the
  batch values. ``pixel_weights`` gives the paper's class-rebalanced variant (e.g. the
  rebalancing weight of each pixel's true bin: ``w[encode_ab_hard(target_ab)]``).
- :func:`bin_accuracy`: the fraction of valid pixels whose arg-max bin is the target bin.

Layouts: logits and soft targets ``N x Q x H x W``; ab images ``N x 2 x H x W`` (or
``2 x H x W``); masks and bin indices ``N x H x W`` (or ``H x W``); a target bin < 0 is
invalid. Errors name the argument and the expected shape.
"""

import math

import torch

from cnnkit.errors import CnnkitError
from cnnkit.tasks.functional._common import masked_mean, shape_of, valid_mask, vector_maps


def _logits(logits, fn: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4 \
            or not logits.is_floating_point():
        raise CnnkitError(f"{fn}: logits must be a floating-point tensor N x Q x H x W; "
                          f"got {shape_of(logits)}")
    return logits


def rebalanced_cross_entropy(logits, target_dist, class_weights=None,
                             valid=None) -> torch.Tensor:
    """Zhang et al.'s rebalanced multinomial cross-entropy, averaged over the valid pixels.

    ``target_dist``: soft targets ``N x Q x H x W`` (:func:`cnnkit.data.ab_bins.encode_ab_soft`);
    ``class_weights``: Q weights (:func:`cnnkit.data.ab_bins.rebalance_weights`) or None for
    the plain cross-entropy; ``valid``: ``N x H x W``.
    """
    fn = "rebalanced_cross_entropy"
    logits = _logits(logits, fn)
    if not isinstance(target_dist, torch.Tensor) or target_dist.shape != logits.shape:
        raise CnnkitError(f"{fn}: target_dist must be N x Q x H x W = {tuple(logits.shape)} "
                          f"like the logits; got {shape_of(target_dist)}")
    mask = valid_mask(valid, logits[:, 0].shape, fn)
    mask = torch.ones_like(logits[:, 0], dtype=torch.bool) if mask is None else mask
    target = torch.where(mask[:, None], target_dist.to(logits.dtype), torch.zeros_like(logits))
    ce = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)
    if class_weights is not None:
        q = logits.shape[1]
        if not isinstance(class_weights, torch.Tensor) or class_weights.shape != (q,):
            raise CnnkitError(f"{fn}: class_weights must be a vector of Q = {q} weights; got "
                              f"{shape_of(class_weights)}")
        weights = class_weights.to(device=logits.device, dtype=logits.dtype)
        ce = ce * weights[target_dist.argmax(dim=1)]
    return masked_mean(ce, mask)


def _ab_pair(pred_ab, target_ab, fn: str) -> tuple:
    pred = vector_maps(pred_ab, "pred_ab", fn, 2)
    target = vector_maps(target_ab, "target_ab", fn, 2)
    if pred.shape != target.shape:
        raise CnnkitError(f"{fn}: pred_ab and target_ab must have the same shape "
                          f"(N x 2 x H x W); got {tuple(pred_ab.shape)} and "
                          f"{tuple(target_ab.shape)}")
    return pred, target


def ab_errors(pred_ab, target_ab) -> torch.Tensor:
    """Per-pixel Euclidean ab error, ``N x H x W`` (float64)."""
    pred, target = _ab_pair(pred_ab, target_ab, "ab_errors")
    diff = pred.detach().to(torch.float64) - target.to(torch.float64)
    return torch.linalg.vector_norm(diff, dim=1)


def ab_auc(pred_ab, target_ab, valid=None, max_threshold: float = 150.0, step: float = 1.0,
           pixel_weights=None) -> torch.Tensor:
    """Area under the curve of the fraction of pixels with ab error within each threshold,
    normalised to [0, 1] (0-dim float64; NaN with no valid pixel); see the module docstring
    for the exact rule."""
    fn = "ab_auc"
    if step <= 0 or max_threshold < 0:
        raise CnnkitError(f"{fn}: need step > 0 and max_threshold >= 0; got step={step}, "
                          f"max_threshold={max_threshold}")
    errors = ab_errors(pred_ab, target_ab)
    mask = valid_mask(valid, errors.shape, fn)
    mask = torch.isfinite(errors) if mask is None else mask & torch.isfinite(errors)
    count = math.floor(max_threshold / step + 1e-9) + 1
    # thresholds k * step with k >= e / step: count - ceil(e / step), clamped to [0, count]
    score = (count - torch.ceil(errors / step)).clamp(0, count) / count
    weights = torch.ones_like(errors)
    if pixel_weights is not None:
        if not isinstance(pixel_weights, torch.Tensor) \
                or pixel_weights.shape[-2:] != errors.shape[-2:] \
                or pixel_weights.numel() != errors.numel():
            raise CnnkitError(f"{fn}: pixel_weights must be N x H x W = {tuple(errors.shape)}; "
                              f"got {shape_of(pixel_weights)}")
        weights = pixel_weights.reshape(errors.shape).to(errors.device, torch.float64)
    weights = torch.where(mask, weights, torch.zeros_like(weights))
    score = torch.where(mask, score, torch.zeros_like(score))
    return (score * weights).sum() / weights.sum()


def bin_accuracy(logits, target_bins, valid=None) -> torch.Tensor:
    """Fraction of valid pixels whose arg-max bin equals ``target_bins`` (``N x H x W``
    int64, e.g. :func:`cnnkit.data.ab_bins.encode_ab_hard`); 0-dim float64, NaN if none."""
    fn = "bin_accuracy"
    logits = _logits(logits, fn)
    if not isinstance(target_bins, torch.Tensor) or target_bins.shape != logits[:, 0].shape \
            or target_bins.is_floating_point():
        raise CnnkitError(f"{fn}: target_bins must be an integer tensor N x H x W = "
                          f"{tuple(logits[:, 0].shape)}; got {shape_of(target_bins)}")
    mask = valid_mask(valid, target_bins.shape, fn)
    mask = target_bins >= 0 if mask is None else mask & (target_bins >= 0)
    correct = (logits.argmax(dim=1) == target_bins) & mask
    return correct.sum().to(torch.float64) / mask.sum().to(torch.float64)
