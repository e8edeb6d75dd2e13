"""Depth-estimation error measures of Eigen, Puhrsch & Fergus, "Depth Map Prediction from a
Single Image using a Multi-Scale Deep Network" (NIPS 2014, its experiments), over valid pixels.

With d the predicted and d* the true depth of a valid pixel and T the valid pixels:

- ``abs_rel`` = mean |d - d*| / d*;  ``sq_rel`` = mean (d - d*)^2 / d*;
- ``rmse`` = sqrt(mean (d - d*)^2);  ``rmse_log`` = sqrt(mean (log d - log d*)^2);
- ``delta1/2/3`` = fraction of pixels with max(d / d*, d* / d) < 1.25, 1.25^2, 1.25^3.

(The paper also lists the scale-invariant error and the linear-scale "RMSE (log)" variants;
only the seven above, the set later papers report, are computed.)

Inputs: ``H x W``, ``N x H x W`` or ``N x 1 x H x W`` (pred and target alike). A pixel is
valid when ``target > 0`` and finite, and ``valid`` (same layout, optional) is true there.
``pred`` must be finite and > 0 at every valid pixel (the logs and ratios need it): anything
else raises, rather than being clamped silently (clamp it yourself, e.g. to the dataset's
minimum depth, as the evaluation scripts of the papers do). No depth cap is applied either
(crop or cap through ``valid``, e.g. ``valid = target < 10`` for NYU's 10 m).

Reductions over many pixels, two ways (``reduction``):

- ``"pixels"`` (default): every valid pixel of every image weighs the same; ``rmse`` is
  ``sqrt(sum of squares / count)`` over all of them, not a mean of per-image RMSEs;
- ``"images"``: each figure per image, then the mean over the images with a valid pixel
  (what many KITTI evaluation scripts report; it differs when images have unequal counts).

:func:`depth_metrics` measures one batch; :class:`DepthMetricAccumulator` adds the per-image
sums of :func:`depth_image_sums` over a dataset so that both reductions are exact over it (its
``state()`` tensors sum across processes). Figures with no valid pixel are NaN.
"""

import torch

from cnnkit.errors import CnnkitError
from cnnkit.tasks.functional._common import depth_maps, same_shape, valid_mask

DEPTH_METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
# Columns of the per-image sums: valid count, then the sums behind each figure.
SUM_COLUMNS = ("count", "abs_rel", "sq_rel", "sq", "log_sq", "delta1", "delta2", "delta3")
DELTA_BASE = 1.25
REDUCTIONS = ("pixels", "images")


def prepare_depth(pred, target, valid, fn: str) -> tuple:
    """``(pred, target, valid)`` as N x H x W, valid including ``target > 0`` and finite."""
    pred, target = depth_maps(pred, "pred", fn), depth_maps(target, "target", fn)
    same_shape(pred, target, fn)
    mask = torch.isfinite(target) & (target > 0)
    given = valid_mask(valid, target.shape, fn)
    return pred, target, mask if given is None else mask & given


def _check_positive(pred: torch.Tensor, valid: torch.Tensor, fn: str) -> None:
    bad = int((valid & ~(torch.isfinite(pred) & (pred > 0))).sum())
    if bad:
        raise CnnkitError(f"{fn}: pred must be finite and > 0 at the valid pixels; {bad} are "
                          f"not (clamp pred to a minimum depth first)")


def depth_image_sums(pred, target, valid=None, fn: str = "depth_image_sums") -> torch.Tensor:
    """Per-image sufficient statistics, ``N x 8`` float64 in the order of ``SUM_COLUMNS``:
    the valid count, sum |d - d*| / d*, sum (d - d*)^2 / d*, sum (d - d*)^2,
    sum (log d - log d*)^2 and the counts under the three delta thresholds. (``fn``: the
    name errors are reported under.)"""
    pred, target, valid = prepare_depth(pred, target, valid, fn)
    _check_positive(pred, valid, fn)
    one = torch.ones((), dtype=torch.float64, device=pred.device)
    p = torch.where(valid, pred.detach().to(torch.float64), one)
    t = torch.where(valid, target.to(torch.float64), one)
    diff = p - t
    ratio = torch.maximum(p / t, t / p)
    terms = [torch.ones_like(p), diff.abs() / t, diff ** 2 / t, diff ** 2,
             (p.log() - t.log()) ** 2]
    terms += [(ratio < DELTA_BASE ** i).to(torch.float64) for i in (1, 2, 3)]
    stacked = torch.stack(terms, dim=-1) * valid[..., None]
    return stacked.sum(dim=(1, 2))


def metrics_from_sums(sums: torch.Tensor) -> torch.Tensor:
    """``... x 8`` sums -> ``... x 7`` figures in the order of ``DEPTH_METRIC_KEYS``."""
    count = sums[..., 0]
    mean = sums[..., 1:] / count[..., None]          # NaN where nothing was valid
    abs_rel, sq_rel, sq, log_sq = mean.unbind(-1)[:4]
    return torch.stack([abs_rel, sq_rel, sq.sqrt(), log_sq.sqrt(), *mean.unbind(-1)[4:]], -1)


def _check_reduction(reduction: str, fn: str) -> None:
    if reduction not in REDUCTIONS:
        raise CnnkitError(f"{fn}: reduction must be one of {REDUCTIONS}; got {reduction!r}")


def depth_metrics(pred, target, valid=None, reduction: str = "pixels") -> dict:
    """The seven figures (``DEPTH_METRIC_KEYS``) over the valid pixels of a batch, as 0-dim
    float64 tensors; ``reduction`` as in the module docstring."""
    _check_reduction(reduction, "depth_metrics")
    sums = depth_image_sums(pred, target, valid, "depth_metrics")
    if reduction == "pixels":
        figures = metrics_from_sums(sums.sum(dim=0))
    else:
        per_image = metrics_from_sums(sums[sums[:, 0] > 0])
        figures = per_image.mean(dim=0)              # NaN when no image has a valid pixel
    return dict(zip(DEPTH_METRIC_KEYS, figures.unbind(-1)))


class DepthMetricAccumulator:
    """Dataset-wide depth figures from sums over batches (exact for both reductions).

    ``update(pred, target, valid)`` per batch; ``compute(reduction)`` gives floats;
    ``state()`` lists the tensors whose sum over processes is the whole dataset's state.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pixel_sums = torch.zeros(len(SUM_COLUMNS), dtype=torch.float64)
        # Sum of the per-image figures, then the number of images with a valid pixel.
        self.image_sums = torch.zeros(len(DEPTH_METRIC_KEYS) + 1, dtype=torch.float64)

    def update(self, pred, target, valid=None) -> None:
        sums = depth_image_sums(pred, target, valid, "DepthMetricAccumulator.update")
        self.pixel_sums = self.pixel_sums.to(sums.device) + sums.sum(dim=0)
        per_image = metrics_from_sums(sums[sums[:, 0] > 0])
        added = torch.cat([per_image.sum(dim=0), per_image.new_tensor([len(per_image)])])
        self.image_sums = self.image_sums.to(sums.device) + added

    def state(self) -> list:
        return [self.pixel_sums, self.image_sums]

    def compute(self, reduction: str = "pixels") -> dict:
        _check_reduction(reduction, "DepthMetricAccumulator.compute")
        if reduction == "pixels":
            figures = metrics_from_sums(self.pixel_sums)
        else:
            figures = self.image_sums[:-1] / self.image_sums[-1]
        return {key: float(value) for key, value in zip(DEPTH_METRIC_KEYS, figures.tolist())}
