"""The vocabularies shared across floors: task kinds (what a network predicts and a task trains
and measures) and mixed-precision modes.

One list, used by the model registry (which task each network serves), the run configuration
(``task.kind``), the command line (``cnnkit models --task``) and the task registry
(:func:`cnnkit.tasks.register_task`, which refuses a kind that is not listed here and whose
tests check that every kind listed here has its task). A new task kind is a line here plus its
:class:`~cnnkit.tasks.Task` class; ``docs/architecture.md`` walks through it.
"""

from __future__ import annotations

from cnnkit.errors import ArgumentError

TASK_KINDS: dict[str, str] = {
    "classification": "one class per image",
    "localization": "one class and one box per image",
    "segmentation": "one class per pixel",
    "keypoints-heatmap": "K keypoints from one heatmap each",
    "keypoints-regression": "K keypoints regressed as normalised coordinates",
    "depth": "one depth (metres) per pixel",
    "normals": "one unit surface normal per pixel",
    "colorization": "the ab colour of every pixel from its lightness L",
    "multitask": "several dense predictions from one network (a dict of outputs)",
    "detection": "any number of objects per image, each a class, a box and a score",
    "instance-segmentation": "detected objects, each with a class, a box, a score and a mask",
    "instance-keypoints": "detected objects, each with a box, a score and K keypoints",
}


def check_task_kind(kind: str, where: str = "task kind") -> str:
    """``kind`` if it is a task kind, else one :class:`ArgumentError` line listing them."""
    if kind not in TASK_KINDS:
        raise ArgumentError(f"{where}: unknown task kind {kind!r}; choose one of: "
                            f"{', '.join(TASK_KINDS)}")
    return kind


AMP_MODES = ("off", "bf16", "fp16", "auto")  # train.amp: mixed precision (cnnkit.engine.devices)
