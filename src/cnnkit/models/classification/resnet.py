"""ImageNet ResNets: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016, and the families built from the same skeleton:

- ResNeXt (Xie, Girshick, Dollar, Tu & He, "Aggregated Residual Transformations for Deep Neural
  Networks", CVPR 2017): grouped 3x3 convolutions in the bottleneck (cardinality x width);
- Wide ResNet-50-2/101-2 (torchvision's reading of Zagoruyko & Komodakis, "Wide Residual
  Networks", BMVC 2016): bottlenecks twice as wide inside, same outer widths;
- SE-ResNet/SE-ResNeXt (Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018): an SE
  module with reduction 16 on the residual branch of every block, before the addition.

One builder, :func:`resnet`, plus the table ``_VARIANTS`` of block type, blocks per stage,
groups and width per group. Module names and shapes follow torchvision (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``/``.1``, ``fc``), so the ``reference="torchvision"``
variants load torchvision's ImageNet checkpoints with ``strict=True``; the SE variants add
``layerX.Y.se.fc1``/``.fc2`` (1x1 convolutions with bias) to that layout.

Differences from the ResNet paper:

- the stride of a downsampling bottleneck is in its 3x3 convolution (torchvision's "ResNet
  v1.5"); ``stride_in_1x1=True`` moves it to the first 1x1 convolution as in the paper;
- shortcuts that change shape are projections (option B: 1x1 convolution + batch norm);
  ``shortcut="A"`` gives the parameter-free zero-padded identity and ``shortcut="none"`` the
  plain network of the degradation experiment (no shortcuts at all; ``plain18``/``plain34`` in
  :mod:`cnnkit.models.classification.plain`);
- ``norm`` ("batch", default, or "group", "layer", "instance"; :mod:`cnnkit.layers.norm`)
  replaces every batch norm (the stem's, the blocks' and the projections'), names unchanged;
- ``output_stride`` 16 or 8 replaces the strides of layer4 (16) or layer3 and layer4 (8) by
  dilation (Chen et al., DeepLab), the first block of a dilated stage keeping the previous
  dilation in its 3x3 convolution, as torchvision's ``replace_stride_with_dilation``;
- initialisation: He et al. normal (fan-out) for convolutions, batch norms as identity, N(0, 0.01)
  for the classifier; ``zero_init_residual=True`` zeroes the last batch norm of every block
  (Goyal et al., "Accurate, Large Minibatch SGD", 2017).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.layers.norm import check_norm, make_norm
from cnnkit.layers.residual import BasicBlock, Bottleneck, check_shortcut, make_shortcut
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock,
                                                          "bottleneck": Bottleneck}
STAGE_PLANES = (64, 128, 256, 512)
# output stride -> which of layer2, layer3, layer4 trade their stride for dilation
DILATED_STAGES = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


class ResNet(Classifier):
    """A 7x7 stem, four stages of residual blocks and a linear classifier.

    ``feature_specs``: stem ReLU (stride 2, 64 channels), then layer1..layer4 (strides 4, 8, 16,
    32 at ``output_stride=32``; 4, 8, 16, 16 at 16; 4, 8, 8, 8 at 8) with ``planes x expansion``
    channels, e.g. 256, 512, 1024, 2048 for ResNet-50.
    """

    def __init__(self, block: str = "bottleneck", depths: tuple[int, ...] = (3, 4, 6, 3), *,
                 groups: int = 1, width_per_group: int = 64, se_reduction: int | None = None,
                 num_classes: int = 1000, in_channels: int = 3, output_stride: int = 32,
                 stride_in_1x1: bool = False, zero_init_residual: bool = False,
                 shortcut: str = "B", norm: str = "batch") -> None:
        super().__init__()
        _check_options(block, depths, groups, width_per_group, output_stride, stride_in_1x1,
                       num_classes, in_channels)
        check_shortcut(shortcut)
        check_norm(norm)
        if zero_init_residual and shortcut == "none":
            raise ArgumentError("zero_init_residual needs shortcuts: a plain block (shortcut="
                                "'none') with a zeroed last norm outputs zeros; pass False")
        block_cls = BLOCKS[block]
        block_options: dict = {"se_reduction": se_reduction, "residual": shortcut != "none",
                               "norm": norm}
        if block_cls is Bottleneck:
            block_options.update(groups=groups, base_width=width_per_group,
                                 stride_in_1x1=stride_in_1x1)

        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.feature_specs = [FeatureSpec("relu", 2, 64)]

        channels, total_stride, dilation = 64, 4, 1
        dilate = (False, *DILATED_STAGES[output_stride])
        for index, (planes, depth) in enumerate(zip(STAGE_PLANES, depths)):
            stride = 1 if index == 0 else 2
            previous_dilation = dilation
            if dilate[index]:
                dilation, stride = dilation * stride, 1
            out_channels = planes * block_cls.expansion
            downsample = make_shortcut(shortcut, channels, out_channels, stride, norm=norm)
            blocks = [block_cls(channels, planes, stride, downsample, dilation=dilation,
                                first_dilation=previous_dilation, **block_options)]
            blocks += [block_cls(out_channels, planes, dilation=dilation, **block_options)
                       for _ in range(1, depth)]
            name = f"layer{index + 1}"
            setattr(self, name, nn.Sequential(*blocks))
            channels, total_stride = out_channels, total_stride * stride
            self.feature_specs.append(FeatureSpec(name, total_stride, channels))

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        self.classifier_names = ("fc",)
        self.group_prefixes = {"stem": ("conv1", "bn1"),
                               "stages": ("layer1", "layer2", "layer3", "layer4"),
                               "head": ("fc",)}
        init_resnet(self, zero_init_residual=zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise InputSizeError(f"ResNet takes (N, C, H, W) inputs; got shape {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


def init_resnet(model: nn.Module, *, zero_init_residual: bool = False) -> None:
    """He et al. normal (fan-out) convolutions, identity batch norms, N(0, 0.01) for ``model.fc``;
    optionally zero the last batch norm of each block. Skipped on the meta device, where tensors
    have no values (and random fills are slow)."""
    if any(p.is_meta for p in model.parameters()):
        return
    init_weights(model, "kaiming", zero_init_residual=zero_init_residual)
    nn.init.normal_(model.fc.weight, 0.0, 0.01)
    nn.init.zeros_(model.fc.bias)


def _check_options(block: str, depths: tuple[int, ...], groups: int, width_per_group: int,
                   output_stride: int, stride_in_1x1: bool, num_classes: int,
                   in_channels: int) -> None:
    if block not in BLOCKS:
        raise ArgumentError(f"ResNet block must be one of {list(BLOCKS)}; got {block!r}")
    if len(depths) != 4 or any(d < 1 for d in depths):
        raise ArgumentError(f"ResNet depths must be 4 positive block counts (layer1..layer4); "
                         f"got {tuple(depths)}")
    if output_stride not in DILATED_STAGES:
        raise ArgumentError(f"output_stride must be one of {sorted(DILATED_STAGES)}; "
                         f"got {output_stride}")
    require_positive(groups=groups, width_per_group=width_per_group)
    if block == "basic" and (groups != 1 or width_per_group != 64 or stride_in_1x1):
        raise ArgumentError("the basic block has no 1x1 or grouped convolution: groups=1, "
                         "width_per_group=64 and stride_in_1x1=False are the only valid values; "
                         f"got {groups}, {width_per_group}, {stride_in_1x1}")
    require_positive(num_classes=num_classes, in_channels=in_channels)


def resnet(block: str = "bottleneck", depths: tuple[int, ...] = (3, 4, 6, 3), *,
           groups: int = 1, width_per_group: int = 64, se_reduction: int | None = None,
           num_classes: int = 1000, in_channels: int = 3, output_stride: int = 32,
           stride_in_1x1: bool = False, zero_init_residual: bool = False,
           shortcut: str = "B", norm: str = "batch") -> ResNet:
    """Build a ResNet/ResNeXt/Wide/SE-ResNet (or, with ``shortcut="none"``, its plain
    counterpart); see the module docstring for every option."""
    return ResNet(block, tuple(depths), groups=groups, width_per_group=width_per_group,
                  se_reduction=se_reduction, num_classes=num_classes, in_channels=in_channels,
                  output_stride=output_stride, stride_in_1x1=stride_in_1x1,
                  zero_init_residual=zero_init_residual, shortcut=shortcut, norm=norm)


RESNET_PAPER = ("K. He, X. Zhang, S. Ren, J. Sun, Deep Residual Learning for Image Recognition, "
                "CVPR 2016")
RESNEXT_PAPER = ("S. Xie, R. Girshick, P. Dollar, Z. Tu, K. He, Aggregated Residual "
                 "Transformations for Deep Neural Networks, CVPR 2017")
WIDE_PAPER = "S. Zagoruyko, N. Komodakis, Wide Residual Networks, BMVC 2016"
SE_PAPER = "J. Hu, L. Shen, G. Sun, Squeeze-and-Excitation Networks, CVPR 2018"
_V15 = "stride in the 3x3 convolution of downsampling bottlenecks (torchvision v1.5)"
_SE = ("torchvision ResNet layout plus an SE module (reduction 16, hidden width C // 16 "
       "unrounded) on every block's residual branch before the addition; " + _V15)

# name: (block, blocks per stage, groups, width per group, SE?, paper, year, torchvision?,
#        parameter count at 1000 classes). torchvision counts equal its published figures;
#        SE counts come from building the models here.
_VARIANTS: dict[str, tuple] = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64, False, RESNET_PAPER, 2016, True, 11_689_512),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64, False, RESNET_PAPER, 2016, True, 21_797_672),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64, False, RESNET_PAPER, 2016, True, 25_557_032),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64, False, RESNET_PAPER, 2016, True,
                  44_549_160),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64, False, RESNET_PAPER, 2016, True,
                  60_192_808),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4, False, RESNEXT_PAPER, 2017, True,
                        25_028_904),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8, False, RESNEXT_PAPER, 2017, True,
                         88_791_336),
    "resnext101_64x4d": ("bottleneck", (3, 4, 23, 3), 64, 4, False, RESNEXT_PAPER, 2017, True,
                         83_455_272),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 1, 128, False, WIDE_PAPER, 2016, True,
                        68_883_240),
    "wide_resnet101_2": ("bottleneck", (3, 4, 23, 3), 1, 128, False, WIDE_PAPER, 2016, True,
                         126_886_696),
    "seresnet18": ("basic", (2, 2, 2, 2), 1, 64, True, SE_PAPER, 2018, False, 11_778_592),
    "seresnet34": ("basic", (3, 4, 6, 3), 1, 64, True, SE_PAPER, 2018, False, 21_958_868),
    "seresnet50": ("bottleneck", (3, 4, 6, 3), 1, 64, True, SE_PAPER, 2018, False, 28_088_024),
    "seresnet101": ("bottleneck", (3, 4, 23, 3), 1, 64, True, SE_PAPER, 2018, False,
                    49_326_872),
    "seresnet152": ("bottleneck", (3, 8, 36, 3), 1, 64, True, SE_PAPER, 2018, False,
                    66_821_848),
    "seresnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4, True, SE_PAPER, 2018, False,
                          27_559_896),
}

for _name, (_block, _depths, _groups, _width, _se, _paper, _year, _tv, _count) in \
        _VARIANTS.items():
    if _se:
        _notes = _SE
    elif _paper is WIDE_PAPER:
        _notes = ("torchvision's Wide ResNet: ResNet bottlenecks with twice the inner width; the "
                  "paper's WRNs are pre-activation CIFAR nets (see wrn28_10); " + _V15)
    else:
        _notes = _V15
    register(_name, resnet, task="classification", paper=_paper, year=_year,
             input_size=(3, 224, 224), num_params=_count, notes=_notes,
             reference="torchvision" if _tv else "", block=_block, depths=_depths,
             groups=_groups, width_per_group=_width, se_reduction=16 if _se else None)
