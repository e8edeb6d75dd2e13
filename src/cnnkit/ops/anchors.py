"""Anchor boxes over feature maps, as ``torchvision.models.detection.anchor_utils.AnchorGenerator``.

Ren, He, Girshick & Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal
Networks", NeurIPS 2015: ``k`` reference boxes (scales x aspect ratios) at every position of a
feature map. With an FPN (Lin et al., CVPR 2017) each level gets its own sizes, typically one.

As torchvision (details the paper leaves open): the cell anchors of sizes ``s`` and ratios
``r = h / w`` are ``round([-w, -h, w, h] / 2)`` with ``h = s sqrt(r)``, ``w = s / sqrt(r)``,
ordered ratio-major (all sizes of the first ratio first); they are centred on the shifts
``(x, y) = (column * stride_w, row * stride_h)`` (the top-left corner of each cell in the frame
where pixel ``j`` covers ``[j, j + 1]``; in cnnkit's frame, the centre of the cell's top-left
pixel); anchors are ordered position-major (rows, then columns), then cell anchor; the strides
are ``padded batch size // feature size`` per level. Boxes are xyxy with no "+ 1".

``forward(images, feature_maps)`` takes, instead of torchvision's ``ImageList``, anything with
``.tensors`` (the padded batch ``N x C x H x W``) and ``.image_sizes`` (such as
:class:`ImageList` below), or simply the padded batch tensor itself.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.ops._utils import coord_dtype, fail


class ImageList:
    """A padded batch ``tensors`` (``N x C x H x W``) and each image's ``(height, width)``."""

    def __init__(self, tensors: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensors = tensors
        self.image_sizes = [tuple(int(v) for v in size) for size in image_sizes]

    def to(self, device) -> ImageList:
        return ImageList(self.tensors.to(device), self.image_sizes)


def _as_groups(values, name: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(values, (list, tuple)) or not values:
        fail(f"{name} must be a non-empty tuple (one tuple per feature map), got {values!r}")
    groups = tuple(tuple(v) if isinstance(v, (list, tuple)) else (v,) for v in values)
    if any(not g or any(isinstance(v, bool) or not float(v) > 0 for v in g) for g in groups):
        fail(f"{name} must hold positive numbers, one non-empty tuple per feature map, "
             f"got {values!r}")
    return groups


class AnchorGenerator(nn.Module):
    """Anchors for every feature map: ``sizes[i]`` x ``aspect_ratios[i]`` at each position of map i.

    ``sizes=((32,), (64,), ...)``: one tuple per feature map (a flat tuple means one size per
    map); ``aspect_ratios`` (height / width): one tuple per map, or a flat tuple for all maps.
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        if isinstance(sizes, (list, tuple)) and sizes and not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if (isinstance(aspect_ratios, (list, tuple)) and aspect_ratios
                and not isinstance(aspect_ratios[0], (list, tuple))):
            aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
        self.sizes = _as_groups(sizes, "sizes")
        self.aspect_ratios = _as_groups(aspect_ratios, "aspect_ratios")
        if len(self.sizes) != len(self.aspect_ratios):
            fail(f"aspect_ratios must have one tuple per feature map like sizes "
                 f"({len(self.sizes)}), got {len(self.aspect_ratios)}")
        self.cell_anchors = [self.generate_anchors(s, r)
                             for s, r in zip(self.sizes, self.aspect_ratios)]

    def generate_anchors(self, scales, aspect_ratios, dtype: torch.dtype = torch.float32,
                         device=None) -> torch.Tensor:
        """Cell anchors ``[len(ratios) * len(scales), 4]`` centred on 0, rounded."""
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()

    def set_cell_anchors(self, dtype: torch.dtype, device) -> None:
        self.cell_anchors = [a.to(dtype=dtype, device=device) for a in self.cell_anchors]

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes, strides) -> list[torch.Tensor]:
        """Anchors ``[H_i * W_i * A_i, 4]`` of every map, for its size ``(H, W)`` and its stride
        ``(sy, sx)``."""
        if not len(grid_sizes) == len(strides) == len(self.cell_anchors):
            fail(f"feature_maps: got {len(grid_sizes)} feature maps but the generator has "
                 f"{len(self.cell_anchors)} groups of sizes / aspect ratios; give one map each")
        anchors = []
        for (rows, cols), (stride_h, stride_w), cell in zip(grid_sizes, strides, self.cell_anchors):
            device = cell.device
            shift_x = torch.arange(int(cols), dtype=torch.int32, device=device) * int(stride_w)
            shift_y = torch.arange(int(rows), dtype=torch.int32, device=device) * int(stride_h)
            grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
            grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
            shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def forward(self, images, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """One Tensor[sum_i H_i W_i A_i, 4] of anchors per image (all images get the same ones).

        ``images``: an :class:`ImageList`-like object (``.tensors``, ``.image_sizes``) or the
        padded batch tensor ``N x C x H x W``; ``feature_maps``: one ``N x C_i x H_i x W_i``
        tensor per level, in the order of ``sizes``."""
        batch = images.tensors if hasattr(images, "tensors") else images
        if not isinstance(batch, torch.Tensor) or batch.dim() < 3:
            fail("images must be an ImageList (.tensors, .image_sizes) or a padded batch "
                 f"tensor N x C x H x W, got {type(images).__name__}")
        count = len(images.image_sizes) if hasattr(images, "image_sizes") else batch.size(0)
        if not isinstance(feature_maps, (list, tuple)) or not feature_maps or any(
                not isinstance(f, torch.Tensor) or f.dim() < 2 for f in feature_maps):
            fail("feature_maps must be a non-empty list of tensors N x C x H x W, one per level")
        height, width = batch.shape[-2:]
        grid_sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        if any(rows < 1 or cols < 1 or rows > height or cols > width for rows, cols in grid_sizes):
            fail(f"feature_maps must be between 1 x 1 and the batch size {height} x {width}, "
                 f"got sizes {grid_sizes}")
        strides = [(height // rows, width // cols) for rows, cols in grid_sizes]
        # box geometry in float32 under bf16/fp16 autocast (a bf16 coordinate near 512 is
        # only good to 2 pixels)
        self.set_cell_anchors(coord_dtype(feature_maps[0].dtype), feature_maps[0].device)
        per_level = self.grid_anchors(grid_sizes, strides)
        return [torch.cat(per_level) for _ in range(count)]
