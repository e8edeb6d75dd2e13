"""Detection operators in plain PyTorch, with the signatures and semantics of ``torchvision.ops``
(and of torchvision's detection ``BoxCoder`` and ``AnchorGenerator``), so code written for those
runs unchanged without torchvision's compiled operators.

Everything is vectorised (no Python loop over regions, bins or pixels), runs on the device and
dtype of its inputs and backpropagates through autograd. Bad arguments raise
:class:`cnnkit.errors.CnnkitError` with one line naming the argument.
"""

from cnnkit.ops.anchors import AnchorGenerator, ImageList
from cnnkit.ops.boxes import (box_area, box_convert, box_iou, clip_boxes_to_image,
                              remove_small_boxes)
from cnnkit.ops.coder import BoxCoder
from cnnkit.ops.nms import batched_nms, nms
from cnnkit.ops.poolers import LevelMapper, MultiScaleRoIAlign
from cnnkit.ops.roi_align import RoIAlign, roi_align
from cnnkit.ops.roi_pool import RoIPool, roi_pool

__all__ = [
    "AnchorGenerator", "BoxCoder", "ImageList", "LevelMapper", "MultiScaleRoIAlign", "RoIAlign",
    "RoIPool", "batched_nms", "box_area", "box_convert", "box_iou", "clip_boxes_to_image",
    "nms", "remove_small_boxes", "roi_align", "roi_pool",
]
