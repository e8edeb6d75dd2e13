"""The API every cnnkit network shares: features, head, classifier reset and parameter groups.

A model declares *where* its features are (``feature_specs``), *which* modules are its classifier
(``classifier_names``) and *how* its parameters split into groups (``group_prefixes``); the
behaviour below is derived from those declarations, so a family builder only fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from cnnkit.errors import ArgumentError, NotFoundError, require_positive


@dataclass(frozen=True)
class FeatureSpec:
    """One feature map a backbone exposes.

    ``module`` is the dotted name of the submodule whose output is the map ("" means the output
    of ``forward_features``); ``stride`` is its total downsampling factor with respect to the
    input and ``channels`` its channel count.
    """

    module: str
    stride: int
    channels: int


def get_submodule(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule`` with an error that names the model and the missing path."""
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise NotFoundError(f"{type(model).__name__} has no submodule {name!r}") from err


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``name`` (works inside Sequential/ModuleList too)."""
    parent_name, _, leaf = name.rpartition(".")
    parent = get_submodule(model, parent_name) if parent_name else model
    setattr(parent, leaf, module)


def input_channels(model: nn.Module) -> int | None:
    """The channels ``model`` takes: those of its first convolution (None without one)."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return None


def new_head_like(old: nn.Module, num_classes: int) -> nn.Module:
    """A freshly initialised classifier of the same kind as ``old`` with ``num_classes`` outputs."""
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        nn.init.normal_(new.weight, 0.0, 0.01)
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None)
        nn.init.normal_(new.weight, 0.0, 0.01)
    else:
        raise ArgumentError(f"cannot reset a classifier of type {type(old).__name__}; "
                        "expected nn.Linear or nn.Conv2d")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    return new.to(device=old.weight.device, dtype=old.weight.dtype)


class Classifier(nn.Module):
    """Base class of the classification zoo.

    Subclasses set in ``__init__``:

    - ``feature_specs``: list of :class:`FeatureSpec`, shallow to deep (strides 2, 4, 8, 16, 32
      for ImageNet-style networks);
    - ``classifier_names``: dotted names of the final classifier layers (the main one first;
      auxiliary heads such as GoogLeNet's follow);
    - ``group_prefixes``: ``{"stem": (...), "stages": (...), "head": (...)}``, name prefixes that
      assign every parameter to exactly one group;

    and implement ``forward_features`` (input -> last feature map) and ``forward_head``
    (last feature map -> logits).
    """

    feature_specs: list[FeatureSpec]
    classifier_names: tuple[str, ...] = ("fc",)
    group_prefixes: dict[str, tuple[str, ...]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def num_classes(self) -> int:
        head = self.get_classifier()
        return head.out_features if isinstance(head, nn.Linear) else head.out_channels

    def get_classifier(self) -> nn.Module:
        return get_submodule(self, self.classifier_names[0])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every classifier layer (auxiliary ones included) by a new one."""
        require_positive(num_classes=num_classes)
        for name in self.classifier_names:
            set_submodule(self, name, new_head_like(get_submodule(self, name), num_classes))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters split by ``group_prefixes`` (for freezing or per-group learning rates)."""
        return group_parameters(self, self.group_prefixes)


def group_parameters(model: nn.Module,
                     prefixes: dict[str, tuple[str, ...]]) -> dict[str, list[nn.Parameter]]:
    """Assign every named parameter to the first group with a matching name prefix.

    A prefix matches a whole path component ("layer1" matches "layer1.0.conv1.weight" but not
    "layer10.weight"). A parameter that matches no group is an error: groups must cover the model.
    """
    groups: dict[str, list[nn.Parameter]] = {g: [] for g in prefixes}
    for pname, param in model.named_parameters():
        for group, group_prefixes in prefixes.items():
            if any(pname == p or pname.startswith(p + ".") for p in group_prefixes):
                groups[group].append(param)
                break
        else:
            raise ArgumentError(f"parameter {pname!r} of {type(model).__name__} is in no group of "
                           f"{ {g: list(p) for g, p in prefixes.items()} }")
    return groups
