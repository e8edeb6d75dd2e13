"""Depth losses over valid pixels: scale-invariant log, L1 and berHu.

Layouts and validity as in :mod:`cnnkit.tasks.functional.depth` (``H x W``, ``N x H x W`` or
``N x 1 x H x W``; valid = ``target > 0``, finite, and ``valid`` where given). Invalid pixels
take no part in the value or the gradient (they are replaced before any log or division, so a
0 or NaN there cannot leak a NaN gradient). With no valid pixel at all the losses are 0 and
still connected to ``pred``.

- :func:`scale_invariant_log_loss`: Eigen, Puhrsch & Fergus, NIPS 2014, eq. 4. Per image, with
  ``d_i = log y_i - log y*_i`` over its n valid pixels,
  ``(1/n) sum d_i^2 - (lam/n^2) (sum d_i)^2`` (lam = 0.5, the paper's training value; lam = 1
  is the scale-invariant error itself), averaged over the images with a valid pixel. With
  ``gradient_weight > 0`` it adds Eigen & Fergus's (ICCV 2015, its depth loss) gradient term
  ``(1/n) sum_i ((grad_x d)_i^2 + (grad_y d)_i^2)``, times ``gradient_weight`` (1 in that
  paper); the differences are forward differences between horizontally or vertically adjacent
  pixels that are both valid, and the sum is still divided by n, the valid pixel count. The
  ICCV paper's other changes (its multi-scale outputs, a network predicting log depth) are up
  to the caller: ``log_pred=True`` takes ``pred`` as log depth. Otherwise ``pred`` is clamped
  to ``eps`` before the log (a ReLU output may be 0).
- :func:`l1_depth_loss`: mean |y - y*| over the valid pixels of the batch.
- :func:`berhu_loss`: the reverse Huber of Laina et al., "Deeper Depth Prediction with Fully
  Convolutional Residual Networks" (3DV 2016), on x = |y - y*|: x for x <= c, else
  ``(x^2 + c^2) / (2c)``, with ``c = 0.2 max x`` over the valid pixels of the batch (held
  constant in the gradient, as the paper sets it per batch), averaged over the valid pixels.
"""

import torch

from cnnkit.errors import CnnkitError
from cnnkit.tasks.functional._common import masked_mean
from cnnkit.tasks.functional.depth import prepare_depth


def _log_residual(pred, target, valid, log_pred: bool, eps: float) -> torch.Tensor:
    one = torch.ones((), dtype=pred.dtype, device=pred.device)
    safe_target = torch.where(valid, target, one).to(pred.dtype)
    if log_pred:
        log_y = torch.where(valid, pred, torch.zeros_like(pred))
    else:
        log_y = torch.where(valid, pred, one).clamp_min(eps).log()
    return torch.where(valid, log_y - safe_target.log(), torch.zeros_like(pred))


def _gradient_sq_sum(d: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per image: sum of squared forward differences of ``d`` over pairs of valid pixels."""
    pair_x = valid[:, :, 1:] & valid[:, :, :-1]
    pair_y = valid[:, 1:, :] & valid[:, :-1, :]
    gx = torch.where(pair_x, d[:, :, 1:] - d[:, :, :-1], torch.zeros_like(d[:, :, 1:]))
    gy = torch.where(pair_y, d[:, 1:, :] - d[:, :-1, :], torch.zeros_like(d[:, 1:, :]))
    return (gx ** 2).sum(dim=(1, 2)) + (gy ** 2).sum(dim=(1, 2))


def scale_invariant_log_loss(pred, target, valid=None, lam: float = 0.5,
                             gradient_weight: float = 0.0, log_pred: bool = False,
                             eps: float = 1e-6) -> torch.Tensor:
    """Eigen et al.'s scale-invariant log loss, optionally with the ICCV 2015 gradient term
    (see the module docstring)."""
    if not 0.0 <= lam <= 1.0:
        raise CnnkitError(f"scale_invariant_log_loss: lam must be in [0, 1]; got {lam}")
    if gradient_weight < 0:
        raise CnnkitError(f"scale_invariant_log_loss: gradient_weight must be >= 0; "
                          f"got {gradient_weight}")
    pred, target, valid = prepare_depth(pred, target, valid, "scale_invariant_log_loss")
    d = _log_residual(pred, target, valid, log_pred, eps)
    n = valid.sum(dim=(1, 2)).to(d.dtype)
    safe_n = n.clamp_min(1)
    per_image = (d ** 2).sum(dim=(1, 2)) / safe_n - lam * (d.sum(dim=(1, 2)) / safe_n) ** 2
    if gradient_weight > 0:
        per_image = per_image + gradient_weight * _gradient_sq_sum(d, valid) / safe_n
    has = n > 0
    return (per_image * has).sum() / has.sum().clamp_min(1)


def l1_depth_loss(pred, target, valid=None) -> torch.Tensor:
    """Mean absolute depth error over the valid pixels of the batch."""
    pred, target, valid = prepare_depth(pred, target, valid, "l1_depth_loss")
    residual = torch.where(valid, pred - target.to(pred.dtype), torch.zeros_like(pred))
    return masked_mean(residual.abs(), valid)


def berhu_loss(pred, target, valid=None, c_fraction: float = 0.2) -> torch.Tensor:
    """Laina et al.'s reverse Huber loss with ``c = c_fraction * max |residual|`` of the batch."""
    if c_fraction <= 0:
        raise CnnkitError(f"berhu_loss: c_fraction must be > 0; got {c_fraction}")
    pred, target, valid = prepare_depth(pred, target, valid, "berhu_loss")
    residual = torch.where(valid, pred - target.to(pred.dtype), torch.zeros_like(pred))
    x = residual.abs()
    c = c_fraction * x.detach().max() if x.numel() else x.new_zeros(())
    safe_c = c.clamp_min(torch.finfo(x.dtype).tiny)
    quadratic = (x ** 2 + c ** 2) / (2 * safe_c)
    return masked_mean(torch.where(x <= c, x, quadratic), valid)
