"""``build_task(kind, **options)``: the :class:`~cnnkit.tasks.base.Task` for a kind of prediction.

Kinds and their required option: ``"classification"`` and ``"localization"`` (``num_classes``),
``"segmentation"`` (``num_classes``), ``"keypoints-regression"`` and ``"keypoints-heatmap"``
(``num_keypoints``); every other option goes to the task's constructor.
"""

from __future__ import annotations

from typing import Any

from cnnkit.errors import CnnkitError
from cnnkit.tasks.base import Task
from cnnkit.tasks.classification import ClassificationTask
from cnnkit.tasks.keypoints import KeypointHeatmapTask, KeypointRegressionTask
from cnnkit.tasks.localization import LocalizationTask
from cnnkit.tasks.segmentation import SegmentationTask

TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "localization": LocalizationTask,
    "segmentation": SegmentationTask,
    "keypoints-regression": KeypointRegressionTask,
    "keypoints-heatmap": KeypointHeatmapTask,
}


def build_task(kind: str, **options: Any) -> Task:
    """A new task of ``kind`` built with ``options`` (see the module docstring)."""
    if kind not in TASKS:
        raise CnnkitError(f"unknown task kind {kind!r}; choose one of: {', '.join(TASKS)}")
    try:
        return TASKS[kind](**options)
    except TypeError as error:  # a missing or unknown option
        raise CnnkitError(f"task {kind!r}: {error}") from None
