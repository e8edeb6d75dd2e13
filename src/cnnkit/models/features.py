"""Turn any zoo classifier into a backbone that returns its intermediate feature maps.

The extractor keeps the wrapped model's parameter names (``model.``-prefixed), records the maps
with forward hooks on the modules named by the model's ``feature_specs``, and never runs the
classifier head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.models.base import Classifier, FeatureSpec, get_submodule


class FeatureExtractor(nn.Module):
    """Wraps a :class:`Classifier`; ``forward(x)`` returns a list of feature maps, shallow first.

    ``out_indices`` picks among the model's ``feature_specs`` (default: all of them). The chosen
    specs are in ``self.feature_specs``; ``channels`` and ``strides`` list them for decoders.
    """

    def __init__(self, model: Classifier, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        specs = list(model.feature_specs)
        if out_indices is None:
            out_indices = range(len(specs))
        out_indices = list(out_indices)
        bad = [i for i in out_indices if not -len(specs) <= i < len(specs)]
        if bad:
            raise ValueError(f"out_indices {bad} out of range: {type(model).__name__} has "
                             f"{len(specs)} feature maps (strides {[s.stride for s in specs]})")
        self.model = model
        self.feature_specs: list[FeatureSpec] = [specs[i] for i in out_indices]
        self._captured: dict[str, torch.Tensor] = {}
        for spec in self.feature_specs:
            if spec.module:
                get_submodule(model, spec.module).register_forward_hook(self._capture(spec.module))

    def _capture(self, name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            self._captured[name] = output
        return hook

    @property
    def channels(self) -> list[int]:
        return [s.channels for s in self.feature_specs]

    @property
    def strides(self) -> list[int]:
        return [s.stride for s in self.feature_specs]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self._captured = {}
        last = self.model.forward_features(x)
        out = [last if not s.module else self._captured[s.module] for s in self.feature_specs]
        self._captured = {}
        return out
