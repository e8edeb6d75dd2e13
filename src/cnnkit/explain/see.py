"""What a trained network sees: first-layer filters, feature maps, CAM, Grad-CAM, saliency and
the effective receptive field, as tensors and as Pillow pictures.

Every function takes a model and a *prepared* input (``C x H x W``, normalised as the model
expects), runs in eval mode on the model's device and gives the model back as it was (training
flags, ``requires_grad``, ``.grad``; see :mod:`cnnkit.explain.see_common`). Tensors come back
detached, in float32, on the CPU; ``picture`` arguments are what the heat maps are drawn over
(default: the input itself, rescaled and enlarged).

- CAM: B. Zhou, A. Khosla, A. Lapedriza, A. Oliva, A. Torralba, "Learning Deep Features for
  Discriminative Localization", CVPR 2016. Only for a head that is global average pooling + one
  linear layer; the map is the sum of the last maps weighted by the class's weights, without
  the bias, and is not clipped at 0 (the paper shows it rescaled, as the overlay does).
- Grad-CAM: R. R. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization", ICCV 2017. The score is the logit before softmax; for
  per-pixel scores it is the class's logit summed over the pixels. For a GAP + linear head it
  is ReLU(CAM) divided by the number of positions, as the paper shows.
- Saliency: K. Simonyan, A. Vedaldi, A. Zisserman, "Deep Inside Convolutional Networks:
  Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014: the largest
  ``|d score / d input|`` over the colour channels, at the input's resolution.
- The effective receptive field (Luo et al., NeurIPS 2016) is in :mod:`cnnkit.explain.see_field`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.explain import see_pictures as P
from cnnkit.explain.see_common import (
    FEATURES,
    as_batch,
    capture,
    check_layer,
    class_score,
    class_scores,
    default_layer,
    evaluating,
    is_classifier,
    pick_target,
    spatial,
)


@dataclass
class FilterGrid:
    """``weights``: the first convolution's ``C_out x C_in x kh x kw`` weights."""

    layer: str
    weights: torch.Tensor
    picture: Image.Image


@dataclass
class LayerMaps:
    """``maps``: all ``C x h x w`` maps of ``layer``; ``channels``: those drawn."""

    layer: str
    maps: torch.Tensor
    channels: list[int]
    picture: Image.Image


@dataclass
class Heatmap:
    """``map`` at the layer's resolution (the input's for saliency); ``upsampled`` at the
    input's (bilinear, ``align_corners=False``); ``picture`` the overlay."""

    method: str
    target: int
    layer: str | None
    map: torch.Tensor
    upsampled: torch.Tensor
    picture: Image.Image


def first_layer_filters(model: nn.Module, *, scale: str = "symmetric",
                        zoom: int | None = None) -> FilterGrid:
    """The weights of the model's first ``nn.Conv2d`` (in module order) as a grid picture, like
    the AlexNet conv1 figure of Krizhevsky et al. (NIPS 2012); scaling: ``scale`` as in
    :mod:`cnnkit.explain.see_pictures`; ``zoom`` enlarges the tiles (default: to ~48 px)."""
    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ArgumentError(f"{type(model).__name__} has no 2-D convolution to show")
    name, conv = first
    name = name or type(conv).__name__
    weights = conv.weight.detach().float().cpu().clone()
    return FilterGrid(name, weights, P.filter_picture(weights, name, scale=scale, zoom=zoom))


def activation_maps(model: nn.Module, image: torch.Tensor,
                    layers: str | Sequence[str] | None = None,
                    max_channels: int = 16) -> dict[str, LayerMaps]:
    """The maps of ``layers`` (dotted module names; default: every stage of ``feature_specs``)
    for one input, one grid per layer: the ``max_channels`` channels with the largest mean
    activation, in channel order, each from its minimum (black) to its maximum (white)."""
    require_positive(max_channels=max_channels)
    if layers is None:
        specs = getattr(model, "feature_specs", None) or []
        names = [s.module or FEATURES for s in specs] or [default_layer(model)]
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
    names = [check_layer(model, n) for n in dict.fromkeys(names)]
    x = as_batch(model, image)
    with evaluating(model), torch.no_grad():
        maps, _ = capture(model, x, names)
    out = {}
    for name in names:
        values = spatial(name, maps[name])[0].detach().float().cpu()
        k = min(max_channels, values.shape[0])
        channels = sorted(values.mean((1, 2)).topk(k).indices.tolist())
        out[name] = LayerMaps(name, values, channels, P.maps_picture(values, channels, name))
    return out


def _upsample(values: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(values[None, None], size=tuple(size), mode="bilinear",
                         align_corners=False)[0, 0]


def _heatmap(method: str, x: torch.Tensor, picture: Image.Image | None, target: int,
             layer: str | None, values: torch.Tensor) -> Heatmap:
    values = values.detach().float().cpu()
    up = _upsample(values, x.shape[-2:])
    return Heatmap(method, target, layer, values, up, P.heat_overlay(x, picture, up))


def class_activation_map(model: nn.Module, image: torch.Tensor, target: int | None = None, *,
                         picture: Image.Image | None = None) -> Heatmap:
    """CAM (Zhou et al., CVPR 2016) of class ``target`` (default: the predicted class): the
    last feature maps weighted by that class's weights in the linear classifier. Refuses a
    model whose ``forward_head`` is not global average pooling + that linear layer."""
    refuse = (f"CAM needs a head that is global average pooling + one linear layer; "
              f"{type(model).__name__}'s is not (use grad_cam)")
    if not is_classifier(model) or not callable(getattr(model, "get_classifier", None)):
        raise ArgumentError(refuse)
    x = as_batch(model, image)
    with evaluating(model), torch.no_grad():
        maps, output = capture(model, x, [FEATURES])
        feats, scores = spatial(FEATURES, maps[FEATURES]), class_scores(output)
        head = model.get_classifier()
        if not isinstance(head, nn.Linear) or head.in_features != feats.shape[1] \
                or scores.dim() != 2:
            raise ArgumentError(refuse)
        pooled = F.linear(feats.mean((2, 3)), head.weight, head.bias)
        if not torch.allclose(pooled, scores, rtol=1e-4, atol=1e-5 * (1 + float(
                scores.abs().max()))):
            raise ArgumentError(refuse)
        t = pick_target(scores, target)
        cam = torch.einsum("c,chw->hw", head.weight[t].to(feats.dtype), feats[0])
    return _heatmap("cam", x, picture, t, default_layer(model), cam)


def grad_cam(model: nn.Module, image: torch.Tensor, target: int | None = None,
             layer: str | None = None, *, picture: Image.Image | None = None) -> Heatmap:
    """Grad-CAM (Selvaraju et al., ICCV 2017) of class ``target`` (default: the predicted
    class) at ``layer`` (default: the deepest stage of ``feature_specs``): the gradients of the
    class score with respect to the layer's maps, averaged per channel, weight the maps; the
    weighted sum is clipped at 0."""
    name = default_layer(model) if layer is None else check_layer(model, layer)
    x = as_batch(model, image).requires_grad_()
    with evaluating(model), torch.enable_grad():
        maps, output = capture(model, x, [name])
        acts, scores = spatial(name, maps[name]), class_scores(output)
        t = pick_target(scores.detach(), target)
        grads = torch.autograd.grad(class_score(scores, t), acts, allow_unused=True)[0]
    if grads is None:
        raise ArgumentError(f"the score of class {t} does not depend on layer {name!r}")
    weights = grads[0].mean((1, 2))
    cam = torch.relu(torch.einsum("c,chw->hw", weights, acts[0].detach()))
    return _heatmap("grad-cam", x, picture, t, name, cam)


def saliency_map(model: nn.Module, image: torch.Tensor, target: int | None = None, *,
                 picture: Image.Image | None = None) -> Heatmap:
    """Image-specific saliency (Simonyan et al., 2014): ``|d score / d input|``, the largest
    over the input channels, for class ``target`` (default: the predicted class)."""
    x = as_batch(model, image).requires_grad_()
    with evaluating(model), torch.enable_grad():
        scores = class_scores(model(x))
        t = pick_target(scores.detach(), target)
        grads = torch.autograd.grad(class_score(scores, t), x)[0]
    return _heatmap("saliency", x, picture, t, None, grads[0].abs().amax(0))
