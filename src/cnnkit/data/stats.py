"""Dataset statistics: class and pixel frequencies, mean/std, image sizes, class weights.

Median frequency balancing (Eigen and Fergus, "Predicting Depth, Surface Normals and Semantic
Labels with a Common Multi-Scale Convolutional Architecture", 2015), as SegNet
(Badrinarayanan et al., 2017) used on CamVid: ``freq(c)`` = pixels of class c / total pixels of
the images in which c appears; ``weight(c) = median(freq) / freq(c)``. Classes excluded (e.g.
void) get weight 0 and do not enter the median.

Datasets with depth (a ``depths()`` method yielding ``(depth, valid)``) also get the range and
mean of their depth over valid pixels (:func:`depth_stats`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.data.stats_color import mean_std as pixel_mean_std
from cnnkit.errors import ArgumentError


def _masks(dataset: Dataset) -> Iterable[torch.Tensor]:
    if hasattr(dataset, "masks"):
        return dataset.masks()  # type: ignore[attr-defined]
    return (dataset[i].mask for i in range(len(dataset)))  # type: ignore[arg-type]


def pixel_counts(dataset: Dataset, num_classes: int) -> dict[str, torch.Tensor | int]:
    """Per class: ``counts`` (pixels), ``image_pixels`` (pixels of the images where the class
    appears), ``images`` (number of images where it appears); plus ``ignored`` pixels."""
    counts = torch.zeros(num_classes, dtype=torch.int64)
    image_pixels = torch.zeros(num_classes, dtype=torch.int64)
    images = torch.zeros(num_classes, dtype=torch.int64)
    ignored = 0
    for mask in _masks(dataset):
        flat = mask.reshape(-1).numpy()  # numpy's bincount is much faster on small arrays
        every = torch.from_numpy(np.bincount(flat, minlength=max(num_classes, IGNORE_INDEX + 1)))
        ignored += int(every[IGNORE_INDEX])
        here = every[:num_classes]
        counts += here
        present = here > 0
        image_pixels += present * flat.size
        images += present
    return {"counts": counts, "image_pixels": image_pixels, "images": images, "ignored": ignored}


def median_frequency_weights(counts: Sequence[int] | torch.Tensor,
                             image_pixels: Sequence[int] | torch.Tensor,
                             exclude: Sequence[int] = ()) -> list[float]:
    """Class weights ``median(freq) / freq(c)``; absent or excluded classes get 0."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    image_pixels = torch.as_tensor(image_pixels, dtype=torch.float64)
    use = (counts > 0) & (image_pixels > 0)
    for c in exclude:
        use[c] = False
    if not bool(use.any()):
        raise ArgumentError("no class has any pixels: cannot compute class weights")
    freq = torch.where(use, counts / image_pixels.clamp(min=1), torch.zeros((), dtype=torch.float64))
    median = float(freq[use].median()) if int(use.sum()) % 2 else float(freq[use].sort().values[
        int(use.sum()) // 2 - 1: int(use.sum()) // 2 + 1].mean())
    return [median / float(f) if u else 0.0 for f, u in zip(freq, use)]


def label_counts(labels: Iterable[int], num_classes: int) -> list[int]:
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.int64), minlength=num_classes)
    return counts.tolist()


def mean_std(dataset: Dataset, max_samples: int | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the images (values in [0, 1]); idx datasets
    from a histogram of their bytes, others by streaming (:func:`~cnnkit.data.stats_color.mean_std`)."""
    if hasattr(dataset, "images") and not callable(dataset.images):  # idx: one uint8 array
        histogram = np.bincount(dataset.images[:max_samples].ravel(), minlength=256)  # type: ignore
        values = np.arange(256) / 255.0
        mean = float((histogram * values).sum() / histogram.sum())
        var = float((histogram * (values - mean) ** 2).sum() / histogram.sum())
        return [mean], [var ** 0.5]
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))  # type: ignore
    mean, std = pixel_mean_std(dataset[i].image for i in range(n))
    return mean.tolist(), std.tolist()


def depth_stats(dataset: Dataset, max_samples: int | None = None) -> dict[str, float | int]:
    """Depth over the valid pixels of every sample: ``min``, ``max``, ``mean`` (metres), the
    ``valid_fraction`` of pixels and the number of ``samples`` seen."""
    low, high, total, count, pixels, samples = float("inf"), 0.0, 0.0, 0, 0, 0
    for depth, valid in islice(dataset.depths(), max_samples):  # type: ignore[attr-defined]
        known = depth[valid & (depth > 0)].double()
        samples, pixels, count = samples + 1, pixels + depth.numel(), count + known.numel()
        if known.numel():
            low, high = min(low, float(known.min())), max(high, float(known.max()))
            total += float(known.sum())
    if not count:
        return {"samples": samples, "valid_fraction": 0.0}
    return {"samples": samples, "valid_fraction": round(count / pixels, 6), "min": round(low, 4),
            "max": round(high, 4), "mean": round(total / count, 4)}


def image_sizes(dataset: Dataset) -> Counter:
    """Counter of ``(height, width)`` over the dataset (file headers only where possible)."""
    size = getattr(dataset, "image_size", None)
    get = size if size is not None else (lambda i: dataset[i].size)
    return Counter(tuple(get(i)) for i in range(len(dataset)))  # type: ignore[arg-type]


def dataset_stats(dataset: Dataset, *, with_mean_std: bool = True,
                  max_samples: int | None = None) -> dict:
    """A JSON-ready summary. ``class_counts`` (keyed by class index as a string) counts pixels
    for mask datasets, samples for classification, visible points for keypoint datasets."""
    out: dict = {"num_samples": len(dataset)}  # type: ignore[arg-type]
    names = getattr(dataset, "classes", None)
    if names is not None and hasattr(names, "names"):
        names = names.names
    has_masks = hasattr(dataset, "masks") or hasattr(dataset, "pairs")
    if has_masks and getattr(dataset, "has_masks", True):
        num_classes = len(names) if names is not None else int(dataset.num_classes)  # type: ignore
        counts = pixel_counts(dataset, num_classes)
        total = int(counts["counts"].sum()) + counts["ignored"]
        exclude = [] if getattr(getattr(dataset, "classes", None), "void_index", None) is None \
            else [dataset.classes.void_index]  # type: ignore[attr-defined]
        out.update(kind="segmentation", num_classes=num_classes,
                   class_counts={str(c): int(v) for c, v in enumerate(counts["counts"])},
                   ignored_pixels=counts["ignored"],
                   class_fractions={str(c): round(int(v) / total, 6)
                                    for c, v in enumerate(counts["counts"])},
                   images_with_class={str(c): int(v) for c, v in enumerate(counts["images"])},
                   median_frequency_weights=[round(w, 4) for w in median_frequency_weights(
                       counts["counts"], counts["image_pixels"], exclude)])
    elif hasattr(dataset, "skeleton"):
        names = list(dataset.skeleton.names)  # type: ignore[attr-defined]
        visible = torch.zeros(len(names), dtype=torch.int64)
        for _, _, vis, _ in dataset.rows:  # type: ignore[attr-defined]
            visible += vis.long()
        out.update(kind="keypoints", num_classes=len(names),
                   class_counts={str(c): int(v) for c, v in enumerate(visible)},
                   flip_pairs=[list(p) for p in dataset.skeleton.flip_pairs])  # type: ignore
    elif hasattr(dataset, "depths"):
        out.update(kind="dense")
    else:
        labels = dataset.labels  # type: ignore[attr-defined]
        num_classes = len(names) if names is not None else int(max(labels)) + 1
        out.update(kind="classification", num_classes=num_classes,
                   class_counts={str(c): v for c, v in enumerate(label_counts(labels, num_classes))})
    if hasattr(dataset, "depths"):
        out["depth"] = depth_stats(dataset, max_samples)
    if names is not None and out["kind"] != "dense":
        out["class_names"] = list(names)
    out["image_sizes"] = {f"{w}x{h}": n for (h, w), n in sorted(image_sizes(dataset).items())}
    if with_mean_std:
        mean, std = mean_std(dataset, max_samples)
        out.update(mean=[round(m, 4) for m in mean], std=[round(s, 4) for s in std])
    return out
