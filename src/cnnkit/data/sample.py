"""One training sample: an image and every label that must move with it.

Coordinates (keypoints, boxes) follow the convention of :mod:`cnnkit.geometry`: pixel centres
at integer coordinates, points ``(x, y)``, boxes ``(x1, y1, x2, y2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from cnnkit.geometry import Skeleton
from cnnkit.errors import ArgumentError

IGNORE_INDEX = 255  # mask value that losses and metrics skip (padding, void)


@dataclass
class Sample:
    """An image (``C x H x W`` float in [0, 1]) with any of its labels.

    - ``label``: class index;
    - ``mask``: ``H x W`` int64 class map, :data:`IGNORE_INDEX` for pixels to skip;
    - ``keypoints``: ``K x 2`` float (x, y) and ``visible``: ``K`` bool, with ``skeleton``;
    - ``boxes``: ``B x 4`` float (x1, y1, x2, y2), with ``box_labels`` (``B`` int64);
    - ``meta``: anything else (source path, original size, the transforms' parameters).
    """

    image: torch.Tensor
    label: int | None = None
    mask: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    visible: torch.Tensor | None = None
    skeleton: Skeleton | None = None
    boxes: torch.Tensor | None = None
    box_labels: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.meta.get("path", "sample")
        if self.image.dim() != 3:
            raise ArgumentError(f"{where}: image must be C x H x W; got shape {tuple(self.image.shape)}")
        h, w = self.image.shape[-2:]
        if self.mask is not None and tuple(self.mask.shape) != (h, w):
            raise ArgumentError(f"{where}: mask is {tuple(self.mask.shape)[::-1]} (W x H) but the "
                             f"image is {w} x {h}")
        if self.keypoints is not None:
            if self.keypoints.dim() != 2 or self.keypoints.shape[1] != 2:
                raise ArgumentError(f"{where}: keypoints must be K x 2 (x, y); got "
                                 f"{tuple(self.keypoints.shape)}")
            k = self.keypoints.shape[0]
            if self.visible is None:
                self.visible = torch.ones(k, dtype=torch.bool)
            if self.visible.shape != (k,):
                raise ArgumentError(f"{where}: {k} keypoints but {tuple(self.visible.shape)} "
                                 f"visibility flags")
            if self.skeleton is not None and len(self.skeleton.names) != k:
                raise ArgumentError(f"{where}: {k} keypoints but the skeleton names "
                                 f"{len(self.skeleton.names)} ({', '.join(self.skeleton.names)})")
        if self.boxes is not None and (self.boxes.dim() != 2 or self.boxes.shape[1] != 4):
            raise ArgumentError(f"{where}: boxes must be B x 4 (x1, y1, x2, y2); got "
                             f"{tuple(self.boxes.shape)}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (transforms never modify a sample in place)."""
        return replace(self, **changes)
