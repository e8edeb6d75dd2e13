"""The backbone + head skeleton of FCN and DeepLabv3 (torchvision's layout), on a headless zoo
classifier (:func:`~cnnkit.models.backbones.headless_backbone`), and bilinear resizing of logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models.base import Classifier
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.models.dense import DenseModel, InputSizes

class SegmentationOutputs(NamedTuple):
    """Training-mode output of a network built with an auxiliary head (like GoogLeNet's outputs):
    both are logits at the input resolution; the auxiliary loss is usually weighted 0.5."""

    out: torch.Tensor
    aux: torch.Tensor


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resampling to ``size`` (H, W), ``align_corners=False`` (pixels as unit squares)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class HeadOnBackbone(DenseModel):
    """A headless backbone, a ``classifier`` on its deepest map and an optional
    ``aux_classifier`` on the map before it; logits are bilinearly upsampled to the input size.

    This is the layout of torchvision's FCN and DeepLabv3 (``backbone``, ``classifier``,
    ``aux_classifier``). ``forward`` returns the main logits, or in training mode with an
    auxiliary head :class:`SegmentationOutputs` ``(out, aux)``. Valid inputs are at least as
    large as the backbone's largest feature stride (one cell of its deepest map).
    """

    def __init__(self, backbone: Classifier, classifier: nn.Module,
                 aux_classifier: nn.Module | None, *, num_classes: int,
                 display_name: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.taps = pick_taps(backbone, [-2, -1] if aux_classifier is not None else [-1])
        self.num_classes = num_classes
        self.display_name = display_name
        self.input_sizes = InputSizes(minimum=max(s.stride for s in backbone.feature_specs))

    def predict(self, x: torch.Tensor) -> torch.Tensor | SegmentationOutputs:
        maps = read_taps(self.backbone, self.taps, x)
        out = resize(self.classifier(maps[-1]), x.shape[-2:])
        if self.aux_classifier is None or not self.training:
            return out
        return SegmentationOutputs(out, resize(self.aux_classifier(maps[0]), x.shape[-2:]))


