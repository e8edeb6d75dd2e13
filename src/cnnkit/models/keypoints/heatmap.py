"""Heatmap keypoint networks: one map per keypoint (optionally plus a background map).

The "simple baseline" of Xiao, Wu & Wei, "Simple Baselines for Human Pose Estimation and
Tracking", ECCV 2018: a zoo backbone's deepest map (stride 32 for ResNet) followed by transposed
convolutions (4x4, stride 2, padding 1, 256 channels, each + batch norm + ReLU) and a final 1x1
convolution with K outputs. Three of them give output stride 4 (the paper); ``output_stride``
1 or 2 adds layers, 8, 16 or 32 removes them. Initialisation as in the paper's code: N(0, 0.001) for
the transposed and final convolutions, batch norms as identity; the backbone keeps its own.

Maps are in the pixel-centre convention of :mod:`cnnkit.tasks.keypoint_decode`: map pixel ``j``
at stride ``s`` is image pixel ``j * s + (s - 1) / 2`` (render targets with ``image_to_map``;
decode with ``decode_heatmaps(maps, stride=model.output_stride)``). ``background=True`` adds a
K+1-th channel (the lecture's "K + 1 for K parts + background"), the last one.

Differences from the paper: any zoo backbone and output stride. The backbone's classifier is
removed: ``heatmap_resnet50`` has 33,999,697 parameters, the paper reports 34.0M for its
ResNet-50 model at 256x192.

:class:`UNetHeatmap` puts the same kind of head on the U-Net of Ronneberger, Fischer & Brox
(MICCAI 2015; :mod:`cnnkit.models.segmentation.unet`, padded convolutions, batch norm) for small
data sets such as DeepLabCut's 4-keypoint open-field mouse frames: output stride 1 (the U-Net's
full-resolution map) or 2 (its last decoder level, at stride 2, dropped; the 1x1 head reads the
stride-2 map).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.keypoints.regression import COCO_KEYPOINTS
from cnnkit.models.registry import register
from cnnkit.models.segmentation.unet import UNet
from cnnkit.errors import ArgumentError, require_positive

SIMPLE_BASELINES_PAPER = ("B. Xiao, H. Wu, Y. Wei, Simple Baselines for Human Pose Estimation "
                          "and Tracking, ECCV 2018")
UNET_PAPER = ("O. Ronneberger, P. Fischer, T. Brox, U-Net: Convolutional Networks for Biomedical "
              "Image Segmentation, MICCAI 2015")
DLC_KEYPOINTS = 4  # snout, left ear, right ear, tail base


def init_heatmap_head(*modules: nn.Module) -> None:
    """N(0, 0.001) weights and zero biases for (transposed) convolutions, as Xiao et al.'s code."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, 0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def deconv_stack(in_channels: int, channels: int, count: int) -> nn.Sequential:
    """``count`` x (4x4 stride-2 transposed convolution, batch norm, ReLU): n -> 2^count n."""
    layers: list[nn.Module] = []
    for _ in range(count):
        layers += [nn.ConvTranspose2d(in_channels, channels, 4, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        in_channels = channels
    return nn.Sequential(*layers)


class SimpleBaseline(DenseModel):
    """Backbone + ``deconv_layers`` + ``final_layer``: N x K(+1) x H/s x W/s, s = output_stride.

    Input sizes: multiples of the backbone's stride (32 for ResNet), so that the maps tile the
    image exactly and the stride-``s`` coordinate mapping holds.
    """

    def __init__(self, backbone: str = "resnet50", *, num_classes: int = COCO_KEYPOINTS,
                 in_channels: int = 3, output_stride: int = 4, deconv_channels: int = 256,
                 background: bool = False,
                 backbone_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.backbone = headless_backbone(backbone, in_channels=in_channels,
                                          options=backbone_options)
        self.taps = pick_taps(self.backbone, [-1])
        backbone_stride = self.taps[-1].stride
        valid = [backbone_stride >> i for i in range(int(math.log2(backbone_stride)) + 1)]
        if output_stride not in valid:
            raise ArgumentError(f"output_stride must be one of {sorted(valid)} for backbone "
                             f"{backbone!r} (stride {backbone_stride}); got {output_stride}")
        self.num_keypoints, self.background = num_classes, background
        self.num_classes = num_classes + int(background)
        self.output_stride = output_stride
        self.input_sizes = InputSizes(backbone_stride, backbone_stride)
        self.display_name = f"heatmap_{backbone}"
        count = int(math.log2(backbone_stride // output_stride))
        self.deconv_layers = deconv_stack(self.taps[-1].channels, deconv_channels, count)
        head_in = deconv_channels if count else self.taps[-1].channels
        self.final_layer = nn.Conv2d(head_in, self.num_classes, kernel_size=1)
        init_heatmap_head(self.deconv_layers, self.final_layer)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(read_taps(self.backbone, self.taps, x)[-1]))


def simple_baseline(backbone: str = "resnet50", *, num_classes: int = COCO_KEYPOINTS,
                    in_channels: int = 3, output_stride: int = 4, deconv_channels: int = 256,
                    background: bool = False,
                    backbone_options: Mapping[str, Any] | None = None) -> SimpleBaseline:
    """Xiao et al.'s simple baseline with K = ``num_classes`` maps on zoo ``backbone``."""
    return SimpleBaseline(backbone, num_classes=num_classes, in_channels=in_channels,
                          output_stride=output_stride, deconv_channels=deconv_channels,
                          background=background, backbone_options=backbone_options)


register("heatmap_resnet50", simple_baseline, task="keypoints-heatmap", paper=SIMPLE_BASELINES_PAPER,
         year=2018, input_size=(3, 256, 192), num_params=33_999_697, num_classes=COCO_KEYPOINTS,
         notes=("ResNet-50 (fc removed) + 3 x (deconv 4x4/2, 256, BN, ReLU) + 1x1 conv to 17 "
                "COCO maps at stride 4 (num_classes = K); the paper reports 34.0M parameters "
                "for this model at 256x192. Input sizes: multiples of 32; smallest 32x32."),
         backbone="resnet50")


class UNetHeatmap(DenseModel):
    """A padded U-Net (``body``) with a 1x1 head to K(+1) maps at output stride 1 or 2.

    Input sizes: multiples of ``2**depth`` (16 at the default depth 4).
    """

    def __init__(self, *, num_classes: int = DLC_KEYPOINTS, in_channels: int = 3,
                 output_stride: int = 2, depth: int = 4, base_width: int = 16,
                 background: bool = False, batch_norm: bool = True) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if output_stride not in (1, 2):
            raise ArgumentError(f"output_stride must be 1 or 2 for a U-Net heatmap; got "
                             f"{output_stride}")
        self.num_keypoints, self.background = num_classes, background
        self.num_classes = num_classes + int(background)
        self.output_stride = output_stride
        self.body = UNet(num_classes=self.num_classes, in_channels=in_channels, depth=depth,
                         base_width=base_width, batch_norm=batch_norm, padding="same")
        self.input_sizes = self.body.input_sizes
        self.display_name = "heatmap_unet"
        if output_stride == 2:  # drop the full-resolution decoder level, read the stride-2 map
            self.body.decoder = self.body.decoder[:-1]
            self.body.head = nn.Conv2d(2 * base_width, self.num_classes, kernel_size=1)
        init_heatmap_head(self.body.head)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.predict(x)  # its decoder levels pair with the deepest skips first


def unet_heatmap(*, num_classes: int = DLC_KEYPOINTS, in_channels: int = 3,
                 output_stride: int = 2, depth: int = 4, base_width: int = 16,
                 background: bool = False, batch_norm: bool = True) -> UNetHeatmap:
    """U-Net heatmap network with K = ``num_classes`` maps at stride ``output_stride``."""
    return UNetHeatmap(num_classes=num_classes, in_channels=in_channels,
                       output_stride=output_stride, depth=depth, base_width=base_width,
                       background=background, batch_norm=batch_norm)


register("heatmap_unet", unet_heatmap, task="keypoints-heatmap", paper=UNET_PAPER, year=2015,
         input_size=(3, 240, 320), num_params=1_933_652, num_classes=DLC_KEYPOINTS,
         notes=("small padded U-Net (depth 4, base width 16, batch norm) with 4 maps "
                "(DeepLabCut open-field: snout, left ear, right ear, tail base) at stride 2; "
                "240x320 is a half-size 480x640 frame. Input sizes: multiples of 16."))
