"""Direct regression of keypoint coordinates: Toshev & Szegedy, "DeepPose: Human Pose Estimation
via Deep Neural Networks", CVPR 2014.

Any zoo backbone -> global average pooling -> one linear layer with 2K outputs, read as K points
``(u, v)`` (x first) in **normalised image coordinates**: ``u = (x + 0.5) / W``, 0 and 1 at the
image borders, pixel centres at integer ``x`` (the convention of :mod:`cnnkit.geometry`). The output is linear (no sigmoid), trained with an L2 loss.

Differences from DeepPose: the paper regresses with AlexNet's fully connected layers on a
220x220 crop, normalises by a person box rather than by the image, and refines the points with a
cascade of regressors on crops around each joint; here any backbone, one stage, no cascade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cnnkit.errors import require_positive
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.registry import register

DEEPPOSE_PAPER = ("A. Toshev, C. Szegedy, DeepPose: Human Pose Estimation via Deep Neural "
                  "Networks, CVPR 2014")
COCO_KEYPOINTS = 17


class KeypointRegressor(DenseModel):
    """Backbone -> global average pool -> (dropout) -> linear 2K; returns N x K x 2 in [0, 1].

    ``num_keypoints`` is K; ``output_stride`` is None (coordinates, not maps). Input sizes: at
    least the backbone's total stride (one feature pixel).
    """

    output_stride = None

    def __init__(self, backbone: str = "resnet18", *, num_classes: int = COCO_KEYPOINTS,
                 in_channels: int = 3, dropout: float = 0.0,
                 backbone_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.backbone = headless_backbone(backbone, in_channels=in_channels,
                                          options=backbone_options)
        self.taps = pick_taps(self.backbone, [-1])
        self.num_keypoints = self.num_classes = num_classes
        self.input_sizes = InputSizes(minimum=self.taps[-1].stride)
        self.display_name = f"keypoint_regression_{backbone}"
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.taps[-1].channels, 2 * num_classes)
        nn.init.normal_(self.head.weight, 0.0, 0.01)
        nn.init.constant_(self.head.bias, 0.5)  # start at the image centre

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.flatten(self.pool(read_taps(self.backbone, self.taps, x)[-1]), 1)
        return self.head(self.dropout(features)).unflatten(1, (self.num_keypoints, 2))


def keypoint_regression(backbone: str = "resnet18", *, num_classes: int = COCO_KEYPOINTS,
                        in_channels: int = 3, dropout: float = 0.0,
                        backbone_options: Mapping[str, Any] | None = None) -> KeypointRegressor:
    """DeepPose-style regressor of K = ``num_classes`` points on zoo ``backbone``."""
    return KeypointRegressor(backbone, num_classes=num_classes, in_channels=in_channels,
                             dropout=dropout, backbone_options=backbone_options)


register("keypoint_regression_resnet18", keypoint_regression, task="keypoints-regression",
         paper=DEEPPOSE_PAPER, year=2014, input_size=(3, 224, 224), num_params=11_193_954,
         num_classes=COCO_KEYPOINTS,
         notes=("ResNet-18 backbone (fc removed) + global average pool + linear 2K, K = 17 "
                "(COCO) by default (num_classes = K); outputs N x K x 2 normalised (x, y). "
                "DeepPose used AlexNet, a person-box normalisation and a refinement cascade. "
                "Smallest input: 32x32."),
         backbone="resnet18")
