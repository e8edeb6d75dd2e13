"""The effective receptive field of a unit, drawn with its theoretical receptive field.

W. Luo, Y. Li, R. Urtasun, R. Zemel, "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks", NeurIPS 2016: set the gradient of one output unit (the centre
one) to 1 and every other to 0, back-propagate to the input, and look at the gradient's
magnitude over the input. It is zero outside the theoretical receptive field (what the analyzer,
:mod:`cnnkit.analysis`, computes) and, inside, a Gaussian-like blob that fills only a fraction
of it. What differs from the paper: the model keeps its own (trained) weights, where Luo et al.
also average over random weights; the inputs are a few standard-normal images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from cnnkit.analysis import analyze
from cnnkit.errors import ArgumentError, require_positive
from cnnkit.explain.see_common import (
    FEATURES,
    capture,
    check_layer,
    class_scores,
    default_layer,
    device_and_dtype,
    evaluating,
    is_classifier,
    spatial,
)
from cnnkit.explain.see_pictures import field_picture


@dataclass
class EffectiveField:
    """``gradient``: mean ``|d unit / d input|`` (``H x W``); ``box``: the analyzer's
    theoretical field of ``unit``, ``[[top, bottom], [left, right]]`` inclusive, cut to the
    input; ``sigma``: the gradient's spread (rows, columns) in pixels; ``area95``: how many
    pixels hold 95% of its sum."""

    layer: str | None
    unit: tuple[int, int]
    gradient: torch.Tensor
    box: list[list]
    sigma: tuple[float, float]
    area95: int
    picture: Image.Image


def _input_size(input_size) -> tuple[int, int, int]:
    size = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else ()
    if len(size) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                             for v in size):
        raise ArgumentError(f"input_size must be (C, H, W), positive ints; got {input_size!r}")
    return size  # type: ignore[return-value]


def _spread(gradient: torch.Tensor) -> tuple[tuple[float, float], int]:
    """Standard deviations (rows, columns) of ``gradient`` as a distribution over pixels, and
    the fewest pixels holding 95% of its sum."""
    total = gradient.sum()
    if total <= 0:
        return (0.0, 0.0), 0
    p = gradient / total
    sigmas = []
    for marginal in (p.sum(1), p.sum(0)):
        at = torch.arange(marginal.numel(), dtype=p.dtype)
        mean = (marginal * at).sum()
        sigmas.append(float(((at - mean) ** 2 * marginal).sum().sqrt()))
    mass = p.flatten().sort(descending=True).values.cumsum(0)
    return (sigmas[0], sigmas[1]), int((mass < 0.95).sum()) + 1


def effective_receptive_field(model: nn.Module, input_size, layer: str | None = None, *,
                              samples: int = 8, seed: int = 0) -> EffectiveField:
    """The effective receptive field of the centre unit of ``layer``'s output (a dotted module
    name; default: the deepest stage of ``feature_specs`` for a classifier, the model's output
    for a dense model), with the analyzer's theoretical field of that unit as a box.

    The centre position's outputs (summed over its channels) are differentiated with respect to
    ``samples`` standard-normal inputs of ``input_size`` (C, H, W; a CPU generator seeded with
    ``seed``), in eval mode; the gradient's magnitude, summed over the input channels and
    averaged over the samples, is the map (``gradient``).
    """
    shape = _input_size(input_size)
    require_positive(samples=samples)
    if layer is not None:
        name = check_layer(model, layer)
    else:
        name = default_layer(model) if is_classifier(model) else None
    if name == FEATURES:
        raise ArgumentError("the analyzer's fields are per module; name a module layer= for the "
                            f"effective receptive field of {type(model).__name__}")
    device, dtype = device_and_dtype(model)
    noise = torch.randn((samples, *shape), generator=torch.Generator().manual_seed(seed))
    x = noise.to(device, dtype).requires_grad_()
    with evaluating(model), torch.enable_grad():
        maps, output = capture(model, x, [name] if name else [])
        values = maps[name] if name else class_scores(output)
        if name is None and values.dim() != 4:
            raise ArgumentError(f"{type(model).__name__}'s output has no H x W positions; "
                                "name a layer for its effective receptive field")
        values = spatial(name or "output", values)
        unit = (values.shape[2] // 2, values.shape[3] // 2)
        grads = torch.autograd.grad(values[:, :, unit[0], unit[1]].sum(), x)[0]
    gradient = grads.abs().sum(1).mean(0).detach().float().cpu()
    box = analyze(model, shape).receptive_box(unit, layer=name)
    sigma, area95 = _spread(gradient)
    sides = [int(hi - lo + 1) for lo, hi in box] if box else [0, 0]
    share = 100 * area95 / max(1, sides[0] * sides[1])
    lines = [f"ERF of {name or 'output'} at {unit[0]},{unit[1]}",
             f"box: RF {sides[0]}x{sides[1]}; 95% of |grad| in {share:.0f}%"]
    return EffectiveField(name, unit, gradient, box, sigma, area95,
                          field_picture(gradient, box, lines))
