"""Zoo classifiers as the backbones of dense heads: the network without its head.

Every dense head in the zoo (FCN, DeepLab, FPN, hypercolumns, U-Net encoders, keypoint
regression and heatmaps, classification + localization) gets its backbone here, one way:
:func:`headless_backbone` builds a zoo classifier and drops what comes after its deepest feature
map (:func:`~cnnkit.models.features.drop_head`); the head then reads the maps it needs with
:func:`~cnnkit.models.features.pick_taps` (once, in ``__init__``) and
:func:`~cnnkit.models.features.read_taps` (in ``forward``).

torchvision's segmentation models keep a ResNet's modules up to ``layer4`` and drop the global
pool and ``fc``, so their checkpoints have keys ``backbone.conv1.weight``, ...,
``backbone.layer4.2.conv3.weight`` and none for the classifier; a head that stores the result as
``backbone`` gets the same keys, and the unused classifier is neither counted nor left without
gradients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnkit.errors import ArgumentError
from cnnkit.models.base import Classifier
from cnnkit.models.features import drop_head
from cnnkit.models.registry import create


def headless_backbone(name: str, *, in_channels: int = 3,
                      options: Mapping[str, Any] | None = None, **more: Any) -> Classifier:
    """Zoo classifier ``name`` (``create(name, in_channels=..., **options)``, e.g.
    ``output_stride=8``) without the modules after its deepest feature map.

    The result keeps its ``feature_specs`` (strides and channels of its maps) and
    ``forward_features``.
    """
    model = create(name, in_channels=in_channels, **{**dict(options or {}), **more})
    if not isinstance(model, Classifier) or not getattr(model, "feature_specs", None):
        raise ArgumentError(f"backbone {name!r} does not declare feature maps (feature_specs); "
                            "choose a classification model such as 'resnet50' or 'vgg16'")
    return drop_head(model)
