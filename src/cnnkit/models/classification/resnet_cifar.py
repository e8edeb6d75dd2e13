"""Small-image residual networks for 32x32 inputs (CIFAR-10).

- CIFAR ResNets: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
  section 4.2: a 3x3 convolution with 16 filters, then three stages of ``n`` basic blocks with 16,
  32 and 64 filters on 32x32, 16x16 and 8x8 maps (6n+2 weighted layers), global average pooling
  and a 10-way fully connected layer. Shortcuts that change shape are option A (parameter-free
  zero-padded identity, the paper's choice for CIFAR, default) or option B (1x1 projection +
  batch norm). Names ``resnet20_cifar`` .. ``resnet1202_cifar``. ``shortcut="none"`` gives the
  plain networks of section 4.2 (the same layers, no shortcuts; ``plain20_cifar`` ..
  ``plain56_cifar`` in :mod:`cnnkit.models.classification.plain`), which have exactly as many
  parameters as option A; ``norm`` ("batch", "group", "layer", "instance") replaces the batch
  norms (:mod:`cnnkit.layers.norm`).
- Wide ResNets: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016: WRN-d-k with
  d = 6n+4, a 3x3 convolution with 16 filters, three stages of ``n`` pre-activation wide blocks
  with 16k, 32k and 64k filters, then BN-ReLU, global average pooling and a fully connected
  layer; optional dropout between the two convolutions of each block. Names ``wrn28_10``,
  ``wrn40_4``, ``wrn16_8``.

The two kinds of block differ on purpose: the CIFAR ResNets are post-activation (conv-BN-ReLU,
ReLU after the addition, :class:`~cnnkit.layers.residual.BasicBlock`); the WRNs pre-activation
(BN-ReLU-conv, nothing after the addition, :class:`~cnnkit.layers.residual.WideBasicBlock`).

Differences from the papers: initialisation is He et al. (2015) normal with fan-out for the
convolutions and N(0, 0.01) for the classifier; ``zero_init_residual`` (CIFAR ResNets only,
Goyal et al. 2017) is not in the paper; dropout is off unless asked for. Feature maps are
exposed at strides 1, 2, 4 (the three stages; for WRNs the last one is after the final BN-ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive
from cnnkit.layers.norm import check_norm, make_norm
from cnnkit.layers.residual import BasicBlock, WideBasicBlock, conv3x3, make_shortcut
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.classification.resnet import init_resnet
from cnnkit.models.registry import register


def _check_common(num_classes: int, in_channels: int) -> None:
    require_positive(num_classes=num_classes, in_channels=in_channels)


def _check_input(model: str, x: torch.Tensor) -> None:
    if x.dim() != 4 or min(x.shape[-2:]) < 4:
        raise InputSizeError(f"{model} takes (N, C, H, W) inputs with H, W >= 4 (two stride-2 "
                             f"stages); got shape {tuple(x.shape)}")


class CifarResNet(Classifier):
    """ResNet-(6n+2) of He et al. 2016, section 4.2; ``shortcut`` is ``"A"``, ``"B"`` or
    ``"none"`` (the plain network)."""

    def __init__(self, depth: int = 20, *, shortcut: str = "A", num_classes: int = 10,
                 in_channels: int = 3, zero_init_residual: bool = False,
                 norm: str = "batch") -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ArgumentError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, "
                             f"110, 1202, ...); got {depth}")
        _check_common(num_classes, in_channels)
        check_norm(norm)
        if zero_init_residual and shortcut == "none":
            raise ArgumentError("zero_init_residual needs shortcuts: a plain block (shortcut="
                                "'none') with a zeroed last norm outputs zeros; pass False")
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = make_norm(norm, 16)
        self.relu = nn.ReLU(inplace=True)
        self.feature_specs = []
        channels = 16
        options = {"residual": shortcut != "none", "norm": norm}
        for index, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
            downsample = make_shortcut(shortcut, channels, width, stride, norm=norm)
            blocks = [BasicBlock(channels, width, stride, downsample, **options)]
            blocks += [BasicBlock(width, width, **options) for _ in range(1, blocks_per_stage)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            self.feature_specs.append(FeatureSpec(f"layer{index + 1}", 2 ** index, width))
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        self.classifier_names = ("fc",)
        self.group_prefixes = {"stem": ("conv1", "bn1"), "stages": ("layer1", "layer2", "layer3"),
                               "head": ("fc",)}
        init_resnet(self, zero_init_residual=zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("CIFAR ResNet", x)
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


class WideResNet(Classifier):
    """WRN-``depth``-``widen_factor`` of Zagoruyko & Komodakis 2016 (pre-activation blocks)."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, *, dropout: float = 0.0,
                 num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ArgumentError(f"Wide ResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, "
                             f"40, ...); got {depth}")
        require_positive(widen_factor=widen_factor)
        _check_common(num_classes, in_channels)
        blocks_per_stage = (depth - 4) // 6
        self.conv1 = conv3x3(in_channels, 16)
        channels = 16
        for index, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
            width *= widen_factor
            blocks = [WideBasicBlock(channels, width, stride, dropout)]
            blocks += [WideBasicBlock(width, width, 1, dropout)
                       for _ in range(1, blocks_per_stage)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            channels = width
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        self.feature_specs = [FeatureSpec("layer1", 1, 16 * widen_factor),
                              FeatureSpec("layer2", 2, 32 * widen_factor),
                              FeatureSpec("", 4, channels)]
        self.classifier_names = ("fc",)
        self.group_prefixes = {"stem": ("conv1",),
                               "stages": ("layer1", "layer2", "layer3", "bn"), "head": ("fc",)}
        init_resnet(self, zero_init_residual=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("Wide ResNet", x)
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.relu(self.bn(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_cifar(depth: int = 20, *, shortcut: str = "A", num_classes: int = 10,
                 in_channels: int = 3, zero_init_residual: bool = False,
                 norm: str = "batch") -> CifarResNet:
    """Build the CIFAR ResNet with ``depth`` = 6n+2 layers (He et al. 2016, section 4.2), or
    with ``shortcut="none"`` the plain network of the same depth."""
    return CifarResNet(depth, shortcut=shortcut, num_classes=num_classes,
                       in_channels=in_channels, zero_init_residual=zero_init_residual,
                       norm=norm)


def wide_resnet(depth: int = 28, widen_factor: int = 10, *, dropout: float = 0.0,
                num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """Build WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis 2016)."""
    return WideResNet(depth, widen_factor, dropout=dropout, num_classes=num_classes,
                      in_channels=in_channels)


RESNET_PAPER = ("K. He, X. Zhang, S. Ren, J. Sun, Deep Residual Learning for Image Recognition, "
                "CVPR 2016")
WRN_PAPER = "S. Zagoruyko, N. Komodakis, Wide Residual Networks, BMVC 2016"

# depth -> parameter count with option A shortcuts and 10 classes, from building the models;
# they round to the paper's Table 6 (0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M).
CIFAR_RESNET_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962,
                       1202: 19_421_274}
# (depth, widen factor) -> parameter count at 10 classes, from building; the paper's Tables 1
# and 4 give 36.5M (WRN-28-10), 8.9M (WRN-40-4), 11.0M (WRN-16-8).
WRN_PARAMS = {(28, 10): 36_479_194, (40, 4): 8_949_210, (16, 8): 10_961_370}

for _depth, _count in CIFAR_RESNET_PARAMS.items():
    register(f"resnet{_depth}_cifar", resnet_cifar, task="classification", paper=RESNET_PAPER,
             year=2016, input_size=(3, 32, 32), num_params=_count, num_classes=10,
             notes=("CIFAR-10 ResNet of section 4.2 with option A shortcuts (zero-padded "
                    "identity, no parameters; shortcut='B' gives 1x1 projections + BN)"),
             depth=_depth)

for (_depth, _k), _count in WRN_PARAMS.items():
    register(f"wrn{_depth}_{_k}", wide_resnet, task="classification", paper=WRN_PAPER,
             year=2016, input_size=(3, 32, 32), num_params=_count, num_classes=10,
             notes=(f"WRN-{_depth}-{_k} for CIFAR-10, pre-activation blocks, convolutions "
                    "without bias, 1x1 convolution shortcuts (no BN) where the shape changes; "
                    "dropout off by default (dropout=0.3 for the paper's runs with dropout)"),
             depth=_depth, widen_factor=_k)
