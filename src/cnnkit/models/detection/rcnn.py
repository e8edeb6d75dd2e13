"""Faster R-CNN, Mask R-CNN and Keypoint R-CNN: transform -> backbone -> RPN -> RoI heads.

- Ren, He, Girshick & Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region
  Proposal Networks", NIPS 2015: a region proposal network and a Fast R-CNN head share the
  backbone's features;
- Lin, Dollar, Girshick, He, Hariharan & Belongie, "Feature Pyramid Networks for Object
  Detection", CVPR 2017: the features are a pyramid P2..P6, proposals and RoIs use the levels
  that suit their sizes, the box head is two fully connected layers;
- He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017: RoIAlign, plus a mask branch (Mask
  R-CNN) or a keypoint branch (Keypoint R-CNN) on the positive RoIs.

Structure, defaults, names and parameter shapes are torchvision's (``GeneralizedRCNN``), so its
COCO checkpoints load. What differs from the papers is listed in the modules of the parts; the
differences from torchvision: inputs and outputs are in cnnkit's frame (pixel centres at
integers; internally everything runs in the reference frame, see
:mod:`~cnnkit.models.detection.transform`), masks are pasted exactly by default
(``mask_paste="reference"`` for torchvision's method), bad inputs raise ``ArgumentError``.

Training mode: ``model(images, targets)`` -> dict of losses. Evaluation mode: ``model(images)``
-> one dict per image: ``boxes`` [N, 4], ``labels`` [N], ``scores`` [N], and ``masks``
[N, 1, H, W] (soft, in [0, 1]; threshold at 0.5) or ``keypoints`` [N, K, 3] (x, y, 1) and
``keypoints_scores`` [N, K], at the original image size. ``images``: a list of C x H x W float
tensors in [0, 1] (sizes may differ) or a batch tensor N x C x H x W. A target: ``boxes``
Tensor[N, 4] (x1, y1, x2, y2, x2 > x1, y2 > y1), ``labels`` int64 in 1..num_classes-1 (0 is
background), ``masks`` [N, H, W] uint8/bool (Mask R-CNN), ``keypoints`` [N, K, 3] (x, y,
visibility; visibility 0 = not labelled) (Keypoint R-CNN).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.models.detection._legacy import remap_legacy_keys
from cnnkit.models.detection.keypoints import KeypointRCNNHeads, KeypointRCNNPredictor
from cnnkit.models.detection.masks import (
    PASTE_METHODS,
    MaskRCNNHeads,
    MaskRCNNPredictor,
)
from cnnkit.models.detection.roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from cnnkit.models.detection.rpn import RegionProposalNetwork, RPNHead
from cnnkit.models.detection.transform import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RCNNTransform,
    from_reference_frame,
    to_reference_frame,
)
from cnnkit.ops import AnchorGenerator, MultiScaleRoIAlign

ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))
ROI_LEVELS = ["0", "1", "2", "3"]


def _image_list(images) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        images = list(images.unbind(0))
    if not isinstance(images, (list, tuple)) or not images or any(
            not isinstance(i, torch.Tensor) or i.dim() != 3 or not i.is_floating_point()
            or i.shape[-1] < 1 or i.shape[-2] < 1 for i in images):
        raise ArgumentError("images must be a non-empty list of float tensors C x H x W in "
                            "[0, 1] or a batch tensor N x C x H x W")
    return list(images)


class GeneralizedRCNN(nn.Module):
    """``transform``, ``backbone`` (ordered dict of maps, ``out_channels`` each), ``rpn``,
    ``roi_heads``; see the module docstring for ``forward``."""

    # which proposals survive (and so what the heads cost) depends on the pixel values: the
    # analyzer runs a detector on real tensors, never on the meta device
    analysis_needs_values = True
    # a traced graph would freeze the number of proposals and detections of the example input
    onnx_refusal = ("its proposals, NMS and per-detection heads depend on the input's values, "
                    "which the traced exporter freezes at one example; use the PyTorch model "
                    "(cnnkit.load_run(...).predict) to serve it")

    def __init__(self, backbone: nn.Module, rpn: nn.Module, roi_heads: RoIHeads,
                 transform: RCNNTransform, num_classes: int) -> None:
        super().__init__()
        self.transform, self.backbone = transform, backbone
        self.rpn, self.roi_heads = rpn, roi_heads
        self.num_classes = num_classes

    def remap_checkpoint_keys(self, state: dict) -> dict:
        """Rename the older keys of the reference's published checkpoints (cnnkit's
        :func:`~cnnkit.models.weights.load_weights` calls it; ``load_state_dict`` renames them
        by itself)."""
        return remap_legacy_keys(self, state)

    def check_target(self, i: int, target, image: torch.Tensor) -> dict:
        where = f"targets[{i}]"
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            raise ArgumentError(f"{where} must be a dict with 'boxes' and 'labels'")
        boxes, labels = target["boxes"], target["labels"]
        if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4 \
                or not boxes.is_floating_point():
            raise ArgumentError(f"{where}['boxes'] must be a float Tensor[N, 4] (x1, y1, x2, y2)")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 \
                or tuple(labels.shape) != (boxes.shape[0],):
            raise ArgumentError(f"{where}['labels'] must be an int64 Tensor[{boxes.shape[0]}]")
        if labels.numel() and not bool(((labels >= 1) & (labels < self.num_classes)).all()):
            raise ArgumentError(f"{where}['labels'] must lie in 1..{self.num_classes - 1} "
                                f"(0 is background); got {labels.tolist()}")
        bad = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if bool(bad.any()):
            raise ArgumentError(f"{where}['boxes'] must have x2 > x1 and y2 > y1; box "
                                f"{int(bad.nonzero()[0])} is {boxes[bad][0].tolist()}")
        self.check_extra(where, target, image, boxes.shape[0])
        return to_reference_frame({k: v.to(image.device) for k, v in target.items()
                                   if isinstance(v, torch.Tensor)})

    def check_extra(self, where: str, target: dict, image: torch.Tensor, count: int) -> None:
        """Checks of the branch-specific target entries (masks, keypoints)."""

    def forward(self, images, targets=None):
        images = _image_list(images)
        if self.training:
            if not isinstance(targets, (list, tuple)) or len(targets) != len(images):
                raise ArgumentError(f"targets must be a list of {len(images)} dicts (one per "
                                    "image) in training mode")
            targets = [self.check_target(i, t, img)
                       for i, (t, img) in enumerate(zip(targets, images))]
        else:
            targets = None
        original_sizes = [tuple(int(v) for v in image.shape[-2:]) for image in images]
        image_list, targets = self.transform(images, targets)
        features = self.backbone(image_list.tensors)
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals,
                                                     image_list.image_sizes, targets)
        if self.training:
            return {**proposal_losses, **detector_losses}
        detections = self.transform.postprocess(detections, image_list.image_sizes,
                                                original_sizes)
        return [from_reference_frame(d) for d in detections]


class FasterRCNN(GeneralizedRCNN):
    """Faster R-CNN with an FPN on ``backbone`` (e.g. a
    :class:`~cnnkit.models.detection.backbone.ResNetFPN`). Options as torchvision's
    ``FasterRCNN`` (``rpn_*``, ``box_*``, ``min_size``, ``max_size``, ...), plus
    ``representation_size`` (box head width), ``anchor_sizes``/``aspect_ratios`` and
    ``mask_paste``."""

    def __init__(self, backbone: nn.Module, num_classes: int = 91, *, min_size=800,
                 max_size: int = 1333, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
                 anchor_sizes=ANCHOR_SIZES, aspect_ratios=(0.5, 1.0, 2.0),
                 rpn_pre_nms_top_n_train: int = 2000, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_train: int = 2000, rpn_post_nms_top_n_test: int = 1000,
                 rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7,
                 rpn_bg_iou_thresh: float = 0.3, rpn_batch_size_per_image: int = 256,
                 rpn_positive_fraction: float = 0.5, rpn_score_thresh: float = 0.0,
                 representation_size: int = 1024, box_score_thresh: float = 0.05,
                 box_nms_thresh: float = 0.5, box_detections_per_img: int = 100,
                 box_fg_iou_thresh: float = 0.5, box_bg_iou_thresh: float = 0.5,
                 box_batch_size_per_image: int = 512, box_positive_fraction: float = 0.25,
                 bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), mask_paste: str = "exact") -> None:
        require_positive(num_classes=num_classes, representation_size=representation_size,
                         rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
                         rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
                         rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
                         rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
                         box_detections_per_img=box_detections_per_img)
        if num_classes < 2:
            raise ArgumentError(f"num_classes counts the background: it must be >= 2; "
                                f"got {num_classes}")
        if mask_paste not in PASTE_METHODS:
            raise ArgumentError(f"mask_paste must be one of {', '.join(PASTE_METHODS)}; "
                                f"got {mask_paste!r}")
        channels = backbone.out_channels
        anchors = AnchorGenerator(anchor_sizes, aspect_ratios)
        rpn = RegionProposalNetwork(
            anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=rpn_fg_iou_thresh, bg_iou_thresh=rpn_bg_iou_thresh,
            batch_size_per_image=rpn_batch_size_per_image,
            positive_fraction=rpn_positive_fraction,
            pre_nms_top_n={"training": rpn_pre_nms_top_n_train,
                           "testing": rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": rpn_post_nms_top_n_train,
                            "testing": rpn_post_nms_top_n_test},
            nms_thresh=rpn_nms_thresh, score_thresh=rpn_score_thresh)
        pool = MultiScaleRoIAlign(ROI_LEVELS, 7, 2)
        roi_heads = RoIHeads(
            pool, TwoMLPHead(channels * 7 * 7, representation_size),
            FastRCNNPredictor(representation_size, num_classes),
            fg_iou_thresh=box_fg_iou_thresh, bg_iou_thresh=box_bg_iou_thresh,
            batch_size_per_image=box_batch_size_per_image,
            positive_fraction=box_positive_fraction, bbox_reg_weights=bbox_reg_weights,
            score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
            detections_per_img=box_detections_per_img)
        transform = RCNNTransform(min_size, max_size, image_mean, image_std,
                                  mask_paste=mask_paste)
        super().__init__(backbone, rpn, roi_heads, transform, num_classes)


class MaskRCNN(FasterRCNN):
    """Faster R-CNN + the mask branch: ``mask_layers`` (3x3 convolutions, 4 x 256),
    ``mask_dim_reduced`` (transposed convolution width, 256); other options as
    :class:`FasterRCNN`."""

    def __init__(self, backbone: nn.Module, num_classes: int = 91, *,
                 mask_layers=(256, 256, 256, 256), mask_dilation: int = 1,
                 mask_dim_reduced: int = 256, **options) -> None:
        super().__init__(backbone, num_classes, **options)
        layers = tuple(mask_layers)
        require_positive(mask_dim_reduced=mask_dim_reduced, mask_dilation=mask_dilation,
                         **{f"mask_layers[{i}]": w for i, w in enumerate(layers)})
        if not layers:
            raise ArgumentError("mask_layers must list at least one width")
        self.roi_heads.mask_roi_pool = MultiScaleRoIAlign(ROI_LEVELS, 14, 2)
        self.roi_heads.mask_head = MaskRCNNHeads(self.backbone.out_channels, layers, mask_dilation)
        self.roi_heads.mask_predictor = MaskRCNNPredictor(layers[-1], mask_dim_reduced,
                                                          num_classes)

    def check_extra(self, where: str, target: dict, image: torch.Tensor, count: int) -> None:
        masks = target.get("masks")
        size = tuple(image.shape[-2:])
        if not isinstance(masks, torch.Tensor) or tuple(masks.shape) != (count, *size) \
                or masks.dtype not in (torch.uint8, torch.bool):
            raise ArgumentError(f"{where}['masks'] must be a uint8/bool Tensor[{count}, "
                                f"{size[0]}, {size[1]}] (one mask per box, image size)")


class KeypointRCNN(FasterRCNN):
    """Faster R-CNN + the keypoint branch: ``num_keypoints`` (17), ``keypoint_layers`` (3x3
    convolutions, 8 x 512); ``min_size`` defaults to the reference's multi-scale training sizes
    (640..800, 800 at evaluation); other options as :class:`FasterRCNN`."""

    def __init__(self, backbone: nn.Module, num_classes: int = 2, *, num_keypoints: int = 17,
                 keypoint_layers=(512,) * 8, min_size=(640, 672, 704, 736, 768, 800),
                 **options) -> None:
        super().__init__(backbone, num_classes, min_size=min_size, **options)
        layers = tuple(keypoint_layers)
        require_positive(num_keypoints=num_keypoints,
                         **{f"keypoint_layers[{i}]": w for i, w in enumerate(layers)})
        if not layers:
            raise ArgumentError("keypoint_layers must list at least one width")
        self.num_keypoints = num_keypoints
        self.roi_heads.keypoint_roi_pool = MultiScaleRoIAlign(ROI_LEVELS, 14, 2)
        self.roi_heads.keypoint_head = KeypointRCNNHeads(self.backbone.out_channels, layers)
        self.roi_heads.keypoint_predictor = KeypointRCNNPredictor(layers[-1], num_keypoints)

    def check_extra(self, where: str, target: dict, image: torch.Tensor, count: int) -> None:
        kp = target.get("keypoints")
        if not isinstance(kp, torch.Tensor) or tuple(kp.shape) != (
                count, self.num_keypoints, 3) or not kp.is_floating_point():
            raise ArgumentError(f"{where}['keypoints'] must be a float Tensor[{count}, "
                                f"{self.num_keypoints}, 3] (x, y, visibility)")
