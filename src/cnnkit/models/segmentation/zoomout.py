"""Zoom-out features: Mostajabi, Yadollahpour & Shakhnarovich, "Feedforward Semantic
Segmentation with Zoom-out Features", CVPR 2015.

The zoom-out feature of an image element is the concatenation of a classification network's
activations averaged over a sequence of nested regions around it, from the element itself
("local") through nearby context ("proximal", "distant") to the whole image ("global"); a
feed-forward classifier (an MLP) labels each element from it, with no structured inference.

Here, for every chosen feature map of a zoo backbone (default: all of its maps, strides 2..32),
at that map's own resolution, each cell gets the mean of the map over

- ``windows`` of k x k cells centred on it (default ``(1, 3, 7)``: the cell itself, the 3 x 3
  and the 7 x 7 neighbourhoods; at stride s they span s, 3s and 7s pixels, so the regions grow
  with depth as the paper's levels do), cells beyond the border not counted
  (``avg_pool2d``, stride 1, "same" padding, ``count_include_pad=False``), and
- the whole map (``global_pool=True``),

the blocks are concatenated (:func:`zoom_out_pool`; ``len(windows) + 1`` times the map's
channels) and brought to the finest chosen resolution by bilinear upsampling; a per-pixel MLP
(1x1 convolutions, ``hidden_channels``, each + batch norm + ReLU) scores the classes, and the
scores are bilinearly upsampled to the input size.

Computation: the MLP's first layer is linear, and a 1x1 convolution commutes with bilinear
upsampling (one mixes channels, the other positions, with weights summing to 1; a constant map
stays constant), so that layer runs per map at the map's own resolution (one 1x1 convolution of
its windows' means, ``local[i]``, and one of its global mean, a 1 x 1 map, ``scene[i]``) and
the results are upsampled and summed: the same numbers as concatenating first
(:meth:`ZoomOut.zoomout_features` and :meth:`ZoomOut.stacked_weight` give that form) without
ever holding the wide concatenation (``feature_channels`` wide) at the finest resolution.

Differences from the paper: every pixel is an element (the paper classifies SLIC superpixels,
its regions built around each superpixel, and adds a "subscene" window run through the
network again; the authors' later code release works on pixels too); the same square windows
at every map instead of the paper's grouping of layers into levels; the global level is each
map's mean, not the network's output on the whole image; the MLP's widths and batch norm are
our choice; the paper's asymmetric (class-frequency weighted) loss belongs to the task, not
the model. Initialisation: the zoo's for the backbone, He et al. normal for the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.registry import register
from cnnkit.models.segmentation.headless import resize

PAPER = ("M. Mostajabi, P. Yadollahpour, G. Shakhnarovich, Feedforward Semantic Segmentation "
         "with Zoom-out Features, CVPR 2015")


def check_windows(windows: Sequence[int]) -> tuple[int, ...]:
    """``windows`` as a tuple of odd sizes >= 1, strictly increasing (nested regions)."""
    sizes = tuple(windows)
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 == 1
               for k in sizes) or list(sizes) != sorted(set(sizes)):
        raise ArgumentError(f"zoom-out windows must be odd sizes >= 1 in increasing order "
                            f"(e.g. (1, 3, 7)); got {windows!r}")
    return sizes


def window_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """The mean of ``x`` (N x C x h x w) over the ``size`` x ``size`` cells centred on each cell,
    counting only the cells inside the map; same shape as ``x``."""
    if size == 1:
        return x
    return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)


def zoom_out_pool(x: torch.Tensor, windows: Sequence[int] = (1, 3, 7),
                  global_pool: bool = True) -> torch.Tensor:
    """Zoom-out regions of one map: N x C x h x w -> N x R*C x h x w, the blocks of C channels
    being :func:`window_mean` at each of ``windows`` then (``global_pool``) the whole map's mean
    at every cell."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ArgumentError(f"zoom_out_pool needs an N x C x h x w map; got {shape}")
    parts = [window_mean(x, k) for k in check_windows(windows)]
    if global_pool:
        parts.append(x.mean((2, 3), keepdim=True).expand_as(x))
    if not parts:
        raise ArgumentError("zoom_out_pool needs at least one window or global_pool=True")
    return torch.cat(parts, 1)


class ZoomOut(DenseModel):
    """``backbone`` (headless); per chosen map, ``local[i]`` (1x1 convolution of its window
    means) and ``scene[i]`` (of its global mean), summed into the MLP's first layer; ``mlp``
    (batch norm + ReLU, more hidden 1x1 layers, the 1x1 classifier). Without hidden layers the
    first layer is the classifier and its bias is ``local[0]``'s."""

    def __init__(self, backbone: str, *, num_classes: int, in_channels: int,
                 feature_indices: Sequence[int], windows: Sequence[int], global_pool: bool,
                 hidden_channels: int | Sequence[int]) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if isinstance(hidden_channels, int) and not isinstance(hidden_channels, bool):
            hidden_channels = (hidden_channels,) if hidden_channels else ()  # 0: linear
        hidden = tuple(hidden_channels)
        for width in hidden:
            require_positive(hidden_channels=width)
        self.windows = check_windows(windows)
        self.global_pool = bool(global_pool)
        if not feature_indices or not (self.windows or self.global_pool):
            raise ArgumentError(f"zoom-out features need at least one feature index and one "
                                f"region; got feature_indices={tuple(feature_indices)}, "
                                f"windows={self.windows}, global_pool={global_pool}")
        self.backbone = headless_backbone(backbone, in_channels=in_channels)
        self.taps = pick_taps(self.backbone, list(feature_indices))
        first = hidden[0] if hidden else num_classes
        self.local = nn.ModuleList(
            nn.Conv2d(len(self.windows) * s.channels, first, 1, bias=not hidden and i == 0)
            for i, s in enumerate(self.taps)) if self.windows else None
        self.scene = nn.ModuleList(
            nn.Conv2d(s.channels, first, 1, bias=not hidden and i == 0 and not self.windows)
            for i, s in enumerate(self.taps)) if self.global_pool else None
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.BatchNorm2d(hidden[0]), nn.ReLU(inplace=True)]
            for a, b in itertools.pairwise(hidden):
                layers += [nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
            layers.append(nn.Conv2d(hidden[-1], num_classes, 1))
        self.mlp = nn.Sequential(*layers)
        for module in (self.local, self.scene, self.mlp):
            if module is not None:
                init_weights(module, "kaiming")
        self.num_classes = num_classes
        self.display_name = f"Zoom-out ({backbone})"
        self.input_sizes = InputSizes(minimum=max(s.stride for s in self.backbone.feature_specs))

    @property
    def feature_channels(self) -> int:
        """Width of the zoom-out feature of a pixel (:meth:`zoomout_features`)."""
        regions = len(self.windows) + int(self.global_pool)
        return regions * sum(s.channels for s in self.taps)

    def _maps(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        maps = read_taps(self.backbone, self.taps, x)
        finest = max(maps, key=lambda m: m.shape[-2] * m.shape[-1]).shape[-2:]
        return maps, tuple(finest)

    def zoomout_features(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated zoom-out features at the finest chosen resolution, N x
        ``feature_channels`` x h x w: per map (in ``taps`` order) its :func:`zoom_out_pool`."""
        maps, finest = self._maps(x)
        return torch.cat([resize(zoom_out_pool(m, self.windows, self.global_pool), finest)
                          for m in maps], 1)

    def stacked_weight(self) -> torch.Tensor:
        """The first layer as one matrix on :meth:`zoomout_features` (out x feature_channels;
        without hidden layers, its bias apart)."""
        blocks = []
        for i in range(len(self.taps)):
            if self.local is not None:
                blocks.append(self.local[i].weight[:, :, 0, 0])
            if self.scene is not None:
                blocks.append(self.scene[i].weight[:, :, 0, 0])
        return torch.cat(blocks, 1)

    def first_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's first (linear) layer at the finest chosen resolution, computed per map."""
        maps, finest = self._maps(x)
        total = scene = 0
        for i, m in enumerate(maps):
            if self.local is not None:
                pooled = torch.cat([window_mean(m, k) for k in self.windows], 1)
                total = total + resize(self.local[i](pooled), finest)
            if self.scene is not None:
                scene = scene + self.scene[i](m.mean((2, 3), keepdim=True))
        if self.local is None:
            return scene.expand(-1, -1, *finest)
        return total + scene

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return resize(self.mlp(self.first_layer(x)), x.shape[-2:])


def zoomout(backbone: str = "vgg16", *, num_classes: int = 21, in_channels: int = 3,
            feature_indices: Sequence[int] = (0, 1, 2, 3, 4),
            windows: Sequence[int] = (1, 3, 7), global_pool: bool = True,
            hidden_channels: int | Sequence[int] = (1024,)) -> ZoomOut:
    """Zoom-out classifier on the ``feature_indices`` maps of a zoo ``backbone``;
    ``hidden_channels``: the MLP's hidden widths (one int: one layer; 0 or (): linear)."""
    return ZoomOut(backbone, num_classes=num_classes, in_channels=in_channels,
                   feature_indices=tuple(feature_indices), windows=tuple(windows),
                   global_pool=global_pool, hidden_channels=hidden_channels)


# backbone: (parameters with 21 classes, its maps)
VARIANTS = {
    "vgg16": (20_767_573, "pool1..pool5 (strides 2..32, 64+128+256+512+512 = 1472 channels)"),
    "resnet18": (15_394_389, ("stem, layer1..layer4 (strides 2..32, 64+64+128+256+512 = 1024 "
                              "channels); a lighter backbone than the paper's VGG-16")),
}
for _backbone, (_count, _maps) in VARIANTS.items():
    register(f"zoomout_{_backbone}", zoomout, task="segmentation", paper=PAPER, year=2015,
             input_size=(3, 224, 224), num_params=_count, num_classes=21,
             notes=(f"per-pixel zoom-out features of {_backbone} {_maps}: means over 1x1, 3x3 "
                    f"and 7x7 cells of each map and over the whole map, at the stride-2 "
                    f"resolution; MLP with one 1024-channel hidden layer; pixels, not "
                    f"superpixels; scores upsampled to the input size. Count: headless "
                    f"backbone + R*C x 1024 first layer + batch norm + 1024 x 21 classifier."),
             backbone=_backbone)
