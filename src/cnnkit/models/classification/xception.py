"""Xception: François Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions",
CVPR 2017.

Entry flow: two 3x3 convolutions without padding (32 channels stride 2, then 64), then three
blocks of two separable convolutions and a 3x3 stride-2 max pool, each with a 1x1 stride-2
convolution + BN as its shortcut (128, 256, 728 channels). Middle flow: eight blocks of three
ReLU -> separable conv -> BN at 728 channels with identity shortcuts. Exit flow: a block
728 -> 1024 (stride 2, projection shortcut), separable convolutions to 1536 and 2048 channels
(BN + ReLU), global average pooling, dropout 0.5 (the paper's ImageNet setting) and the
classifier. 299x299 input, 10x10 final map.

As in the paper and its Keras code, a separable convolution is a depthwise 3x3 then a pointwise
1x1 with neither BN nor a non-linearity between them (some re-implementations insert BN + ReLU
there, which changes the count). Module names follow the widely used PyTorch port of the Keras
weights (``conv1``, ``bn1``, ``block1.rep``, ``block1.skip``/``skipbn``, ``conv3.conv1``/
``conv3.pointwise``, ``fc``). 22,855,952 parameters, the paper's figure (Keras' trainable count).
Differences: PyTorch pads stride-2 layers symmetrically where TensorFlow's "same" padding pads
one extra pixel at the bottom/right; initialisation is He (fan_out) for convolutions and
normal(0, 0.01) for the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import CnnkitError, InputSizeError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = "Chollet, Xception: Deep Learning with Depthwise Separable Convolutions"
MIN_INPUT_SIZE = 7  # two unpadded 3x3 convolutions (the first with stride 2) need 7 pixels
# (in, out, separable convs, stride, starts with ReLU, widens at the first conv) per block.
BLOCKS: tuple[tuple[int, int, int, int, bool, bool], ...] = (
    (64, 128, 2, 2, False, True), (128, 256, 2, 2, True, True), (256, 728, 2, 2, True, True),
    *((728, 728, 3, 1, True, True),) * 8,
    (728, 1024, 2, 2, True, False),
)


class SeparableConv2d(nn.Module):
    """Depthwise KxK (``conv1``) then pointwise 1x1 (``pointwise``); no BN or ReLU between."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2,
                               groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    """``rep``: ([ReLU] SeparableConv2d BN) x ``convs`` [+ 3x3 stride-2 max pool], plus the input
    or, when the shape changes, ``skipbn(skip(x))`` with a 1x1 strided convolution."""

    def __init__(self, in_channels: int, out_channels: int, convs: int, stride: int,
                 start_with_relu: bool, grow_first: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widen_at = 0 if grow_first else convs - 1
        channels = in_channels
        for i in range(convs):
            out = out_channels if i >= widen_at else in_channels
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU())
            layers += [SeparableConv2d(channels, out), nn.BatchNorm2d(out)]
            channels = out
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.rep = nn.Sequential(*layers)
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = self.skipbn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + shortcut

    def zero_init_last(self) -> None:
        """Zero the last BN gamma of the residual branch (the block starts as its shortcut)."""
        nn.init.zeros_([m for m in self.rep if isinstance(m, nn.BatchNorm2d)][-1].weight)


class Xception(Classifier):
    """Entry flow (``conv1``..``bn2``, ``block1``-``block3``), middle flow (``block4``-
    ``block11``), exit flow (``block12``, ``conv3``/``bn3``, ``conv4``/``bn4``), ``fc``."""

    classifier_names = ("fc",)

    def __init__(self, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if not 0 <= dropout < 1:
            raise CnnkitError(f"xception: dropout must be in [0, 1); got {dropout}")
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.act2 = nn.ReLU()
        for index, config in enumerate(BLOCKS, start=1):
            self.add_module(f"block{index}", XceptionBlock(*config))
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.act3 = nn.ReLU()
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.act4 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)

        self.feature_specs = [FeatureSpec("act2", 2, 64), FeatureSpec("block1", 4, 128),
                              FeatureSpec("block2", 8, 256), FeatureSpec("block11", 16, 728),
                              FeatureSpec("act4", 32, 2048)]
        self.group_prefixes = {
            "stem": ("conv1", "bn1", "conv2", "bn2"),
            "stages": (*(f"block{i}" for i in range(1, len(BLOCKS) + 1)),
                       "conv3", "bn3", "conv4", "bn4"),
            "head": ("fc",),
        }
        init_weights(self, "kaiming")
        nn.init.normal_(self.fc.weight, 0.0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise InputSizeError(f"xception needs inputs of at least {MIN_INPUT_SIZE}x"
                                 f"{MIN_INPUT_SIZE} (its first two 3x3 convolutions are "
                                 f"unpadded); got {tuple(x.shape[-2:])}. The paper uses 299x299.")
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        for index in range(1, len(BLOCKS) + 1):
            x = getattr(self, f"block{index}")(x)
        x = self.act3(self.bn3(self.conv3(x)))
        return self.act4(self.bn4(self.conv4(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(x.mean((2, 3)), 1)))


def xception(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> Xception:
    """Xception as in the paper (299x299 input)."""
    return Xception(num_classes, in_channels, dropout)


register("xception", xception, task="classification", paper=PAPER, year=2017,
         input_size=(3, 299, 299), num_params=22_855_952,
         notes="No BN/ReLU between depthwise and pointwise convolutions, as in the paper; "
               "names follow the PyTorch port of the Keras weights; symmetric padding.")
