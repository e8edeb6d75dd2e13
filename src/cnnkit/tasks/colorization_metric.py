"""The colourisation task's dataset-wide figures and the ab prior of a training set.

:class:`ColorizationMetric` adds, over every batch, the sums behind each figure (so they are
exact over the dataset and, through ``state()``, over processes), all over valid pixels with a
finite target, at the resolution of the labels (a quarter-resolution prediction is decoded,
then upsampled bilinearly, as Zhang et al. upsample their ab output):

- ``ab_auc``: Zhang et al.'s AuC, the area under the curve of the fraction of pixels whose ab
  error is within a threshold, thresholds 0..150, normalised to [0, 1]
  (:func:`~cnnkit.tasks.functional.ab_auc`; its value on a batch times the batch's pixel count
  is that batch's sum);
- ``ab_auc_rebalanced``: the same with each pixel weighted by the rebalancing weight of its
  true bin (the paper's class-rebalanced AuC), when the task has class weights;
- ``ab_error``: the mean Euclidean ab error;
- ``bin_accuracy`` (classification mode): the fraction of pixels of the output grid whose
  arg-max bin is the nearest bin of the (area-downsampled) true ab.

:func:`ab_prior`: the bin counts of a dataset's ab values (the input of
:func:`cnnkit.data.ab_bins.rebalance_weights`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from cnnkit.data.ab_bins import ab_histogram, encode_ab_hard
from cnnkit.data.color import rgb_to_lab
from cnnkit.errors import CnnkitError
from cnnkit.tasks.base import Batch, Metric
from cnnkit.tasks.functional import ab_auc, ab_errors, bin_accuracy

if TYPE_CHECKING:
    from cnnkit.tasks.colorization import ColorizationTask

# Columns of the sums: pixels, AuC sum, error sum, grid pixels, right bins, weights, weighted AuC
COLUMNS = ("count", "auc", "error", "grid_count", "bins_right", "weight", "weighted_auc")


def _ratio(sums: torch.Tensor, top: str, bottom: str) -> float:
    below = float(sums[COLUMNS.index(bottom)])
    return float(sums[COLUMNS.index(top)]) / below if below > 0 else float("nan")


class ColorizationMetric(Metric):
    """Dataset-wide colourisation figures (see the module docstring)."""

    def __init__(self, task: ColorizationTask) -> None:
        self.task = task
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(COLUMNS), dtype=torch.float64)

    def state(self) -> list[torch.Tensor]:
        return [self.sums]

    def update(self, output: Any, batch: Batch) -> None:
        target, valid = self.task.targets(batch)
        pred = self.task.ab_prediction(output, target.shape[-2:]).detach().float()
        target = target.to(pred)
        count = valid.sum().to(torch.float64)
        added = torch.zeros(len(COLUMNS), dtype=torch.float64, device=pred.device)
        if count > 0:
            added[0] = count
            added[1] = torch.nan_to_num(ab_auc(pred, target, valid)) * count
            errors = ab_errors(pred, torch.nan_to_num(target))
            added[2] = torch.where(valid, errors, torch.zeros_like(errors)).sum()
            weights = self.task.class_weights
            if weights is not None:
                per_pixel = weights.to(pred.device)[encode_ab_hard(torch.nan_to_num(target))]
                weight = torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum()
                added[5] = weight
                added[6] = torch.nan_to_num(ab_auc(pred, target, valid,
                                                   pixel_weights=per_pixel)) * weight
        if self.task.mode == "classification":
            logits = self.task.logits(output).detach().float()
            codes, grid_valid = self.task.grid_targets(batch, logits.shape[-2:])
            grid_count = grid_valid.sum().to(torch.float64)
            if grid_count > 0:
                added[3] = grid_count
                added[4] = bin_accuracy(logits, codes, grid_valid) * grid_count
        self.sums += added.cpu()

    def compute(self) -> dict[str, float]:
        figures = {"ab_auc": _ratio(self.sums, "auc", "count"),
                   "ab_error": _ratio(self.sums, "error", "count")}
        if self.task.class_weights is not None:
            figures["ab_auc_rebalanced"] = _ratio(self.sums, "weighted_auc", "weight")
        if self.task.mode == "classification":
            figures["bin_accuracy"] = _ratio(self.sums, "bins_right", "grid_count")
        return figures


def ab_prior(samples: Iterable[Any], limit: int | None = None) -> torch.Tensor:
    """Bin counts (Q = 313, float64) of the ab values of ``samples`` (a dataset or any iterable
    of :class:`~cnnkit.data.sample.Sample`): ``meta["ab"]`` when a
    :class:`~cnnkit.data.transforms.ColorizationTarget` made it, else the ab of the RGB image;
    only ``valid`` pixels when the sample says which. ``limit``: at most that many samples.

    Pass the counts as the colourisation task's ``prior`` (the task smooths them and turns them
    into Zhang et al.'s rebalancing weights): ``ColorizationTask(prior=ab_prior(train).tolist())``.
    """
    total: torch.Tensor | None = None
    for index, sample in enumerate(samples):
        if limit is not None and index >= limit:
            break
        ab = sample.meta.get("ab")
        if ab is None:
            if sample.image.shape[0] != 3:
                raise CnnkitError(f"{sample.meta.get('path', 'sample')}: ab_prior needs an RGB "
                                  f"image or meta['ab']; got {tuple(sample.image.shape)}")
            ab = rgb_to_lab(sample.image.float())[1:]
        counts = ab_histogram(ab.float(), sample.valid)
        total = counts if total is None else total + counts
    if total is None:
        raise CnnkitError("ab_prior: no samples")
    return total
