"""DenseNet: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.

One builder, :func:`build_densenet`, and a table of variants:

- ``densenet121/161/169/201``: the ImageNet DenseNet-BC networks of the paper's Table 1, with
  the state_dict keys, shapes and parameter counts of torchvision's models (torchvision's
  checkpoint files still use the older ``denselayer1.norm.1`` style, which it renames to
  ``denselayer1.norm1`` while loading, as :meth:`DenseNet.remap_checkpoint_keys` does here):
  a 7x7/2 convolution and 3x3/2 max pool, four dense blocks, three transitions with compression
  0.5, a final BatchNorm + ReLU, global average pooling and a linear classifier.
- ``densenet_bc100_k12``, ``densenet_bc250_k24``, ``densenet_bc190_k40``: the DenseNet-BC
  networks for 32x32 CIFAR images (paper, Section 3 and Table 2): a single 3x3 convolution with
  2k filters, three dense blocks of (L - 4) / 6 bottleneck layers each, compression 0.5 and
  10 classes.

Differences from the paper: the final ReLU is an explicit module ``features.relu5`` (it has no
parameters, so torchvision's keys are unchanged) so that feature hooks see the activated map; the
CIFAR stem convolution has no bias (a bias would add 2k parameters). Weights are initialised with
Kaiming normal in fan-out mode (He et al., 2015, which the paper adopts), biases with 0.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError
from cnnkit.layers.dense import DenseBlock, Transition
from cnnkit.layers.init import init_weights
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = "Huang et al., Densely Connected Convolutional Networks"
# torchvision's checkpoint files name dense-layer modules "norm.1", "conv.2" ...; now "norm1".
LEGACY_LAYER_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.[a-z_]+)$")
STEMS = ("imagenet", "cifar")


class DenseNet(Classifier):
    """See the module docstring; build it with :func:`build_densenet`."""

    def __init__(self, *, num_classes: int, in_channels: int, growth_rate: int,
                 block_config: Sequence[int], num_init_features: int, bn_size: int,
                 compression: float, drop_rate: float, memory_efficient: bool, stem: str) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if stem == "imagenet":
            layers["conv0"] = nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3,
                                        bias=False)
            layers["norm0"] = nn.BatchNorm2d(num_init_features)
            layers["relu0"] = nn.ReLU(inplace=True)
            layers["pool0"] = nn.MaxPool2d(3, stride=2, padding=1)
            specs = [FeatureSpec("features.relu0", 2, num_init_features)]
            stem_names = ("features.conv0", "features.norm0")
            stride = 4
        else:  # CIFAR: one 3x3 convolution at full resolution
            layers["conv0"] = nn.Conv2d(in_channels, num_init_features, 3, padding=1, bias=False)
            specs = []
            stem_names = ("features.conv0",)
            stride = 1

        channels = num_init_features
        stage_names = []
        for i, num_layers in enumerate(block_config, start=1):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate=drop_rate,
                               memory_efficient=memory_efficient)
            layers[f"denseblock{i}"] = block
            channels = block.out_channels
            stage_names.append(f"features.denseblock{i}")
            if i < len(block_config):
                specs.append(FeatureSpec(f"features.denseblock{i}", stride, channels))
                out = max(1, math.floor(channels * compression))
                layers[f"transition{i}"] = Transition(channels, out)
                stage_names.append(f"features.transition{i}")
                channels, stride = out, stride * 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        layers["relu5"] = nn.ReLU(inplace=True)
        stage_names.append("features.norm5")
        specs.append(FeatureSpec("features.relu5", stride, channels))

        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.feature_specs = specs
        self.classifier_names = ("classifier",)
        self.group_prefixes = {"stem": stem_names, "stages": tuple(stage_names),
                               "head": ("classifier",)}
        self.min_input_size = _smallest_input(stem, len(block_config) - 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise InputSizeError(f"DenseNet expects a 4-D batch (N, C, H, W); "
                                 f"got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(h, w) < self.min_input_size:
            n = self.min_input_size
            raise InputSizeError(f"this DenseNet needs inputs of at least {n}x{n} pixels (each "
                                 f"transition halves the size); got {h}x{w}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))

    @staticmethod
    def remap_checkpoint_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename the legacy ``denselayer1.norm.1.weight`` keys to ``denselayer1.norm1.weight``."""
        return {LEGACY_LAYER_KEY.sub(r"\1\2", k): v for k, v in state.items()}


def _smallest_input(stem: str, num_transitions: int) -> int:
    """Smallest height/width that still leaves one pixel after the stem and every transition."""
    for size in range(1, 4096):
        n = size
        if stem == "imagenet":
            n = (n - 1) // 2 + 1  # conv0: 7x7, stride 2, padding 3
            n = (n - 1) // 2 + 1  # pool0: 3x3, stride 2, padding 1
        if n >= 1 and n >> num_transitions >= 1:  # each transition: 2x2 average pool, stride 2
            return size
    raise AssertionError("unreachable")


def build_densenet(*, num_classes: int = 1000, in_channels: int = 3, growth_rate: int = 32,
                   block_config: Sequence[int] = (6, 12, 24, 16), num_init_features: int = 64,
                   bn_size: int = 4, compression: float = 0.5, drop_rate: float = 0.0,
                   memory_efficient: bool = False, stem: str = "imagenet") -> DenseNet:
    """DenseNet-BC; the defaults are DenseNet-121, ``VARIANTS`` lists the others.

    ``growth_rate`` is k, ``block_config`` the number of layers per dense block, ``bn_size`` the
    bottleneck width in multiples of k, ``compression`` the transitions' channel factor (theta),
    ``stem`` "imagenet" (7x7/2 conv + max pool) or "cifar" (one 3x3 conv).
    """
    block_config = tuple(block_config)
    checks = [
        ("num_classes", num_classes >= 1, ">= 1"), ("in_channels", in_channels >= 1, ">= 1"),
        ("growth_rate", growth_rate >= 1, ">= 1"), ("bn_size", bn_size >= 1, ">= 1"),
        ("num_init_features", num_init_features >= 1, ">= 1"),
        ("block_config", bool(block_config) and all(isinstance(n, int) and n >= 1
                                                     for n in block_config),
         "a non-empty sequence of layer counts >= 1"),
        ("compression", 0.0 < compression <= 1.0, "in (0, 1]"),
        ("drop_rate", 0.0 <= drop_rate < 1.0, "in [0, 1)"),
        ("stem", stem in STEMS, f"one of {STEMS}"),
    ]
    for arg, ok, valid in checks:
        if not ok:
            raise ArgumentError(f"DenseNet option {arg} must be {valid}; got {locals()[arg]!r}")
    model = DenseNet(num_classes=num_classes, in_channels=in_channels, growth_rate=growth_rate,
                     block_config=block_config, num_init_features=num_init_features,
                     bn_size=bn_size, compression=compression, drop_rate=drop_rate,
                     memory_efficient=memory_efficient, stem=stem)
    return init_weights(model, "kaiming")


def build_densenet_cifar(*, num_classes: int = 10, in_channels: int = 3, growth_rate: int = 12,
                         depth: int = 100, **options: Any) -> DenseNet:
    """DenseNet-BC for 32x32 images: depth L gives 3 blocks of (L - 4) / 6 layers, 2k stem width."""
    if depth < 10 or (depth - 4) % 6:
        raise ArgumentError(f"DenseNet-BC depth L must satisfy (L - 4) % 6 == 0 and L >= 10 "
                         f"(e.g. 40, 100, 190, 250); got {depth}")
    options.setdefault("num_init_features", 2 * growth_rate)
    return build_densenet(num_classes=num_classes, in_channels=in_channels,
                          growth_rate=growth_rate, block_config=((depth - 4) // 6,) * 3,
                          stem="cifar", **options)


TORCHVISION_NOTES = ("torchvision's keys and published count (its checkpoint files use the old "
                     "'norm.1' layer keys, which DenseNet.remap_checkpoint_keys renames); the "
                     "final ReLU is the parameterless module features.relu5.")
CIFAR_NOTES = ("DenseNet-BC for CIFAR (32x32, 10 classes), compression 0.5, bottleneck 4k; "
               "stem convolution without bias. Paper Table 2: {paper}M parameters.")

# ImageNet (paper Table 1): name -> growth rate k, layers per block, stem filters, exact count.
IMAGENET_TABLE: dict[str, tuple[int, tuple[int, ...], int, int]] = {
    "densenet121": (32, (6, 12, 24, 16), 64, 7_978_856),
    "densenet161": (48, (6, 12, 36, 24), 96, 28_681_000),
    "densenet169": (32, (6, 12, 32, 32), 64, 14_149_480),
    "densenet201": (32, (6, 12, 48, 32), 64, 20_013_928),
}
# CIFAR (paper Table 2): name -> depth L, growth rate k, exact count, the paper's count (M).
CIFAR_TABLE: dict[str, tuple[int, int, int, str]] = {
    "densenet_bc100_k12": (100, 12, 769_162, "0.8"),
    "densenet_bc250_k24": (250, 24, 15_324_406, "15.3"),
    "densenet_bc190_k40": (190, 40, 25_624_430, "25.6"),
}

for _name, (_k, _blocks, _init, _count) in IMAGENET_TABLE.items():
    register(_name, build_densenet, task="classification", paper=PAPER, year=2017,
             input_size=(3, 224, 224), num_params=_count, notes=TORCHVISION_NOTES,
             reference="torchvision", growth_rate=_k, block_config=_blocks,
             num_init_features=_init)
for _name, (_depth, _k, _count, _paper_count) in CIFAR_TABLE.items():
    register(_name, build_densenet_cifar, task="classification", paper=PAPER, year=2017,
             input_size=(3, 32, 32), num_params=_count, num_classes=10,
             notes=CIFAR_NOTES.format(paper=_paper_count), depth=_depth, growth_rate=_k)
