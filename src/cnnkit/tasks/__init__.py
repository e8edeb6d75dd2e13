"""Tasks: what each kind of prediction owns (loss, metrics, decoding, drawing, writing, flip TTA).

Importing this package registers every task kind (:data:`cnnkit.kinds.TASK_KINDS`); a new kind
is one module here with its :class:`Task` subclass decorated by :func:`register_task`, imported
below.
"""

from cnnkit.tasks.base import Metric, Task, main_output
from cnnkit.tasks.classification import ClassificationMetric, ClassificationTask
from cnnkit.tasks.coco_metric import COCOMetric, oks_sigmas
from cnnkit.tasks.colorization import ColorizationTask
from cnnkit.tasks.colorization_metric import ColorizationMetric, ab_prior
from cnnkit.tasks.depth import DepthMetric, DepthTask
from cnnkit.tasks.detection import (
    DetectionTask,
    InstanceKeypointTask,
    InstanceSegmentationTask,
)
from cnnkit.tasks.instance_task import InstanceTask
from cnnkit.tasks.keypoints import (
    KeypointHeatmapTask,
    KeypointMetric,
    KeypointRegressionTask,
)
from cnnkit.tasks.localization import LocalizationMetric, LocalizationTask
from cnnkit.tasks.multitask import MultiTask, MultiTaskMetric
from cnnkit.tasks.normals import NormalMetric, NormalsTask
from cnnkit.tasks.original_coordinates import (
    boxes_to_original,
    maps_to_original,
    to_original,
)
from cnnkit.tasks.registry import TASKS, build_task, register_task, task_class
from cnnkit.tasks.segmentation import SegmentationMetric, SegmentationTask

__all__ = [
    "TASKS",
    "ClassificationMetric",
    "ClassificationTask",
    "KeypointHeatmapTask",
    "KeypointMetric",
    "KeypointRegressionTask",
    "LocalizationMetric",
    "LocalizationTask",
    "Metric",
    "SegmentationMetric",
    "SegmentationTask",
    "Task",
    "boxes_to_original",
    "build_task",
    "main_output",
    "maps_to_original",
    "register_task",
    "task_class",
    "to_original",
]
__all__ += ["ColorizationMetric", "ColorizationTask", "DepthMetric", "DepthTask", "MultiTask",
            "MultiTaskMetric", "NormalMetric", "NormalsTask", "ab_prior"]
__all__ += ["COCOMetric", "DetectionTask", "InstanceKeypointTask", "InstanceSegmentationTask",
            "InstanceTask", "oks_sigmas"]
