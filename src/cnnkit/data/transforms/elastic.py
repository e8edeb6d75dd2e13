"""Smooth random elastic deformations, the augmentation of Ronneberger, Fischer & Brox, "U-Net:
Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015: "random displacement
vectors on a coarse 3 by 3 grid ... sampled from a Gaussian distribution with 10 pixels standard
deviation. Per-pixel displacements are then computed using bicubic interpolation."

The control grid spans the image (its outer points lie on the corner pixels); output pixel ``q``
reads the input at ``q + d(q)`` (bilinear image, nearest mask and dense maps, IGNORE_INDEX and
``fill`` outside). Points move forward by solving ``p + d(p) = q`` for ``p`` with the fixed-point
iteration ``p <- q - d(p)``, which converges while the field is smooth (its slope below 1);
where it has not, the point becomes invisible. Boxes take the hull of their mapped corners and
edge midpoints; instance boxes the hull of their warped masks. Surface normals are refused: a
non-rigid warp turns each surface differently. Differs from the paper in that the field is
interpolated over the sample as given (a crop), not over the whole training image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.affine import bent_box_map, pixel_grid, warp_sample
from cnnkit.data.transforms.base import Transform
from cnnkit.errors import ArgumentError

FIXED_POINT_TOLERANCE = 1e-6  # pixels


def elastic_warp(sample: Sample, displacements: torch.Tensor, fill: float = 0.0,
                 iterations: int = 50) -> Sample:
    """Warp by the control ``displacements`` (``2 x gh x gw``, pixels, (dx, dy)), interpolated
    bicubically to every pixel."""
    if displacements.dim() != 3 or displacements.shape[0] != 2 or min(displacements.shape[1:]) < 2:
        raise ArgumentError(f"elastic displacements must be 2 x gh x gw with gh, gw >= 2; got "
                            f"{tuple(displacements.shape)}")
    if sample.normals is not None:
        raise ArgumentError("ElasticDeform cannot move surface normals: a non-rigid warp turns "
                            "each surface differently; use Affine (rotation, scale) instead")
    height, width = sample.size
    field = F.interpolate(displacements[None].to(torch.float64), size=(height, width),
                          mode="bicubic", align_corners=True)  # 1 x 2 x H x W
    source = pixel_grid(height, width) + field[0].permute(1, 2, 0)
    extent = torch.tensor([width, height], dtype=torch.float64)

    def displacement_at(points: torch.Tensor) -> torch.Tensor:  # P x 2 -> P x 2, bilinear
        grid = ((2 * points + 1) / extent - 1)[None, None]
        return F.grid_sample(field, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)[0, :, 0].T

    def point_map(points: torch.Tensor) -> torch.Tensor:
        target = points.to(torch.float64)
        if target.numel() == 0:
            return points
        moved = target.clone()
        for _ in range(iterations):
            moved = target - displacement_at(moved)
        residual = (moved + displacement_at(moved) - target).norm(dim=-1)
        moved[residual > FIXED_POINT_TOLERANCE] = torch.inf  # not solved: out of view
        return moved.to(points.dtype)

    return warp_sample(sample, source, point_map, lambda b: bent_box_map(point_map, b),
                       "elastic", fill, grid=list(displacements.shape[1:]))


class ElasticDeform(Transform):
    """Random smooth deformation (:func:`elastic_warp`): control displacements on a ``grid`` x
    ``grid`` lattice drawn from a normal distribution with ``sigma`` pixels standard deviation
    (the U-Net paper's 3 and 10), applied with probability ``p``."""

    def __init__(self, sigma: float = 10.0, grid: int = 3, p: float = 1.0,
                 fill: float = 0.0) -> None:
        if not sigma >= 0:
            raise ArgumentError(f"ElasticDeform sigma must be >= 0 pixels; got {sigma!r}")
        if not isinstance(grid, int) or grid < 2:
            raise ArgumentError(f"ElasticDeform grid must be an integer >= 2; got {grid!r}")
        if not 0 <= p <= 1:
            raise ArgumentError(f"ElasticDeform p must be in [0, 1]; got {p!r}")
        self.sigma, self.grid, self.p, self.fill = float(sigma), grid, float(p), fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        if float(torch.rand((), generator=rng)) >= self.p:
            return sample
        displacements = torch.randn((2, self.grid, self.grid), generator=rng) * self.sigma
        return elastic_warp(sample, displacements, self.fill)
