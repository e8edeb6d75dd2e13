"""Task-level pre- and post-processing shared by the networks: e.g. keypoint heatmap decoding.

The task objects (loss, metrics, decoding) are imported on first use (``cnnkit.tasks.build_task``
etc.), so that :mod:`cnnkit.data` and :mod:`cnnkit.models` can import
:mod:`cnnkit.tasks.keypoint_decode` without importing the tasks, which import them.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Metric": "base", "Task": "base", "main_output": "base",
    "ClassificationMetric": "classification", "ClassificationTask": "classification",
    "KeypointHeatmapTask": "keypoints", "KeypointMetric": "keypoints",
    "KeypointRegressionTask": "keypoints",
    "LocalizationMetric": "localization", "LocalizationTask": "localization",
    "SegmentationMetric": "segmentation", "SegmentationTask": "segmentation",
    "boxes_to_original": "original_coordinates", "to_original": "original_coordinates",
    "TASKS": "registry", "build_task": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cnnkit.tasks' has no attribute {name!r}")
    return getattr(import_module(f"cnnkit.tasks.{_EXPORTS[name]}"), name)
