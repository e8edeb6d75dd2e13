"""Instances from a label image: every connected region of a class is one object.

:func:`instances_from_labels` turns an ``H x W`` class map into instances: each connected
component of each chosen class becomes one instance, with its mask, its box (the hull of its
pixel centres +- 0.5, cnnkit's frame of :mod:`cnnkit.geometry`) and its class. Connectivity is
**4-connectivity**: pixels are neighbours when they share an edge, so two squares touching only
at a corner are two instances (8-connectivity would make them one). Components smaller than
``min_area`` pixels are dropped (specks of label noise). Pixels of other classes, including
:data:`~cnnkit.data.sample.IGNORE_INDEX`, separate components.

The labelling is vectorised numpy: the horizontal runs of each row are found with one
comparison, runs of the same class that overlap in consecutive rows are joined, and the
components of that (small) run graph are found by union-find done in whole-array steps
(every edge hooks the larger root onto the smaller, then all paths are compressed, until no
edge joins two roots). A 512 x 512 map takes milliseconds; no scipy needed.

:class:`InstancesFromSemantic` wraps any semantic segmentation dataset (``sample.mask``) into an
instance dataset, e.g. the ISBI 2012 membrane slices, where every connected region of the
"cell" class is one cell (as the instance masks of cell segmentation are often derived; the
membranes are the boundaries between them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.images import DatasetError
from cnnkit.data.datasets.labels import ClassList, LabelSpace, label_space
from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.errors import ArgumentError


def _roots(a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """Union-find over ``count`` nodes joined by the edges ``(a[i], b[i])``: each node's root,
    the smallest node of its component."""
    parent = np.arange(count)
    while True:
        pa, pb = parent[a], parent[b]
        apart = pa != pb
        if not apart.any():
            return parent
        low, high = np.minimum(pa, pb)[apart], np.maximum(pa, pb)[apart]
        np.minimum.at(parent, high, low)  # hook: a root points to a smaller one
        while True:  # compress: every node points to its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def label_components(mask: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """4-connected components of the pixels whose class is in ``classes``: an ``H x W`` int64
    map of component ids (-1 elsewhere; ids in raster order of each component's first pixel)
    and each component's class."""
    chosen = np.isin(mask, np.asarray(classes))
    same_left = np.zeros_like(chosen)
    same_left[:, 1:] = chosen[:, 1:] & chosen[:, :-1] & (mask[:, 1:] == mask[:, :-1])
    starts = (chosen & ~same_left).ravel()
    run = (np.cumsum(starts) - 1).reshape(mask.shape)  # run id of each pixel (valid where chosen)
    count = int(starts.sum())
    if count == 0:
        return np.full(mask.shape, -1, dtype=np.int64), np.zeros(0, dtype=mask.dtype)
    same_up = chosen[1:] & chosen[:-1] & (mask[1:] == mask[:-1])
    pairs = np.unique(run[:-1][same_up] * count + run[1:][same_up])
    roots = _roots(pairs // count, pairs % count, count)
    root_ids, run_component = np.unique(roots, return_inverse=True)
    components = np.where(chosen, run_component.reshape(-1)[np.maximum(run, 0)], -1)
    run_class = mask.ravel()[np.flatnonzero(starts)]
    return components.astype(np.int64), run_class[root_ids]


def _check_min_area(min_area: int) -> None:
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
        raise ArgumentError(f"min_area must be an integer >= 1 (pixels); got {min_area!r}")


def instances_from_labels(mask: torch.Tensor, classes: Sequence[int] | None = None,
                          min_area: int = 1) -> dict[str, torch.Tensor]:
    """The instances of an ``H x W`` class map: ``{"masks": B x H x W bool, "boxes": B x 4
    float (x1, y1, x2, y2), "labels": B int64 (the mask's class of each)}``.

    ``classes``: the class values whose 4-connected components are instances (default: every
    value present except 0, background, and :data:`IGNORE_INDEX`); ``min_area``: the smallest
    component kept, in pixels. Instances come in raster order of their first pixel.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.is_floating_point():
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ArgumentError(f"instances_from_labels needs an H x W integer class map; got {shape}")
    _check_min_area(min_area)
    values = mask.cpu().numpy().astype(np.int64)
    if classes is None:
        classes = [int(v) for v in np.unique(values) if v not in (0, IGNORE_INDEX)]
    elif not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        raise ArgumentError(f"classes must be class values (integers); got {list(classes)!r}")
    height, width = values.shape
    if not len(classes):
        return {"masks": torch.zeros(0, height, width, dtype=torch.bool),
                "boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    components, component_class = label_components(values, classes)
    areas = np.bincount(components[components >= 0], minlength=len(component_class))
    kept = np.flatnonzero(areas >= min_area)
    renumber = np.full(len(component_class) + 1, -1)
    renumber[kept] = np.arange(len(kept))
    ids = torch.from_numpy(renumber[components].ravel())  # -1 (renumber's last) stays -1
    where = (ids >= 0).nonzero().view(-1)
    ids = ids[where]
    masks = torch.zeros(len(kept), height * width, dtype=torch.bool)
    masks[ids, where] = True
    rows, cols = where // width, where % width
    count = len(kept)
    boxes = torch.stack([_reduce(ids, cols, count, "amin"), _reduce(ids, rows, count, "amin"),
                         _reduce(ids, cols, count, "amax"), _reduce(ids, rows, count, "amax")], 1)
    return {"masks": masks.view(-1, height, width),
            "boxes": boxes.float() + torch.tensor([-0.5, -0.5, 0.5, 0.5]),
            "labels": torch.from_numpy(component_class[kept].astype(np.int64))}


def _reduce(ids: torch.Tensor, values: torch.Tensor, count: int, how: str) -> torch.Tensor:
    """Per-instance min or max of ``values`` (one per pixel, ``ids`` its instance)."""
    return torch.zeros(count, dtype=values.dtype).scatter_reduce(0, ids, values, how,
                                                                   include_self=False)


class _InstanceView(Dataset):
    """A dataset seen through another label space: keys, sizes and length are the wrapped
    dataset's (``self.dataset``); subclasses set ``self._space`` and ``__getitem__``."""

    dataset: Dataset
    _space: LabelSpace

    @property
    def label_space(self) -> LabelSpace:
        return self._space

    @property
    def keys(self) -> list[str]:
        return list(self.dataset.keys)  # type: ignore[attr-defined]

    def image_size(self, index: int) -> tuple[int, int]:
        return self.dataset.image_size(index)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class InstancesFromSemantic(_InstanceView):
    """A semantic dataset (``sample.mask``) as an instance dataset: every 4-connected region of
    each of ``classes`` is one instance (:func:`instances_from_labels`), regions under
    ``min_area`` pixels dropped. Instance labels are 1..C in the order of ``classes`` (0 is
    background), named after the dataset's mask classes (or ``names``); the sample keeps its
    other labels, its ``boxes`` are replaced by the instances'."""

    def __init__(self, dataset: Dataset, classes: Sequence[int] | None = None,
                 min_area: int = 1, names: Sequence[str] | None = None) -> None:
        _check_min_area(min_area)
        self.dataset, self.min_area = dataset, min_area
        space = label_space(dataset)
        if classes is None:
            if space.mask is None:
                raise ArgumentError("InstancesFromSemantic needs classes (the mask classes whose "
                                    "regions are instances): the dataset names none")
            classes = range(1, len(space.mask))
        self.classes = [int(c) for c in classes]
        if not self.classes:
            raise ArgumentError("InstancesFromSemantic classes must name at least one class")
        if names is None:
            known = space.mask.names if space.mask is not None else ()
            names = [known[c] if 0 <= c < len(known) else str(c) for c in self.classes]
        if len(names) != len(self.classes):
            raise ArgumentError(f"{len(self.classes)} classes but {len(names)} names")
        self.names = tuple(names)
        self._space = LabelSpace(label=space.label, mask=space.mask, skeleton=space.skeleton,
                                 instances=ClassList(("background", *self.names)))

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[index]
        if sample.mask is None:
            raise DatasetError(f"{sample.meta.get('path', f'sample {index}')}: no mask to find "
                               f"instances in (InstancesFromSemantic needs a semantic dataset)")
        found = instances_from_labels(sample.mask, self.classes, self.min_area)
        lookup = {c: i + 1 for i, c in enumerate(self.classes)}
        labels = torch.tensor([lookup[int(c)] for c in found["labels"]], dtype=torch.int64)
        return sample.replace(boxes=found["boxes"], box_labels=labels,
                              instance_masks=found["masks"], instance_keypoints=None,
                              instance_visible=None, crowd=None)


class InstancesFromKeypoints(_InstanceView):
    """A single-animal keypoint dataset (``sample.keypoints``, e.g. DeepLabCut frames) as an
    instance dataset: the animal is one instance of class 1 with the sample's keypoints, its
    box the hull of the visible keypoints grown on each side by ``margin`` times the hull's
    longer side (so a body whose keypoints lie nearly on a line still gets a body-wide box),
    clipped to the image. A frame without any visible
    keypoint has no instance."""

    def __init__(self, dataset: Dataset, margin: float = 0.15, name: str = "animal") -> None:
        if not isinstance(margin, (int, float)) or isinstance(margin, bool) or margin < 0:
            raise ArgumentError(f"InstancesFromKeypoints margin must be a number >= 0 (a share "
                                f"of the box added on each side); got {margin!r}")
        space = label_space(dataset)
        if space.skeleton is None:
            raise ArgumentError("InstancesFromKeypoints needs a keypoint dataset (one with a "
                                "skeleton)")
        self.dataset, self.margin = dataset, float(margin)
        self._space = LabelSpace(label=space.label, mask=space.mask, skeleton=space.skeleton,
                                 instances=ClassList(("background", name)))

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[index]
        if sample.keypoints is None:
            raise DatasetError(f"{sample.meta.get('path', f'sample {index}')}: no keypoints to "
                               f"box (InstancesFromKeypoints needs a keypoint dataset)")
        points = sample.keypoints.float()
        visible = (torch.ones(len(points), dtype=torch.bool) if sample.visible is None
                   else sample.visible.bool())
        if not visible.any():
            return sample.replace(boxes=torch.zeros(0, 4),
                                  box_labels=torch.zeros(0, dtype=torch.int64),
                                  instance_keypoints=torch.zeros(0, *points.shape),
                                  instance_visible=torch.zeros(0, len(points), dtype=torch.bool),
                                  instance_masks=None, crowd=None, keypoints=None, visible=None)
        low, high = points[visible].min(0).values, points[visible].max(0).values
        grow = (high - low).max() * self.margin
        height, width = sample.image.shape[-2:]
        limit = torch.tensor([width, height], dtype=points.dtype) - 0.5
        low, high = (low - grow).clamp(min=-0.5), torch.minimum(high + grow, limit)
        box = torch.cat([low, high]).view(1, 4)
        return sample.replace(boxes=box, box_labels=torch.ones(1, dtype=torch.int64),
                              instance_keypoints=points.unsqueeze(0),
                              instance_visible=visible.unsqueeze(0), instance_masks=None,
                              crowd=None, keypoints=None, visible=None)
