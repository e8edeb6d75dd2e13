"""Collate :class:`~cnnkit.data.sample.Sample` objects into the batch dict the tasks and the
trainer use.

Keys (present only when every sample has the field): ``image`` N x C x H x W float,
``label`` N int64, ``mask`` N x H x W int64, ``keypoints`` N x K x 2 float, ``visible`` N x K
bool, ``boxes`` N x 4 float (one box per sample: the first), ``heatmaps`` / ``heatmap_weights``
(from ``meta``, as :class:`~cnnkit.data.heatmaps.HeatmapTarget` stores them), the dense targets
``depth`` N x H x W float, ``normals`` N x 3 x H x W float and ``valid`` N x H x W bool, and
``meta``: the list of per-sample ``meta`` dicts (original size, path, transforms applied).

``instances`` (when every sample has instances, :attr:`Sample.has_instances`): a list with one
dict per sample, since the number of instances varies from image to image, holding those of
``boxes`` (B x 4 float), ``labels`` (B int64, from ``box_labels``), ``masks`` (B x H x W bool),
``keypoints`` (B x K x 3 float: x, y and COCO's visibility code, 2 where the keypoint is
visible and 0 where not; cnnkit keeps one bit, so COCO's 1, "labelled but hidden", does not
occur) and ``crowd`` (B bool) that the samples have. The single-box ``boxes`` key of
localization is made as before, from the first box of each sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnkit.data.sample import Sample
from cnnkit.errors import CnnkitError

Batch = dict[str, object]
META_TENSORS = ("heatmaps", "heatmap_weights", "ab")  # "ab": ColorizationTarget


def collate_samples(samples: Sequence[Sample]) -> Batch:
    if not samples:
        raise CnnkitError("cannot collate an empty list of samples")
    sizes = {tuple(s.image.shape) for s in samples}
    if len(sizes) > 1:
        raise CnnkitError(f"samples of one batch must have one image size (add a resize or "
                          f"crop transform); got {sorted(sizes)}")
    batch: Batch = {"image": torch.stack([s.image for s in samples])}
    if all(s.label is not None for s in samples):
        batch["label"] = torch.tensor([s.label for s in samples], dtype=torch.int64)
    for key in ("mask", "keypoints", "visible", "depth", "normals", "valid"):
        values = [getattr(s, key) for s in samples]
        if all(v is not None for v in values):
            batch[key] = torch.stack(values)
    if all(s.boxes is not None and len(s.boxes) for s in samples):
        batch["boxes"] = torch.stack([s.boxes[0] for s in samples])
    for key in META_TENSORS:
        if all(key in s.meta for s in samples):
            batch[key] = torch.stack([s.meta[key] for s in samples])
    if all(s.has_instances for s in samples):
        batch["instances"] = [instance_targets(s) for s in samples]
    batch["meta"] = [s.meta for s in samples]
    return batch


def instance_targets(sample: Sample) -> dict[str, torch.Tensor]:
    """The instances of one sample as the dict of ``batch["instances"]`` (present keys only)."""
    out: dict[str, torch.Tensor] = {"boxes": sample.boxes}
    if sample.box_labels is not None:
        out["labels"] = sample.box_labels
    if sample.instance_masks is not None:
        out["masks"] = sample.instance_masks
    if sample.instance_keypoints is not None:
        code = torch.where(sample.instance_visible, 2.0, 0.0).to(sample.instance_keypoints.dtype)
        out["keypoints"] = torch.cat([sample.instance_keypoints, code[..., None]], -1)
    out["crowd"] = sample.crowd
    return out


def to_device(batch: Batch, device: torch.device | str, *,
              channels_last: bool = False) -> Batch:
    """Tensors moved to ``device`` (non-blocking), those of ``instances`` too; the image in
    channels-last format if asked."""
    out: Batch = {}
    for key, value in batch.items():
        if key == "instances" and isinstance(value, list):
            value = [{k: v.to(device, non_blocking=True) for k, v in item.items()}
                     for item in value]
        elif isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image" and channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out
