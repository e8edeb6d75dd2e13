"""The region proposal network of Faster R-CNN, over the levels of a feature pyramid.

Ren, He, Girshick & Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal
Networks", NIPS 2015, section 3.1: a 3x3 convolution + ReLU slides over each map, and two 1x1
convolutions give, per position and anchor, an objectness logit and four box offsets (the
parametrisation of :class:`cnnkit.ops.BoxCoder`, weights 1). With an FPN (Lin et al., CVPR
2017) the head is shared by all levels and each level has anchors of one size (32..512 on
P2..P6) and three aspect ratios.

What differs from the paper (as torchvision, whose behaviour this reproduces): one sigmoid
logit per anchor instead of a two-way softmax; proposals are the ``pre_nms_top_n`` best anchors
of every level (training and testing have their own numbers), decoded, clipped to the image,
stripped of boxes under ``min_size`` (1e-3) and of scores under ``score_thresh``, then NMS (0.7)
within each level and the ``post_nms_top_n`` best per image; losses: binary cross-entropy on the
sampled anchors (256 per image, half positive at most) and smooth L1 (beta 1/9) on the positives,
summed and divided by the number of sampled anchors. No gradient flows through the proposals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models.detection._legacy import LegacyKeys
from cnnkit.models.detection.matching import (
    BELOW_LOW_THRESHOLD,
    BETWEEN_THRESHOLDS,
    BalancedSampler,
    Matcher,
    in_float32,
)
from cnnkit.ops import (
    AnchorGenerator,
    BoxCoder,
    ImageList,
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    remove_small_boxes,
)


class RPNHead(LegacyKeys, nn.Module):
    """Shared 3x3 convolution + ReLU (``conv.0.0``), then ``cls_logits`` (one logit per anchor)
    and ``bbox_pred`` (four offsets per anchor), all initialised N(0, 0.01) with zero biases."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(inplace=True)))
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        if not any(p.is_meta for p in self.parameters()):
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=0.01)
                    nn.init.zeros_(m.bias)

    def legacy_keys(self) -> dict[str, str]:
        return {"conv.weight": "conv.0.0.weight", "conv.bias": "conv.0.0.bias"}

    def forward(self, maps: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        hidden = [self.conv(m) for m in maps]
        return [self.cls_logits(h) for h in hidden], [self.bbox_pred(h) for h in hidden]


def flatten_levels(per_level: list[torch.Tensor], channels: int) -> torch.Tensor:
    """Maps ``[N, A * channels, H, W]`` -> one ``[N, sum H W A, channels]`` tensor, ordered
    position-major then anchor, as the anchors."""
    out = []
    for t in per_level:
        n, _, h, w = t.shape
        out.append(t.view(n, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, channels))
    return torch.cat(out, dim=1)


class RegionProposalNetwork(nn.Module):
    """``forward(images, features, targets=None) -> (proposals per image, losses)``;
    ``images`` an :class:`~cnnkit.ops.ImageList`, ``features`` the ordered dict of maps,
    ``targets`` (training) dicts with ``boxes`` in the reference frame of the resized images."""

    def __init__(self, anchor_generator: AnchorGenerator, head: RPNHead, *,
                 fg_iou_thresh: float = 0.7, bg_iou_thresh: float = 0.3,
                 batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n: dict[str, int], post_nms_top_n: dict[str, int],
                 nms_thresh: float = 0.7, score_thresh: float = 0.0) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh,
                                        allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self._pre_nms_top_n, self._post_nms_top_n = dict(pre_nms_top_n), dict(post_nms_top_n)
        self.nms_thresh, self.score_thresh, self.min_size = nms_thresh, score_thresh, 1e-3

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def filter_proposals(self, proposals, objectness, image_sizes, per_level):
        """Top-n per level, clip, drop small and low-scoring boxes, NMS per level, top-n."""
        n = proposals.shape[0]
        objectness = objectness.detach().reshape(n, -1)
        levels = torch.cat([torch.full((count,), i, dtype=torch.int64, device=proposals.device)
                            for i, count in enumerate(per_level)])
        top, offset = [], 0
        for scores in objectness.split(per_level, 1):
            top.append(scores.topk(min(self.pre_nms_top_n(), scores.shape[1]), dim=1)[1] + offset)
            offset += scores.shape[1]
        top = torch.cat(top, dim=1)
        rows = torch.arange(n, device=proposals.device)[:, None]
        probs = torch.sigmoid(objectness[rows, top])
        levels, proposals = levels[top], proposals[rows, top]
        boxes_out, scores_out = [], []
        for boxes, scores, level, size in zip(proposals, probs, levels, image_sizes):
            boxes = clip_boxes_to_image(boxes, size)
            keep = remove_small_boxes(boxes, self.min_size)
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = torch.where(scores >= self.score_thresh)[0]
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = batched_nms(boxes, scores, level, self.nms_thresh)[: self.post_nms_top_n()]
            boxes_out.append(boxes[keep])
            scores_out.append(scores[keep])
        return boxes_out, scores_out

    def assign_targets(self, anchors, targets):
        """Per image: anchor labels (1, 0, -1 ignored) and the matched ground-truth boxes."""
        labels, matched = [], []
        for anchors_i, target in zip(anchors, targets):
            gt = target["boxes"]
            if gt.numel() == 0:
                labels.append(anchors_i.new_zeros(anchors_i.shape[0]))
                matched.append(torch.zeros_like(anchors_i))
                continue
            idx = self.proposal_matcher(box_iou(gt, anchors_i))
            matched.append(gt[idx.clamp(min=0)])
            label = (idx >= 0).to(anchors_i.dtype)
            label = torch.where(idx == BELOW_LOW_THRESHOLD, torch.zeros_like(label), label)
            labels.append(torch.where(idx == BETWEEN_THRESHOLDS, torch.full_like(label, -1.0),
                                      label))
        return labels, matched

    def compute_loss(self, objectness, deltas, labels, regression_targets):
        sampled = self.fg_bg_sampler(labels)
        pos = torch.where(torch.cat([p for p, _ in sampled]))[0]
        neg = torch.where(torch.cat([q for _, q in sampled]))[0]
        chosen = torch.cat([pos, neg])
        labels, targets = torch.cat(labels), torch.cat(regression_targets)
        box_loss = F.smooth_l1_loss(deltas[pos], targets[pos], beta=1 / 9,
                                    reduction="sum") / max(1, chosen.numel())
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.flatten()[chosen],
                                                             labels[chosen])
        return objectness_loss, box_loss

    def forward(self, images: ImageList, features, targets=None):
        maps = list(features.values())
        gen = self.anchor_generator
        if any(a.is_meta for a in gen.cell_anchors) and not maps[0].is_meta:
            # built on (or last run on) the meta device: the cell anchors are not buffers
            gen.cell_anchors = [gen.generate_anchors(s, r) for s, r in zip(gen.sizes,
                                                                          gen.aspect_ratios)]
        logits, deltas = self.head(maps)
        logits, deltas = list(in_float32(*logits)), list(in_float32(*deltas))
        anchors = self.anchor_generator(images, maps)
        per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in logits]
        objectness = flatten_levels(logits, 1).flatten(0, -2)
        deltas = flatten_levels(deltas, 4).reshape(-1, 4)
        proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, per_level)
        losses = {}
        if self.training:
            labels, matched = self.assign_targets(anchors, targets)
            regression_targets = self.box_coder.encode(matched, anchors)
            loss_objectness, loss_box = self.compute_loss(objectness, deltas, labels,
                                                          regression_targets)
            losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}
        return boxes, losses
