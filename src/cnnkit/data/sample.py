"""One training sample: an image and every label that must move with it.

Coordinate convention (used by every transform, dataset, decoder and metric in cnnkit):
pixel centres are at integer coordinates. Pixel ``(row i, column j)`` covers
``[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]``, so an image of width W spans ``[-0.5, W - 0.5]``.
Points are ``(x, y)``: x is the column, y the row. A horizontal flip maps ``x -> W - 1 - x``;
resizing by a factor s maps ``x -> (x + 0.5) * s - 0.5``. Boxes are ``(x1, y1, x2, y2)`` in the
same continuous frame (a box around the whole image is ``(-0.5, -0.5, W - 0.5, H - 0.5)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

IGNORE_INDEX = 255  # mask value that losses and metrics skip (padding, void)


@dataclass(frozen=True)
class Skeleton:
    """Keypoint names and the left/right pairs a horizontal flip must swap."""

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            for i in (a, b):
                if not 0 <= i < len(self.names):
                    raise ValueError(f"flip pair ({a}, {b}) names keypoint {i}, but the skeleton "
                                     f"has {len(self.names)}: {', '.join(self.names)}")
            if a == b or a in seen or b in seen:
                raise ValueError(f"flip pairs must pair distinct keypoints once each; "
                                 f"({a}, {b}) repeats or pairs a keypoint with itself")
            seen.update((a, b))

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...],
                   pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()) -> Skeleton:
        """Build from names, with pairs given by name (e.g. ``[("leftear", "rightear")]``)."""
        index = {n: i for i, n in enumerate(names)}
        missing = [n for pair in pairs for n in pair if n not in index]
        if missing:
            raise ValueError(f"flip pair names {missing} are not keypoints ({', '.join(names)})")
        return cls(tuple(names), tuple((index[a], index[b]) for a, b in pairs))

    def flip_permutation(self) -> list[int]:
        """Index permutation that swaps every left/right pair (identity elsewhere)."""
        perm = list(range(len(self.names)))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


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
            raise ValueError(f"{where}: image must be C x H x W; got shape {tuple(self.image.shape)}")
        h, w = self.image.shape[-2:]
        if self.mask is not None and tuple(self.mask.shape) != (h, w):
            raise ValueError(f"{where}: mask is {tuple(self.mask.shape)[::-1]} (W x H) but the "
                             f"image is {w} x {h}")
        if self.keypoints is not None:
            if self.keypoints.dim() != 2 or self.keypoints.shape[1] != 2:
                raise ValueError(f"{where}: keypoints must be K x 2 (x, y); got "
                                 f"{tuple(self.keypoints.shape)}")
            k = self.keypoints.shape[0]
            if self.visible is None:
                self.visible = torch.ones(k, dtype=torch.bool)
            if self.visible.shape != (k,):
                raise ValueError(f"{where}: {k} keypoints but {tuple(self.visible.shape)} "
                                 f"visibility flags")
            if self.skeleton is not None and len(self.skeleton.names) != k:
                raise ValueError(f"{where}: {k} keypoints but the skeleton names "
                                 f"{len(self.skeleton.names)} ({', '.join(self.skeleton.names)})")
        if self.boxes is not None and (self.boxes.dim() != 2 or self.boxes.shape[1] != 4):
            raise ValueError(f"{where}: boxes must be B x 4 (x1, y1, x2, y2); got "
                             f"{tuple(self.boxes.shape)}")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (transforms never modify a sample in place)."""
        return replace(self, **changes)
