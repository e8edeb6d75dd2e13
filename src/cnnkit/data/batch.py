"""Collate :class:`~cnnkit.data.sample.Sample` objects into the batch dict the tasks and the
trainer use.

Keys (present only when every sample has the field): ``image`` N x C x H x W float,
``label`` N int64, ``mask`` N x H x W int64, ``keypoints`` N x K x 2 float, ``visible`` N x K
bool, ``boxes`` N x 4 float (one box per sample: the first), ``heatmaps`` / ``heatmap_weights``
(from ``meta``, as :class:`~cnnkit.data.heatmaps.HeatmapTarget` stores them), the dense targets
``depth`` N x H x W float, ``normals`` N x 3 x H x W float and ``valid`` N x H x W bool, and
``meta``: the list of per-sample ``meta`` dicts (original size, path, transforms applied).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnkit.data.sample import Sample
from cnnkit.errors import CnnkitError

Batch = dict[str, object]
META_TENSORS = ("heatmaps", "heatmap_weights")


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
    batch["meta"] = [s.meta for s in samples]
    return batch


def to_device(batch: Batch, device: torch.device | str, *,
              channels_last: bool = False) -> Batch:
    """Tensors moved to ``device`` (non-blocking); the image in channels-last format if asked."""
    out: Batch = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image" and channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out
