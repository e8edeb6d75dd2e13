"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012; and ZFNet: Zeiler & Fergus, "Visualizing and Understanding
Convolutional Networks", ECCV 2014.

One builder, three configurations (a table of layer sizes, :data:`ALEXNET_CONFIGS`):

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

- ``"zfnet"`` (registered as ``zfnet``): Zeiler & Fergus's network (their Figure 3), the
  AlexNet that their visualisations led to: 224x224 input, conv1 96 7x7 stride 2 (-> 110x110)
  instead of 11x11 stride 4, 3x3 stride-2 max pool (-> 55), contrast normalisation; conv2 256
  5x5 stride 2 (-> 26), pool (-> 13), normalisation; conv3 384, conv4 384, conv5 256 (3x3 pad
  1), pool (-> 6x6x256); fully connected 4096, 4096, 1000 with dropout 0.5; dense connections
  (one GPU, ``groups=1``). Its 62,357,608 parameters equal the commonly published figure (the
  same layers as ``alexnet_paper`` with ``groups=1``, minus the difference between 11x11 and
  7x7 conv1 kernels: 62,378,344 - 96 * 3 * (121 - 49) = 62,357,608). The figure's sizes need
  two choices the paper does not state: conv1 pads by 1 pixel ((224 + 2 - 7) // 2 + 1 = 110)
  and the pools round up (Caffe's ceil mode: 110 -> 55, 26 -> 13); neither changes a count.
  Differences: the "local contrast normalisation across feature maps" after pools 1 and 2 is
  Krizhevsky et al.'s LRN with their constants (Zeiler & Fergus give none); weights start as
  N(0, 0.01) (the paper: "initialized to 10^-2") with zero biases; the paper's renormalisation
  of conv filters whose RMS exceeds 0.1 is a training step, not built here.

All end with an adaptive 6x6 average pool (torchvision's; the identity at the default input
size) so that inputs from 63x63 (torchvision), 47x47 (ZFNet, whose ceil-mode pools accept
partial windows) or 67x67 (paper) upwards work.
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
ZF_PAPER = ("M. D. Zeiler, R. Fergus, Visualizing and Understanding Convolutional Networks, "
            "ECCV 2014")


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
    conv1: tuple[int, int, int]  # kernel, stride, padding
    conv2: tuple[int, int, int]  # kernel, stride, padding
    lrn: str | None  # "after_relu" (AlexNet), "after_pool" (ZFNet) in stages 1-2, or None
    ceil_pools: bool  # round pool output sizes up (ZFNet's 110 -> 55 and 26 -> 13)
    dropout_first: bool  # True: Dropout, Linear, ReLU (torchvision); False: Linear, ReLU, Dropout
    init_biases: tuple[float, ...] | None  # N(0, 0.01) weights and these biases for conv1..5,
    #                                        fc6..8 (None: PyTorch's default initialisation)
    min_input: int  # smallest input side that leaves a 1x1 map after the last pool


ALEXNET_CONFIGS = {
    "paper": AlexNetConfig(widths=(96, 256, 384, 384, 256), conv1=(11, 4, 0), conv2=(5, 1, 2),
                           lrn="after_relu", ceil_pools=False, dropout_first=False,
                           init_biases=(0, 1, 0, 1, 1, 1, 1, 0), min_input=67),
    "torchvision": AlexNetConfig(widths=(64, 192, 384, 256, 256), conv1=(11, 4, 2),
                                 conv2=(5, 1, 2), lrn=None, ceil_pools=False,
                                 dropout_first=True, init_biases=None, min_input=63),
    "zfnet": AlexNetConfig(widths=(96, 256, 384, 384, 256), conv1=(7, 2, 1), conv2=(5, 2, 0),
                           lrn="after_pool", ceil_pools=True, dropout_first=False,
                           init_biases=(0.0,) * 8, min_input=47),
}
GROUPED = (False, True, False, True, True)  # conv2, conv4, conv5 are split over the two GPUs


class AlexNet(Classifier):
    """AlexNet (or ZFNet) in the configuration ``config``; see the module docstring.

    ``feature_specs``: the last module before pool1 and before pool2, conv5's ReLU and pool5
    (strides 4, 8, 16, 32 for AlexNet; 2, 8, 16, 32 for ZFNet).
    """

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
        self.config, self.min_input = cfg, cfg.min_input
        g = [groups if grouped else 1 for grouped in GROUPED]
        layers: list[nn.Module] = []
        self.feature_specs = []
        stride, stem_end = 1, 0
        for index, (k, s, p) in enumerate((cfg.conv1, cfg.conv2)):  # stages 1 and 2
            c_in = in_channels if index == 0 else w[0]
            layers += [nn.Conv2d(c_in, w[index], k, stride=s, padding=p, groups=g[index]),
                       nn.ReLU(inplace=True)]
            stride *= s
            if cfg.lrn == "after_relu":
                layers.append(paper_lrn())
            self.feature_specs.append(FeatureSpec(f"features.{len(layers) - 1}", stride, w[index]))
            layers.append(self._pool())
            stride *= 2
            if cfg.lrn == "after_pool":
                layers.append(paper_lrn())
            stem_end = stem_end or len(layers)
        for index in (2, 3, 4):
            layers += [nn.Conv2d(w[index - 1], w[index], 3, padding=1, groups=g[index]),
                       nn.ReLU(inplace=True)]
        self.feature_specs.append(FeatureSpec(f"features.{len(layers) - 1}", stride, w[4]))
        layers.append(self._pool())
        self.feature_specs.append(FeatureSpec(f"features.{len(layers) - 1}", 2 * stride, w[4]))
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
        self.classifier_names = ("classifier.6",)
        self.group_prefixes = {
            "stem": tuple(f"features.{i}" for i in range(stem_end)),
            "stages": tuple(f"features.{i}" for i in range(stem_end, len(layers))),
            "head": ("classifier",),
        }
        if cfg.init_biases is not None and not self.classifier[6].weight.is_meta:
            self._init_as_paper(cfg.init_biases)  # (meta tensors hold no values)

    def _pool(self) -> nn.MaxPool2d:
        return nn.MaxPool2d(3, stride=2, ceil_mode=self.config.ceil_pools)

    def _init_as_paper(self, biases: tuple[float, ...]) -> None:
        """N(0, 0.01) weights and the given biases. AlexNet (Section 5): biases 1 in conv2,
        conv4, conv5 and the hidden fully connected layers (to give the ReLUs positive inputs
        early on), 0 elsewhere; ZFNet (Section 3): biases 0."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        for m, bias in zip(convs + linears, biases):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or min(x.shape[-2:]) < self.min_input:
            name = "ZFNet" if self.config.lrn == "after_pool" else "AlexNet"
            raise InputSizeError(f"{name} takes (N, C, H, W) inputs with H, W >= "
                                 f"{self.min_input}; got shape {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def alexnet(config: str = "paper", *, groups: int = 1, num_classes: int = 1000,
            in_channels: int = 3, dropout: float = 0.5) -> AlexNet:
    """Build AlexNet (``config`` "paper" or "torchvision") or ZFNet (``config`` "zfnet");
    see the module docstring."""
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
register("zfnet", alexnet, task="classification", paper=ZF_PAPER, year=2014,
         input_size=(3, 224, 224), num_params=62_357_608, config="zfnet", groups=1,
         notes=("Figure 3 of the paper: conv1 7x7 stride 2 (padded by 1 to give 110x110), conv2 "
                "5x5 stride 2, ceil-mode 3x3 pools, LRN after pools 1 and 2 (Krizhevsky's "
                "constants), dense connections; adaptive 6x6 average pool added (identity at "
                "224x224); the count equals the commonly published 62,357,608"))
