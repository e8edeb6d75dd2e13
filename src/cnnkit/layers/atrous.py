"""Dilated (atrous) convolutions and Atrous Spatial Pyramid Pooling (ASPP).

A ``k x k`` convolution with dilation ``r`` samples its input every ``r`` pixels, so it covers
``r (k - 1) + 1`` pixels with ``k x k`` weights: stacking dilations 1, 2, 4 grows the receptive
field exponentially (3, 7, 15) with a linear number of parameters (Yu & Koltun, "Multi-Scale
Context Aggregation by Dilated Convolutions", ICLR 2016). Padding ``r (k - 1) / 2`` keeps the
spatial size.

ASPP: Chen, Papandreou, Kokkinos, Murphy & Yuille, "DeepLab: Semantic Image Segmentation with
Deep Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI 2017, in the form of
Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image Segmentation"
(DeepLabv3), 2017: a 1x1 convolution, three 3x3 convolutions with rates (6, 12, 18) at output
stride 16 or (12, 24, 36) at output stride 8, and image-level features (global average pool,
1x1 convolution, bilinear upsampling), each with batch norm and ReLU, concatenated and projected
by a 1x1 convolution + batch norm + ReLU (+ dropout). Submodule names follow torchvision's ASPP
(``convs.0.0`` ... ``convs.4.1``, ``project.0``/``project.1``) so DeepLabv3 checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from cnnkit.errors import ArgumentError

# output stride of the backbone -> ASPP rates (DeepLabv3, Section 3.3)
ASPP_RATES: dict[int, tuple[int, int, int]] = {16: (6, 12, 18), 8: (12, 24, 36)}


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """DeepLabv3's ASPP rates for a backbone of ``output_stride`` 16 or 8."""
    if output_stride not in ASPP_RATES:
        raise ArgumentError(f"ASPP rates are defined for output_stride {sorted(ASPP_RATES)}; "
                         f"got {output_stride}")
    return ASPP_RATES[output_stride]


class DilatedConvBlock(nn.Sequential):
    """Conv(k x k, dilation r, padding r(k-1)/2, no bias) + BatchNorm + ReLU; keeps the size.

    Submodules ``0`` (conv), ``1`` (batch norm), ``2`` (ReLU), as torchvision's ``ASPPConv``.
    ``batch_norm=False`` gives a biased convolution followed by ReLU (submodules ``0``, ``1``).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1, *,
                 kernel_size: int = 3, batch_norm: bool = True) -> None:
        if dilation < 1 or kernel_size % 2 != 1:
            raise ArgumentError(f"DilatedConvBlock needs dilation >= 1 and an odd kernel_size; got "
                             f"dilation={dilation}, kernel_size={kernel_size}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size,
                                             padding=dilation * (kernel_size - 1) // 2,
                                             dilation=dilation, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
        super().__init__(*layers)


class ImagePooling(nn.Sequential):
    """ASPP's image-level branch: global average pool, 1x1 conv + BN + ReLU, bilinear upsampling
    back to the input size (submodules ``0`` pool, ``1`` conv, ``2`` BN, ``3`` ReLU).

    Its batch norm sees one value per channel and image, so training needs batches of >= 2.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1),
                         nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabv3); output ``out_channels`` at the input size.

    ``convs``: a 1x1 conv block, one :class:`DilatedConvBlock` per rate and, with
    ``image_pooling``, an :class:`ImagePooling` branch; ``project``: 1x1 conv + BN + ReLU +
    Dropout(``dropout``) on their concatenation. ``rates`` default to (12, 24, 36) as in
    torchvision's DeepLabHead (output stride 8); use :func:`aspp_rates` (16) for (6, 12, 18).
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 rates: Sequence[int] = (12, 24, 36), *, image_pooling: bool = True,
                 dropout: float = 0.5) -> None:
        super().__init__()
        rates = tuple(rates)
        if in_channels < 1 or out_channels < 1 or any(r < 1 for r in rates):
            raise ArgumentError(f"ASPP needs in_channels, out_channels >= 1 and rates >= 1; got "
                             f"{in_channels}, {out_channels}, rates={rates}")
        branches: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU())]
        branches += [DilatedConvBlock(in_channels, out_channels, rate) for rate in rates]
        if image_pooling:
            branches.append(ImagePooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(dropout))
        self.rates = rates
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))
