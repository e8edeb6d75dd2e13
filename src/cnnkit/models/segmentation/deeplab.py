"""DeepLab v3 and v3+.

- v3: Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image
  Segmentation", arXiv 2017. A ResNet whose last stages trade stride for dilation (output
  stride 8 or 16) and :class:`DeepLabHead`: ASPP (rates 12/24/36 at output stride 8, 6/12/18 at
  16, plus image-level pooling), a 3x3 convolution with 256 outputs, batch norm, ReLU and a 1x1
  convolution to the classes; logits bilinearly upsampled to the input. Layout, keys and counts
  are torchvision's ``deeplabv3_resnet50``/``101`` (``backbone.*`` without ``fc``,
  ``classifier.0.convs.0.0`` ..., ``aux_classifier.*`` = an FCN head on layer3 with
  ``aux_loss``). Differences from the paper: torchvision's head has an extra 3x3 convolution +
  BN + ReLU between ASPP and the classifier, and uses output stride 8 by default; the paper's
  multi-grid rates in the last stage and its cascaded variant are not built.
- v3+: Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder with Atrous Separable
  Convolution for Semantic Image Segmentation", ECCV 2018. Encoder = the dilated ResNet at output
  stride 16 + ASPP (rates 6/12/18); decoder: the stride-4 features (layer1) reduced to 48
  channels by a 1x1 convolution, concatenated with the ASPP output upsampled 4x, two 3x3
  convolutions with 256 outputs (each + BN + ReLU), a 1x1 convolution to the classes and a 4x
  bilinear upsampling. Differences: a ResNet encoder (the paper's best uses a modified aligned
  Xception with depthwise separable convolutions; it reports ResNet-101 too) with ordinary
  convolutions in ASPP and decoder; upsampling is to the exact size of the finer map, so every
  input size works (the paper's 513x513 crops give 33x33 -> 129x129 -> 513x513 as well).

Initialisation: the zoo's for the backbone, He et al. normal for the heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.layers.atrous import ASPP, aspp_rates
from cnnkit.layers.init import init_weights
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import register
from cnnkit.models.segmentation.fcn import FCNHead
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.segmentation.headless import (HeadOnBackbone,
                                                 resize)
from cnnkit.errors import ArgumentError, require_positive

PAPER_V3 = ("L.-C. Chen, G. Papandreou, F. Schroff, H. Adam, Rethinking Atrous Convolution for "
            "Semantic Image Segmentation, arXiv 2017")
PAPER_V3PLUS = ("L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff, H. Adam, Encoder-Decoder with "
                "Atrous Separable Convolution for Semantic Image Segmentation, ECCV 2018")


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class DeepLabHead(nn.Sequential):
    """ASPP(``in_channels`` -> 256, ``rates``), 3x3 conv 256 + BN + ReLU, 1x1 conv to the classes
    (submodules ``0``..``4``, as torchvision's)."""

    def __init__(self, in_channels: int, num_classes: int,
                 rates: Sequence[int] = (12, 24, 36)) -> None:
        super().__init__(ASPP(in_channels, 256, rates), *conv_bn_relu(256, 256, 3),
                         nn.Conv2d(256, num_classes, 1))
        init_weights(self, "kaiming")


def _dilated_backbone(backbone: str, in_channels: int, output_stride: int) -> nn.Module:
    aspp_rates(output_stride)  # one message for an unsupported output stride
    return headless_backbone(backbone, in_channels=in_channels, output_stride=output_stride)


def deeplabv3(backbone: str = "resnet50", *, num_classes: int = 21, in_channels: int = 3,
              output_stride: int = 8, aux_loss: bool = True) -> HeadOnBackbone:
    """DeepLabv3 on a zoo ``backbone`` that takes ``output_stride`` (8 or 16; ASPP rates follow);
    ``aux_loss`` adds an FCN head on the previous stage. With a ResNet and output stride 8 this
    is torchvision's ``deeplabv3_resnet*``."""
    require_positive(num_classes=num_classes, in_channels=in_channels)
    body = _dilated_backbone(backbone, in_channels, output_stride)
    specs = body.feature_specs
    head = DeepLabHead(specs[-1].channels, num_classes, aspp_rates(output_stride))
    aux = FCNHead(specs[-2].channels, num_classes) if aux_loss else None
    return HeadOnBackbone(body, head, aux, num_classes=num_classes,
                          display_name=f"DeepLabv3 ({backbone})")


class DeepLabV3Plus(DenseModel):
    """DeepLabv3+: ``backbone`` (headless, dilated), ``aspp``, ``reduce`` (1x1 conv 48 + BN +
    ReLU on the stride-4 map), ``decoder`` (two 3x3 conv 256 + BN + ReLU), ``classifier``."""

    def __init__(self, backbone: str, *, num_classes: int, in_channels: int,
                 output_stride: int, low_level_channels: int = 48) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.backbone = _dilated_backbone(backbone, in_channels, output_stride)
        stride4 = [i for i, s in enumerate(self.backbone.feature_specs) if s.stride == 4]
        if not stride4:
            raise ArgumentError(f"DeepLabv3+ needs a backbone with a stride-4 feature map; "
                             f"{backbone!r} has strides "
                             f"{[s.stride for s in self.backbone.feature_specs]}")
        self.taps = pick_taps(self.backbone, [stride4[-1], -1])
        low, deep = self.taps
        self.aspp = ASPP(deep.channels, 256, aspp_rates(output_stride))
        self.reduce = nn.Sequential(*conv_bn_relu(low.channels, low_level_channels, 1))
        self.decoder = nn.Sequential(*conv_bn_relu(256 + low_level_channels, 256, 3),
                                     *conv_bn_relu(256, 256, 3))
        self.classifier = nn.Conv2d(256, num_classes, 1)
        for module in (self.aspp, self.reduce, self.decoder, self.classifier):
            init_weights(module, "kaiming")
        self.num_classes = num_classes
        self.display_name = f"DeepLabv3+ ({backbone})"
        self.input_sizes = InputSizes(minimum=max(s.stride for s in self.backbone.feature_specs))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        low, deep = read_taps(self.backbone, self.taps, x)
        context = resize(self.aspp(deep), low.shape[-2:])
        fused = self.decoder(torch.cat([context, self.reduce(low)], dim=1))
        return resize(self.classifier(fused), x.shape[-2:])


def deeplabv3plus(backbone: str = "resnet50", *, num_classes: int = 21, in_channels: int = 3,
                  output_stride: int = 16) -> DeepLabV3Plus:
    """DeepLabv3+ on a zoo ``backbone`` with a stride-4 map that takes ``output_stride``."""
    return DeepLabV3Plus(backbone, num_classes=num_classes, in_channels=in_channels,
                         output_stride=output_stride)


_TV = ("torchvision's {name}: {depth} at output stride 8, DeepLabHead (ASPP rates 12/24/36 + "
       "3x3 conv) on layer4, auxiliary FCNHead on layer3; count includes the auxiliary head "
       "(aux_loss=False drops it). Logits bilinearly upsampled to the input size.")
for _name, _depth, _count in (("deeplabv3_resnet50", "resnet50", 42_004_074),
                              ("deeplabv3_resnet101", "resnet101", 60_996_202)):
    register(_name, deeplabv3, task="segmentation", paper=PAPER_V3, year=2017,
             input_size=(3, 520, 520), num_params=_count, num_classes=21,
             reference="torchvision", notes=_TV.format(name=_name, depth=_depth),
             backbone=_depth)

for _depth, _count in (("resnet50", 40_352_181), ("resnet101", 59_344_309)):
    register(f"deeplabv3plus_{_depth}", deeplabv3plus, task="segmentation", paper=PAPER_V3PLUS,
             year=2018, input_size=(3, 513, 513), num_params=_count, num_classes=21,
             notes=(f"{_depth} encoder at output stride 16 (ASPP rates 6/12/18) instead of the "
                    "paper's aligned Xception; ordinary (not separable) convolutions in ASPP and "
                    "decoder; default size 513x513 (the paper's crops)."),
             backbone=_depth)
