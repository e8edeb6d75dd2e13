"""What the pictures of :mod:`cnnkit.explain.see` share: eval mode restored afterwards, the
model's device, layer names and the capture of their maps, the class score to explain.

The model is never changed for good: every module's training flag is put back, hooks are
removed, parameters keep their ``requires_grad`` flags and their ``.grad`` (gradients are taken
with ``torch.autograd.grad`` with respect to the input or a captured map, never accumulated).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

import torch
from torch import nn

from cnnkit.errors import ArgumentError, NotFoundError

FEATURES = "forward_features"  # pseudo-layer: the output of a classifier's forward_features


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Run the block in eval mode, then give every module its own training flag back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's floating-point tensors live (the CPU and float32 without any)."""
    for t in chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def as_batch(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """A prepared ``C x H x W`` (or ``1 x C x H x W``) input as a batch of one on the model's
    device and dtype, detached from any graph."""
    if not isinstance(image, torch.Tensor):
        raise ArgumentError(f"image must be a prepared C x H x W tensor; got "
                            f"{type(image).__name__}")
    x = image[None] if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[0] != 1:
        raise ArgumentError(f"image must be C x H x W (or 1 x C x H x W); got shape "
                            f"{tuple(image.shape)}")
    device, dtype = device_and_dtype(model)
    return x.detach().to(device, dtype)


def is_classifier(model: nn.Module) -> bool:
    """True for models split into ``forward_features`` (maps) and ``forward_head`` (scores)."""
    return callable(getattr(model, "forward_features", None)) and callable(
        getattr(model, "forward_head", None))


def layer_names(model: nn.Module) -> list[str]:
    """Every name :func:`capture` takes: dotted module names, and ``forward_features`` for a
    classifier (the map its head reads)."""
    names = [name for name, _ in model.named_modules() if name]
    return names + [FEATURES] if is_classifier(model) else names


def check_layer(model: nn.Module, name: Any) -> str:
    """``name`` if the model has that layer, else one line listing the valid names."""
    names = layer_names(model)
    if not isinstance(name, str) or name not in names:
        raise NotFoundError(f"{type(model).__name__} has no layer {name!r}; valid layers: "
                            f"{', '.join(names) or 'none'}")
    return name


def default_layer(model: nn.Module) -> str:
    """The deepest stage of ``feature_specs`` (``forward_features`` when that spec names no
    module); without ``feature_specs``, ``forward_features`` for a classifier."""
    specs = getattr(model, "feature_specs", None) or []
    if specs and specs[-1].module:
        return specs[-1].module
    if is_classifier(model):
        return FEATURES
    raise ArgumentError(f"{type(model).__name__} declares no feature maps; name a layer, one of: "
                        f"{', '.join(layer_names(model))}")


def capture(model: nn.Module, x: torch.Tensor, names: Sequence[str]
            ) -> tuple[dict[str, torch.Tensor], Any]:
    """Run ``model`` on ``x``; return the output of each layer in ``names`` (its first call)
    and the model's output.

    Each hooked module hands a copy of its output on, so an in-place operation further on
    (``ReLU(inplace=True)``, ``out += identity``) does not change the captured map.
    """
    for name in names:
        check_layer(model, name)
    maps: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if name in maps or not isinstance(output, torch.Tensor):
                return None
            maps[name] = output
            return output.clone()
        return hook

    handles = [model.get_submodule(n).register_forward_hook(hook_for(n))
               for n in dict.fromkeys(names) if n != FEATURES]
    try:
        if FEATURES in names:
            maps[FEATURES] = model.forward_features(x)
            output = model.forward_head(maps[FEATURES].clone())
        else:
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    missing = [n for n in names if n not in maps]
    if missing:
        raise ArgumentError(f"layer {missing[0]!r} gave no tensor in {type(model).__name__}'s "
                            "forward pass")
    return maps, output


def spatial(name: str, value: torch.Tensor) -> torch.Tensor:
    """``value`` if it is ``N x C x h x w`` maps, else one line saying what it is."""
    if value.dim() != 4:
        raise ArgumentError(f"layer {name!r} gives shape {tuple(value.shape)}, not "
                            "N x C x H x W maps")
    return value


def class_scores(output: Any) -> torch.Tensor:
    """The scores in a model's output: the tensor itself, a ``logits`` field or the first
    element of a tuple; ``N x K`` (classification) or ``N x K x ...`` (per position)."""
    if isinstance(output, torch.Tensor):
        scores = output
    elif isinstance(getattr(output, "logits", None), torch.Tensor):
        scores = output.logits
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        scores = output[0]
    else:
        raise ArgumentError(f"the model returns a {type(output).__name__}; explanations need "
                            "class scores (N x K, or N x K x H x W per pixel)")
    if scores.dim() < 2:
        raise ArgumentError(f"the model's scores have shape {tuple(scores.shape)}; expected "
                            "N x K or N x K x H x W")
    return scores


def pick_target(scores: torch.Tensor, target: Any) -> int:
    """``target`` checked against the K classes; by default the predicted class (for per-pixel
    scores: the class predicted at the most positions)."""
    k = scores.shape[1]
    if target is None:
        if scores.dim() == 2:
            return int(scores[0].argmax())
        votes = scores[0].argmax(0).flatten()
        return int(torch.bincount(votes, minlength=k).argmax())
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < k:
        raise ArgumentError(f"target must be a class index in 0..{k - 1}; got {target!r}")
    return target


def class_score(scores: torch.Tensor, target: int) -> torch.Tensor:
    """The score to explain: class ``target``'s logit, summed over positions for dense scores
    (Grad-CAM for segmentation, after Vinogradova et al., AAAI 2020)."""
    return scores[0, target].sum()
