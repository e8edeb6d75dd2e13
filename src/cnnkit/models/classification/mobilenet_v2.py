"""MobileNet v2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018.

A 3x3 stride-2 convolution (32 channels), the paper's Table 2 of inverted residual bottlenecks
given as (expansion t, output channels c, repeats n, first stride s), a 1x1 convolution to 1280
channels, global average pooling, dropout 0.2 and a linear classifier; ReLU6 everywhere except
after each block's linear projection.

Module names and shapes are torchvision's (``features.0`` ... ``features.18``,
``classifier.1``), so its ImageNet checkpoint loads with ``strict=True``. ``width_mult`` scales
every layer and rounds the channel counts to multiples of ``round_nearest`` (8), as torchvision
does; the last convolution never shrinks below 1280. Differences from the paper: 1000 classes
rather than TensorFlow's 1001, so 3,504,872 parameters instead of the paper's 3.4M.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import CnnkitError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.layers.separable import InvertedResidual, conv_norm_act, make_divisible
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks"
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
# Table 2 of the paper: (expansion t, output channels c, repeats n, stride of the first s).
BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class MobileNetV2(Classifier):
    """``features`` (stem, 17 :class:`InvertedResidual` blocks, 1x1 conv), ``classifier``
    (dropout, linear)."""

    classifier_names = ("classifier.1",)

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if not 0 < width_mult <= 4:
            raise CnnkitError(f"mobilenet_v2: width_mult must be in (0, 4], e.g. 0.5, 0.75, 1.0 "
                              f"or 1.4; got {width_mult}")
        if not 0 <= dropout < 1:
            raise CnnkitError(f"mobilenet_v2: dropout must be in [0, 1); got {dropout}")

        channels = make_divisible(STEM_CHANNELS * width_mult, round_nearest)
        layers: list[nn.Module] = [conv_norm_act(in_channels, channels, 3, stride=2,
                                                 activation=nn.ReLU6)]
        stride, last_at_stride = 2, {}
        for expansion, out, repeats, first_stride in BOTTLENECKS:
            out = make_divisible(out * width_mult, round_nearest)
            for i in range(repeats):
                block_stride = first_stride if i == 0 else 1
                layers.append(InvertedResidual(channels, out, block_stride, expansion))
                channels, stride = out, stride * block_stride
                last_at_stride[stride] = FeatureSpec(f"features.{len(layers) - 1}", stride, out)
        last = make_divisible(LAST_CHANNELS * max(1.0, width_mult), round_nearest)
        layers.append(conv_norm_act(channels, last, 1, activation=nn.ReLU6))
        last_at_stride[stride] = FeatureSpec(f"features.{len(layers) - 1}", stride, last)
        self.features = nn.Sequential(*layers)
        self.feature_specs = list(last_at_stride.values())
        self.group_prefixes = {
            "stem": ("features.0",),
            "stages": tuple(f"features.{i}" for i in range(1, len(layers))),
            "head": ("classifier",),
        }
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_weights(self, "kaiming")
        nn.init.normal_(self.classifier[1].weight, 0.0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x.mean((2, 3)), 1))


def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2) -> MobileNetV2:
    """MobileNet v2; ``width_mult`` thins or widens it (channels rounded to ``round_nearest``)."""
    return MobileNetV2(num_classes, in_channels, width_mult, round_nearest, dropout)


register("mobilenet_v2", mobilenet_v2, task="classification", paper=PAPER, year=2018,
         input_size=(3, 224, 224), num_params=3_504_872, reference="torchvision",
         notes="1000 classes (the paper's TensorFlow model has 1001: 3.4M parameters); "
               "He (fan_out) init as torchvision.")
