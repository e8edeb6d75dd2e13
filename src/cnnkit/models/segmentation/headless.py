"""Zoo classifiers as segmentation backbones: the network without its head, plus the feature maps
("taps") it computes on the way, and the backbone + head skeleton of FCN and DeepLabv3.

torchvision's segmentation models keep a ResNet's modules up to ``layer4`` and drop the global
pool and ``fc``, so their checkpoints have keys ``backbone.conv1.weight``, ...,
``backbone.layer4.2.conv3.weight`` and none for the classifier. :func:`headless_backbone` does
the same for any cnnkit classifier (see :func:`~cnnkit.models.features.drop_head`), so a model
storing it as ``backbone`` gets those keys, and the unused head is neither counted nor left
without gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models.base import Classifier
from cnnkit.models.features import drop_head, pick_taps, read_taps
from cnnkit.models.dense import DenseModel, InputSizes, check_counts
from cnnkit.models.registry import create

class SegmentationOutputs(NamedTuple):
    """Training-mode output of a network built with an auxiliary head (like GoogLeNet's outputs):
    both are logits at the input resolution; the auxiliary loss is usually weighted 0.5."""

    out: torch.Tensor
    aux: torch.Tensor


def headless_backbone(name: str, *, in_channels: int = 3, **options) -> Classifier:
    """Zoo model ``name`` (built by ``create(name, in_channels=..., **options)``, e.g.
    ``output_stride=8``) without the modules after its deepest feature map (:func:`drop_head`).

    The result keeps its ``feature_specs`` and ``forward_features``; read its maps with
    :func:`~cnnkit.models.features.pick_taps` and :func:`~cnnkit.models.features.read_taps`.
    """
    model = create(name, in_channels=in_channels, **options)
    if not isinstance(model, Classifier) or not getattr(model, "feature_specs", None):
        raise ValueError(f"backbone {name!r} does not declare feature maps (feature_specs); "
                         "choose a classification model such as 'resnet50' or 'vgg16'")
    return drop_head(model)


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


check_classes = check_counts  # segmentation builders say num_classes

