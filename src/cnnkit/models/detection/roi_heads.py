"""The second stage: RoI features -> classes and boxes (Fast R-CNN), masks, keypoints.

Ren et al., "Faster R-CNN", NIPS 2015 (the Fast R-CNN head of Girshick, ICCV 2015): each
proposal is pooled from the feature maps and classified into C classes (0 = background) with a
class-specific box refinement; He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017, adds
branches on the positive proposals (:mod:`~cnnkit.models.detection.masks`,
:mod:`~cnnkit.models.detection.keypoints`).

As torchvision (and the FPN paper's head, Lin et al., CVPR 2017): features are pooled with
:class:`cnnkit.ops.MultiScaleRoIAlign` (7x7, sampling ratio 2, the level chosen by box size);
``TwoMLPHead`` is two fully connected layers (``fc6``, ``fc7``, 1024 wide, ReLU);
``FastRCNNPredictor`` gives ``cls_score`` and ``bbox_pred`` (4 offsets per class, box coder
weights 10, 10, 5, 5). Training: the ground-truth boxes join the proposals, proposals are matched
at IoU 0.5 (below is background, no ignored band) and 512 per image are sampled with at most a
quarter positive; losses are the cross-entropy of the classes and smooth L1 (beta 1/9) of the
true class's offsets on the positives, summed and divided by the number of sampled proposals.
Inference: softmax, per-class boxes clipped to the image, scores above 0.05, boxes wider and
taller than 0.01, NMS 0.5 within each class, the 100 best per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models.detection import keypoints as K
from cnnkit.models.detection import masks as M
from cnnkit.models.detection.matching import (
    BELOW_LOW_THRESHOLD,
    BETWEEN_THRESHOLDS,
    BalancedSampler,
    Matcher,
    in_float32,
)
from cnnkit.ops import (
    BoxCoder,
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    remove_small_boxes,
)


class TwoMLPHead(nn.Module):
    """Flatten, then ``fc6`` and ``fc7`` with ReLU."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class FastRCNNPredictor(nn.Module):
    """``cls_score`` (C logits) and ``bbox_pred`` (4 C offsets) from the head's vector."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


def fastrcnn_loss(class_logits, box_regression, labels, regression_targets):
    labels, regression_targets = torch.cat(labels), torch.cat(regression_targets)
    classification = F.cross_entropy(class_logits, labels)
    positive = torch.where(labels > 0)[0]
    per_class = box_regression.reshape(class_logits.shape[0], -1, 4)
    box_loss = F.smooth_l1_loss(per_class[positive, labels[positive]],
                                regression_targets[positive], beta=1 / 9, reduction="sum")
    return classification, box_loss / max(1, labels.numel())


class RoIHeads(nn.Module):
    """Box branch (``box_roi_pool``, ``box_head``, ``box_predictor``) plus the optional mask
    (``mask_*``) and keypoint (``keypoint_*``) branches; ``forward(features, proposals,
    image_sizes, targets=None) -> (detections per image, losses)``."""

    def __init__(self, box_roi_pool, box_head, box_predictor, *, fg_iou_thresh=0.5,
                 bg_iou_thresh=0.5, batch_size_per_image=512, positive_fraction=0.25,
                 bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), score_thresh=0.05, nms_thresh=0.5,
                 detections_per_img=100) -> None:
        super().__init__()
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh)
        self.fg_bg_sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img = detections_per_img
        self.mask_roi_pool = self.mask_head = self.mask_predictor = None
        self.keypoint_roi_pool = self.keypoint_head = self.keypoint_predictor = None

    def select_training_samples(self, proposals, targets):
        gt_boxes = [t["boxes"].to(proposals[0].dtype) for t in targets]
        proposals = [torch.cat((p, g)) for p, g in zip(proposals, gt_boxes)]
        matched_idxs, labels = [], []
        for boxes, gt, target in zip(proposals, gt_boxes, targets):
            if gt.numel() == 0:
                matched_idxs.append(boxes.new_zeros(boxes.shape[0], dtype=torch.int64))
                labels.append(boxes.new_zeros(boxes.shape[0], dtype=torch.int64))
                continue
            idx = self.proposal_matcher(box_iou(gt, boxes))
            label = target["labels"][idx.clamp(min=0)].to(torch.int64)
            label = torch.where(idx == BELOW_LOW_THRESHOLD, torch.zeros_like(label), label)
            labels.append(torch.where(idx == BETWEEN_THRESHOLDS, torch.full_like(label, -1),
                                      label))
            matched_idxs.append(idx.clamp(min=0))
        matched_boxes = []
        for i, (pos, neg) in enumerate(self.fg_bg_sampler(labels)):
            keep = torch.where(pos | neg)[0]
            proposals[i], labels[i] = proposals[i][keep], labels[i][keep]
            matched_idxs[i] = matched_idxs[i][keep]
            gt = gt_boxes[i] if gt_boxes[i].numel() else proposals[i].new_zeros(1, 4)
            matched_boxes.append(gt[matched_idxs[i]])
        regression_targets = self.box_coder.encode(matched_boxes, proposals)
        return proposals, matched_idxs, labels, regression_targets

    def postprocess_detections(self, class_logits, box_regression, proposals, image_sizes):
        num_classes = class_logits.shape[-1]
        counts = [p.shape[0] for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals)
        pred_scores = F.softmax(class_logits, -1)
        results = []
        for boxes, scores, size in zip(pred_boxes.split(counts), pred_scores.split(counts),
                                       image_sizes):
            boxes = clip_boxes_to_image(boxes, size)
            labels = torch.arange(num_classes, device=boxes.device).view(1, -1).expand_as(scores)
            boxes, scores = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1)
            labels = labels[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
        return results

    def forward(self, features, proposals, image_sizes, targets=None):
        if self.training:
            proposals, matched_idxs, labels, regression_targets = \
                self.select_training_samples(proposals, targets)
        pooled = self.box_roi_pool(features, proposals, image_sizes)
        class_logits, box_regression = in_float32(*self.box_predictor(self.box_head(pooled)))
        losses, result = {}, []
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels,
                                                          regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            positive = [torch.where(label > 0)[0] for label in labels]
            branch_boxes = [p[i] for p, i in zip(proposals, positive)]
            branch_idxs = [m[i] for m, i in zip(matched_idxs, positive)]
        else:
            result = self.postprocess_detections(class_logits, box_regression, proposals,
                                                 image_sizes)
            branch_boxes = [r["boxes"] for r in result]
        if self.mask_predictor is not None:
            logits, = in_float32(self.mask_predictor(self.mask_head(
                self.mask_roi_pool(features, branch_boxes, image_sizes))))
            if self.training:
                losses["loss_mask"] = M.maskrcnn_loss(
                    logits, branch_boxes, [t["masks"] for t in targets],
                    [t["labels"] for t in targets], branch_idxs)
            else:
                for probs, r in zip(M.maskrcnn_inference(logits, [r["labels"] for r in result]),
                                    result):
                    r["masks"] = probs
        if self.keypoint_predictor is not None:
            logits, = in_float32(self.keypoint_predictor(self.keypoint_head(
                self.keypoint_roi_pool(features, branch_boxes, image_sizes))))
            if self.training:
                losses["loss_keypoint"] = K.keypointrcnn_loss(
                    logits, branch_boxes, [t["keypoints"] for t in targets], branch_idxs)
            else:
                counts = [b.shape[0] for b in branch_boxes]
                for kp_logits, boxes, r in zip(logits.split(counts), branch_boxes, result):
                    r["keypoints"], r["keypoints_scores"] = K.heatmaps_to_keypoints(kp_logits,
                                                                                    boxes)
        return result, losses
