"""One training sample: an image and every label that must move with it.

Coordinates (keypoints, boxes) follow the convention of :mod:`cnnkit.geometry`: pixel centres
at integer coordinates, points ``(x, y)``, boxes ``(x1, y1, x2, y2)``.

Dense regression targets (depth, surface normals; the targets of Eigen & Fergus, "Predicting
Depth, Surface Normals and Semantic Labels with a Common Multi-Scale Convolutional
Architecture", ICCV 2015) live in the camera frame of OpenCV: x right, y down, z forward into
the scene. ``depth`` is the z coordinate of the surface seen at each pixel (not the distance
along the ray), in metres; ``normals`` are unit vectors in that frame pointing out of the surface
towards the camera (``n . X < 0`` for the surface point X), so a surface seen head-on has a
normal with negative z. Unknown pixels hold 0 in both, and ``valid`` says which pixels are
known.

Instances (detection, instance segmentation and per-instance keypoints, as COCO annotates them:
Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014; the targets of Mask R-CNN,
He et al., ICCV 2017) are the rows of ``boxes``: instance ``b`` has the box ``boxes[b]``, the
label ``box_labels[b]`` (1..C, 0 is background), the mask ``instance_masks[b]`` (the pixels it
covers, what is visible of it), the keypoints ``instance_keypoints[b]`` with
``instance_visible[b]`` (the one ``skeleton`` names them), and ``crowd[b]`` (COCO's iscrowd:
a region of many objects that evaluation ignores). A sample *has instances* when ``crowd`` is
set; it is filled in (all False) when instance masks or keypoints are given, so instance
datasets always set it, and the geometric transforms then drop instances that leave the image
(see :mod:`cnnkit.data.transforms.instances`). Boxes without ``crowd`` are the plain boxes of
localization, which the transforms only clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from cnnkit.geometry import Skeleton
from cnnkit.errors import ArgumentError

IGNORE_INDEX = 255  # mask value that losses and metrics skip (padding, void)
INSTANCE_FIELDS = ("instance_masks", "instance_keypoints", "instance_visible", "crowd")


@dataclass
class Sample:
    """An image (``C x H x W`` float in [0, 1]) with any of its labels.

    - ``label``: class index;
    - ``mask``: ``H x W`` int64 class map, :data:`IGNORE_INDEX` for pixels to skip;
    - ``keypoints``: ``K x 2`` float (x, y) and ``visible``: ``K`` bool, with ``skeleton``;
    - ``boxes``: ``B x 4`` float (x1, y1, x2, y2), with ``box_labels`` (``B`` int64);
    - ``depth``: ``H x W`` float32, camera z in metres, 0 where unknown;
    - ``normals``: ``3 x H x W`` float32 unit vectors (camera frame), 0 where unknown;
    - ``valid``: ``H x W`` bool, the pixels whose depth/normals are known; when None it is
      filled in as ``depth > 0`` (or, without depth, as the non-zero normals);
    - ``meta``: anything else (source path, original size, the transforms' parameters);
    - ``instance_masks``: ``B x H x W`` bool, one per box; ``instance_keypoints``: ``B x K x 2``
      float (x, y) with ``instance_visible`` ``B x K`` bool (all True when None);
      ``crowd``: ``B`` bool (all False when None and masks or keypoints are given). They need
      ``boxes``; ``box_labels``, when given, must then have ``B`` entries.
    """

    image: torch.Tensor
    label: int | None = None
    mask: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    visible: torch.Tensor | None = None
    skeleton: Skeleton | None = None
    boxes: torch.Tensor | None = None
    box_labels: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    instance_masks: torch.Tensor | None = None
    instance_keypoints: torch.Tensor | None = None
    instance_visible: torch.Tensor | None = None
    crowd: torch.Tensor | None = None

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
        self._check_dense(where, h, w)
        self._check_instances(where, h, w)

    def _check_dense(self, where: str, h: int, w: int) -> None:
        """Shapes and dtypes of depth, normals and valid; fills ``valid`` when it is None."""
        for name, value, lead in (("depth", self.depth, ()), ("normals", self.normals, (3,))):
            if value is None:
                continue
            if tuple(value.shape) != (*lead, h, w):
                raise ArgumentError(f"{where}: {name} must be {'3 x ' if lead else ''}H x W = "
                                    f"{'3 x ' if lead else ''}{h} x {w} like the image; got "
                                    f"{tuple(value.shape)}")
            if not value.is_floating_point():
                raise ArgumentError(f"{where}: {name} must be float (metres, unit vectors); "
                                    f"got {value.dtype}")
        if self.valid is None:
            if self.depth is not None:
                self.valid = self.depth > 0
            elif self.normals is not None:
                self.valid = self.normals.ne(0).any(0)
        elif tuple(self.valid.shape) != (h, w) or self.valid.dtype != torch.bool:
            raise ArgumentError(f"{where}: valid must be a bool H x W = {h} x {w} map like the "
                                f"image; got {self.valid.dtype} {tuple(self.valid.shape)}")

    def _check_instances(self, where: str, h: int, w: int) -> None:
        """Shapes and dtypes of the instance fields; fills ``instance_visible`` and ``crowd``."""
        given = [n for n in INSTANCE_FIELDS if getattr(self, n) is not None]
        if not given:
            return
        if self.boxes is None:
            raise ArgumentError(f"{where}: {given[0]} needs boxes (B x 4, one per instance)")
        b = self.boxes.shape[0]
        if self.box_labels is not None and tuple(self.box_labels.shape) != (b,):
            raise ArgumentError(f"{where}: {b} instance boxes but box_labels has shape "
                                f"{tuple(self.box_labels.shape)}; give one label per box")
        masks = self.instance_masks
        if masks is not None and (tuple(masks.shape) != (b, h, w) or masks.dtype != torch.bool):
            raise ArgumentError(f"{where}: instance_masks must be bool B x H x W = {b} x {h} x {w} "
                                f"(one per box); got {masks.dtype} {tuple(masks.shape)}")
        points = self.instance_keypoints
        if points is not None:
            if points.dim() != 3 or points.shape[0] != b or points.shape[2] != 2:
                raise ArgumentError(f"{where}: instance_keypoints must be B x K x 2 (x, y) with "
                                    f"B = {b} boxes; got {tuple(points.shape)}")
            if self.instance_visible is None:
                self.instance_visible = torch.ones(points.shape[:2], dtype=torch.bool)
            visible = self.instance_visible
            if tuple(visible.shape) != tuple(points.shape[:2]) or visible.dtype != torch.bool:
                raise ArgumentError(f"{where}: instance_visible must be bool B x K = "
                                    f"{b} x {points.shape[1]}; got {visible.dtype} "
                                    f"{tuple(visible.shape)}")
            if self.skeleton is not None and len(self.skeleton.names) != points.shape[1]:
                raise ArgumentError(f"{where}: {points.shape[1]} instance keypoints but the "
                                    f"skeleton names {len(self.skeleton.names)}")
        elif self.instance_visible is not None:
            raise ArgumentError(f"{where}: instance_visible given without instance_keypoints")
        if self.crowd is None:
            self.crowd = torch.zeros(b, dtype=torch.bool)
        elif tuple(self.crowd.shape) != (b,) or self.crowd.dtype != torch.bool:
            raise ArgumentError(f"{where}: crowd must be bool with one flag per box ({b}); got "
                                f"{self.crowd.dtype} {tuple(self.crowd.shape)}")

    @property
    def has_instances(self) -> bool:
        """Whether the boxes are instances (``crowd`` is set), which transforms may drop."""
        return self.crowd is not None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (transforms never modify a sample in place)."""
        return replace(self, **changes)
