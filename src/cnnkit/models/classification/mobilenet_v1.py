"""MobileNet v1: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", 2017.

A 3x3 stride-2 convolution then the paper's Table 1: 13 depthwise separable layers (3x3
depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global average pooling and one fully
connected layer. The width multiplier ``alpha`` thins every layer (channels ``int(c * alpha)``,
at least 8, as the TF-Slim reference code does); the resolution multiplier is simply the input
size (224, 192, 160, 128 in the paper).

Built here (1000 classes, BN, no biases in the convolutions): alpha 1.0 has 4,231,976
parameters (the paper: 4.2M) and 568,740,352 multiply-adds at 224x224 in its convolutions and
fully connected layer (the paper: 569M). Differences: no dropout; initialisation is He
(fan_out) for convolutions and normal(0, 0.01) for the classifier (the paper gives none).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import CnnkitError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.layers.separable import DepthwiseSeparableConv, conv_norm_act
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = ("Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
         "Applications")
STEM_CHANNELS = 32
# Table 1 of the paper: (output channels, stride) of the 13 depthwise separable layers.
SEPARABLE_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)


class MobileNetV1(Classifier):
    """``stem`` (conv-BN-ReLU, stride 2), ``blocks`` (13 :class:`DepthwiseSeparableConv`),
    global average pooling, ``fc``."""

    classifier_names = ("fc",)
    group_prefixes = {"stem": ("stem",), "stages": ("blocks",), "head": ("fc",)}

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, alpha: float = 1.0,
                 min_channels: int = 8) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if not 0 < alpha <= 4:
            raise CnnkitError(f"mobilenet_v1: alpha (width multiplier) must be in (0, 4], "
                              f"e.g. 0.25, 0.5, 0.75 or 1.0; got {alpha}")

        def width(channels: int) -> int:
            return max(min_channels, int(channels * alpha))

        channels = width(STEM_CHANNELS)
        self.stem = conv_norm_act(in_channels, channels, 3, stride=2)
        blocks: list[nn.Module] = []
        stride, last_at_stride = 2, {}
        for index, (out, block_stride) in enumerate(SEPARABLE_LAYERS):
            blocks.append(DepthwiseSeparableConv(channels, width(out), stride=block_stride))
            channels, stride = width(out), stride * block_stride
            last_at_stride[stride] = FeatureSpec(f"blocks.{index}", stride, channels)
        self.blocks = nn.Sequential(*blocks)
        self.feature_specs = list(last_at_stride.values())
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self, "kaiming")
        nn.init.normal_(self.fc.weight, 0.0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x.mean((2, 3)), 1))


def mobilenet_v1(num_classes: int = 1000, in_channels: int = 3, alpha: float = 1.0,
                 min_channels: int = 8) -> MobileNetV1:
    """MobileNet v1 with width multiplier ``alpha`` (channels never below ``min_channels``)."""
    return MobileNetV1(num_classes, in_channels, alpha, min_channels)


_NOTES = ("No dropout; He (fan_out) init. Paper Table 6: {params} parameters, {macs} "
          "mult-adds at 224x224.")
for _name, _alpha, _count, _paper_params, _paper_macs in (
        ("mobilenet_v1", 1.0, 4_231_976, "4.2M", "569M"),
        ("mobilenet_v1_075", 0.75, 2_585_560, "2.6M", "325M"),
        ("mobilenet_v1_050", 0.5, 1_331_592, "1.3M", "149M"),
        ("mobilenet_v1_025", 0.25, 470_072, "0.5M", "41M")):
    register(_name, mobilenet_v1, task="classification", paper=PAPER, year=2017,
             input_size=(3, 224, 224), num_params=_count,
             notes=_NOTES.format(params=_paper_params, macs=_paper_macs), alpha=_alpha)
