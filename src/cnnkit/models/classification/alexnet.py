"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012.

One builder, two configurations:

- ``"paper"`` (registered as ``alexnet_paper``): the 2012 network as usually drawn, with a
  227x227 input: conv1 96 11x11 stride 4 (-> 55x55), ReLU, local response normalisation
  (size 5, alpha 1e-4, beta 0.75, k 2), 3x3 stride-2 max pool (-> 27); conv2 256 5x5 pad 2;
  ReLU, LRN, pool (-> 13); conv3 384, conv4 384, conv5 256 (3x3 pad 1); pool (-> 6x6x256);
  fully connected 4096, 4096, 1000 with dropout 0.5 after the first two. The paper's split over
  two GPUs is kept as grouped convolutions (``groups=2`` on conv2, conv4 and conv5; conv3 and
  the fully connected layers see both halves). ``groups=1`` gives the single-GPU network.
  Weights start as in the paper: N(0, 0.01), biases 1 in conv2, conv4, conv5 and the fully
  connected layers, 0 elsewhere.
- ``"torchvision"`` (registered as ``alexnet``): torchvision's variant (after Krizhevsky's
  "One weird trick", 2014): 64-192-384-256-256 channels, conv1 with padding 2 for 224x224
  inputs, no LRN, no groups, dropout before the first two fully connected layers; its
  state_dict keys and shapes are torchvision's. Layers keep PyTorch's default initialisation,
  as torchvision does.

Both end with an adaptive 6x6 average pool (torchvision's; the identity at the default input
size) so that inputs from 63x63 (torchvision) or 67x67 (paper) upwards work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = ("A. Krizhevsky, I. Sutskever, G. E. Hinton, ImageNet Classification with Deep "
         "Convolutional Neural Networks, NeurIPS 2012")


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.Module:
    """Local response normalisation with Krizhevsky et al.'s formula and default constants.

    The paper divides by ``(k + alpha * sum of squares over size neighbouring channels) ** beta``;
    ``nn.LocalResponseNorm`` divides by ``(k + alpha / size * sum) ** beta``, so it gets
    ``alpha * size``.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


@dataclass(frozen=True)
class AlexNetConfig:
    widths: tuple[int, int, int, int, int]  # conv1..conv5 output channels
    conv1_padding: int
    lrn: bool  # LRN after the ReLUs of conv1 and conv2
    dropout_first: bool  # True: Dropout, Linear, ReLU (torchvision); False: Linear, ReLU, Dropout
    paper_init: bool
    min_input: int  # smallest input side that leaves a 1x1 map after the last pool


ALEXNET_CONFIGS = {
    "paper": AlexNetConfig(widths=(96, 256, 384, 384, 256), conv1_padding=0, lrn=True,
                           dropout_first=False, paper_init=True, min_input=67),
    "torchvision": AlexNetConfig(widths=(64, 192, 384, 256, 256), conv1_padding=2, lrn=False,
                                 dropout_first=True, paper_init=False, min_input=63),
}
GROUPED = (False, True, False, True, True)  # conv2, conv4, conv5 are split over the two GPUs


class AlexNet(Classifier):
    """AlexNet in the configuration ``config``; see the module docstring."""

    def __init__(self, config: str = "paper", *, groups: int = 1, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        if config not in ALEXNET_CONFIGS:
            raise ArgumentError(f"AlexNet config must be one of {list(ALEXNET_CONFIGS)}; "
                             f"got {config!r}")
        cfg = ALEXNET_CONFIGS[config]
        w = cfg.widths
        grouped_sizes = [n for i, g in enumerate(GROUPED) if g for n in (w[i - 1], w[i])]
        if groups < 1 or any(n % groups for n in grouped_sizes):
            raise ArgumentError(f"AlexNet groups must divide the channels {w} of the grouped "
                             f"convolutions (e.g. 1 or 2); got groups={groups}")
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.min_input = cfg.min_input
        g = [groups if grouped else 1 for grouped in GROUPED]

        def lrn() -> list[nn.Module]:
            return [paper_lrn()] if cfg.lrn else []

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, w[0], 11, stride=4, padding=cfg.conv1_padding),
            nn.ReLU(inplace=True), *lrn(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(w[0], w[1], 5, padding=2, groups=g[1]), nn.ReLU(inplace=True),
            *lrn(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(w[1], w[2], 3, padding=1, groups=g[2]), nn.ReLU(inplace=True),
            nn.Conv2d(w[2], w[3], 3, padding=1, groups=g[3]), nn.ReLU(inplace=True),
            nn.Conv2d(w[3], w[4], 3, padding=1, groups=g[4]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        ]
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        fc = [nn.Linear(w[4] * 6 * 6, 4096), nn.Linear(4096, 4096)]
        if cfg.dropout_first:
            hidden = [nn.Dropout(dropout), fc[0], nn.ReLU(inplace=True),
                      nn.Dropout(dropout), fc[1], nn.ReLU(inplace=True)]
        else:
            hidden = [fc[0], nn.ReLU(inplace=True), nn.Dropout(dropout),
                      fc[1], nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.classifier = nn.Sequential(*hidden, nn.Linear(4096, num_classes))

        first_pool = 3 if cfg.lrn else 2
        pool2 = first_pool + (4 if cfg.lrn else 3)
        last = len(layers) - 1
        self.feature_specs = [
            FeatureSpec(f"features.{first_pool - 1}", 4, w[0]),
            FeatureSpec(f"features.{pool2 - 1}", 8, w[1]),
            FeatureSpec(f"features.{last - 1}", 16, w[4]),
            FeatureSpec(f"features.{last}", 32, w[4]),
        ]
        self.classifier_names = ("classifier.6",)
        self.group_prefixes = {
            "stem": tuple(f"features.{i}" for i in range(first_pool + 1)),
            "stages": tuple(f"features.{i}" for i in range(first_pool + 1, len(layers))),
            "head": ("classifier",),
        }
        if cfg.paper_init and not self.classifier[6].weight.is_meta:  # meta holds no values
            self._init_as_paper()

    def _init_as_paper(self) -> None:
        """N(0, 0.01) weights; biases 1 in conv2, conv4, conv5 and the hidden fully connected
        layers (to give the ReLUs positive inputs early on), 0 elsewhere (Section 5)."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        for i, m in enumerate(convs + linears):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or min(x.shape[-2:]) < self.min_input:
            raise InputSizeError(f"AlexNet takes (N, C, H, W) inputs with H, W >= "
                                 f"{self.min_input}; got shape {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def alexnet(config: str = "paper", *, groups: int = 1, num_classes: int = 1000,
            in_channels: int = 3, dropout: float = 0.5) -> AlexNet:
    """Build AlexNet (``config`` "paper" or "torchvision"; see the module docstring)."""
    return AlexNet(config, groups=groups, num_classes=num_classes, in_channels=in_channels,
                   dropout=dropout)


register("alexnet_paper", alexnet, task="classification", paper=PAPER, year=2012,
         input_size=(3, 227, 227), num_params=60_965_224, config="paper", groups=2,
         notes=("227x227 input; the two-GPU split as groups=2 on conv2, conv4, conv5 "
                "(groups=1: 62,378,344 parameters); adaptive 6x6 average pool added "
                "(identity at 227x227)"))
register("alexnet", alexnet, task="classification", paper=PAPER, year=2012,
         input_size=(3, 224, 224), num_params=61_100_840, config="torchvision", groups=1,
         reference="torchvision",
         notes=("torchvision's variant: 64-192-384-256-256 channels, no LRN, no groups, "
                "padding 2 in conv1, adaptive 6x6 average pool"))
