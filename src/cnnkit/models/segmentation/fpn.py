"""Feature pyramid network with a semantic segmentation head.

- Pyramid: Lin, Dollar, Girshick, He, Hariharan & Belongie, "Feature Pyramid Networks for
  Object Detection", CVPR 2017. The backbone maps C2..C5 (strides 4, 8, 16, 32) each get a
  lateral 1x1 convolution to ``pyramid_channels`` (256); top-down, every level adds the
  2x-upsampled (nearest neighbour) level above it; a 3x3 convolution smooths each merged map
  into P2..P5.
- Head: Kirillov, Girshick, He & Dollar, "Panoptic Feature Pyramid Networks", CVPR 2019
  (semantic segmentation branch). Each level P_s goes through log2(s/4) stages (at least one) of
  3x3 convolution (``head_channels`` = 128) + GroupNorm(32) + ReLU + 2x bilinear upsampling (no
  upsampling in P2's single stage), so all reach stride 4; the maps are summed, a 1x1
  convolution gives the classes and a 4x bilinear upsampling the input resolution.

Differences: every upsampling goes to the exact size of the finer map (nearest top-down,
bilinear in the head), so inputs need not be multiples of 32; the top-down path has no extra
P6 level (detection only). Initialisation: the zoo's for the backbone, He et al. normal for
the rest (the FPN paper does not say).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers.init import init_weights
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import register
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.segmentation.headless import resize
from cnnkit.errors import ArgumentError, require_positive

PAPER = ("T.-Y. Lin, P. Dollar, R. Girshick, K. He, B. Hariharan, S. Belongie, Feature Pyramid "
         "Networks for Object Detection, CVPR 2017; A. Kirillov, R. Girshick, K. He, P. Dollar, "
         "Panoptic Feature Pyramid Networks, CVPR 2019")
LEVELS = 4  # C2..C5


class UpsamplingStage(nn.Module):
    """3x3 conv + GroupNorm + ReLU, then (optionally) bilinear upsampling to a given size."""

    def __init__(self, in_channels: int, out_channels: int, *, upsample: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(32 if out_channels % 32 == 0 else 1, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.relu(self.norm(self.conv(x)))
        return resize(x, size) if self.upsample else x


class FPNSegmenter(DenseModel):
    """Backbone (headless), ``lateral``/``smooth`` convolutions of the pyramid (index 0 = P2),
    ``head`` (per level, a list of :class:`UpsamplingStage`) and the 1x1 ``classifier``."""

    def __init__(self, backbone: str, *, num_classes: int, in_channels: int,
                 pyramid_channels: int, head_channels: int) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        require_positive(pyramid_channels=pyramid_channels, head_channels=head_channels)
        self.backbone = headless_backbone(backbone, in_channels=in_channels)
        strides = [s.stride for s in self.backbone.feature_specs]
        if strides[-LEVELS:] != [4, 8, 16, 32]:
            raise ArgumentError(f"the FPN needs a backbone whose last {LEVELS} feature maps have "
                             f"strides 4, 8, 16, 32; {backbone!r} has {strides}")
        self.taps = pick_taps(self.backbone, range(-LEVELS, 0))
        self.lateral = nn.ModuleList(nn.Conv2d(s.channels, pyramid_channels, 1)
                                     for s in self.taps)
        self.smooth = nn.ModuleList(nn.Conv2d(pyramid_channels, pyramid_channels, 3, padding=1)
                                    for _ in self.taps)
        self.head = nn.ModuleList()
        for level in range(LEVELS):  # level 0 is P2 (stride 4): one stage without upsampling
            stages = [UpsamplingStage(pyramid_channels if i == 0 else head_channels,
                                      head_channels, upsample=level > 0)
                      for i in range(max(1, level))]
            self.head.append(nn.ModuleList(stages))
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)
        for module in (self.lateral, self.smooth, self.head, self.classifier):
            init_weights(module, "kaiming")
        self.num_classes = num_classes
        self.display_name = f"FPN ({backbone})"
        self.input_sizes = InputSizes(minimum=32)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """P2..P5 (strides 4..32, ``pyramid_channels`` each), finest first."""
        maps = read_taps(self.backbone, self.taps, x)
        merged = [self.lateral[-1](maps[-1])]
        for lateral, c in zip(reversed(self.lateral[:-1]), reversed(maps[:-1])):
            inner = lateral(c)
            merged.insert(0, inner + F.interpolate(merged[0], size=inner.shape[-2:],
                                                   mode="nearest"))
        return [smooth(p) for smooth, p in zip(self.smooth, merged)]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.pyramid(x)
        sizes = [tuple(p.shape[-2:]) for p in levels]
        total = 0
        for level, (p, stages) in enumerate(zip(levels, self.head)):
            for i, stage in enumerate(stages):  # stage i brings level - i to level - i - 1
                p = stage(p, sizes[max(level - i - 1, 0)])
            total = total + p
        return resize(self.classifier(total), x.shape[-2:])


def fpn(backbone: str = "resnet50", *, num_classes: int = 21, in_channels: int = 3,
        pyramid_channels: int = 256, head_channels: int = 128) -> FPNSegmenter:
    """FPN + panoptic-FPN semantic head on a zoo ``backbone`` with maps at strides 4..32."""
    return FPNSegmenter(backbone, num_classes=num_classes, in_channels=in_channels,
                        pyramid_channels=pyramid_channels, head_channels=head_channels)


# backbone: (parameters with 21 classes, how it stands to the papers)
VARIANTS = {
    "resnet50": (28_478_933, "no P6; upsampling to exact sizes, so any input of at least 32 "
                             "pixels works"),
    "resnet18": (15_410_133, "the papers use ResNet-50/101: a lighter variant for training from "
                             "scratch on a CPU (configs/camvid.yaml)"),
}
for _backbone, (_count, _remark) in VARIANTS.items():
    register(f"fpn_{_backbone}", fpn, task="segmentation", paper=PAPER, year=2019,
             input_size=(3, 512, 512), num_params=_count, num_classes=21,
             notes=(f"{_backbone} (no dilation) + FPN P2..P5 (256 channels) + the panoptic FPN "
                    f"semantic head (128 channels, GroupNorm 32); {_remark}."),
             backbone=_backbone)
