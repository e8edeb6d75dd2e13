"""Colourisation: the ab colour of every pixel from its lightness, after Zhang, Isola & Efros,
"Colorful Image Colorization" (ECCV 2016).

**Input and labels**: the data pipeline ends with
:class:`~cnnkit.data.transforms.ColorizationTarget`: the image is the lightness ``L / 50 - 1``
(1 channel) and ``batch["ab"]`` (N x 2 x H x W) the true ab; ``batch["valid"]``, when present,
limits the pixels that count (and pixels with a non-finite target never count).

**Two modes** (``mode``):

- ``"classification"`` (the paper): ``N x 313 x h x w`` logits over the in-gamut ab bins of
  :mod:`cnnkit.data.ab_bins`; the loss is the rebalanced multinomial cross-entropy against
  the soft-encoded target (5 nearest bins, sigma 5), each pixel weighted by the rebalancing
  weight of its nearest bin (:func:`~cnnkit.tasks.functional.rebalanced_cross_entropy`);
  decoding is the annealed mean with ``temperature`` (0.38, the paper's).
- ``"regression"`` (the paper's L2 baseline): ``N x 2 x h x w``, read as ``ab / ab_scale``
  (110 by default, so the sRGB ab range maps to about [-1, 1]); the loss is the mean over
  valid pixels of the squared Euclidean error in those units.

An output smaller than the labels (Zhang et al.'s network predicts at a quarter of the input
resolution) is trained against the labels **area-downsampled** to its grid (the paper
subsamples the ab target), and decoded ab is **upsampled bilinearly** to the input size for
the metrics and pictures (as the paper does).

**Class rebalancing**: the weights come from the training data's ab histogram, which the task
cannot see: pass ``class_weights`` (313 values) or ``prior`` (313 bin counts or frequencies,
e.g. :func:`~cnnkit.tasks.colorization_metric.ab_prior` of the training set; in a run
configuration ``prior: train`` counts the training split's samples), from which the
task computes :func:`~cnnkit.data.ab_bins.rebalance_weights` with ``rebalance_lambda`` (0.5,
the paper's). With neither, the cross-entropy is unweighted (the paper's "no rebalancing"
variant). In regression mode the weights only give the rebalanced AuC.

**Metrics** (:class:`~cnnkit.tasks.colorization_metric.ColorizationMetric`): ``ab_auc``
(primary, higher is better), ``ab_error``, ``bin_accuracy`` (classification), and
``ab_auc_rebalanced`` with class weights. **Decoding**: ``ab`` (2 x H0 x W0) and ``rgb`` (3 x H0
x W0 in [0, 1], L + ab converted, out-of-gamut colours clipped) in original image
coordinates. **Pictures**: gray input, prediction, truth. **Files**: ``<stem>_color.png``, the
original picture's own lightness with the predicted ab. **Flip TTA**: the mirrored map flipped
back (ab does not change under a mirror).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.data.ab_bins import (ANNEAL_TEMPERATURE, NUM_AB_BINS, REBALANCE_LAMBDA,
                                 decode_annealed_mean, encode_ab_hard, encode_ab_soft,
                                 rebalance_weights)
from cnnkit.data.color import lab_to_rgb
from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.data.transforms.colorization import input_to_lightness
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Task
from cnnkit.tasks.colorization_metric import ColorizationMetric, ab_prior
from cnnkit.tasks.dense_regression import (check_flip_width, dense_output, input_size,
                                           maps_in_original, require_field, to_size, valid_map)
from cnnkit.tasks.functional import rebalanced_cross_entropy
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption, panels
from cnnkit.viz.dense import enlarge, lab_image, picture_lightness
from cnnkit.viz.style import to_pil

Mode = Literal["classification", "regression"]
MODES = {"classification": NUM_AB_BINS, "regression": 2}  # output channels
AB_SCALE = 110.0

__all__ = ["ColorizationTask", "ab_prior"]


def _vector(values: Any, name: str) -> torch.Tensor:
    vector = torch.as_tensor(values, dtype=torch.float64).flatten()
    if vector.numel() != NUM_AB_BINS or not torch.isfinite(vector).all() or (vector < 0).any():
        raise ArgumentError(f"{name} must be {NUM_AB_BINS} finite non-negative values (one per "
                            f"ab bin); got {vector.numel()}")
    return vector


def _shrink(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """N x C x H x W area-averaged to ``size`` (unchanged when it is the size already)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=tuple(size), mode="area")


@register_task
class ColorizationTask(Task):
    """ab from L, by classification over 313 bins or by regression (see the module docstring)."""

    kind = "colorization"
    primary_metric = "ab_auc"
    higher_is_better = True
    lower_is_better = ("loss", "ab_error", "cross_entropy", "l2")

    def __init__(self, *, mode: Mode = "classification",
                 class_weights: Sequence[float] | None = None,
                 prior: Sequence[float] | None = None,
                 rebalance_lambda: float = REBALANCE_LAMBDA,
                 temperature: float = ANNEAL_TEMPERATURE, ab_scale: float = AB_SCALE) -> None:
        if mode not in MODES:
            raise ArgumentError(f"colorization mode must be 'classification' or 'regression'; "
                                f"got {mode!r}")
        if class_weights is not None and prior is not None:
            raise ArgumentError("give class_weights or prior, not both")
        if not 0.0 <= rebalance_lambda <= 1.0:
            raise ArgumentError(f"rebalance_lambda must be in [0, 1]; got {rebalance_lambda}")
        if not temperature > 0 or not ab_scale > 0:
            raise ArgumentError(f"temperature and ab_scale must be > 0; got {temperature}, "
                                f"{ab_scale}")
        self.mode, self.channels = mode, MODES[mode]
        self.temperature, self.ab_scale = temperature, ab_scale
        self.class_weights: torch.Tensor | None = None
        if class_weights is not None:
            self.class_weights = _vector(class_weights, "class_weights")
        elif prior is not None:
            self.class_weights = rebalance_weights(_vector(prior, "prior"), lam=rebalance_lambda)

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        channels = getattr(model, "num_classes", None)
        modes = {c: m for m, c in MODES.items()}
        if channels is not None and channels not in modes:
            raise CnnkitError(f"a colorization model predicts {NUM_AB_BINS} bin logits or 2 ab "
                              f"channels; this one gives {channels}")
        return {} if channels is None else {"mode": modes[channels]}

    @classmethod
    def options_from_data(cls, options: dict[str, Any], train: Any | None) -> dict[str, Any]:
        """``prior: train``: the ab bin counts of the training samples (:func:`ab_prior`)."""
        if options.get("prior") != "train":
            return {}
        if train is None:
            raise CnnkitError("task.options.prior: 'train' counts the training samples' ab "
                              "values, and this run has no training split")
        return {"prior": ab_prior(train).tolist()}

    # -- reading outputs and labels ------------------------------------------------------------
    def logits(self, output: Any) -> torch.Tensor:
        return dense_output(output, self.channels, f"colorization ({self.mode})")

    def ab_prediction(self, output: Any, size: Sequence[int] | None = None) -> torch.Tensor:
        """Decoded ab (N x 2 x H x W), upsampled to ``size`` when given."""
        maps = self.logits(output).float()
        if self.mode == "classification":
            ab = decode_annealed_mean(maps, temperature=self.temperature, from_logits=True)
        else:
            ab = maps * self.ab_scale
        return ab if size is None else to_size(ab, size)

    def targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(ab N x 2 x H x W, valid N x H x W: batch["valid"] and a finite target)."""
        ab = require_field(batch, "ab", "colorization", "N x 2 x H x W from ColorizationTarget")
        return ab, valid_map(batch, ab[:, 0]) & torch.isfinite(ab).all(1)

    def _on_grid(self, batch: Batch, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Target ab and validity on an output grid of ``size`` (area-downsampled)."""
        ab, valid = self.targets(batch)
        ab = torch.where(valid[:, None], ab, torch.zeros_like(ab)).float()
        share = _shrink(valid[:, None].float(), size)[:, 0]
        return _shrink(ab, size), share > 0.5

    def grid_targets(self, batch: Batch, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest-bin indices and validity on the output grid (for the bin accuracy)."""
        ab, valid = self._on_grid(batch, size)
        return encode_ab_hard(ab), valid

    # -- training ------------------------------------------------------------------------------
    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        maps = self.logits(output)
        ab, valid = self._on_grid(batch, maps.shape[-2:])
        ab, valid = ab.to(maps.device), valid.to(maps.device)
        if self.mode == "classification":
            soft = encode_ab_soft(ab.float())
            value = rebalanced_cross_entropy(maps, soft.to(maps.dtype), self.class_weights,
                                             valid)
            return value, {"cross_entropy": value.detach()}
        squared = (maps - ab.to(maps.dtype) / self.ab_scale).square().sum(1)
        value = (squared * valid).sum() / valid.sum().clamp_min(1)
        return value, {"l2": value.detach()}

    def new_metric(self) -> ColorizationMetric:
        return ColorizationMetric(self)

    # -- predictions ---------------------------------------------------------------------------
    def _lightness(self, batch: Batch | None) -> torch.Tensor | None:
        image = None if batch is None else batch.get("image")
        if image is None or image.shape[1] != 1:
            return None
        return input_to_lightness(image[:, 0].float()).clamp(0, 100)

    def decode_in_input(self, output: Any, batch: Batch | None) -> list[dict[str, Any]]:
        """Per sample: ``ab`` (2 x H x W) and ``lightness`` (H x W, 0..100) over the input."""
        ab = self.ab_prediction(output).detach()
        ab = to_size(ab, input_size(batch, ab)).cpu()
        lightness = self._lightness(batch)
        return [{"ab": a, "lightness": None if lightness is None else lightness[i].cpu()}
                for i, a in enumerate(ab)]

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``ab`` (2 x H0 x W0) and, with the input's lightness, ``rgb`` (3 x H0 x
        W0 in [0, 1]) in original image coordinates (0 where the network saw nothing)."""
        ab = self.ab_prediction(output).detach()
        ab = to_size(ab, input_size(batch, ab))
        lightness = self._lightness(batch)
        maps = ab if lightness is None else torch.cat([lightness[:, None].to(ab), ab], 1)
        results = []
        for one, seen in maps_in_original(maps, batch):
            one = one * seen
            record: dict[str, Any] = {"ab": one[-2:].cpu()}
            if lightness is not None:
                record["rgb"] = (lab_to_rgb(one.double(), clip=True).float() * seen).cpu()
            results.append(record)
        return results

    def ground_truth(self, batch: Batch) -> list[dict[str, Any]]:
        ab, valid = self.targets(batch)
        lightness = self._lightness(batch)
        return [{"ab": a.cpu(), "valid": v.cpu(),
                 "lightness": None if lightness is None else lightness[i].cpu()}
                for i, (a, v) in enumerate(zip(ab, valid))]

    def flip_back(self, output: Any, width: int) -> Any:
        maps = self.logits(output)
        check_flip_width(maps, width, "colorization")
        return maps.flip(-1)

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """Gray input, prediction and truth (when given), as colour pictures of L + ab."""
        lightness = prediction.get("lightness")
        lightness = picture_lightness(image) if lightness is None else lightness.float()
        tiles = [caption(enlarge(lab_image(lightness, torch.zeros(2, *lightness.shape)), scale),
                         "input L"),
                 caption(enlarge(lab_image(lightness, prediction["ab"]), scale), "predicted")]
        if target is not None and target.get("ab") is not None:
            tiles.append(caption(enlarge(lab_image(lightness, target["ab"]), scale), "true"))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_color.png``: the original picture's lightness with the predicted ab (the
        decoded ``rgb`` when the sizes differ); the record names it."""
        ab = torch.as_tensor(record["ab"]).float()
        if (image.height, image.width) == tuple(ab.shape[-2:]):
            colored = lab_image(picture_lightness(image), ab)
        elif record.get("rgb") is not None:
            colored = to_pil(torch.as_tensor(record["rgb"]).float())
        else:
            raise CnnkitError(f"{stem}: the prediction ({tuple(ab.shape[-2:])}) does not match "
                              f"the picture ({image.height}, {image.width}) and has no rgb")
        colored.save(f"{stem}_color.png")
        return {**{k: v for k, v in record.items() if k not in ("ab", "rgb")},
                "colorized": f"{stem.name}_color.png"}
