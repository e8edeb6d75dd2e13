"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015.

All six configurations of the paper's Table 1 (A, A-LRN, B, C, D, E) are one table, written in
the paper's own notation ("conv3-64" = 3x3 convolution with 64 output channels, "conv1-256" =
1x1 convolution, "LRN" = local response normalisation), built by one builder, each with an
optional batch norm after every convolution (Ioffe & Szegedy, 2015; not in the paper).

Module layout and names follow torchvision's VGG, so that ``vgg11``..``vgg19`` and their ``_bn``
versions have torchvision's state_dict keys and shapes: ``features`` (conv [bn] relu ... maxpool,
one flat ``nn.Sequential``), ``avgpool`` = ``AdaptiveAvgPool2d((7, 7))`` and ``classifier`` =
Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear.

Differences from the paper:

- the adaptive 7x7 average pool (identity at the paper's 224x224 input) lets any input of at
  least 32x32 through; the paper instead converts the fully connected layers to convolutions
  for dense evaluation at other scales;
- initialisation follows torchvision (He et al. normal, fan-out, for convolutions; N(0, 0.01)
  for linear layers; zero biases), not the paper's "train A from N(0, 0.01), then initialise
  the deeper nets from A";
- the LRN of A-LRN uses Krizhevsky et al.'s parameters, as the paper says, in their formula
  (see :func:`cnnkit.models.classification.alexnet.paper_lrn`);
- ``norm`` ("batch", default, or "group", "layer", "instance"; :mod:`cnnkit.layers.norm`)
  chooses the normalisation layer that ``batch_norm=True`` puts after every convolution;
- ``output_stride`` 16 or 8 (default 32) removes downsampling by dilation, DeepLab v1's recipe
  (Chen, Papandreou, Kokkinos, Murphy & Yuille, "Semantic Image Segmentation with Deep
  Convolutional Nets and Fully Connected CRFs", ICLR 2015): pool5 (16), or pool4 and pool5 (8),
  become 3x3 max pools with stride 1 and padding 1 -- the size-preserving pools of the authors'
  released models, since a 2x2 window cannot be centred at stride 1 -- and every convolution
  after a removed stride is dilated by the strides removed so far (conv5_x by 2 at output
  stride 8; padding grows with the dilation). ``VGG.dilation`` is the dilation that layers after
  pool5 need (2 at 16, 4 at 8: DeepLab's fc6), which the FCN of
  :mod:`cnnkit.models.segmentation.fcn` applies to its fc6. No parameter changes, so trained
  weights load; the adaptive 7x7 pool then averages the larger pool5 map.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.layers.norm import check_norm, make_norm
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.classification.alexnet import paper_lrn
from cnnkit.models.registry import register

PAPER = ("K. Simonyan, A. Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
         "Recognition, ICLR 2015")

# Table 1 of the paper: five blocks per configuration, each followed by a 2x2 max pool.
VGG_CONFIGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (("conv3-64",), ("conv3-128",), ("conv3-256",) * 2, ("conv3-512",) * 2,
          ("conv3-512",) * 2),
    "A-LRN": (("conv3-64", "LRN"), ("conv3-128",), ("conv3-256",) * 2, ("conv3-512",) * 2,
              ("conv3-512",) * 2),
    "B": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 2, ("conv3-512",) * 2,
          ("conv3-512",) * 2),
    "C": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256", "conv3-256", "conv1-256"),
          ("conv3-512", "conv3-512", "conv1-512"), ("conv3-512", "conv3-512", "conv1-512")),
    "D": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 3, ("conv3-512",) * 3,
          ("conv3-512",) * 3),
    "E": (("conv3-64",) * 2, ("conv3-128",) * 2, ("conv3-256",) * 4, ("conv3-512",) * 4,
          ("conv3-512",) * 4),
}

MIN_INPUT = 32  # five 2x2 max pools
# output stride -> how many of the last max pools lose their stride
DILATED_POOLS = {32: 0, 16: 1, 8: 2}


def _parse_layer(spec: str) -> tuple[int, int]:
    """'conv3-64' -> (kernel 3, channels 64)."""
    kind, _, channels = spec.partition("-")
    if not kind.startswith("conv") or not channels.isdigit():
        raise ArgumentError(f"VGG layer spec must look like 'conv3-64' or be 'LRN'; got {spec!r}")
    return int(kind[4:]), int(channels)


class VGG(Classifier):
    """One VGG configuration; see the module docstring for the paper and what differs.

    ``feature_specs`` are the outputs of the five max pools (strides 2..32, channels
    64, 128, 256, 512, 512). ``prepool_feature_specs`` are the last activations before each
    pool (strides 1..16, same channels), the skip connections a U-Net-style decoder wants; use
    them with ``FeatureExtractor`` by assigning them to ``feature_specs``. Below
    ``output_stride=32`` the strides stop growing at ``output_stride``.
    """

    def __init__(self, config: str, *, batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5, norm: str = "batch",
                 output_stride: int = 32) -> None:
        super().__init__()
        if config not in VGG_CONFIGS:
            raise ArgumentError(f"VGG config must be one of {list(VGG_CONFIGS)}; got {config!r}")
        require_positive(num_classes=num_classes, in_channels=in_channels)
        check_norm(norm)
        if norm != "batch" and not batch_norm:
            raise ArgumentError(f"norm={norm!r} chooses the layer batch_norm=True adds after every "
                                "convolution (the *_bn variants); pass batch_norm=True as well")
        if output_stride not in DILATED_POOLS:
            raise ArgumentError(f"output_stride must be one of {sorted(DILATED_POOLS)}; "
                                f"got {output_stride!r}")
        layers: list[nn.Module] = []
        self.feature_specs, self.prepool_feature_specs = [], []
        stem_end = 0
        channels, stride, dilation = in_channels, 1, 1
        blocks = VGG_CONFIGS[config]
        first_dilated = len(blocks) - DILATED_POOLS[output_stride]
        for index, block in enumerate(blocks):
            for spec in block:
                if spec == "LRN":
                    layers.append(paper_lrn())
                    continue
                kernel, out_channels = _parse_layer(spec)
                layers.append(nn.Conv2d(channels, out_channels, kernel,
                                        padding=dilation * (kernel // 2), dilation=dilation))
                if batch_norm:
                    layers.append(make_norm(norm, out_channels))
                layers.append(nn.ReLU(inplace=True))
                channels = out_channels
            self.prepool_feature_specs.append(FeatureSpec(f"features.{len(layers) - 1}",
                                                          stride, channels))
            if index < first_dilated:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                stride *= 2
            else:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))
                dilation *= 2
            self.feature_specs.append(FeatureSpec(f"features.{len(layers) - 1}", stride, channels))
            stem_end = stem_end or len(layers)
        self.features = nn.Sequential(*layers)
        self.output_stride, self.dilation = output_stride, dilation
        self.min_input = output_stride
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        self.classifier_names = ("classifier.6",)
        self.group_prefixes = {
            "stem": tuple(f"features.{i}" for i in range(stem_end)),
            "stages": tuple(f"features.{i}" for i in range(stem_end, len(layers))),
            "head": ("classifier",),
        }
        if not self.classifier[0].weight.is_meta:  # meta tensors hold no values to initialise
            init_weights(self.features, "kaiming")
            for m in self.classifier.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or min(x.shape[-2:]) < self.min_input:
            raise InputSizeError(f"VGG takes (N, C, H, W) inputs with H, W >= {self.min_input} "
                                 f"(one cell at output stride {self.output_stride}); "
                                 f"got shape {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def vgg(config: str = "D", *, batch_norm: bool = False, num_classes: int = 1000,
        in_channels: int = 3, dropout: float = 0.5, norm: str = "batch",
        output_stride: int = 32) -> VGG:
    """Build VGG configuration ``config`` (one of A, A-LRN, B, C, D, E of the paper's Table 1);
    ``norm`` and ``output_stride`` as in the module docstring."""
    return VGG(config, batch_norm=batch_norm, num_classes=num_classes, in_channels=in_channels,
               dropout=dropout, norm=norm, output_stride=output_stride)


# (name, config, torchvision name?, parameter count without BN, with BN), counts from building
# the models here; the torchvision ones equal torchvision's published figures.
_VARIANTS = (
    ("vgg11", "A", True, 132_863_336, 132_868_840),
    ("vgg13", "B", True, 133_047_848, 133_053_736),
    ("vgg16", "D", True, 138_357_544, 138_365_992),
    ("vgg19", "E", True, 143_667_240, 143_678_248),
    ("vgg_c", "C", False, 133_638_952, 133_647_400),
)

for _name, _config, _torchvision, _plain, _bn in _VARIANTS:
    for _suffix, _batch_norm, _count in (("", False, _plain), ("_bn", True, _bn)):
        register(_name + _suffix, vgg, task="classification", paper=PAPER, year=2015,
                 input_size=(3, 224, 224), num_params=_count,
                 reference="torchvision" if _torchvision else "",
                 notes=(f"configuration {_config} of Table 1"
                        + (", with batch norm after every convolution" if _batch_norm else "")
                        + "; adaptive 7x7 average pool before the classifier (torchvision layout)"),
                 config=_config, batch_norm=_batch_norm)

register("vgg_a_lrn", vgg, task="classification", paper=PAPER, year=2015,
         input_size=(3, 224, 224), num_params=132_863_336,
         notes=("configuration A-LRN of Table 1 (A with LRN after the first convolution; LRN has no "
                "parameters); adaptive 7x7 average pool before the classifier"),
         config="A-LRN", batch_norm=False)
