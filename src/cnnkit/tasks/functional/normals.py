"""Surface-normal error measures and losses, over valid pixels.

The measures are those reported by Fouhey, Gupta & Hebert ("Data-Driven 3D Primitives for
Single Image Understanding", ICCV 2013) and Eigen & Fergus (ICCV 2015, table 5): the angle
between the predicted and the true normal, in degrees, summarised as ``mean_angle``,
``median_angle`` and the fractions (in [0, 1], not percent) ``within_11_25``, ``within_22_5``
and ``within_30`` of pixels whose angle is below 11.25, 22.5 and 30 degrees.

Inputs: ``pred`` and ``target`` ``N x 3 x H x W`` (or ``3 x H x W``); ``valid`` ``N x H x W``
(optional). Both are normalised to unit length first; a pixel is valid when both vectors are
finite and non-zero (a zero vector has no direction; note that this also drops a pixel where
the network outputs exactly 0) and ``valid`` is true there. Angles come from
``atan2(|p x t|, p . t)``, accurate near 0 and 180 degrees, where ``acos`` is not.

The median needs every angle. :func:`normal_metrics` sorts the batch's angles (the median of an
even count is the mean of the two middle values). :class:`NormalMetricAccumulator` keeps
exact sums and counts for the mean and the three fractions, and for the median either a
histogram of angles (bins of ``bin_width`` degrees, 0.01 by default: 18,000 float64 counts;
each of the two middle angles is located inside its bin, so the median is exact to within
one bin width)
or, with ``keep_angles=True``, every angle (exact, memory grows with the dataset).

Losses (on the normalised vectors, same validity): :func:`cosine_normal_loss` = mean (1 - cos) and
:func:`angular_normal_loss` = mean angle in radians, ``acos`` of the cosine clamped to
``[-1 + eps, 1 - eps]``, so its gradient stays finite at 0 and 180 degrees (there it is 0:
the clamp is flat; elsewhere it is the exact ``-1 / sqrt(1 - cos^2)``, at most
``1 / sqrt(2 eps)`` in size). The price: the loss of a perfect prediction is
``acos(1 - eps) ~ sqrt(2 eps)`` (1.4e-3 rad for eps = 1e-6), not 0.
"""

import math

import torch

from cnnkit.errors import CnnkitError
from cnnkit.tasks.functional._common import masked_mean, same_shape, valid_mask, vector_maps

NORMAL_METRIC_KEYS = ("mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30")
THRESHOLDS_DEG = (11.25, 22.5, 30.0)


def normalize_normals(normals: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit vectors along dim -3 (``... x 3 x H x W``); a vector shorter than ``eps`` is
    divided by ``eps`` instead of its length (no NaN for a zero vector)."""
    norm = torch.linalg.vector_norm(normals, dim=-3, keepdim=True)
    return normals / norm.clamp_min(eps)


def _prepare(pred, target, valid, fn: str) -> tuple:
    pred = vector_maps(pred, "pred", fn, 3)
    target = vector_maps(target, "target", fn, 3)
    same_shape(pred, target, fn)
    mask = torch.ones_like(pred[:, 0], dtype=torch.bool)
    for x in (pred, target):
        mask &= torch.isfinite(x).all(dim=1) & (torch.linalg.vector_norm(
            torch.nan_to_num(x.detach()), dim=1) > 0)
    given = valid_mask(valid, mask.shape, fn)
    mask = mask if given is None else mask & given
    unit = [normalize_normals(torch.where(mask[:, None], x, torch.ones_like(x)))
            for x in (pred, target.to(pred.dtype))]
    return unit[0], unit[1], mask


def angle_map(pred, target, valid=None, fn: str = "angle_map") -> tuple:
    """``(angles, valid)``: per-pixel angles in degrees (float64, N x H x W; 0 where invalid)
    and the validity mask, as described in the module docstring (``fn``: the name errors are
    reported under)."""
    p, t, mask = _prepare(pred, target, valid, fn)
    p, t = p.detach().to(torch.float64), t.to(torch.float64)
    sine = torch.linalg.vector_norm(torch.cross(p, t, dim=1), dim=1)
    angles = torch.rad2deg(torch.atan2(sine, (p * t).sum(dim=1)))
    return torch.where(mask, angles, torch.zeros_like(angles)), mask


def _summary(total, count, within, median) -> dict:
    figures = [total / count, median, *(w / count for w in within)]
    return dict(zip(NORMAL_METRIC_KEYS, figures))


def _median(sorted_angles: torch.Tensor) -> torch.Tensor:
    n = sorted_angles.numel()
    if n == 0:
        return sorted_angles.new_tensor(math.nan)
    return (sorted_angles[(n - 1) // 2] + sorted_angles[n // 2]) / 2


def normal_metrics(pred, target, valid=None) -> dict:
    """The five figures (``NORMAL_METRIC_KEYS``) over the valid pixels of a batch, as 0-dim
    float64 tensors (NaN when no pixel is valid)."""
    angles, mask = angle_map(pred, target, valid, "normal_metrics")
    values = angles[mask]
    count = values.new_tensor(values.numel())
    within = [(values < limit).sum().to(torch.float64) for limit in THRESHOLDS_DEG]
    return _summary(values.sum(), count, within, _median(values.sort().values))


class NormalMetricAccumulator:
    """Dataset-wide normal figures from sums over batches (see the module docstring for the
    median). ``state()`` lists the tensors that sum across processes (with ``keep_angles``
    the angles are not in it: gather them yourself in a distributed run)."""

    def __init__(self, bin_width: float = 0.01, keep_angles: bool = False) -> None:
        if bin_width <= 0:
            raise CnnkitError(f"NormalMetricAccumulator: bin_width must be > 0; got {bin_width}")
        self.bin_width = float(bin_width)
        self.num_bins = math.ceil(180.0 / self.bin_width)
        self.keep_angles = keep_angles
        self.reset()

    def reset(self) -> None:
        # Angle sum, valid count, then the counts below the three thresholds.
        self.sums = torch.zeros(2 + len(THRESHOLDS_DEG), dtype=torch.float64)
        self.histogram = torch.zeros(self.num_bins, dtype=torch.float64)
        self.angles: list = []

    def update(self, pred, target, valid=None) -> None:
        angles, mask = angle_map(pred, target, valid, "NormalMetricAccumulator.update")
        values = angles[mask]
        added = [values.sum(), values.new_tensor(values.numel())]
        added += [(values < limit).sum().to(torch.float64) for limit in THRESHOLDS_DEG]
        self.sums = self.sums.to(values.device) + torch.stack(added)
        index = (values / self.bin_width).long().clamp(0, self.num_bins - 1)
        counts = torch.bincount(index, minlength=self.num_bins).to(torch.float64)
        self.histogram = self.histogram.to(values.device) + counts
        if self.keep_angles:
            self.angles.append(values.cpu())

    def state(self) -> list:
        return [self.sums, self.histogram]

    def _value_at_rank(self, cumulative: torch.Tensor, rank: int) -> float:
        """The ``rank``-th smallest angle (0-based), placed inside its bin by interpolation."""
        k = int(torch.searchsorted(cumulative, cumulative.new_tensor(float(rank)), right=True))
        below = float(cumulative[k - 1]) if k > 0 else 0.0
        return (k + (rank - below + 0.5) / float(self.histogram[k])) * self.bin_width

    def histogram_median(self) -> float:
        """The median from the histogram (NaN when empty): the mean of the two middle angles,
        each located inside its bin, so it is off by less than one bin width."""
        n = int(self.histogram.sum())
        if n == 0:
            return math.nan
        cumulative = self.histogram.cumsum(0)
        ranks = ((n - 1) // 2, n // 2)
        return sum(self._value_at_rank(cumulative, r) for r in ranks) / 2

    def compute(self) -> dict:
        total, count, *within = self.sums.tolist()
        if self.keep_angles:
            values = torch.cat(self.angles) if self.angles else torch.zeros(0, dtype=torch.float64)
            median = float(_median(values.sort().values))
        else:
            median = self.histogram_median()
        if count == 0:
            return dict.fromkeys(NORMAL_METRIC_KEYS, math.nan)
        return {key: float(value) for key, value in _summary(total, count, within, median).items()}


def cosine_normal_loss(pred, target, valid=None) -> torch.Tensor:
    """Mean of ``1 - cos`` between the normalised pred and target over the valid pixels."""
    p, t, mask = _prepare(pred, target, valid, "cosine_normal_loss")
    return masked_mean(1.0 - (p * t).sum(dim=1), mask)


def angular_normal_loss(pred, target, valid=None, eps: float = 1e-6) -> torch.Tensor:
    """Mean angle (radians) between the normalised pred and target over the valid pixels,
    ``acos`` of the cosine clamped to ``[-1 + eps, 1 - eps]``."""
    p, t, mask = _prepare(pred, target, valid, "angular_normal_loss")
    cosine = (p * t).sum(dim=1).clamp(-1.0 + eps, 1.0 - eps)
    return masked_mean(torch.acos(cosine), mask)
