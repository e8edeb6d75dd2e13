"""A linear probe: a linear classifier on globally averaged features of one stage of a frozen
zoo classifier, the transfer-learning recipe for very little data (Donahue et al., "DeCAF",
ICML 2014; Razavian et al., "CNN Features off-the-shelf", CVPR Workshops 2014; the other
recipes are in :mod:`cnnkit.engine.transfer`)."""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.models.base import Classifier
from cnnkit.models.features import FeatureExtractor


class LinearProbe(nn.Module):
    """A linear classifier on globally averaged features of one stage of a frozen backbone.

    ``stage`` indexes ``model.feature_specs`` (-1: the last feature map, the "top layer"). The
    backbone runs without gradients and in evaluation mode; only ``fc`` learns. The backbone
    still computes the maps after the chosen one (its ``forward_features`` runs whole).
    """

    group_prefixes = {"backbone": ("features",), "head": ("fc",)}

    def __init__(self, model: Classifier, num_classes: int, stage: int = -1) -> None:
        super().__init__()
        if not getattr(model, "feature_specs", None):
            raise ArgumentError(f"{type(model).__name__} declares no feature maps; LinearProbe "
                              "needs a zoo classifier")
        self.features = FeatureExtractor(model, [stage], drop_head=True)
        for param in self.features.parameters():
            param.requires_grad_(False)
        self.fc = nn.Linear(self.features.channels[0], num_classes)
        self.num_classes = num_classes
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def train(self, mode: bool = True) -> "LinearProbe":
        super().train(mode)
        self.features.eval()
        return self

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.features.parameters()), "head": list(self.fc.parameters())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feature_map = self.features(x)[0]
        return self.fc(feature_map.float().mean(dim=(2, 3)))
