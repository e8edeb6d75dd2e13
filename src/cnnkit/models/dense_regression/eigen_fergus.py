"""The multi-scale network of Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic
Labels with a Common Multi-Scale Convolutional Architecture", ICCV 2015.

- **Scale 1** (full-image view): an ImageNet-style backbone (a zoo classifier without its head,
  VGG-16 in the paper), then two fully connected layers whose output is reshaped to a coarse
  map of ``coarse_channels`` (64) features at ``coarse_size`` (1/16 of the input in the paper)
  and upsampled bilinearly to 1/4 of the input.
- **Scale 2** (predictions at 1/4): a 9x9 convolution (96 maps, stride 2) and a 2x2 max pool
  on the image, concatenated with the coarse features, three 5x5 convolutions of 64 maps and
  a 5x5 convolution to the task's C channels.
- **Scale 3** (refinement at 1/2): a 9x9 convolution (96 maps, stride 2) on the image,
  concatenated with the scale-2 prediction upsampled to 1/2, two 5x5 convolutions of 64 maps
  and a 5x5 convolution to C. ReLU after every convolution but the last of each stack.

C is 1 for depth (read as **log depth**, as the paper predicts), 3 for normals (normalised by
the task) and the number of classes for labels. With several tasks, scale 1 is shared and each
task has its own scales 2 and 3 (the paper's joint depth + normals model; its labels network
is a separate one), and ``forward`` returns a dict by task kind (plus the Kendall et al.
log-variances, see :mod:`cnnkit.models.dense_regression.multitask`); with one task it returns
the tensor. Outputs are upsampled bilinearly from 1/2 to the input size.

Differences from the paper: any zoo backbone (``backbone``); an adaptive average pool to
``pool_size`` before the fully connected layers, so any input of at least 32 pixels works
(the paper fixes the input at 304x228); ``width`` scales every channel count (96, 64, 64 and
the 4096 hidden units) so a narrow network trains on a CPU; optional batch norm in scales 2
and 3 (``batch_norm``; the paper has none); the training schedule (scales 1 + 2, then 3) is
not reproduced: everything trains jointly. Initialisation: the zoo's for the backbone, He et
al. for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.dense_regression.multitask import (LOG_VARIANCES, LogVariances, check_kinds,
                                                      head_channels_for)
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.registry import register
from cnnkit.models.segmentation.headless import resize

PAPER = ("D. Eigen, R. Fergus, Predicting Depth, Surface Normals and Semantic Labels with a "
         "Common Multi-Scale Convolutional Architecture, ICCV 2015")
IMAGE_MAPS, STACK_MAPS, COARSE_MAPS, HIDDEN = 96, 64, 64, 4096


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class CoarseScale(nn.Module):
    """Scale 1: ``backbone``, ``pool``, ``fc`` (two linear layers) -> a coarse map."""

    def __init__(self, backbone: str, *, in_channels: int, pool_size: Sequence[int],
                 coarse_size: Sequence[int], hidden: int, coarse_channels: int,
                 dropout: float) -> None:
        super().__init__()
        self.backbone = headless_backbone(backbone, in_channels=in_channels)
        self.taps = pick_taps(self.backbone, [-1])
        self.pool = nn.AdaptiveAvgPool2d(tuple(pool_size))
        self.coarse_shape = (coarse_channels, *coarse_size)
        inputs = self.taps[0].channels * pool_size[0] * pool_size[1]
        outputs = coarse_channels * coarse_size[0] * coarse_size[1]
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(inplace=True),
                                nn.Dropout(dropout), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        deep = read_taps(self.backbone, self.taps, x)[-1]
        coarse = self.fc(self.pool(deep)).view(x.shape[0], *self.coarse_shape)
        return resize(coarse, size)


def conv_stack(in_channels: int, widths: Sequence[int], out_channels: int,
               batch_norm: bool) -> nn.Sequential:
    """5x5 convolutions of ``widths`` (+ batch norm) + ReLU, then a 5x5 one to ``out_channels``."""
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Conv2d(in_channels, width, 5, padding=2, bias=not batch_norm))
        layers += [nn.BatchNorm2d(width)] if batch_norm else []
        layers.append(nn.ReLU(inplace=True))
        in_channels = width
    layers.append(nn.Conv2d(in_channels, out_channels, 5, padding=2))
    return nn.Sequential(*layers)


class RefineScale(nn.Module):
    """Scales 2 and 3: ``image`` (9x9 conv, stride 2 [+ 2x2 max pool]) on the input,
    concatenated with the incoming maps resized to its grid, then ``stack``."""

    def __init__(self, in_channels: int, incoming: int, out_channels: int, *, image_maps: int,
                 widths: Sequence[int], pool: bool, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, image_maps, 9, stride=2, padding=4),
                                   nn.ReLU(inplace=True)]
        self.image = nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))
        self.stack = conv_stack(image_maps + incoming, widths, out_channels, batch_norm)

    def forward(self, x: torch.Tensor, incoming: torch.Tensor) -> torch.Tensor:
        features = self.image(x)
        return self.stack(torch.cat([features, resize(incoming, features.shape[-2:])], 1))


class EigenFergus(DenseModel):
    """``scale1`` (shared), ``scale2`` and ``scale3`` (by task kind); see the module docstring."""

    def __init__(self, backbone: str, *, tasks: Sequence[str], num_classes: int,
                 in_channels: int, width: float, pool_size: Sequence[int],
                 coarse_size: Sequence[int], dropout: float, batch_norm: bool,
                 log_variances: bool) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if not width > 0 or not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"width must be > 0 and dropout in [0, 1); got {width}, {dropout}")
        if len(pool_size) != 2 or len(coarse_size) != 2 or min(*pool_size, *coarse_size) < 1:
            raise ArgumentError(f"pool_size and coarse_size must be (h, w) >= 1; got "
                                f"{list(pool_size)}, {list(coarse_size)}")
        self.task_kinds = check_kinds(tasks)
        coarse = _scaled(COARSE_MAPS, width)
        self.scale1 = CoarseScale(backbone, in_channels=in_channels, pool_size=pool_size,
                                  coarse_size=coarse_size, hidden=_scaled(HIDDEN, width),
                                  coarse_channels=coarse, dropout=dropout)
        maps, stack = _scaled(IMAGE_MAPS, width), _scaled(STACK_MAPS, width)
        outputs = {kind: head_channels_for(kind, num_classes) for kind in self.task_kinds}
        self.scale2 = nn.ModuleDict({kind: RefineScale(
            in_channels, coarse, c, image_maps=maps, widths=[stack] * 3, pool=True,
            batch_norm=batch_norm) for kind, c in outputs.items()})
        self.scale3 = nn.ModuleDict({kind: RefineScale(
            in_channels, c, c, image_maps=maps, widths=[stack] * 2, pool=False,
            batch_norm=batch_norm) for kind, c in outputs.items()})
        for module in (self.scale1.fc, self.scale2, self.scale3):
            init_weights(module, "kaiming")
        several = len(self.task_kinds) > 1
        self.log_variances = LogVariances(self.task_kinds) if several and log_variances else None
        self.num_classes = outputs[self.task_kinds[0]] if not several else num_classes
        self.display_name = f"Eigen-Fergus ({backbone}: {', '.join(self.task_kinds)})"
        self.input_sizes = InputSizes(minimum=32)

    def predict(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        quarter = (-(-x.shape[-2] // 4), -(-x.shape[-1] // 4))
        coarse = self.scale1(x, quarter)
        out: dict[str, object] = {}
        for kind in self.task_kinds:
            middle = self.scale2[kind](x, coarse)
            out[kind] = resize(self.scale3[kind](x, middle), x.shape[-2:])
        if len(self.task_kinds) == 1:
            return out[self.task_kinds[0]]
        if self.log_variances is not None:
            out[LOG_VARIANCES] = self.log_variances()
        return out


def eigen_fergus(backbone: str = "vgg16", *, tasks: Sequence[str] = ("depth", "normals",
                                                                      "segmentation"),
                 num_classes: int = 4, in_channels: int = 3, width: float = 1.0,
                 pool_size: Sequence[int] = (7, 10), coarse_size: Sequence[int] = (15, 20),
                 dropout: float = 0.5, batch_norm: bool = False,
                 log_variances: bool = True) -> EigenFergus:
    """Eigen & Fergus's network for ``tasks`` (``num_classes``: the label classes)."""
    return EigenFergus(backbone, tasks=tasks, num_classes=num_classes, in_channels=in_channels,
                       width=width, pool_size=pool_size, coarse_size=coarse_size,
                       dropout=dropout, batch_norm=batch_norm, log_variances=log_variances)


_FULL = ("VGG-16 scale 1 (pool to 7 x 10 = 1/32 of 240 x 320, fc 4096, 64 maps at 15 x 20 = "
         "1/16), scales 2-3 at the paper's widths (96, 64); input sizes >= 32 (adaptive pool) "
         "instead of the paper's fixed 304 x 228")
_SMALL = ("narrow CPU variant: MobileNet-v1 0.25 scale 1 (pool 3 x 4, fc 1024, 16 maps at 6 x 8), "
          "width 0.25 (24 and 16 maps), batch norm in scales 2-3, no dropout")
_SMALL_OPTIONS = {"backbone": "mobilenet_v1_025", "width": 0.25, "pool_size": (3, 4),
                  "coarse_size": (6, 8), "dropout": 0.0, "batch_norm": True}
# name suffix: (task kind, tasks, parameters at full size, parameters small)
_VARIANTS = {"": ("multitask", ("depth", "normals", "segmentation"), 242_512_147, 4_326_659),
             "_depth": ("depth", ("depth",), 240_950_594, 4_204_898),
             "_normals": ("normals", ("normals",), 240_960_198, 4_207_302)}
_CLASSES = {"multitask": 4, "depth": 1, "normals": 3}  # output channels (4: SyntheticScenes)
for _suffix, (_kind, _tasks, _full, _small) in _VARIANTS.items():
    _classes = _CLASSES[_kind]
    register(f"eigen_fergus_vgg16{_suffix}", eigen_fergus, task=_kind, paper=PAPER, year=2015,
             input_size=(3, 240, 320), num_params=_full, num_classes=_classes, notes=_FULL,
             tasks=_tasks)
    register(f"eigen_fergus_small{_suffix}", eigen_fergus, task=_kind, paper=PAPER, year=2015,
             input_size=(3, 96, 128), num_params=_small, num_classes=_classes, notes=_SMALL,
             tasks=_tasks, **_SMALL_OPTIONS)
