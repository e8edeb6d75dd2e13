"""LeNet-5: LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proceedings of the IEEE, 1998.

32x32 single-channel input: C1 conv 6 5x5 (-> 28x28), S2 2x2 subsampling (-> 14), C3 conv 16
5x5 (-> 10), S4 subsampling (-> 5), C5 conv 120 5x5 (-> 1), F6 fully connected 84, output 10.

Two options, one builder:

- ``activation="tanh", pooling="avg"`` (registered as ``lenet5``, 61,706 parameters): the
  classic network, simplified: S2/S4 are plain 2x2 average pools (the paper's subsampling
  units have a trainable coefficient and bias per map, followed by a sigmoid), C3 connects
  every S2 map to every C3 map (the paper's connection table links each C3 map to only 3, 4
  or 6 of them), the squashing function is plain tanh (the paper scales it, 1.7159 tanh(2a/3)),
  and the output layer is linear (the paper's has Euclidean RBF units). Xavier initialisation
  (Glorot & Bengio, 2010) for tanh.
- ``activation="relu", pooling="max"`` (registered as ``lenet5_relu``): the modern recipe,
  with He initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = ("Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, Gradient-Based Learning Applied to Document "
         "Recognition, Proc. IEEE 1998")

LENET5_WIDTHS = (6, 16, 120, 84)  # C1, C3, C5 maps; F6 units
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
# C5 must see a 5x5 map: inputs of 32..35 pixels give that (conv 5, pool 2, conv 5, pool 2)
INPUT_RANGE = (32, 35)


class LeNet5(Classifier):
    """LeNet-5; see the module docstring for the paper and what differs from it.

    ``features``: C1, act, S2, C3, act, S4, C5, act; ``classifier``: F6, act, output.
    Feature maps: S2 (stride 2, 6 channels) and S4 (stride 4, 16 channels).
    """

    def __init__(self, *, activation: str = "tanh", pooling: str = "avg", num_classes: int = 10,
                 in_channels: int = 1) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ArgumentError(f"LeNet-5 activation must be one of {list(ACTIVATIONS)}; "
                             f"got {activation!r}")
        if pooling not in POOLS:
            raise ArgumentError(f"LeNet-5 pooling must be one of {list(POOLS)}; got {pooling!r}")
        require_positive(num_classes=num_classes, in_channels=in_channels)
        act, pool = ACTIVATIONS[activation], POOLS[pooling]
        c1, c3, c5, f6 = LENET5_WIDTHS
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5), act(), pool(2, 2),
            nn.Conv2d(c1, c3, 5), act(), pool(2, 2),
            nn.Conv2d(c3, c5, 5), act(),
        )
        self.classifier = nn.Sequential(nn.Linear(c5, f6), act(), nn.Linear(f6, num_classes))
        self.feature_specs = [FeatureSpec("features.2", 2, c1), FeatureSpec("features.5", 4, c3)]
        self.classifier_names = ("classifier.2",)
        self.group_prefixes = {"stem": ("features.0",),
                               "stages": ("features.3", "features.6"),
                               "head": ("classifier",)}
        if not self.classifier[2].weight.is_meta:  # meta tensors hold no values to initialise
            init_weights(self, "xavier" if activation == "tanh" else "kaiming")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        low, high = INPUT_RANGE
        if x.dim() != 4 or not all(low <= s <= high for s in x.shape[-2:]):
            raise InputSizeError(f"LeNet-5 takes (N, C, H, W) inputs with H, W in {low}..{high} "
                                 f"(32x32 in the paper); got shape {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))


def lenet5(*, activation: str = "tanh", pooling: str = "avg", num_classes: int = 10,
           in_channels: int = 1) -> LeNet5:
    """Build LeNet-5 (``activation`` "tanh"|"relu", ``pooling`` "avg"|"max")."""
    return LeNet5(activation=activation, pooling=pooling, num_classes=num_classes,
                  in_channels=in_channels)


register("lenet5", lenet5, task="classification", paper=PAPER, year=1998,
         input_size=(1, 32, 32), num_params=61_706, num_classes=10,
         activation="tanh", pooling="avg",
         notes=("tanh, plain 2x2 average pooling (no trainable subsampling coefficients), full "
                "C3 connections instead of the paper's table, linear output instead of RBF units"))
register("lenet5_relu", lenet5, task="classification", paper=PAPER, year=1998,
         input_size=(1, 32, 32), num_params=61_706, num_classes=10,
         activation="relu", pooling="max",
         notes="modern variant of lenet5: ReLU and 2x2 max pooling, He initialisation")
