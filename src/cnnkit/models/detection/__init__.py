"""Two-stage detectors: Faster R-CNN, Mask R-CNN and Keypoint R-CNN on a ResNet-FPN backbone.

Ren et al., "Faster R-CNN", NIPS 2015; Lin et al., "Feature Pyramid Networks for Object
Detection", CVPR 2017; He et al., "Mask R-CNN", ICCV 2017. The reference variants reproduce
torchvision's models (structure, parameter counts, ``state_dict`` keys), their inputs and outputs
use cnnkit's pixel-centre frame; see :mod:`~cnnkit.models.detection.rcnn` for the interface.

The analyzer (:func:`cnnkit.analysis.analyze`) runs these models on ``device="cpu"`` (or
"cuda"): their forward has data-dependent control flow (top-k proposals, NMS, thresholds, boxes
pooled per level), which the meta device cannot run, since it has no values.
"""

from cnnkit.models.detection.backbone import (
    FeaturePyramidNetwork,
    FrozenBatchNorm2d,
    ResNetFPN,
    freeze_batch_norms,
)
from cnnkit.models.detection.keypoints import (
    heatmaps_to_keypoints,
    keypoints_to_heatmap,
)
from cnnkit.models.detection.masks import paste_masks_in_image
from cnnkit.models.detection.rcnn import (
    FasterRCNN,
    GeneralizedRCNN,
    KeypointRCNN,
    MaskRCNN,
)
from cnnkit.models.detection.roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from cnnkit.models.detection.rpn import RegionProposalNetwork, RPNHead
from cnnkit.models.detection.transform import (
    RCNNTransform,
    from_reference_frame,
    to_reference_frame,
)
from cnnkit.models.detection.zoo import (
    fasterrcnn,
    keypointrcnn,
    load_reference_checkpoint,
    maskrcnn,
)

__all__ = [
    "FastRCNNPredictor", "FasterRCNN", "FeaturePyramidNetwork", "FrozenBatchNorm2d",
    "GeneralizedRCNN", "KeypointRCNN", "MaskRCNN", "RCNNTransform", "RPNHead",
    "RegionProposalNetwork", "ResNetFPN", "RoIHeads", "TwoMLPHead", "fasterrcnn",
    "freeze_batch_norms", "from_reference_frame", "heatmaps_to_keypoints", "keypointrcnn",
    "keypoints_to_heatmap", "load_reference_checkpoint", "maskrcnn", "paste_masks_in_image",
    "to_reference_frame",
]
