"""Scoring a partition of an image into cells: the foreground-restricted Rand and information
scores of the ISBI 2012 challenge on segmenting neurites in EM images (Arganda-Carreras et
al., "Crowdsourcing the creation of image segmentation algorithms for connectomics", Frontiers
in Neuroanatomy 2015), and the label images they compare.

Both images are label images: equal ids = one segment; ``background`` (default 0) marks the
boundary (membrane) pixels. Which pixels count, as in the challenge's evaluation code (Fiji's
``RandError``, ``VariationOfInformation``):

- only the **ground truth's foreground** (``true != background``); its background pixels are
  left out of every sum, whatever the prediction says there (so thin or thick predicted
  membranes cost nothing where the truth has membrane);
- a foreground pixel that the prediction marks ``background`` is a **segment of its own** (a
  singleton): it is split from every other pixel, which the split score penalises.

With n_ij the number of counted pixels in predicted segment i and true segment j,
s_i = sum_j n_ij and t_j = sum_i n_ij (singletons are segments of one pixel):

- Rand split score = sum n_ij^2 / sum t_j^2 (1 when no true cell is split);
- Rand merge score = sum n_ij^2 / sum s_i^2 (1 when no predicted segment joins true cells);
- V_Rand = sum n_ij^2 / (alpha sum s_i^2 + (1 - alpha) sum t_j^2), i.e. 1 / (alpha / merge +
  (1 - alpha) / split); alpha = 0.5 is their harmonic mean, the F-score;
- Rand error = 1 - V_Rand.

The counts' common factor 1/n cancels; pairs are counted with order and with repetition (the
challenge's "N^2 normalisation"). The contingency table is kept sparse, its nonzero cells
counted by ``torch.unique(..., return_counts=True)`` on a combined key (true segment * number
of predicted ids + predicted id), since a dense table can be huge for label images with
thousands of ids. The information scores use the entropies of the same table, S the
prediction and T the truth: split = I(S;T) / H(S), merge = I(S;T) / H(T), V_Info = I /
((1 - alpha) H(S) + alpha H(T)), and the variation of information VI = H(S|T) + H(T|S) (nats;
H(S|T) the split part, H(T|S) the merge part); a score whose entropy is 0 is 1.

What differs from the challenge: it scored boundary-probability maps, thresholding them at
several levels, labelling the 4-connected regions and reporting the best F-score over the
thresholds, later also after thinning the predicted borders (``VRand(thinned)``); here the
caller brings label images (:func:`partition_from_semantic`, :func:`partition_from_instances`)
and takes the best over its own thresholds, and no thinning is done. ``N x H x W`` inputs give
one figure per image, each on its own table (how to combine the slices of a stack is the
caller's choice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cnnkit.data.instances import label_components
from cnnkit.errors import ArgumentError


def _labels(x, name: str, fn: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.dim() in (2, 3) and not x.is_floating_point() \
            and not x.is_complex():
        return x if x.dim() == 3 else x[None]
    shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
    raise ArgumentError(f"{fn}: {name} must be an integer label image H x W or N x H x W; "
                        f"got {shape}" + (f" {x.dtype}" if isinstance(x, torch.Tensor) else ""))


def _cells(image: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The nonzero cells among ``key`` (one per pixel): their sizes and their images."""
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    owner = torch.zeros(len(counts), dtype=image.dtype, device=image.device)
    return counts.double(), owner.scatter_(0, inverse, image)


def _table(pred, true, background, alpha, fn: str):
    """The contingency table's nonzero cells, sparse (a dense pred x true table can be huge for
    label images with many ids): sizes and image of each true segment ("true"), each predicted
    segment ("pred") and each joint cell ("joint"), singletons left out of the last two and
    counted per image."""
    pred, true = _labels(pred, "pred_labels", fn), _labels(true, "true_labels", fn)
    if pred.shape != true.shape:
        raise ArgumentError(f"{fn}: pred_labels and true_labels must have the same shape; got "
                            f"{tuple(pred.shape)} and {tuple(true.shape)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ArgumentError(f"{fn}: alpha must be a number in [0, 1]; got {alpha!r}")
    if background is not None and (isinstance(background, bool) or not isinstance(background, int)):
        raise ArgumentError(f"{fn}: background must be a label (an integer) or None; got "
                            f"{background!r}")
    images = len(pred)
    image = torch.arange(images, device=pred.device).repeat_interleave(pred[0].numel())
    pred, true = pred.reshape(-1), true.reshape(-1)
    alone = torch.zeros_like(pred, dtype=torch.bool)
    if background is not None:
        counted = true != background
        image, pred, true = image[counted], pred[counted], true[counted]
        alone = pred == background
    singletons = torch.bincount(image[alone], minlength=images).double()
    _, true_ids = torch.unique(true, return_inverse=True)
    _, pred_ids = torch.unique(pred, return_inverse=True)
    n_true = int(true_ids.max()) + 1 if true.numel() else 1
    n_pred = int(pred_ids.max()) + 1 if pred.numel() else 1
    segment = image * n_true + true_ids  # the true segment of each pixel, then compacted
    _, segment_ids = torch.unique(segment, return_inverse=True)
    kept = ~alone
    cells = {"true": _cells(image, segment),
             "pred": _cells(image[kept], (image * n_pred + pred_ids)[kept]),
             "joint": _cells(image[kept], (segment_ids * n_pred + pred_ids)[kept])}
    return cells, singletons, images


def _per_image(values: torch.Tensor, owner: torch.Tensor, images: int) -> torch.Tensor:
    return torch.zeros(images, dtype=values.dtype, device=values.device).index_add_(0, owner,
                                                                                   values)


def rand_scores(pred_labels, true_labels, *, background: int | None = 0,
                alpha: float = 0.5) -> dict[str, torch.Tensor]:
    """Foreground-restricted Rand scores (module docstring): ``{"split", "merge", "fscore",
    "error"}``, float64 scalars for ``H x W`` inputs, one per image for ``N x H x W``; NaN for an
    image without ground-truth foreground. ``background=None`` counts every pixel (plain Rand
    F-score); ``alpha`` weighs the merge score (0.5: the F-score)."""
    cells, singletons, images = _table(pred_labels, true_labels, background, alpha,
                                       "rand_scores")
    squares = {k: _per_image(size.square(), owner, images) for k, (size, owner) in cells.items()}
    joint, pred = squares["joint"] + singletons, squares["pred"] + singletons
    true = squares["true"]
    score = joint / (alpha * pred + (1 - alpha) * true)
    out = {"split": joint / true, "merge": joint / pred, "fscore": score, "error": 1 - score}
    return {k: v[0] if pred_labels.dim() == 2 else v for k, v in out.items()}


def rand_error(pred_labels, true_labels, *, background: int | None = 0,
               alpha: float = 0.5) -> torch.Tensor:
    """The ISBI 2012 challenge's foreground-restricted Rand error, 1 - V_Rand (see
    :func:`rand_scores`): 0 for identical partitions of the true foreground."""
    return rand_scores(pred_labels, true_labels, background=background, alpha=alpha)["error"]


def _entropy(cell: tuple, singletons: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """-sum (c/n) log(c/n) per image over the cells' sizes c, plus -(1/n) log(1/n) per singleton."""
    size, owner = cell
    share = size / n[owner]
    return _per_image(-share * torch.log(share), owner, len(n)) + singletons / n * torch.log(n)


def information_scores(pred_labels, true_labels, *, background: int | None = 0,
                       alpha: float = 0.5) -> dict[str, torch.Tensor]:
    """Foreground-restricted information scores on the same counted pixels as
    :func:`rand_scores`: ``{"split": I/H(S), "merge": I/H(T), "fscore": V_Info, "vi": H(S|T) +
    H(T|S), "vi_split": H(S|T), "vi_merge": H(T|S)}`` in nats, S the prediction."""
    cells, singletons, images = _table(pred_labels, true_labels, background, alpha,
                                       "information_scores")
    n = _per_image(cells["true"][0], cells["true"][1], images)
    h_true = _entropy(cells["true"], torch.zeros_like(n), n)
    h_pred = _entropy(cells["pred"], singletons, n)
    h_joint = _entropy(cells["joint"], singletons, n)
    mutual = (h_pred + h_true - h_joint).clamp_min(0)
    one = torch.ones_like(n)
    split = torch.where(h_pred > 0, mutual / h_pred.clamp_min(1e-300), one)
    merge = torch.where(h_true > 0, mutual / h_true.clamp_min(1e-300), one)
    denominator = (1 - alpha) * h_pred + alpha * h_true
    fscore = torch.where(denominator > 0, mutual / denominator.clamp_min(1e-300), one)
    vi_split, vi_merge = (h_joint - h_true).clamp_min(0), (h_joint - h_pred).clamp_min(0)
    out = {"split": split, "merge": merge, "fscore": fscore, "vi": vi_split + vi_merge,
           "vi_split": vi_split, "vi_merge": vi_merge}
    out = {k: v.masked_fill(n == 0, float("nan")) for k, v in out.items()}
    return {k: v[0] if pred_labels.dim() == 2 else v for k, v in out.items()}


def variation_of_information(pred_labels, true_labels, *,
                             background: int | None = 0) -> torch.Tensor:
    """Foreground-restricted variation of information H(S|T) + H(T|S), in nats (0: identical)."""
    return information_scores(pred_labels, true_labels, background=background)["vi"]


def _min_area(min_area) -> int:
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
        raise ArgumentError(f"min_area must be an integer >= 1 (pixels); got {min_area!r}")
    return min_area


def partition_from_semantic(mask: torch.Tensor, cell_class: int | Sequence[int],
                            min_area: int = 1) -> torch.Tensor:
    """A semantic prediction (``H x W`` or ``N x H x W`` class map, e.g. a U-Net's argmax) as a
    partition: each 4-connected region of ``cell_class`` (one class or several, each region of
    one class) is a cell, numbered 1..K in raster order of its first pixel; every other pixel,
    and regions under ``min_area`` pixels, are 0 (boundary: singletons for :func:`rand_error`).
    int64, the shape of ``mask``. Connectivity: :func:`cnnkit.data.instances.label_components`."""
    fn = "partition_from_semantic"
    masks = _labels(mask, "mask", fn)
    classes = [cell_class] if isinstance(cell_class, int) else list(cell_class)
    if not classes or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise ArgumentError(f"{fn}: cell_class must be a class value or a list of them; got "
                            f"{cell_class!r}")
    _min_area(min_area)
    out = []
    for values in masks.cpu().numpy().astype(np.int64):
        components, _ = label_components(values, classes)
        areas = np.bincount(components[components >= 0], minlength=1)
        kept = np.flatnonzero(areas >= min_area)
        renumber = np.zeros(len(areas) + 1, dtype=np.int64)  # index -1 (no component) -> 0
        renumber[kept] = np.arange(1, len(kept) + 1)
        out.append(torch.from_numpy(renumber[components]))
    result = torch.stack(out).to(mask.device)
    return result if mask.dim() == 3 else result[0]


def partition_from_instances(masks: torch.Tensor, scores: torch.Tensor, *, threshold: float = 0.5,
                             min_score: float | None = None) -> torch.Tensor:
    """Instance masks (``B x H x W`` or ``B x 1 x H x W``, bool or probabilities > ``threshold``,
    e.g. a Mask R-CNN's) painted into one ``H x W`` int64 label image: a pixel covered by several
    masks goes to the highest-scoring one (ties: the earlier), uncovered pixels are 0; instance
    k (0-based, input order) has label k + 1, instances under ``min_score`` are dropped. A label
    may end up disconnected or empty where higher-scoring masks cover it; it still counts as one
    segment."""
    fn = "partition_from_instances"
    if isinstance(masks, torch.Tensor) and masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ArgumentError(f"{fn}: masks must be B x H x W (or B x 1 x H x W); got {shape}")
    scores = torch.as_tensor(scores, device=masks.device)
    if scores.shape != (len(masks),) or not scores.is_floating_point():
        raise ArgumentError(f"{fn}: scores must be B = {len(masks)} floating-point values; got "
                            f"{tuple(scores.shape)} {scores.dtype}")
    covered = masks if masks.dtype == torch.bool else masks > threshold
    if min_score is not None:
        covered = covered & (scores >= min_score)[:, None, None]
    order = torch.argsort(scores, descending=True, stable=True)
    priority = torch.empty_like(order)
    priority[order] = torch.arange(len(order), 0, -1, device=order.device)  # best: B, worst: 1
    key = torch.where(covered, priority[:, None, None], 0)
    if len(masks) == 0:
        return torch.zeros(masks.shape[1:], dtype=torch.int64, device=masks.device)
    best, winner = key.max(0)
    return torch.where(best > 0, winner + 1, 0)
