"""COCO average precision and recall of detections, instance masks and instance keypoints.

The figures are those of Microsoft COCO (Lin et al., "Microsoft COCO: Common Objects in
Context", ECCV 2014), computed by pycocotools' ``COCOeval`` (``pip install 'cnnkit[coco]'``)
once over the whole dataset: :class:`COCOMetric` keeps every image's ground truth and
predictions, already in original image coordinates, as COCO annotations (boxes ``[x, y, w, h]``,
masks as compressed RLE, keypoints ``x, y, v``; converted by
:func:`cnnkit.data.datasets.coco_results.to_coco_json`) and builds an in-memory ``COCO`` object
of each when :meth:`~COCOMetric.compute` is called.

Figures, per evaluation type (``bbox``, ``segm``, ``keypoints``, COCO's ``iouType`` names):
``<type>_AP`` (mean over IoU or OKS thresholds 0.50:0.05:0.95), ``AP50``, ``AP75``, ``APs``,
``APm``, ``APl`` (objects under 32², between 32² and 96², over 96² pixels of area) and
``AR100`` (recall with 100 detections per image); keypoints have no ``APs`` (COCO leaves small
objects out of the keypoint task) and their recall is ``AR20`` (20 detections per image).
COCO counts at most those 100 (20) best detections per image for every figure; an image with
more objects (some 115 cells per ISBI slice) needs ``max_detections`` above its count, and the
recall is then named after it (``AR300``).
A figure is NaN where COCO gives -1: no ground truth to evaluate (none at all, or none in that
size range). Crowd regions (``iscrowd``) are COCO's: detections on them are neither true nor
false positives; an instance without a labelled keypoint is ignored by the keypoint figures.

What differs from the reference evaluation (COCO's ``loadRes`` of one results file): the
results are split by type, as Detectron2 does, so that mask results are sized by their mask
area (not their box's) and keypoint results by their keypoints' extent; a true object's area
(which sorts it into small, medium or large) is its mask's pixel count when the task predicts
masks, else its box's (COCO's files give the mask's area to the box evaluation too, so the
size figures of a detection task can differ a little from COCO's own on COCO). The object
keypoint similarity uses ``kpt_oks_sigmas`` (see :func:`oks_sigmas`).

Distributed runs: :meth:`COCOMetric.all_reduce` gathers every process's images, ground truth
and predictions (``torch.distributed.all_gather_object``), so each process evaluates the whole
dataset; a sampler that pads the dataset with repeated images counts those twice.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from typing import Any

import torch

from cnnkit.data.datasets.coco_results import to_coco_json
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric

IOU_TYPES = ("bbox", "segm", "keypoints")
# figure: (precision (1) or recall (0), IoU/OKS threshold or None for 0.50:0.95, area range)
BOX_FIGURES = {"AP": (1, None, "all"), "AP50": (1, 0.5, "all"), "AP75": (1, 0.75, "all"),
               "APs": (1, None, "small"), "APm": (1, None, "medium"),
               "APl": (1, None, "large"), "AR": (0, None, "all")}
KEYPOINT_FIGURES = {name: BOX_FIGURES[name] for name in ("AP", "AP50", "AP75", "APm", "APl",
                                                         "AR")}
MAX_DETECTIONS = {"bbox": 100, "segm": 100, "keypoints": 20}  # COCO's, per image
# COCO's per-keypoint OKS constants of its 17 person keypoints (nose, eyes, ears, shoulders,
# elbows, wrists, hips, knees, ankles), as the keypoint evaluation page gives them.
COCO_PERSON_SIGMAS = tuple(v / 10 for v in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62,
                                            .62, 1.07, 1.07, .87, .87, .89, .89))
UNIFORM_OKS_SIGMA = 0.05

Decoder = Callable[[Any, Batch], list[dict[str, Any]]]


def oks_sigmas(num_keypoints: int, sigmas: Sequence[float] | None = None) -> list[float]:
    """The OKS constant of each keypoint: ``sigmas`` when given, else COCO's person sigmas for
    17 keypoints, else :data:`UNIFORM_OKS_SIGMA` (0.05) for every keypoint.

    COCO measures each keypoint's constant from images annotated several times (the spread of
    the annotators' clicks relative to the object's scale) and asks other skeletons to do the
    same; without such data, one value for all keypoints is the usual stand-in. 0.05 lies in
    COCO's range (0.025 for the eyes to 0.107 for the hips), a little stricter than its mean
    (0.067): suited to points defined as precisely as corners and centres. Set
    ``kpt_oks_sigmas`` for a skeleton of your own."""
    if sigmas is None:
        return list(COCO_PERSON_SIGMAS) if num_keypoints == 17 else \
            [UNIFORM_OKS_SIGMA] * num_keypoints
    values = [float(s) for s in sigmas]
    if len(values) != num_keypoints or any(not s > 0 for s in values):
        raise ArgumentError(f"kpt_oks_sigmas must give one positive value per keypoint "
                            f"({num_keypoints}); got {values}")
    return values


def coco_api() -> tuple[Any, Any]:
    """pycocotools' ``COCO`` and ``COCOeval``, imported when first needed."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise CnnkitError("COCO average precision needs pycocotools: pip install "
                          "'cnnkit[coco]'") from None
    return COCO, COCOeval


def _summary(evaluation: Any, precision: int, threshold: float | None, area: str,
             detections: int) -> float:
    """One figure of an accumulated ``COCOeval``, selected as its ``summarize`` does (the mean of
    the precision or recall entries that are not -1), for ``detections`` per image: the
    ``summarize`` of pycocotools reads its AP at 100 detections whatever ``maxDets`` says."""
    import numpy as np

    params = evaluation.params
    values = evaluation.eval["precision" if precision else "recall"]
    if threshold is not None:
        values = values[np.where(threshold == params.iouThrs)[0]]
    area_index = params.areaRngLbl.index(area)
    detections_index = params.maxDets.index(detections)
    values = values[..., area_index, detections_index]
    counted = values[values > -1]
    return float(np.mean(counted)) if counted.size else float("nan")  # nothing to evaluate


class COCOMetric(Metric):
    """COCO AP over a whole dataset (see the module docstring).

    ``class_names``: the names of labels 0..C-1 (0 the background, left out); ``iou_types``:
    some of ``bbox``, ``segm``, ``keypoints``; ``decoder(output, batch)`` and ``truth(batch)``:
    per image, predictions (``boxes``, ``labels``, ``scores``, and ``masks`` H0 x W0 bool or
    ``keypoints`` B x K x 3) and ground truth (the same without scores, plus ``crowd`` and the
    original ``size`` (H0, W0)), all in original image coordinates."""

    def __init__(self, class_names: Sequence[str], iou_types: Sequence[str], *,
                 decoder: Decoder, truth: Callable[[Batch], list[dict[str, Any]]],
                 kpt_oks_sigmas: Sequence[float] | None = None,
                 max_detections: int | None = None) -> None:
        unknown = [t for t in iou_types if t not in IOU_TYPES]
        if unknown or not iou_types:
            raise ArgumentError(f"iou_types must be some of {', '.join(IOU_TYPES)}; got "
                                f"{list(iou_types)}")
        if "keypoints" in iou_types and kpt_oks_sigmas is None:
            raise ArgumentError("keypoint AP needs kpt_oks_sigmas (one per keypoint)")
        if max_detections is not None and (isinstance(max_detections, bool)
                                           or not isinstance(max_detections, int)
                                           or max_detections < 1):
            raise ArgumentError(f"max_detections must be an integer >= 1 (detections per image "
                                f"that count); got {max_detections!r}")
        self.max_detections = max_detections
        self.iou_types, self.decoder, self.truth = tuple(iou_types), decoder, truth
        self.sigmas = None if kpt_oks_sigmas is None else [float(s) for s in kpt_oks_sigmas]
        self.categories = [{"id": label, "name": str(name)}
                           for label, name in enumerate(class_names) if label > 0]
        self.reset()

    def reset(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.truths: list[dict[str, Any]] = []
        self.results: dict[str, list[dict[str, Any]]] = {t: [] for t in self.iou_types}

    def detections_counted(self, iou_type: str) -> int:
        """Detections per image that count (COCO's last ``maxDets``): ``max_detections``, else
        COCO's 100 (20 for keypoints)."""
        return self.max_detections or MAX_DETECTIONS[iou_type]

    def _names(self, iou_type: str) -> dict[str, tuple]:
        """Figure name (without the type) -> what it averages (see :data:`BOX_FIGURES`)."""
        figures = KEYPOINT_FIGURES if iou_type == "keypoints" else BOX_FIGURES
        return {(f"AR{self.detections_counted(iou_type)}" if name == "AR" else name): how
                for name, how in figures.items()}

    @property
    def figure_names(self) -> list[str]:
        return [f"{t}_{name}" for t in self.iou_types for name in self._names(t)]

    def update(self, output: Any, batch: Batch) -> None:
        if not isinstance(output, (list, tuple)):
            raise CnnkitError("COCO AP needs a detector's predictions (a list with a dict per "
                              f"image, evaluation mode); got {type(output).__name__}")
        for prediction, truth in zip(self.decoder(output, batch), self.truth(batch)):
            image_id = len(self.images) + 1
            height, width = (int(v) for v in truth["size"])
            self.images.append({"id": image_id, "height": height, "width": width})
            self._add_truth(image_id, truth)
            self._add_predictions(image_id, prediction)

    def _fields(self, values: dict[str, Any]) -> dict[str, Any]:
        keys = (["masks"] if "segm" in self.iou_types else []) + \
            (["keypoints"] if "keypoints" in self.iou_types else [])
        return {k: values[k] for k in keys}

    def _add_truth(self, image_id: int, truth: dict[str, Any]) -> None:
        boxes = torch.as_tensor(truth["boxes"]).reshape(-1, 4)
        entries = to_coco_json([{"image_id": image_id, "boxes": boxes, "labels": truth["labels"],
                                 "scores": torch.zeros(len(boxes)), **self._fields(truth)}])
        if "masks" in truth:  # COCO's area: the mask's pixels (the box's without masks)
            areas = torch.as_tensor(truth["masks"]).flatten(1).sum(1).double()
        else:
            areas = (boxes[:, 2:] - boxes[:, :2]).double().prod(1)
        crowd = torch.as_tensor(truth["crowd"]).bool().tolist()
        labelled = [0] * len(boxes)
        if "keypoints" in self.iou_types:  # instances with none are ignored by keypoint AP
            labelled = (torch.as_tensor(truth["keypoints"])[..., 2] > 0).sum(1).tolist()
        for entry, area, is_crowd, count in zip(entries, areas.tolist(), crowd, labelled):
            del entry["score"]
            entry.update(id=len(self.truths) + 1, area=float(area), iscrowd=int(is_crowd),
                         num_keypoints=int(count))
            self.truths.append(entry)

    def _add_predictions(self, image_id: int, prediction: dict[str, Any]) -> None:
        entries = to_coco_json([{"image_id": image_id, **{k: prediction[k] for k in (
            "boxes", "labels", "scores")}, **self._fields(prediction)}])
        kept = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}
        for entry in entries:
            for iou_type in self.iou_types:
                self.results[iou_type].append({
                    "image_id": entry["image_id"], "category_id": entry["category_id"],
                    "score": entry["score"], kept[iou_type]: entry[kept[iou_type]]})

    def all_reduce(self) -> None:
        """Gather every process's images, ground truth and predictions (ids renumbered)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self.images, self.truths, self.results))
        self.reset()
        for images, truths, results in parts:
            offset = len(self.images)
            self.images += [{**image, "id": image["id"] + offset} for image in images]
            for truth in truths:
                self.truths.append({**truth, "id": len(self.truths) + 1,
                                    "image_id": truth["image_id"] + offset})
            for iou_type, entries in results.items():
                self.results[iou_type] += [{**e, "image_id": e["image_id"] + offset}
                                           for e in entries]

    def compute(self) -> dict[str, float]:
        figures = dict.fromkeys(self.figure_names, float("nan"))
        if not self.images:
            return figures
        COCO, COCOeval = coco_api()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports on stdout
            truth = COCO()
            truth.dataset = {"images": [dict(i) for i in self.images],
                             "annotations": [dict(a) for a in self.truths],
                             "categories": [dict(c) for c in self.categories]}
            truth.createIndex()
            for iou_type in self.iou_types:
                results = [dict(r) for r in self.results[iou_type]]
                if results:
                    found = truth.loadRes(results)
                else:  # loadRes refuses an empty list: no predictions, nothing found
                    found = COCO()
                    found.dataset = {"images": list(truth.dataset["images"]),
                                     "annotations": [], "categories": self.categories}
                    found.createIndex()
                evaluation = COCOeval(truth, found, iou_type)
                most = self.detections_counted(iou_type)
                evaluation.params.maxDets = [1, 10, most] if iou_type != "keypoints" else [most]
                if iou_type == "keypoints":
                    import numpy as np

                    evaluation.params.kpt_oks_sigmas = np.asarray(self.sigmas)
                evaluation.evaluate()
                evaluation.accumulate()
                figures.update({f"{iou_type}_{name}": _summary(evaluation, *how, most)
                                for name, how in self._names(iou_type).items()})
        return figures
