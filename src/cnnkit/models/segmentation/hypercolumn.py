"""Hypercolumns: Hariharan, Arbelaez, Girshick & Malik, "Hypercolumns for Object Segmentation
and Fine-grained Localization", CVPR 2015.

The hypercolumn of a pixel is the vector of the activations "above" it in several layers of a
classification network: the chosen feature maps are bilinearly upsampled to a common resolution
(that of the finest one) and concatenated per pixel; a per-pixel classifier (1x1 convolutions)
scores the classes, and the scores are bilinearly upsampled to the input resolution.

Differences from the paper: any zoo backbone and any of its feature maps (default: VGG-16's
pool2..pool5 outputs at strides 4..32; the paper used layers such as pool2, conv4 and fc7 of
an AlexNet-style network, restricted to a detection box); one classifier shared by all
locations (the paper interpolates between classifiers of a coarse grid of box locations); it
has a hidden 1x1 convolution + batch norm + ReLU of ``hidden_channels`` (``0``: the paper's
linear classifier). Initialisation: the zoo's for the backbone, He et al. normal for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.layers.init import init_weights
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import register
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.segmentation.headless import resize
from cnnkit.errors import ArgumentError, require_positive

PAPER = ("B. Hariharan, P. Arbelaez, R. Girshick, J. Malik, Hypercolumns for Object Segmentation "
         "and Fine-grained Localization, CVPR 2015")


class Hypercolumn(DenseModel):
    """``backbone`` (headless) and ``classifier`` (1x1 convolutions on the concatenated maps)."""

    def __init__(self, backbone: str, *, num_classes: int, in_channels: int,
                 feature_indices: Sequence[int], hidden_channels: int) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if not feature_indices or hidden_channels < 0:
            raise ArgumentError(f"hypercolumns need at least one feature index and "
                             f"hidden_channels >= 0; got {tuple(feature_indices)} and "
                             f"{hidden_channels}")
        self.backbone = headless_backbone(backbone, in_channels=in_channels)
        self.taps = pick_taps(self.backbone, list(feature_indices))
        width = sum(s.channels for s in self.taps)
        layers: list[nn.Module] = []
        if hidden_channels:
            layers += [nn.Conv2d(width, hidden_channels, 1, bias=False),
                       nn.BatchNorm2d(hidden_channels), nn.ReLU(inplace=True)]
            width = hidden_channels
        self.classifier = nn.Sequential(*layers, nn.Conv2d(width, num_classes, 1))
        init_weights(self.classifier, "kaiming")
        self.num_classes = num_classes
        self.display_name = f"Hypercolumn ({backbone})"
        self.input_sizes = InputSizes(minimum=max(s.stride for s in self.backbone.feature_specs))

    def hypercolumns(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated maps at the finest chosen resolution (N x sum(channels) x h x w)."""
        maps = read_taps(self.backbone, self.taps, x)
        finest = max(maps, key=lambda m: m.shape[-2] * m.shape[-1]).shape[-2:]
        return torch.cat([resize(m, finest) for m in maps], dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return resize(self.classifier(self.hypercolumns(x)), x.shape[-2:])


def hypercolumn(backbone: str = "vgg16", *, num_classes: int = 21, in_channels: int = 3,
                feature_indices: Sequence[int] = (1, 2, 3, 4),
                hidden_channels: int = 512) -> Hypercolumn:
    """Hypercolumn classifier on the ``feature_indices`` maps of a zoo ``backbone``."""
    return Hypercolumn(backbone, num_classes=num_classes, in_channels=in_channels,
                       feature_indices=tuple(feature_indices), hidden_channels=hidden_channels)


register("hypercolumn_vgg16", hypercolumn, task="segmentation", paper=PAPER, year=2015,
         input_size=(3, 224, 224), num_params=15_447_381, num_classes=21,
         notes=("VGG-16 pool2..pool5 (strides 4..32, 128+256+512+512 = 1408 channels) upsampled "
                "to stride 4 and concatenated; shared 1x1 classifier with a 512-channel hidden "
                "layer (hidden_channels=0: linear); scores upsampled to the input size."),
         backbone="vgg16")
