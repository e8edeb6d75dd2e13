"""Classification + localization: one backbone, a class head and a box-regression head.

The lecture recipe ("Simple Recipe for Classification + Localization", after Sermanet et al.,
"OverFeat: Integrated Recognition, Localization and Detection using Convolutional Networks",
ICLR 2014): a classification network's pooled features feed two fully connected heads, class
scores (softmax loss) and 4 box numbers (L2 loss); one object per image. Train both, or freeze
the backbone and train the box head only (``param_groups()`` has "stem", "stages", "head").

Boxes are ``(cx, cy, w, h)`` **normalised by the image size**: centre and size in units of the
image width (x, w) and height (y, h), the image spanning [0, 1] (borders at 0 and 1, so pixel
``x`` is at ``(x + 0.5) / W``); :func:`cnnkit.geometry.cxcywh_to_xyxy` converts them to ``(x1, y1, x2, y2)``.
The head is linear (no sigmoid). ``class_specific_boxes=True`` predicts one box per class
(N x C x 4, "per-class regression") instead of one class-agnostic box (N x 4).

Differences from OverFeat: its regression network (two hidden layers of 4096 and 1024 units on
the layer-5 features) runs as a sliding window over several scales, and its boxes are merged;
here one linear layer on globally pooled features, one box per image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from cnnkit.models.backbones import headless_backbone
from cnnkit.models.base import Classifier, FeatureSpec, new_head_like
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.registry import register
from cnnkit.errors import require_positive

OVERFEAT_PAPER = ("P. Sermanet, D. Eigen, X. Zhang, M. Mathieu, R. Fergus, Y. LeCun, OverFeat: "
                  "Integrated Recognition, Localization and Detection using Convolutional "
                  "Networks, ICLR 2014")


class ClassesAndBoxes(NamedTuple):
    """``logits`` N x C; ``boxes`` N x 4 (or N x C x 4), normalised (cx, cy, w, h)."""

    logits: torch.Tensor
    boxes: torch.Tensor


class ClassifierLocalizer(Classifier):
    """Zoo backbone + ``class_head`` (linear C) + ``box_head`` (linear 4 or 4C).

    ``forward`` returns :class:`ClassesAndBoxes`. ``feature_specs`` are the backbone's (so
    ``FeatureExtractor`` works on it); ``reset_classifier`` resizes a class-specific box head too.
    """

    def __init__(self, backbone: str = "resnet18", *, num_classes: int = 1000,
                 in_channels: int = 3, class_specific_boxes: bool = False,
                 backbone_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.backbone = headless_backbone(backbone, in_channels=in_channels,
                                          options=backbone_options)
        inner = self.backbone
        self.taps = pick_taps(inner, [-1])
        self.feature_specs = [FeatureSpec(f"backbone.{s.module}" if s.module else "",
                                          s.stride, s.channels) for s in inner.feature_specs]
        self.class_specific_boxes = class_specific_boxes
        channels = self.taps[-1].channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.class_head = nn.Linear(channels, num_classes)
        self.box_head = nn.Linear(channels, 4 * num_classes if class_specific_boxes else 4)
        for head in (self.class_head, self.box_head):
            nn.init.normal_(head.weight, 0.0, 0.01)
            nn.init.zeros_(head.bias)
        self.classifier_names = ("class_head",)
        self.group_prefixes = {
            "stem": tuple(f"backbone.{p}" for p in inner.group_prefixes["stem"]),
            "stages": tuple(f"backbone.{p}" for p in inner.group_prefixes["stages"]),
            "head": ("class_head", "box_head")}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return read_taps(self.backbone, self.taps, x)[-1]

    def forward_head(self, x: torch.Tensor) -> ClassesAndBoxes:
        pooled = torch.flatten(self.pool(x), 1)
        boxes = self.box_head(pooled)
        if self.class_specific_boxes:
            boxes = boxes.unflatten(1, (self.num_classes, 4))
        return ClassesAndBoxes(self.class_head(pooled), boxes)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.class_specific_boxes:
            self.box_head = new_head_like(self.box_head, 4 * num_classes)


def classifier_localizer(backbone: str = "resnet18", *, num_classes: int = 1000,
                         in_channels: int = 3, class_specific_boxes: bool = False,
                         backbone_options: Mapping[str, Any] | None = None
                         ) -> ClassifierLocalizer:
    """Classification + localization network on zoo ``backbone`` (see the module docstring)."""
    return ClassifierLocalizer(backbone, num_classes=num_classes, in_channels=in_channels,
                               class_specific_boxes=class_specific_boxes,
                               backbone_options=backbone_options)


register("classloc_resnet18", classifier_localizer, task="localization", paper=OVERFEAT_PAPER,
         year=2014, input_size=(3, 224, 224), num_params=11_691_564,
         notes=("ResNet-18 features + linear class head (1000) + linear class-agnostic box head "
                "(4: normalised cx, cy, w, h); returns (logits, boxes). Smallest input: 32x32."),
         backbone="resnet18")
