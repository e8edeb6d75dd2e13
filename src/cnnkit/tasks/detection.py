"""The registered detection tasks: detection (Faster R-CNN), instance segmentation (Mask R-CNN)
and instance keypoints (Keypoint R-CNN), after He, Gkioxari, Dollar & Girshick, "Mask R-CNN",
ICCV 2017, measured with COCO's AP (Lin et al., ECCV 2014). What they share (training targets,
losses, the COCO metric on the original images, decoding, pictures) is
:class:`~cnnkit.tasks.instance_task.InstanceTask`; each adds what its model predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.geometry import Skeleton, flip_permutation
from cnnkit.tasks.coco_metric import oks_sigmas
from cnnkit.tasks.instance_task import InstanceTask
from cnnkit.tasks.registry import register_task


@register_task
class DetectionTask(InstanceTask):
    """Boxes, classes and scores (Faster R-CNN); primary metric ``bbox_AP``."""

    kind = "detection"

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *,
                 draw_threshold: float = 0.5, max_detections: int | None = None) -> None:
        super().__init__(num_classes, class_names, draw_threshold=draw_threshold,
                         max_detections=max_detections)


@register_task
class InstanceSegmentationTask(InstanceTask):
    """Detections with a mask each (Mask R-CNN), cut at ``mask_threshold``; primary metric
    ``segm_AP``, ``bbox_*`` measured too."""

    kind = "instance-segmentation"
    primary_metric = "segm_AP"
    iou_types = ("bbox", "segm")
    extra = ("masks",)

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *,
                 mask_threshold: float = 0.5, draw_threshold: float = 0.5,
                 max_detections: int | None = None) -> None:
        super().__init__(num_classes, class_names, draw_threshold=draw_threshold,
                         mask_threshold=mask_threshold, max_detections=max_detections)


@register_task
class InstanceKeypointTask(InstanceTask):
    """Detections with ``num_keypoints`` keypoints each (Keypoint R-CNN); primary metric
    ``keypoints_AP`` (object keypoint similarity with ``kpt_oks_sigmas``, see
    :func:`~cnnkit.tasks.coco_metric.oks_sigmas`), ``bbox_*`` measured too. ``flip_pairs``
    swap left/right identities back through flips; ``limbs`` (index pairs) are drawn as lines
    (without them, each left/right pair is joined)."""

    kind = "instance-keypoints"
    primary_metric = "keypoints_AP"
    iou_types = ("bbox", "keypoints")
    extra = ("keypoints",)

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *,
                 num_keypoints: int = 17, keypoint_names: Sequence[str] | None = None,
                 flip_pairs: Sequence[Sequence[int]] = (),
                 kpt_oks_sigmas: Sequence[float] | None = None,
                 limbs: Sequence[Sequence[int]] = (), draw_threshold: float = 0.5,
                 max_detections: int | None = None) -> None:
        super().__init__(num_classes, class_names, draw_threshold=draw_threshold,
                         max_detections=max_detections)
        if not isinstance(num_keypoints, int) or num_keypoints < 1:
            raise ArgumentError(f"num_keypoints must be >= 1; got {num_keypoints}")
        if keypoint_names is not None and len(keypoint_names) != num_keypoints:
            raise ArgumentError(f"keypoint_names has {len(keypoint_names)} names for "
                                f"{num_keypoints} keypoints")
        self.num_keypoints = num_keypoints
        pairs = tuple((int(a), int(b)) for a, b in flip_pairs)
        names = tuple(keypoint_names or (str(k) for k in range(num_keypoints)))
        self.skeleton = Skeleton(names, pairs)
        self.permutation = flip_permutation(num_keypoints, pairs) if pairs else None
        self.limbs = tuple((int(a), int(b)) for a, b in limbs)
        bad = [pair for pair in self.limbs if not all(0 <= k < num_keypoints for k in pair)]
        if bad:
            raise ArgumentError(f"limbs {bad} name keypoints outside 0..{num_keypoints - 1}")
        self.kpt_oks_sigmas = oks_sigmas(num_keypoints, kpt_oks_sigmas)

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        options = super().options_from(labels, model)
        count = getattr(model, "num_keypoints", None)
        if count is not None:
            options["num_keypoints"] = int(count)
        skeleton = labels.skeleton
        if skeleton is not None:
            if count is not None and len(skeleton.names) != count:
                raise CnnkitError(f"the model predicts {count} keypoints but the data has "
                                  f"{len(skeleton.names)} ({', '.join(skeleton.names)}); set "
                                  f"model.options.num_keypoints={len(skeleton.names)}")
            options["num_keypoints"] = len(skeleton.names)
            options["keypoint_names"] = list(skeleton.names)
            options["flip_pairs"] = [list(pair) for pair in skeleton.flip_pairs]
        return options
