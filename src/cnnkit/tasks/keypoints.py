"""Keypoints: direct regression and heatmaps, with PCK and pixel error in original coordinates.

Regression (:class:`KeypointRegressionTask`, DeepPose-style models, N x K x 2 normalised
``(u, v)``, ``u = (x + 0.5) / W``): squared error summed over u and v, averaged over the visible
keypoints of the batch (invisible ones excluded).

Heatmaps (:class:`KeypointHeatmapTask`; N x C x h x w maps, C = K or K + 1 with a background
channel last, or N x T x C x h x w from a Convolutional Pose Machine, whose loss is **summed over
the T stages**: the intermediate supervision of Wei et al., CVPR 2016). The two losses of the
lecture (:mod:`cnnkit.tasks.losses`):

- ``loss="mse"``: L2 on Gaussian maps with peak 1, each map weighted by visibility (the
  background map, when present, has weight 1);
- ``loss="cross_entropy"``: without background, a softmax over the h*w cells of each keypoint
  map against a target normalised to sum to one (visible keypoints only); with background, a
  softmax over the K + 1 channels of every cell against per-cell distributions (keypoint
  Gaussians, background = 1 - their sum). Reported as KL divergence (0 when perfect).

Targets: ``batch["heatmaps"]`` / ``batch["heatmap_weights"]`` when a
:class:`~cnnkit.data.heatmaps.HeatmapTarget` made them (their shape must match the output),
otherwise rendered from ``batch["keypoints"]`` with
:func:`~cnnkit.data.heatmaps.keypoint_heatmaps` at the stride given by the image and map sizes.

Metrics (:class:`KeypointMetric`), on ground-truth-visible keypoints only, both points mapped to
the **original image** with :func:`~cnnkit.tasks.original_coordinates.to_original`:
``mean_error`` (Euclidean, pixels) and ``pck``, the fraction within ``pck_threshold``: pixels
by default (5 px, a DeepLabCut-style figure), or, with ``pck_reference``, a fraction of a length
per sample: ``"box"`` (the longer side of the sample's box) or a keypoint pair ``(i, j)`` (their
ground-truth distance, e.g. the head segment of PCKh; samples where either is invisible are left
out of the PCK). Per keypoint as ``pck/<name>`` and ``error/<name>``. ``pck`` is primary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.data.heatmaps import heatmap_size, keypoint_heatmaps
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric, Task
from cnnkit.geometry import Skeleton, flip_permutation, normalized_to_pixels, pixels_to_normalized
from cnnkit.tasks.keypoint_decode import Refinement, decode_heatmaps
from cnnkit.tasks.losses import heatmap_mse, heatmap_pixel_ce, heatmap_spatial_ce
from cnnkit.tasks.original_coordinates import boxes_to_original, to_original
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption, draw_keypoints, panels

Reference = Literal["box"] | tuple[int, int] | None
Decoder = Callable[[Any, Batch], tuple[torch.Tensor, torch.Tensor | None]]
DEFAULT_PCK_PIXELS = 5.0


def unflip(values: torch.Tensor, meta: dict[str, Any],
           permutation: Sequence[int] | None) -> torch.Tensor:
    """Per-keypoint ``values`` re-indexed as :func:`to_original` re-indexes the points."""
    flips = sum(name in ("horizontal_flip", "vertical_flip")
                for name, _ in meta.get("transforms", []))
    if permutation is None or flips % 2 == 0:
        return values
    return values[torch.as_tensor(list(permutation))]


class KeypointMetric(Metric):
    """Per keypoint: error sums, visible counts, PCK hits and PCK counts (float64, K each)."""

    def __init__(self, num_keypoints: int, decoder: Decoder, *,
                 pck_threshold: float = DEFAULT_PCK_PIXELS, pck_reference: Reference = None,
                 names: Sequence[str] | None = None,
                 flip_pairs: Sequence[tuple[int, int]] = ()) -> None:
        if pck_reference not in (None, "box") and not (
                isinstance(pck_reference, tuple) and len(pck_reference) == 2):
            raise ArgumentError(f"pck_reference must be None (pixels), 'box' or a keypoint pair "
                             f"(i, j); got {pck_reference!r}")
        self.num_keypoints, self.decoder = num_keypoints, decoder
        self.threshold, self.reference = pck_threshold, pck_reference
        self.names = list(names) if names else [str(k) for k in range(num_keypoints)]
        self.permutation = flip_permutation(num_keypoints, flip_pairs) if flip_pairs else None
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(4, self.num_keypoints, dtype=torch.float64)

    def state(self) -> list[torch.Tensor]:
        return [self.sums]

    def _limit(self, gt: torch.Tensor, visible: torch.Tensor, batch: Batch, i: int,
               size: tuple[int, int]) -> float:
        """The PCK distance for sample ``i`` in original pixels (NaN: not measurable)."""
        if self.reference is None:
            return self.threshold
        if self.reference == "box":
            if "boxes" not in batch:
                raise ArgumentError("pck_reference='box' needs batch['boxes'] (one box per sample)")
            box = boxes_to_original(batch["boxes"][i:i + 1].double(), batch["meta"][i], size)[0]
            return self.threshold * float((box[2:] - box[:2]).max())
        a, b = self.reference
        if not (visible[a] and visible[b]):
            return float("nan")
        return self.threshold * float((gt[a] - gt[b]).norm())

    def update(self, output: Any, batch: Batch) -> None:
        pred, _ = self.decoder(output, batch)
        pred = pred.detach().double().cpu()
        gt_all, visible_all = batch["keypoints"].double().cpu(), batch["visible"].bool().cpu()
        size = tuple(batch["image"].shape[-2:])
        for i, meta in enumerate(batch["meta"]):
            p = to_original(pred[i], meta, size, self.permutation)
            gt = to_original(gt_all[i], meta, size, self.permutation)
            visible = unflip(visible_all[i], meta, self.permutation)
            error = torch.where(visible, (p - gt).norm(dim=1), torch.zeros(len(p), dtype=p.dtype))
            limit = self._limit(gt, visible, batch, i, size)
            scored = visible & (limit == limit)  # NaN limit: no PCK for this sample
            self.sums[0] += error
            self.sums[1] += visible.double()
            self.sums[2] += (scored & (error <= limit)).double()
            self.sums[3] += scored.double()

    def compute(self) -> dict[str, float]:
        err, count, hits, scored = self.sums

        def ratio(a: torch.Tensor, b: torch.Tensor) -> float:
            return float(a / b) if b > 0 else float("nan")

        figures = {"pck": ratio(hits.sum(), scored.sum()),
                   "mean_error": ratio(err.sum(), count.sum())}
        for k, name in enumerate(self.names):
            figures[f"pck/{name}"] = ratio(hits[k], scored[k])
            figures[f"error/{name}"] = ratio(err[k], count[k])
        return figures


class _KeypointTask(Task):
    """Shared options, metric, decoding and drawing; subclasses give ``points``, ``loss`` and
    ``flip_back``."""

    primary_metric = "pck"
    higher_is_better = True
    lower_is_better = ("loss", "mean_error", "error")

    def __init__(self, num_keypoints: int, *, pck_threshold: float = DEFAULT_PCK_PIXELS,
                 pck_reference: Reference = None, keypoint_names: Sequence[str] | None = None,
                 flip_pairs: Sequence[tuple[int, int]] = ()) -> None:
        if num_keypoints < 1:
            raise ArgumentError(f"num_keypoints must be >= 1; got {num_keypoints}")
        if keypoint_names is not None and len(keypoint_names) != num_keypoints:
            raise ArgumentError(f"keypoint_names has {len(keypoint_names)} names for "
                             f"{num_keypoints} keypoints")
        if isinstance(pck_reference, list):  # a pair read back from JSON
            pck_reference = tuple(pck_reference)
        flip_pairs = tuple(tuple(pair) for pair in flip_pairs)
        self.num_keypoints = num_keypoints
        self.metric_options = {"pck_threshold": pck_threshold, "pck_reference": pck_reference,
                               "names": keypoint_names, "flip_pairs": flip_pairs}
        self.permutation = flip_permutation(num_keypoints, flip_pairs) if flip_pairs else None
        names = tuple(keypoint_names or (str(k) for k in range(num_keypoints)))
        self.skeleton = Skeleton(names, flip_pairs)

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        count = getattr(model, "num_keypoints", None) or model.num_classes
        options: dict[str, Any] = {"num_keypoints": count}
        skeleton = labels.skeleton
        if skeleton is not None:
            if len(skeleton.names) != count:
                raise CnnkitError(f"the model predicts {count} keypoints but the data has "
                                  f"{len(skeleton.names)} ({', '.join(skeleton.names)}); set "
                                  f"model.num_classes={len(skeleton.names)}")
            options["keypoint_names"] = list(skeleton.names)
            options["flip_pairs"] = [list(pair) for pair in skeleton.flip_pairs]
        return options

    def _flip_permutation(self) -> list[int]:
        if self.permutation is None:
            raise CnnkitError("flip test-time augmentation of keypoints needs the left/right "
                              "pairs (flip_pairs); the data declares none")
        return self.permutation

    def points(self, output: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """N x K x 2 (x, y) in network-input pixels and N x K confidences (or None)."""
        raise NotImplementedError

    def new_metric(self) -> KeypointMetric:
        return KeypointMetric(self.num_keypoints, self.points, **self.metric_options)

    def decode_in_input(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        xy, confidence = self.points(output, batch)
        return [{"keypoints": xy[i].detach().float().cpu(),
                 "confidence": None if confidence is None else confidence[i].detach().cpu()}
                for i in range(xy.shape[0])]

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """True (when given) and predicted keypoints on two copies of the image."""
        tiles = []
        for title, values in (("true", target), ("predicted", prediction)):
            if values is None or values.get("keypoints") is None:
                continue
            visible = values.get("visible")
            tiles.append(caption(draw_keypoints(
                image, torch.as_tensor(values["keypoints"], dtype=torch.float32),
                None if visible is None else torch.as_tensor(visible), self.skeleton,
                scale=scale), title))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_keypoints.png``: the points drawn on the original image."""
        draw_keypoints(image.convert("RGB"), torch.tensor(record["keypoints"]),
                       skeleton=self.skeleton).save(f"{stem}_keypoints.png")
        return {**record, "keypoint_names": list(self.skeleton.names)}

    def decode(self, output: Any, batch: Batch) -> list[dict[str, Any]]:
        """Per sample: ``keypoints`` [[x, y], ...] in original pixels and ``confidence``
        (heatmap peak values; None for regression)."""
        xy, confidence = self.points(output, batch)
        xy = xy.detach().double().cpu()
        size = tuple(batch["image"].shape[-2:])
        results = []
        for i, meta in enumerate(batch["meta"]):
            conf = None if confidence is None else unflip(confidence[i].detach().cpu(), meta,
                                                           self.permutation)
            results.append({"keypoints": to_original(xy[i], meta, size, self.permutation).tolist(),
                            "confidence": None if conf is None else conf.tolist()})
        return results


def _keypoint_targets(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    if "keypoints" not in batch:
        raise ArgumentError("a keypoint task needs batch['keypoints'] (N x K x 2) and 'visible'")
    return batch["keypoints"], batch["visible"].bool()


@register_task
class KeypointRegressionTask(_KeypointTask):
    """Direct regression of normalised coordinates (see the module docstring)."""

    kind = "keypoints-regression"

    def flip_back(self, output: Any, width: int) -> Any:
        """Mirrored normalised points: ``u -> 1 - u`` (exact, the image borders are 0 and 1),
        left/right identities swapped."""
        self._check(output)
        flipped = torch.stack([1 - output[..., 0], output[..., 1]], dim=-1)
        return flipped[:, self._flip_permutation()]

    def _check(self, output: torch.Tensor) -> None:
        if output.dim() != 3 or output.shape[1:] != (self.num_keypoints, 2):
            raise ArgumentError(f"keypoint regression output must be N x {self.num_keypoints} x 2 "
                             f"(normalised x, y); got {tuple(output.shape)}")

    def points(self, output: Any, batch: Batch) -> tuple[torch.Tensor, None]:
        self._check(output)
        height, width = batch["image"].shape[-2:]
        return normalized_to_pixels(output, height, width), None

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._check(output)
        keypoints, visible = _keypoint_targets(batch)
        height, width = batch["image"].shape[-2:]
        target = pixels_to_normalized(keypoints.to(output), height, width)
        visible = visible.to(output.device)
        target = torch.where(visible[..., None], target, output.detach())  # no NaN, no gradient
        squared = (output - target).square().sum(-1) * visible
        loss = squared.sum() / visible.sum().clamp(min=1)
        return loss, {"l2": loss.detach()}


def infer_stride(map_size: Sequence[int], image_size: Sequence[int]) -> int:
    """The output stride ``s`` with ``ceil(H / s) x ceil(W / s)`` equal to the map size."""
    stride = max(1, round(image_size[0] / map_size[0]))
    if heatmap_size(tuple(image_size), stride) != tuple(map_size):
        raise CnnkitError(f"heatmaps {tuple(map_size)} do not tile the image {tuple(image_size)} "
                          f"at any integer stride (h = ceil(H / s) and w = ceil(W / s))")
    return stride


@register_task
class KeypointHeatmapTask(_KeypointTask):
    """Heatmap regression / classification (see the module docstring)."""

    kind = "keypoints-heatmap"

    def flip_back(self, output: Any, width: int) -> Any:
        """Mirrored maps flipped back with left/right channels swapped (a background map stays);
        exact when the image width is a multiple of the map width (refused otherwise)."""
        maps = self._stages(output)
        if width % maps.shape[-1]:
            raise CnnkitError(f"image width {width} is not a multiple of the heatmap width "
                              f"{maps.shape[-1]}: the flipped maps would be misaligned by a "
                              "fraction of a cell; pad or resize the images to a multiple of "
                              "the output stride")
        perm = self._flip_permutation() + ([self.num_keypoints] if self.background else [])
        flipped = maps.flip(-1)[:, :, perm]
        return flipped if output.dim() == 5 else flipped[:, 0]

    def __init__(self, num_keypoints: int, *, loss: Literal["mse", "cross_entropy"] = "mse",
                 background: bool = False, sigma: float = 2.0,
                 refinement: Refinement = "quarter", **options: Any) -> None:
        super().__init__(num_keypoints, **options)
        if loss not in ("mse", "cross_entropy"):
            raise ArgumentError(f"heatmap loss must be 'mse' or 'cross_entropy'; got {loss!r}")
        self.loss_name, self.background, self.sigma = loss, background, sigma
        self.refinement = refinement
        self.channels = num_keypoints + int(background)

    def _stages(self, output: Any) -> torch.Tensor:
        """N x T x C x h x w (T = 1 for single-stage networks)."""
        maps = output[:, None] if output.dim() == 4 else output
        if maps.dim() != 5 or maps.shape[2] != self.channels:
            raise ArgumentError(f"heatmap output must be N x {self.channels} x h x w or "
                             f"N x T x {self.channels} x h x w (K = {self.num_keypoints}"
                             f"{' + background' if self.background else ''}); "
                             f"got {tuple(output.shape)}")
        return maps

    def points(self, output: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self._stages(output)[:, -1].detach().float()
        stride = infer_stride(maps.shape[-2:], batch["image"].shape[-2:])
        decoded = decode_heatmaps(maps, stride=stride, refinement=self.refinement,
                                  background=self.background)
        return decoded.xy, decoded.confidence

    def targets(self, maps: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Target maps N x C x h x w and weights N x C for outputs shaped like ``maps``."""
        shape = (maps.shape[0], *maps.shape[2:])
        if "heatmaps" in batch:
            target, weights = batch["heatmaps"], batch["heatmap_weights"]
            if tuple(target.shape) != shape:
                raise CnnkitError(f"batch heatmaps are {tuple(target.shape)} but the model gives "
                                  f"{shape}; match HeatmapTarget's stride and background to it")
            return target.to(maps), weights.to(maps)
        keypoints, visible = _keypoint_targets(batch)
        size = tuple(batch["image"].shape[-2:])
        stride = infer_stride(maps.shape[-2:], size)
        rendered = [keypoint_heatmaps(k.cpu(), v.cpu(), size, stride, self.sigma, self.background)
                    for k, v in zip(keypoints, visible)]
        return (torch.stack([m for m, _ in rendered]).to(maps),
                torch.stack([w for _, w in rendered]).to(maps))

    def _stage_loss(self, pred: torch.Tensor, target: torch.Tensor,
                    weights: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "mse":
            return heatmap_mse(pred, target, weights)
        if self.background:
            return heatmap_pixel_ce(pred, target)
        total = target.sum((2, 3), keepdim=True)
        target = torch.where(total > 0, target / total.clamp(min=1e-12), target)
        return heatmap_spatial_ce(pred, target, weights * (total[..., 0, 0] > 0))

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        maps = self._stages(output)
        target, weights = self.targets(maps, batch)
        stage_losses = [self._stage_loss(maps[:, t], target, weights)
                        for t in range(maps.shape[1])]
        total = torch.stack(stage_losses).sum()
        parts = {self.loss_name: total.detach()}
        if len(stage_losses) > 1:
            parts.update({f"stage{t + 1}": v.detach() for t, v in enumerate(stage_losses)})
        return total, parts
