"""Turn any zoo classifier into a backbone that returns its intermediate feature maps.

Feature maps are captured by forward hooks on the modules named by the model's
``feature_specs``. The hook is a plain function (no closure over one model), so deep copies and
pickles of a model keep working; it hands each map to the readers active in this thread, so
nested readers (a backbone inside a model that is itself read) each get their maps and nothing
keeps a reference to a map after the forward pass. :func:`drop_head` removes what comes after the
deepest map (global pool, classifier), so a backbone neither counts nor trains an unused head;
torchvision's segmentation models do the same, which keeps their ``backbone.*`` keys.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import torch
from torch import nn

from cnnkit.models.base import Classifier, FeatureSpec, get_submodule
from cnnkit.errors import ArgumentError

_readers = threading.local()  # per thread: a stack of {module: captured map} being filled


def _keep_output(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
    for wanted in getattr(_readers, "stack", ()):
        if module in wanted:
            wanted[module] = output


def drop_head(model: Classifier) -> Classifier:
    """Remove (in place) the top-level modules after the one computing the deepest feature map.

    When the deepest map is ``forward_features``' own output (module ``""``), only the classifier
    modules go. Removed modules become ``None`` so that code testing for them still runs.
    """
    if not getattr(model, "feature_specs", None):
        raise ArgumentError(f"{type(model).__name__} declares no feature maps (feature_specs)")
    children = list(model._modules)
    deepest = model.feature_specs[-1].module.split(".")[0]
    if deepest:
        dropped = children[children.index(deepest) + 1:]
    else:
        heads = {n.split(".")[0] for n in model.classifier_names}
        dropped = [c for c in children if c in heads]
    for child in dropped:
        setattr(model, child, None)
    return model


remove_head = drop_head  # the name FeatureExtractor uses, where ``drop_head`` is an argument


def pick_taps(model: Classifier, indices: Iterable[int]) -> list[FeatureSpec]:
    """The model's feature specs at ``indices`` (negative allowed), hooked for :func:`read_taps`."""
    specs = list(model.feature_specs)
    indices = list(indices)
    bad = [i for i in indices if not -len(specs) <= i < len(specs)]
    if bad:
        raise ArgumentError(f"feature indices {bad} out of range: {type(model).__name__} has "
                         f"{len(specs)} feature maps (strides {[s.stride for s in specs]})")
    taps = [specs[i] for i in indices]
    for spec in taps:
        if spec.module:
            module = get_submodule(model, spec.module)
            if _keep_output not in module._forward_hooks.values():
                module.register_forward_hook(_keep_output)
    return taps


def read_taps(model: Classifier, taps: Iterable[FeatureSpec], x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``model.forward_features(x)`` and return the maps of ``taps`` (from :func:`pick_taps`)."""
    taps = list(taps)
    modules = [get_submodule(model, s.module) if s.module else None for s in taps]
    wanted: dict[nn.Module, torch.Tensor | None] = {m: None for m in modules if m is not None}
    stack = _readers.__dict__.setdefault("stack", [])
    stack.append(wanted)
    try:
        last = model.forward_features(x)
    finally:
        stack.pop()  # readers nest, so ours is the last one
    missing = [s.module for s, m in zip(taps, modules) if m is not None and wanted[m] is None]
    if missing:
        raise RuntimeError(f"{type(model).__name__}.forward_features did not run {missing}")
    return [last if m is None else wanted[m] for m in modules]


class FeatureExtractor(nn.Module):
    """Wraps a :class:`Classifier`; ``forward(x)`` returns a list of feature maps, shallow first.

    ``out_indices`` picks among the model's ``feature_specs`` (default: all of them); the chosen
    ones are ``self.feature_specs``, listed by ``channels`` and ``strides`` for decoders.
    ``drop_head=True`` removes the model's pooling and classifier first (:func:`drop_head`);
    ``create(name, features_only=True)`` does so, since it owns the model.
    """

    def __init__(self, model: Classifier, out_indices: Iterable[int] | None = None, *,
                 drop_head: bool = False) -> None:
        super().__init__()
        if drop_head:
            remove_head(model)
        indices = range(len(model.feature_specs)) if out_indices is None else out_indices
        self.feature_specs: list[FeatureSpec] = pick_taps(model, indices)
        self.model = model

    @property
    def channels(self) -> list[int]:
        return [s.channels for s in self.feature_specs]

    @property
    def strides(self) -> list[int]:
        return [s.stride for s in self.feature_specs]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return read_taps(self.model, self.feature_specs, x)
