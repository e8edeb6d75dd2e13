"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

One builder, :func:`build_googlenet`, and two registered variants:

- ``googlenet``: torchvision's network, key for key (its ImageNet checkpoint loads strictly).
  It differs from the paper: batch-normalised convolutions without bias instead of biased ones,
  no local response normalisation, a 3x3 instead of a 5x5 convolution in every module's third
  branch (torchvision keeps this slip for weight compatibility), a 2x2 last max pool, dropout 0.2.
- ``googlenet_paper``: Table 1 and Figure 3 of the paper: biased convolutions with ReLU, LRN after
  the first max pool and after conv3, 5x5 convolutions, 3x3 max pools, dropout 0.4.

Both replace the paper's fixed 7x7 average pool (and the auxiliary heads' 5x5/3 pool) by adaptive
pools, which give the same result at 224x224 and also accept other input sizes. The two
auxiliary classifiers (after inception 4a and 4d) are built only with ``aux_logits=True``; in
training mode the model then returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` like
torchvision, in eval mode plain logits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from cnnkit.errors import ArgumentError, InputSizeError, require_positive
from cnnkit.layers.inception import ConvUnit, Inception, InceptionAux
from cnnkit.layers.init import init_weights
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER = "Szegedy et al., Going Deeper with Convolutions"

# Table 1 of the paper: name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
# The input channels of each module are the output channels of the previous one.
INCEPTION_TABLE: tuple[tuple[str, int, int, int, int, int, int], ...] = (
    ("inception3a", 64, 96, 128, 16, 32, 32),
    ("inception3b", 128, 128, 192, 32, 96, 64),
    ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128),
    ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
)
# A stride-2 max pool follows these modules; the auxiliary heads read these modules' outputs.
POOL_AFTER = {"inception3b": "maxpool3", "inception4e": "maxpool4"}
AUX_AFTER = {"inception4a": "aux1", "inception4d": "aux2"}


class GoogLeNetOutputs(NamedTuple):
    """Training-mode output with auxiliary heads (torchvision's field names and order)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


def _pool_out(size: int, kernel: int, stride: int) -> int:
    """Output size of PyTorch's max pool with ceil_mode=True and no padding (0 if invalid)."""
    out = (size - kernel + stride - 1) // stride + 1
    if (out - 1) * stride >= size:  # the last window must start inside the input
        out -= 1
    return max(out, 0)


class GoogLeNet(Classifier):
    """See the module docstring; build it with :func:`build_googlenet`."""

    def __init__(self, *, num_classes: int, in_channels: int, aux_logits: bool, batch_norm: bool,
                 branch3_kernel: int, local_response_norm: bool, last_pool_kernel: int,
                 dropout: float, aux_dropout: float) -> None:
        super().__init__()
        bn = batch_norm
        self.conv1 = ConvUnit(in_channels, 64, 7, stride=2, padding=3, batch_norm=bn)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        stem = ["conv1", "maxpool1"]
        if local_response_norm:  # BVLC Caffe GoogLeNet: size 5, alpha 1e-4, beta 0.75
            self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            stem.append("lrn1")
        self.conv2 = ConvUnit(64, 64, 1, batch_norm=bn)
        self.conv3 = ConvUnit(64, 192, 3, padding=1, batch_norm=bn)
        stem += ["conv2", "conv3"]
        if local_response_norm:
            self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            stem.append("lrn2")
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        order = stem + ["maxpool2"]

        channels = 192
        for name, *widths in INCEPTION_TABLE:
            block = Inception(channels, *widths, batch_norm=bn, branch3_kernel=branch3_kernel)
            self.add_module(name, block)
            order.append(name)
            channels = block.out_channels
            if name in POOL_AFTER:
                kernel = last_pool_kernel if name == "inception4e" else 3
                self.add_module(POOL_AFTER[name], nn.MaxPool2d(kernel, stride=2, ceil_mode=True))
                order.append(POOL_AFTER[name])
        self._order = tuple(order)
        self._pool_kernels = (3, 3, 3, last_pool_kernel)

        self.aux1, self.aux2 = None, None
        if aux_logits:  # inputs: the outputs of inception 4a (512 channels) and 4d (528)
            self.aux1 = InceptionAux(512, num_classes, batch_norm=bn, dropout=aux_dropout)
            self.aux2 = InceptionAux(528, num_classes, batch_norm=bn, dropout=aux_dropout)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

        self.feature_specs = [
            FeatureSpec("conv1", 2, 64),
            FeatureSpec("lrn2" if local_response_norm else "conv3", 4, 192),
            FeatureSpec("inception3b", 8, 480),
            FeatureSpec("inception4e", 16, 832),
            FeatureSpec("inception5b", 32, channels),
        ]
        heads = ("aux1", "aux2") if aux_logits else ()
        # torchvision's checkpoint holds auxiliary heads; a model built without them skips them.
        self.ignored_checkpoint_prefixes = () if aux_logits else ("aux1.", "aux2.")
        self.classifier_names = ("fc",) + tuple(f"{h}.fc2" for h in heads)
        self.group_prefixes = {
            "stem": ("conv1", "conv2", "conv3"),
            "stages": tuple(row[0] for row in INCEPTION_TABLE),
            "head": ("fc",) + heads,
        }
        self.min_input_size = self._smallest_input()

    def _smallest_input(self) -> int:
        """Smallest height/width for which every max pool still has an output pixel."""
        for size in range(1, 1024):
            n = (size - 1) // 2 + 1  # conv1: 7x7, stride 2, padding 3
            for kernel in self._pool_kernels:
                n = _pool_out(n, kernel, 2)
            if n >= 1:
                return size
        raise AssertionError("unreachable: GoogLeNet accepts 1024x1024 inputs")

    def _check_size(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise InputSizeError(f"GoogLeNet expects a 4-D batch (N, C, H, W); "
                                 f"got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(h, w) < self.min_input_size:
            raise InputSizeError(f"GoogLeNet needs inputs of at least {self.min_input_size}x"
                                 f"{self.min_input_size} pixels (four stride-2 max pools after a "
                                 f"stride-2 convolution); got {h}x{w}")

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Input -> last feature map, plus the maps the auxiliary heads read (when built)."""
        self._check_size(x)
        taps: dict[str, torch.Tensor] = {}
        for name in self._order:
            x = getattr(self, name)(x)
            if name in AUX_AFTER and self.aux1 is not None:
                taps[AUX_AFTER[name]] = x
        return x, taps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if not (self.training and self.aux1 is not None):
            return self.forward_head(self.forward_features(x))
        x, taps = self._run(x)
        return GoogLeNetOutputs(self.forward_head(x), self.aux2(taps["aux2"]),
                                self.aux1(taps["aux1"]))


def build_googlenet(*, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                    batch_norm: bool = True, branch3_kernel: int = 3,
                    local_response_norm: bool = False, last_pool_kernel: int = 2,
                    dropout: float = 0.2, aux_dropout: float = 0.7) -> GoogLeNet:
    """GoogLeNet; the defaults are torchvision's variant, ``VARIANTS`` lists the paper's options.

    Initialisation: with batch norm, torchvision's truncated normal (std 0.01, cut at 2 std) for
    convolutions and linear layers; without it (the paper's network, whose initialisation the
    paper does not give) Kaiming normal, so that 22 ReLU layers without normalisation still train.
    """
    require_positive(num_classes=num_classes, in_channels=in_channels)
    if last_pool_kernel not in (2, 3):
        raise ArgumentError(f"last_pool_kernel must be 2 (torchvision) or 3 (the paper); "
                         f"got {last_pool_kernel}")
    for arg, p in (("dropout", dropout), ("aux_dropout", aux_dropout)):
        if not 0.0 <= p < 1.0:
            raise ArgumentError(f"{arg} must be in [0, 1); got {p}")
    model = GoogLeNet(num_classes=num_classes, in_channels=in_channels, aux_logits=aux_logits,
                      batch_norm=batch_norm, branch3_kernel=branch3_kernel,
                      local_response_norm=local_response_norm, last_pool_kernel=last_pool_kernel,
                      dropout=dropout, aux_dropout=aux_dropout)
    if not batch_norm:
        return init_weights(model, "kaiming")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.01, a=-0.02, b=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


# name -> (builder options, exact parameter count at those options with 1000 classes, notes)
VARIANTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "googlenet": (
        dict(batch_norm=True, branch3_kernel=3, local_response_norm=False, last_pool_kernel=2,
             dropout=0.2),
        6_624_904,
        "torchvision's GoogLeNet: BN convolutions without bias, no LRN, 3x3 (not 5x5) "
        "convolution in each module's third branch, 2x2 last max pool, dropout 0.2. Count "
        "without the auxiliary heads (aux_logits=False, as torchvision publishes it); "
        "aux_logits=True adds them: 13,004,888. torchvision's checkpoint file also holds the "
        "(untrained) auxiliary heads; without aux_logits the loader skips them.",
    ),
    "googlenet_paper": (
        dict(batch_norm=False, branch3_kernel=5, local_response_norm=True, last_pool_kernel=3,
             dropout=0.4),
        6_998_552,
        "The paper's Table 1: biased convolutions, LRN, 5x5 branch, dropout 0.4; adaptive average "
        "pools instead of the fixed 7x7 (head) and 5x5/3 (auxiliary) pools; Kaiming init. Count "
        "without the auxiliary heads; aux_logits=True adds them: 13,378,280.",
    ),
}

for _name, (_options, _count, _notes) in VARIANTS.items():
    register(_name, build_googlenet, task="classification", paper=PAPER, year=2015,
             input_size=(3, 224, 224), num_params=_count, notes=_notes,
             reference="torchvision" if _name == "googlenet" else "", **_options)
