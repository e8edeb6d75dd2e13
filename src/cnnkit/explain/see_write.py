"""``write_pictures``: every picture of :mod:`cnnkit.explain.see` for one model and one image,
as PNG files in a folder (what ``cnnkit viz RUN IMAGE --what ...`` and the report show)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.explain.see import (
    activation_maps,
    class_activation_map,
    first_layer_filters,
    grad_cam,
    saliency_map,
)
from cnnkit.explain.see_field import effective_receptive_field
from cnnkit.viz import caption

PICTURES = ("filters", "activations", "cam", "gradcam", "saliency", "erf")
DEFAULT_WHAT = ("filters", "activations", "gradcam", "saliency", "erf")
TITLES = {"cam": "CAM", "grad-cam": "Grad-CAM", "saliency": "saliency"}


def _class_name(run: Any, index: int) -> str:
    names = getattr(getattr(run, "task", None), "class_names", None)
    return f"{index} ({names[index]})" if names and index < len(names) else str(index)


def _what(what: str | Sequence[str]) -> list[str]:
    chosen = [what] if isinstance(what, str) else list(what)
    unknown = [w for w in chosen if w not in PICTURES]
    if unknown or not chosen:
        raise ArgumentError(f"pictures must be some of {', '.join(PICTURES)}; got "
                            f"{', '.join(map(repr, unknown)) or 'none'}")
    return list(dict.fromkeys(chosen))


def write_pictures(run: Any, image: torch.Tensor, out_dir: str | Path,
                   what: str | Sequence[str] = DEFAULT_WHAT, *,
                   picture: Image.Image | None = None, target: int | None = None,
                   layers: Sequence[str] | None = None, layer: str | None = None,
                   max_channels: int = 16) -> list[Path]:
    """Write the pictures named in ``what`` (of :data:`PICTURES`) for ``run`` (anything with a
    ``.model``, or a model; ``run.task.class_names``, when there, names the classes) and the
    prepared input ``image`` (``C x H x W``) into ``out_dir``; return their paths in order.

    Files: ``filters.png``; ``activations_<layer>.png`` per layer of ``layers`` (dots become
    ``_``; default: every feature stage); ``cam.png``, ``gradcam.png`` (at ``layer``) and
    ``saliency.png``, drawn over ``picture`` (the original image; default: the input) with a
    caption naming the class (``target``, default: the predicted one); ``erf.png`` (the
    effective receptive field at ``layer`` for the input's size). Something that does not apply
    (CAM without a GAP + linear head, an unknown layer) raises one :class:`ArgumentError` line
    before any file is written.
    """
    model = getattr(run, "model", run)
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"run must have a .model (an nn.Module); got {type(run).__name__}")
    chosen = _what(what)
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4):
        raise ArgumentError("image must be a prepared C x H x W tensor")
    pictures: list[tuple[str, Image.Image]] = []
    for kind in chosen:
        if kind == "filters":
            pictures.append(("filters", first_layer_filters(model).picture))
        elif kind == "activations":
            for name, maps in activation_maps(model, image, layers, max_channels).items():
                pictures.append((f"activations_{name.replace('.', '_')}", maps.picture))
        elif kind == "erf":
            field = effective_receptive_field(model, tuple(image.shape[-3:]), layer)
            pictures.append(("erf", field.picture))
        else:
            if kind == "cam":
                heat = class_activation_map(model, image, target, picture=picture)
            elif kind == "gradcam":
                heat = grad_cam(model, image, target, layer, picture=picture)
            else:
                heat = saliency_map(model, image, target, picture=picture)
            where = f" at {heat.layer}" if heat.layer else ""
            text = f"{TITLES[heat.method]}: class {_class_name(run, heat.target)}{where}"
            pictures.append((kind, caption(heat.picture, text)))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, drawn in pictures:
        path = folder / f"{stem}.png"
        drawn.save(path)
        paths.append(path)
    return paths
