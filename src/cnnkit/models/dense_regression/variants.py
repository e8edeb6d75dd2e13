"""Regression outputs for the zoo's dense heads: U-Net, FPN and DeepLabv3+ predicting depth,
surface normals or ab colour, and the multi-task FPN.

Each variant is the segmentation builder unchanged with another number of output channels
(``num_classes``): 1 for depth (log depth, see :mod:`cnnkit.tasks.depth`), 3 for normals
(normalised by :mod:`cnnkit.tasks.normals`), 2 for ab (``ab / 110``, the regression mode of
:mod:`cnnkit.tasks.colorization`, on a 1-channel lightness input). The last layer stays linear
(no activation); the task gives the output its meaning. The segmentation variants themselves,
their options and counts are untouched.

Papers: the architectures are the segmentation papers' (Ronneberger et al. 2015; Lin et al.
2017 / Kirillov et al. 2019; Chen et al. 2018); using them for depth follows e.g. Laina et
al., "Deeper Depth Prediction with Fully Convolutional Residual Networks" (3DV 2016), an
encoder-decoder regressing depth per pixel.
"""

from __future__ import annotations

from cnnkit.models.dense_regression.multitask import PAPER as MULTITASK_PAPER, multitask_fpn
from cnnkit.models.registry import register
from cnnkit.models.segmentation.deeplab import PAPER_V3PLUS, deeplabv3plus
from cnnkit.models.segmentation.fpn import PAPER as FPN_PAPER, fpn
from cnnkit.models.segmentation.unet import PAPER as UNET_PAPER, unet

OUTPUTS = {"depth": (1, "1 channel: log depth"), "normals": (3, "3 channels: normal x, y, z"),
           "colorization": (2, "2 channels: ab / 110 from the lightness (regression)")}

# name: (builder, paper, year, input size, task, parameters, options, base model)
VARIANTS = {
    "unet_padded_depth": (unet, UNET_PAPER, 2015, (3, 240, 320), "depth", 31_031_745,
                          {"padding": "same", "in_channels": 3}, "unet_padded"),
    "unet_padded_normals": (unet, UNET_PAPER, 2015, (3, 240, 320), "normals", 31_031_875,
                            {"padding": "same", "in_channels": 3}, "unet_padded"),
    "unet_padded_colorization": (unet, UNET_PAPER, 2015, (1, 224, 224), "colorization",
                                 31_030_658, {"padding": "same", "in_channels": 1},
                                 "unet_padded"),
    "unet_resnet34_depth": (unet, UNET_PAPER, 2015, (3, 256, 320), "depth", 24_349_441,
                            {"encoder": "resnet34", "padding": "same", "batch_norm": True,
                             "in_channels": 3}, "unet_resnet34"),
    "unet_resnet34_normals": (unet, UNET_PAPER, 2015, (3, 256, 320), "normals", 24_349_475,
                              {"encoder": "resnet34", "padding": "same", "batch_norm": True,
                               "in_channels": 3}, "unet_resnet34"),
    "fpn_resnet18_depth": (fpn, FPN_PAPER, 2019, (3, 256, 320), "depth", 15_407_553,
                           {"backbone": "resnet18"}, "fpn_resnet18"),
    "fpn_resnet18_normals": (fpn, FPN_PAPER, 2019, (3, 256, 320), "normals", 15_407_811,
                             {"backbone": "resnet18"}, "fpn_resnet18"),
    "fpn_resnet18_colorization": (fpn, FPN_PAPER, 2019, (1, 224, 224), "colorization",
                                  15_401_410, {"backbone": "resnet18", "in_channels": 1},
                                  "fpn_resnet18"),
    "fpn_resnet50_depth": (fpn, FPN_PAPER, 2019, (3, 256, 320), "depth", 28_476_353,
                           {"backbone": "resnet50"}, "fpn_resnet50"),
    "fpn_resnet50_normals": (fpn, FPN_PAPER, 2019, (3, 256, 320), "normals", 28_476_611,
                             {"backbone": "resnet50"}, "fpn_resnet50"),
    "deeplabv3plus_resnet50_depth": (deeplabv3plus, PAPER_V3PLUS, 2018, (3, 256, 320), "depth",
                                     40_347_041, {"backbone": "resnet50"},
                                     "deeplabv3plus_resnet50"),
    "deeplabv3plus_resnet50_normals": (deeplabv3plus, PAPER_V3PLUS, 2018, (3, 256, 320),
                                       "normals", 40_347_555, {"backbone": "resnet50"},
                                       "deeplabv3plus_resnet50"),
}
for _name, (_builder, _paper, _year, _size, _task, _count, _options, _base) in VARIANTS.items():
    _channels, _meaning = OUTPUTS[_task]
    register(_name, _builder, task=_task, paper=_paper, year=_year, input_size=_size,
             num_params=_count, num_classes=_channels,
             notes=f"{_base} with a linear {_meaning} output instead of the class scores",
             **_options)

_MULTI = ("one FPN trunk (P2..P5, {p} channels, panoptic-FPN sum at stride 4, {h} channels) on "
          "{b}, heads for depth (log), normals and 4 segmentation classes (3x3 conv + GN + "
          "ReLU + 1x1), outputs upsampled to the input; Kendall et al. log-variances included")
for _backbone, _count, _pyramid, _head in (("resnet18", 12_408_139, 128, 64),
                                           ("mobilenet_v1_025", 521_691, 64, 32)):
    register(f"fpn_{_backbone}_multitask", multitask_fpn, task="multitask",
             paper=MULTITASK_PAPER, year=2018, input_size=(3, 240, 320), num_params=_count,
             num_classes=4, notes=_MULTI.format(p=_pyramid, h=_head, b=_backbone),
             backbone=_backbone, pyramid_channels=_pyramid, head_channels=_head)
