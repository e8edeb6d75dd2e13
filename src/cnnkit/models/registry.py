"""One registry for every cnnkit network: ``register``, ``create``, ``list_models``, ``get_info``.

A family registers each variant as a name, its builder, the builder options that define the
variant, and metadata that the tests check (paper, default input size, parameter count).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.kinds import check_task_kind
from cnnkit.errors import ArgumentError, NotFoundError, OptionError



@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one named variant."""

    name: str
    builder: Callable[..., nn.Module]
    task: str
    paper: str
    year: int
    input_size: tuple[int, int, int]  # default (C, H, W)
    num_params: int  # at the default configuration (default num_classes and in_channels)
    options: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int = 1000
    notes: str = ""  # what differs from the paper, and what the count includes
    reference: str = ""  # e.g. "torchvision": state_dict keys and shapes match that implementation

    @property
    def family(self) -> str:
        return self.builder.__module__.rsplit(".", 1)[-1]


_REGISTRY: dict[str, ModelInfo] = {}


class UnknownModelError(NotFoundError):
    """A model name that is not registered; the message suggests close names."""


def register(name: str, builder: Callable[..., nn.Module], *, task: str, paper: str, year: int,
             input_size: tuple[int, int, int], num_params: int, num_classes: int = 1000,
             notes: str = "", reference: str = "", **options: Any) -> ModelInfo:
    """Register variant ``name`` = ``builder(**options)``; returns its :class:`ModelInfo`."""
    if name in _REGISTRY:
        raise ArgumentError(f"model {name!r} is already registered "
                         f"(by {_REGISTRY[name].builder.__module__})")
    check_task_kind(task, f"model {name!r}")
    info = ModelInfo(name=name, builder=builder, task=task, paper=paper, year=year,
                     input_size=tuple(input_size), num_params=num_params, options=dict(options),
                     num_classes=num_classes, notes=notes, reference=reference)
    _REGISTRY[name] = info
    return info


def get_info(name: str) -> ModelInfo:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `cnnkit models` to list them"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def feature_info(name: str) -> list:
    """The feature maps (``FeatureSpec``: module, stride, channels) model ``name`` exposes at its
    default configuration, read from a copy built on the meta device; [] for models without."""
    import torch

    with torch.device("meta"):
        model = create(name)
    return list(getattr(model, "feature_specs", []))


def list_models(task: str | None = None, pattern: str | None = None) -> list[str]:
    """Registered names, sorted; optionally only one task's, or those matching a glob ``pattern``."""
    import fnmatch

    _ensure_loaded()
    if task is not None:
        check_task_kind(task)
    names = [n for n, i in _REGISTRY.items() if task is None or i.task == task]
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return sorted(names)


def create(name: str, *, num_classes: int | None = None, in_channels: int | None = None,
           weights: str | Path | None = None, features_only: bool = False,
           out_indices: list[int] | None = None, **options: Any) -> nn.Module:
    """Build a registered model.

    ``num_classes`` and ``in_channels`` override the variant's defaults; other keyword ``options``
    go to the family builder (e.g. ``batch_norm=True``, ``output_stride=8``). ``weights`` is a
    local ``.pth``/``.pt``/``.safetensors`` file loaded without code execution; when its head has
    another number of classes the head is re-initialised (and a message says so).
    ``features_only=True`` returns a :class:`~cnnkit.models.features.FeatureExtractor` (the
    model's global pooling and classifier removed).
    """
    info = get_info(name)
    kwargs = {**info.options, **options}
    kwargs["num_classes"] = info.num_classes if num_classes is None else num_classes
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    _check_options(info, kwargs)
    model = info.builder(**kwargs)
    if weights is not None:
        from cnnkit.models.weights import load_weights

        load_weights(model, weights)
    if features_only:
        from cnnkit.models.features import FeatureExtractor

        if not hasattr(model, "feature_specs"):
            raise ArgumentError(f"model {name!r} does not expose feature maps (features_only)")
        return FeatureExtractor(model, out_indices, drop_head=True)
    return model


def _check_options(info: ModelInfo, kwargs: Mapping[str, Any]) -> None:
    params = inspect.signature(info.builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = ", ".join(p for p in params if p not in info.options or p in kwargs)
        raise OptionError(f"model {info.name!r} does not take option(s) {', '.join(unknown)}; "
                        f"valid options: {valid}")


_loaded = False


def _ensure_loaded() -> None:
    """Import the model families (they register themselves) on first use."""
    global _loaded
    if not _loaded:
        _loaded = True
        import cnnkit.models.classification  # noqa: F401
        import cnnkit.models.segmentation  # noqa: F401
        import cnnkit.models.keypoints  # noqa: F401
        import cnnkit.models.localization  # noqa: F401
        import cnnkit.models.detection  # noqa: F401
        import cnnkit.models.dense_regression  # noqa: F401
