"""VGG-style networks for small images (28 to 64 pixels): Fashion-MNIST, CIFAR, the demo's shapes.

Not a network of a paper: the design rules of Simonyan & Zisserman (Very Deep Convolutional
Networks for Large-Scale Image Recognition, ICLR 2015) -- stacks of 3x3 convolutions, 2x2 max
pools that halve the size and double the width -- with batch normalisation after every
convolution (Ioffe & Szegedy, 2015), scaled to small inputs: three stages instead of five and a
global-average-pooled classifier with one hidden layer instead of two 4096-unit layers. The
decks' advice for a first network of one's own ("start by reusing a simplified AlexNet/VGG").

A configuration is a table: convolution widths per stage, each stage ending in a max pool.
``norm`` ("batch", default, or "group", "layer", "instance"; :mod:`cnnkit.layers.norm`) chooses
the normalisation after every convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.layers.init import init_weights
from cnnkit.layers.norm import check_norm, make_norm
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register
from cnnkit.errors import ArgumentError, require_positive

PAPER = ("after K. Simonyan, A. Zisserman, Very Deep Convolutional Networks for Large-Scale "
         "Image Recognition, ICLR 2015 (small-image variant)")

# "s2": the five convolutions of "s" with the second full-resolution one moved to the last
# stage: the same multiply-adds (32x32 channels at 28x28 = 128x128 at 7x7) and more parameters,
# but a third of the full-resolution activations to write and read, which makes a training step
# faster on a CPU (BENCHMARKS.md).
CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "s": ((32, 32), (64, 64), (128,)),
    "s2": ((32,), (64, 64), (128, 128)),
    "s3": ((48,), (96, 96), (192, 192)),  # s2 at 1.5x the width: 2.2x its multiply-adds
    "m": ((64, 64), (128, 128), (256, 256)),
}


class SmallVGG(Classifier):
    """``features``: stages of conv3x3-BN-ReLU ending in a 2x2 max pool; ``classifier``:
    global average pool, dropout, linear ``hidden``, ReLU, dropout, linear ``num_classes``."""

    def __init__(self, stages: tuple[tuple[int, ...], ...], *, num_classes: int, in_channels: int,
                 hidden: int, dropout: float, norm: str = "batch") -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        check_norm(norm)
        layers: list[nn.Module] = []
        self.feature_specs = []
        channels = in_channels
        for stage, widths in enumerate(stages):
            for width in widths:
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                           make_norm(norm, width), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
            self.feature_specs.append(FeatureSpec(f"features.{len(layers) - 1}", 2 ** (stage + 1),
                                                  channels))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        self.classifier_names = ("classifier.5",)
        self.group_prefixes = {"stem": ("features.0", "features.1"), "stages": ("features",),
                               "head": ("classifier",)}
        init_weights(self, "kaiming")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(x))


def small_vgg(*, config: str = "s", num_classes: int = 10, in_channels: int = 3,
              hidden: int = 256, dropout: float = 0.3, norm: str = "batch") -> SmallVGG:
    """A VGG-style network for small images from the configuration table ``CONFIGS``."""
    if config not in CONFIGS:
        raise ArgumentError(f"small VGG config must be one of {list(CONFIGS)}; got {config!r}")
    return SmallVGG(CONFIGS[config], num_classes=num_classes, in_channels=in_channels,
                    hidden=hidden, dropout=dropout, norm=norm)


_NOTES = ("not a network of the paper: VGG's 3x3/max-pool design with batch norm, three stages "
          "and a global-average-pooled classifier (one hidden layer of 256) for 28-64 px images")
register("vgg_small_s", small_vgg, task="classification", paper=PAPER, year=2015,
         input_size=(3, 32, 32), num_params=175_338, num_classes=10, notes=_NOTES, config="s")
register("vgg_small_s2", small_vgg, task="classification", paper=PAPER, year=2015,
         input_size=(3, 32, 32), num_params=313_770, num_classes=10, notes=_NOTES, config="s2")
register("vgg_small_s3", small_vgg, task="classification", paper=PAPER, year=2015,
         input_size=(3, 32, 32), num_params=676_602, num_classes=10, notes=_NOTES, config="s3")
register("vgg_small_m", small_vgg, task="classification", paper=PAPER, year=2015,
         input_size=(3, 32, 32), num_params=1_214_666, num_classes=10, notes=_NOTES, config="m")
