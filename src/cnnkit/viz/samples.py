"""Pictures of one sample with its ground truth next to the prediction, for every task.

Targets and predictions are dicts in the coordinates of ``image`` (the network input):
``label`` / ``class`` (int) and ``score``; ``mask`` (H x W); ``keypoints`` (K x 2) and
``visible``; ``box`` (4) or ``boxes`` (B x 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from cnnkit.geometry import Skeleton
from cnnkit.viz.overlays import caption, draw_boxes, draw_keypoints, overlay_mask
from cnnkit.viz.plots import panels
from cnnkit.viz.style import RGB, to_pil
from cnnkit.errors import ArgumentError

KINDS = ("classification", "segmentation", "keypoints", "localization")


def _name(index: Any, class_names: Sequence[str] | None) -> str:
    if index is None:
        return "?"
    index = int(index)
    known = class_names is not None and index < len(class_names)
    return class_names[index] if known else str(index)


def _boxes(values: dict[str, Any]) -> torch.Tensor | None:
    box = values.get("boxes", values.get("box"))
    return None if box is None else torch.as_tensor(box, dtype=torch.float32).reshape(-1, 4)


def sample_panel(image: torch.Tensor, kind: str, target: dict[str, Any],
                 prediction: dict[str, Any], *, class_names: Sequence[str] | None = None,
                 palette: Sequence[RGB] | None = None, skeleton: Skeleton | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 scale: int = 1) -> Image.Image:
    """Ground truth (left) and prediction (right) drawn over the image, captioned.

    classification: the image captioned "true X, predicted Y (score)"; segmentation: image,
    true mask and predicted mask overlays; keypoints and localization: true and predicted
    points or boxes on two copies of the image. ``mean``/``std`` undo a normalisation.
    """
    if kind not in KINDS:
        raise ArgumentError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    picture = to_pil(image, mean, std)
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    if kind == "classification":
        true = _name(target.get("label", target.get("class")), class_names)
        pred = _name(prediction.get("class", prediction.get("label")), class_names)
        score = prediction.get("score")
        text = f"true {true}, predicted {pred}" + (f" ({float(score):.2f})" if score is not None
                                                     else "")
        return caption(picture, text)
    tiles: list[Image.Image] = []
    if kind == "segmentation":
        tiles.append(caption(picture, "image"))
        for title, values in (("true", target), ("predicted", prediction)):
            mask = torch.as_tensor(values["mask"])
            if scale != 1:
                mask = mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            tiles.append(caption(overlay_mask(picture, mask, palette), title))
    elif kind == "keypoints":
        base = to_pil(image, mean, std)
        for title, values in (("true", target), ("predicted", prediction)):
            visible = values.get("visible")
            tiles.append(caption(draw_keypoints(
                base, torch.as_tensor(values["keypoints"], dtype=torch.float32),
                None if visible is None else torch.as_tensor(visible), skeleton, scale=scale),
                title))
    else:
        base = to_pil(image, mean, std)
        for title, values in (("true", target), ("predicted", prediction)):
            boxes = _boxes(values)
            label = values.get("label", values.get("class"))
            labels = None if label is None else [int(label)] * (0 if boxes is None else len(boxes))
            drawn = base if boxes is None else draw_boxes(base, boxes, labels, class_names,
                                                          scale=scale)
            if boxes is None and scale != 1:
                drawn = picture
            tiles.append(caption(drawn, f"{title}: {_name(label, class_names)}"))
    return panels(tiles, columns=len(tiles))
