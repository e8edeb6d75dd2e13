"""ShuffleNet v1 and v2.

- v1: Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network
  for Mobile Devices", CVPR 2018. A unit is 1x1 group conv (BN, ReLU) -> channel shuffle ->
  3x3 depthwise (BN) -> 1x1 group conv (BN), added to the input (stride 1) or concatenated with
  a 3x3 stride-2 average pool of it (stride 2), then ReLU. Bottleneck width is a quarter of the
  unit's output; the first 1x1 of stage 2 is not grouped (24 input channels). Stage widths
  follow the paper's Table 1 for g = 1, 2, 3, 4, 8 at 1x; ``width_mult`` scales the stages
  (the 24-channel stem stays as in Table 1 unless ``stem_channels`` is given). Built at 1x,
  g=3: 1,865,728 parameters and 137,460,672 multiply-adds at 224x224 (Table 1: 137 MFLOPs).
  Differences: the classifier has a bias (the authors' code has none).
- v2: Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN
  Architecture Design", ECCV 2018. A stride-1 unit splits the channels in half, passes one half
  through 1x1 (BN, ReLU) -> 3x3 depthwise (BN) -> 1x1 (BN, ReLU), concatenates and shuffles with
  2 groups; a stride-2 unit runs both halves on the whole input (``branch1`` is depthwise then
  1x1). Module names and shapes are torchvision's (``conv1``, ``stage2.0.branch1``, ``conv5``,
  ``fc``), so its checkpoints load.

Initialisation (both): He (fan_out) for convolutions, normal(0, 0.01) for the classifier,
BN 1/0. torchvision's v2 keeps PyTorch's default initialisation; the authors' v1 code draws
convolution weights from normal(0, 1 / input channels per group) and starts BN biases at 1e-4.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import CnnkitError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.layers.separable import ChannelShuffle, channel_shuffle, conv_norm_act
from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.registry import register

PAPER_V1 = ("Zhang et al., ShuffleNet: An Extremely Efficient Convolutional Neural Network for "
            "Mobile Devices")
PAPER_V2 = "Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"
STEM_CHANNELS = 24
STAGE_REPEATS = (4, 8, 4)  # units per stage (the first with stride 2), both versions
# v1, paper Table 1: output channels of stages 2, 3, 4 at 1x for each number of groups.
V1_STAGE_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
    4: (272, 544, 1088), 8: (384, 768, 1536),
}
# v2, paper Table 5: output channels of stages 2, 3, 4 and conv5 per width.
V2_STAGE_CHANNELS: dict[float, tuple[int, int, int, int]] = {
    0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048),
}


class ShuffleV1Unit(nn.Module):
    """ShuffleNet v1 unit: ``reduce`` (group 1x1, BN, ReLU), ``shuffle``, ``depthwise`` (3x3,
    BN), ``expand`` (group 1x1, BN); stride 2 concatenates ``shortcut`` (3x3 avg pool)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int,
                 group_first: bool = True) -> None:
        super().__init__()
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        mid = out_channels // 4
        first_groups = groups if group_first else 1
        widths = {"bottleneck": mid, "branch output": branch_out}
        if group_first:
            widths["input"] = in_channels
        for name, value in widths.items():
            if value < 1 or value % groups:
                raise CnnkitError(f"shufflenet_v1: {groups} groups must divide the {name} "
                                  f"channels ({value}); pick another width_mult or groups")
        self.stride = stride
        self.reduce = conv_norm_act(in_channels, mid, 1, groups=first_groups)
        self.shuffle = ChannelShuffle(groups)
        self.depthwise = conv_norm_act(mid, mid, 3, stride, groups=mid, activation=None)
        self.expand = conv_norm_act(mid, branch_out, 1, groups=groups, activation=None)
        self.shortcut = nn.AvgPool2d(3, 2, padding=1) if stride == 2 else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.depthwise(self.shuffle(self.reduce(x))))
        out = torch.cat((self.shortcut(x), out), 1) if self.shortcut is not None else x + out
        return self.act(out)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.expand[1].weight)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit with torchvision's layout (``branch1`` only when stride is 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels % 2 or (stride == 1 and in_channels != out_channels):
            raise CnnkitError(f"shufflenet_v2: a unit needs an even output width equal to its "
                              f"input at stride 1; got {in_channels} -> {out_channels}, "
                              f"stride {stride}")
        half = out_channels // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                *conv_norm_act(in_channels, in_channels, 3, stride, groups=in_channels,
                               activation=None),
                *conv_norm_act(in_channels, half, 1))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            *conv_norm_act(in_channels if stride > 1 else half, half, 1),
            *conv_norm_act(half, half, 3, stride, groups=half, activation=None),
            *conv_norm_act(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch2(x)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNet(Classifier):
    """``conv1`` (3x3 stride 2, BN, ReLU), ``maxpool``, ``stage2``-``stage4``, optional
    ``conv5`` (v2), global average pooling, ``fc``."""

    classifier_names = ("fc",)

    def __init__(self, stem_channels: int, stages: list[nn.Sequential],
                 stage_channels: list[int], conv5: nn.Module | None, in_channels: int,
                 num_features: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = conv_norm_act(in_channels, stem_channels, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = conv5
        self.fc = nn.Linear(num_features, num_classes)
        last = ("conv5", num_features) if conv5 is not None else ("stage4", stage_channels[2])
        self.feature_specs = [FeatureSpec("conv1", 2, stem_channels),
                              FeatureSpec("maxpool", 4, stem_channels),
                              FeatureSpec("stage2", 8, stage_channels[0]),
                              FeatureSpec("stage3", 16, stage_channels[1]),
                              FeatureSpec(last[0], 32, last[1])]
        self.group_prefixes = {"stem": ("conv1",),
                               "stages": ("stage2", "stage3", "stage4", "conv5"),
                               "head": ("fc",)}
        init_weights(self, "kaiming")
        nn.init.normal_(self.fc.weight, 0.0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage4(self.stage3(self.stage2(self.maxpool(self.conv1(x)))))
        return self.conv5(x) if self.conv5 is not None else x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x.mean((2, 3)), 1))


def _check(name: str, num_classes: int, in_channels: int) -> None:
    require_positive(num_classes=num_classes, in_channels=in_channels)


def shufflenet_v1(num_classes: int = 1000, in_channels: int = 3, groups: int = 3,
                  width_mult: float = 1.0, stem_channels: int = STEM_CHANNELS) -> ShuffleNet:
    """ShuffleNet v1 with ``groups`` in {1, 2, 3, 4, 8}, stages scaled by ``width_mult``.

    The stem keeps Table 1's 24 channels unless ``stem_channels`` says otherwise (the authors'
    released 0.5x models use 12 (g=3) or 16 (g=8), their 2x models 48)."""
    _check("shufflenet_v1", num_classes, in_channels)
    if groups not in V1_STAGE_CHANNELS:
        raise CnnkitError(f"shufflenet_v1: groups must be one of {sorted(V1_STAGE_CHANNELS)} "
                          f"(the paper's Table 1); got {groups}")
    if width_mult <= 0:
        raise CnnkitError(f"shufflenet_v1: width_mult must be > 0, e.g. 0.25, 0.5, 1, 1.5, 2; "
                          f"got {width_mult}")
    if stem_channels < 1:
        raise CnnkitError(f"shufflenet_v1: stem_channels must be >= 1; got {stem_channels}")
    channels, stages, widths = stem_channels, [], []
    for index, (repeats, out) in enumerate(zip(STAGE_REPEATS, V1_STAGE_CHANNELS[groups])):
        out = int(out * width_mult)
        units = [ShuffleV1Unit(channels, out, 2, groups, group_first=index > 0)]
        units += [ShuffleV1Unit(out, out, 1, groups) for _ in range(repeats - 1)]
        stages.append(nn.Sequential(*units))
        widths.append(out)
        channels = out
    return ShuffleNet(stem_channels, stages, widths, None, in_channels, channels, num_classes)


def shufflenet_v2(num_classes: int = 1000, in_channels: int = 3,
                  width_mult: float = 1.0) -> ShuffleNet:
    """ShuffleNet v2 at ``width_mult`` 0.5, 1.0, 1.5 or 2.0 (the paper's Table 5)."""
    _check("shufflenet_v2", num_classes, in_channels)
    if width_mult not in V2_STAGE_CHANNELS:
        raise CnnkitError(f"shufflenet_v2: width_mult must be one of "
                          f"{sorted(V2_STAGE_CHANNELS)}; got {width_mult}")
    *stage_channels, last = V2_STAGE_CHANNELS[width_mult]
    channels, stages = STEM_CHANNELS, []
    for repeats, out in zip(STAGE_REPEATS, stage_channels):
        units = [ShuffleV2Unit(channels, out, 2)]
        units += [ShuffleV2Unit(out, out, 1) for _ in range(repeats - 1)]
        stages.append(nn.Sequential(*units))
        channels = out
    conv5 = conv_norm_act(channels, last, 1)
    return ShuffleNet(STEM_CHANNELS, stages, stage_channels, conv5, in_channels, last,
                      num_classes)


for _groups, _count, _paper_mflops in ((1, 1_531_936, 143), (2, 1_733_848, 140),
                                       (3, 1_865_728, 137), (4, 1_968_344, 133),
                                       (8, 2_434_768, 137)):
    register(f"shufflenet_v1_g{_groups}", shufflenet_v1, task="classification", paper=PAPER_V1,
             year=2018, input_size=(3, 224, 224), num_params=_count, groups=_groups,
             notes=f"1x width, {_groups} groups (paper Table 1: {_paper_mflops} MFLOPs); the "
                   "classifier has a bias; He (fan_out) init.")

for _width, _count in ((0.5, 1_366_792), (1.0, 2_278_604), (1.5, 3_503_624), (2.0, 7_393_996)):
    register(f"shufflenet_v2_x{str(_width).replace('.', '_')}", shufflenet_v2,
             task="classification", paper=PAPER_V2, year=2018, input_size=(3, 224, 224),
             num_params=_count, reference="torchvision", width_mult=_width,
             notes="He (fan_out) init (torchvision keeps PyTorch's default).")
