"""Random affine warps (rotation, translation, scale, stretch, shear) and radial lens distortion.

One 2 x 3 matrix ``A`` in *pixel* coordinates (pixel centres at integers, see
:mod:`cnnkit.data.sample`) maps an input point to its output position,
``p' = A[:, :2] p + A[:, 2]``.
Keypoints and box corners go through ``A``; the image is resampled by inverse mapping: output
pixel ``q`` reads the input at ``A^-1 q``, converted to ``grid_sample``'s normalised coordinates
for ``align_corners=False``, ``u = (2 x + 1) / W - 1`` (so -1 and 1 are the image borders
``x = -0.5`` and ``x = W - 0.5``). The image is bilinear with ``fill`` outside; the mask takes
the nearest input pixel and IGNORE_INDEX outside. The output has the input's size. Keypoints that
leave the image become invisible (kept); boxes become the hull of their mapped corners, clipped
(count kept). Instances (see :mod:`cnnkit.data.transforms.instances`): masks warp like the mask
(False outside) and each box becomes the hull of its warped mask (pixel centres +- 0.5), or,
without masks, the clipped hull of its mapped corners; instances that left are dropped.

Depth, normals and valid take the nearest input pixel like the mask (0, 0 and False outside).
:func:`warp_affine` turns the normals' (x, y) by the warp's rotation (image-plane rotation is a
roll of the camera about its optical axis) and refuses a stretch or shear when the sample has
normals; isotropic scale and translation leave them as they are. :func:`lens_distort` moves
depth and normals without changing their values: the 3-D point seen at a pixel and the camera
frame are the same, only where the point lands in the image changes; normals are *not*
corrected for the bent projection (and :func:`cnnkit.data.normals.normals_from_depth` with the
old pinhole intrinsics no longer agrees with the moved normals). See
:mod:`cnnkit.data.transforms.dense`.

The matrix: ``A = T(c + t) R(angle) Shear S(scale * stretch) T(-c)`` about the image centre
``c = ((W - 1) / 2, (H - 1) / 2)``; a positive angle turns the content counter-clockwise on the
screen (y points down). These are the "translation, rotation, stretching, shearing, lens
distortions" augmentations of the lecture decks (as in Krizhevsky, Sutskever & Hinton,
"ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012, and the many
recipes after it); the ranges are the user's choice, none is prescribed by a paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cnnkit.data.sample import IGNORE_INDEX, Sample
from cnnkit.data.transforms.base import Transform, randint, uniform
from cnnkit.data.transforms.dense import dense_fields, gather_dense, normal_rotation
from cnnkit.data.transforms.geometric import box_corners_map, log_transform, move_labels
from cnnkit.data.transforms.instances import move_instances
from cnnkit.errors import ArgumentError

Range = float | tuple[float, float]
LENS_K1_MIN = -4 / 27  # below this, points near the corners have no distorted position


def _symmetric(value: Range, name: str) -> tuple[float, float]:
    low, high = (-abs(value), abs(value)) if isinstance(value, (int, float)) else value
    if low > high:
        raise ArgumentError(f"{name} range must be (low, high) with low <= high; got {value!r}")
    return float(low), float(high)


def _positive(value: tuple[float, float], name: str) -> tuple[float, float]:
    low, high = value
    if not 0 < low <= high:
        raise ArgumentError(f"{name} must be (low, high) with 0 < low <= high; got {value!r}")
    return float(low), float(high)


def affine_matrix(size: tuple[int, int], angle: float = 0.0,
                  translate: tuple[float, float] = (0, 0),
                  scale: float = 1.0, stretch: float = 1.0, shear: float = 0.0) -> torch.Tensor:
    """2 x 3 float64 matrix (input pixel -> output pixel) for an image of ``size`` (H, W).

    ``angle`` and ``shear`` (x-shear) in degrees, ``translate`` in pixels (x, y); ``stretch``
    is the aspect factor: x scaled by ``scale * sqrt(stretch)``, y by ``scale / sqrt(stretch)``.
    """
    height, width = size
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a, s = math.radians(angle), math.tan(math.radians(shear))
    rotation = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]],
                            dtype=torch.float64)
    shearing = torch.tensor([[1.0, s], [0.0, 1.0]], dtype=torch.float64)
    scaling = torch.diag(torch.tensor([scale * math.sqrt(stretch), scale / math.sqrt(stretch)],
                                      dtype=torch.float64))
    linear = rotation @ shearing @ scaling
    centre = torch.tensor([cx, cy], dtype=torch.float64)
    offset = centre + torch.tensor(translate, dtype=torch.float64) - linear @ centre
    return torch.cat([linear, offset[:, None]], 1)


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """``H x W x 2`` float64 (x, y) pixel-centre coordinates."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    return torch.stack([xs, ys], -1)


def warp_sample(sample: Sample, source: torch.Tensor,
                point_map: Callable[[torch.Tensor], torch.Tensor],
                box_map: Callable[[torch.Tensor], torch.Tensor], name: str, fill: float = 0.0,
                normals_rotation: torch.Tensor | None = None, **params: object) -> Sample:
    """Resample by inverse mapping: output pixel (i, j) reads the input at ``source[i, j]`` (x, y).

    ``point_map`` moves points forward (input -> output), ``box_map`` moves ``B x 4`` boxes;
    ``normals_rotation`` (2 x 2) turns the normals' (x, y) after resampling.
    """
    height, width = sample.size
    extent = torch.tensor([width, height], dtype=torch.float64)
    grid = (2 * source + 1) / extent - 1  # align_corners=False normalisation
    image = sample.image[None].float()
    warped = F.grid_sample(image - fill, grid[None].to(image.dtype), mode="bilinear",
                           padding_mode="zeros", align_corners=False)[0] + fill
    changes: dict[str, object] = {"image": warped}
    masks = None
    if sample.mask is not None or dense_fields(sample) or sample.instance_masks is not None:
        nearest = torch.floor(source + 0.5).long()
        x, y = nearest[..., 0], nearest[..., 1]
        valid = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        if sample.mask is not None:
            values = sample.mask[y.clamp(0, height - 1), x.clamp(0, width - 1)]
            changes["mask"] = torch.where(valid, values, torch.full_like(values, IGNORE_INDEX))
        changes.update(gather_dense(sample, x, y, valid, normals_rotation))
        if sample.instance_masks is not None:
            rows, cols = y.clamp(0, height - 1), x.clamp(0, width - 1)
            masks = sample.instance_masks[:, rows, cols] & valid
    changes.update(move_labels(sample, point_map, height, width, box_map))
    changes["meta"] = log_transform(sample, name, **params)
    return sample.replace(**move_instances(sample, changes, masks, "all"))


def warp_affine(sample: Sample, matrix: torch.Tensor, fill: float = 0.0) -> Sample:
    """Apply the 2 x 3 pixel-coordinate ``matrix`` to the image and all labels (normals turned
    by its rotation; a stretch or shear with normals present is an :class:`ArgumentError`)."""
    matrix = matrix.to(torch.float64)
    linear, offset = matrix[:, :2], matrix[:, 2]
    rotation = normal_rotation(linear) if sample.normals is not None else None
    inverse = torch.linalg.inv(linear)
    source = (pixel_grid(*sample.size) - offset) @ inverse.T

    def point_map(p: torch.Tensor) -> torch.Tensor:
        return (p.to(torch.float64) @ linear.T + offset).to(p.dtype)

    return warp_sample(sample, source, point_map, lambda b: box_corners_map(point_map, b),
                       "affine", fill, rotation, matrix=matrix.tolist())


class Affine(Transform):
    """Random affine warp; every parameter is drawn uniformly from its range.

    ``degrees``: rotation (a number d means (-d, d)); ``translate``: (fx, fy) fractions of the
    width and height (shift in ``[-fx W, fx W]``); ``scale``: isotropic (low, high);
    ``stretch``: aspect factor (low, high), drawn log-uniformly; ``shear``: x-shear in degrees.
    """

    def __init__(self, degrees: Range = 0.0, translate: tuple[float, float] = (0.0, 0.0),
                 scale: tuple[float, float] = (1.0, 1.0), stretch: tuple[float, float] = (1.0, 1.0),
                 shear: Range = 0.0, fill: float = 0.0) -> None:
        self.degrees = _symmetric(degrees, "Affine degrees")
        if len(translate) != 2 or not all(0 <= t <= 1 for t in translate):
            raise ArgumentError(f"Affine translate must be (fx, fy) fractions in [0, 1]; "
                             f"got {translate!r}")
        self.translate = (float(translate[0]), float(translate[1]))
        self.scale = _positive(scale, "Affine scale")
        self.stretch = _positive(stretch, "Affine stretch")
        self.shear = _symmetric(shear, "Affine shear")
        if not all(-90 < s < 90 for s in self.shear):
            raise ArgumentError(f"Affine shear must lie in (-90, 90) degrees; got {shear!r}")
        self.fill = fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        height, width = sample.size
        angle = uniform(rng, *self.degrees)
        tx = uniform(rng, -self.translate[0], self.translate[0]) * width
        ty = uniform(rng, -self.translate[1], self.translate[1]) * height
        scale = uniform(rng, *self.scale)
        stretch = math.exp(uniform(rng, math.log(self.stretch[0]), math.log(self.stretch[1])))
        shear = uniform(rng, *self.shear)
        matrix = affine_matrix((height, width), angle, (tx, ty), scale, stretch, shear)
        return warp_affine(sample, matrix, self.fill)


def lens_distort(sample: Sample, k1: float, fill: float = 0.0, iterations: int = 30) -> Sample:
    """Radial distortion about the image centre with coefficient ``k1`` (one-term Brown model).

    Radii are normalised by the half diagonal ``hypot(W, H) / 2``. Output pixel ``q`` reads the
    input at ``c + (q - c) (1 + k1 r_q^2)``: ``k1 > 0`` pulls the content towards the centre
    (barrel), ``k1 < 0`` pushes it out (pincushion). Points go forward by solving
    ``r + k1 r^3 = r_input`` with Newton's method. Boxes: hull of mapped corners and edge
    midpoints (an approximation: edges bend).
    """
    if k1 < LENS_K1_MIN:
        raise ArgumentError(f"lens distortion k1 must be >= {LENS_K1_MIN:.4f}; got {k1}")
    height, width = sample.size
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64)
    norm = math.hypot(width, height) / 2
    q = (pixel_grid(height, width) - centre) / norm
    source = centre + q * (1 + k1 * q.square().sum(-1, keepdim=True)) * norm
    r_max = 1 / math.sqrt(-3 * k1) if k1 < 0 else math.inf

    def point_map(p: torch.Tensor) -> torch.Tensor:
        d = (p.to(torch.float64) - centre) / norm
        r_in = d.norm(dim=-1)
        r = r_in.clone()
        for _ in range(iterations):
            r = (r - (r + k1 * r**3 - r_in) / (1 + 3 * k1 * r**2)).clamp(0, r_max)
        unsolved = (r + k1 * r**3 - r_in).abs() > 1e-9
        ratio = torch.where(r_in > 0, r / r_in.clamp(min=1e-12), torch.ones_like(r))
        out = centre + d * ratio[:, None] * norm
        out[unsolved] = math.inf  # pushed out of view: invisible
        return out.to(p.dtype)

    return warp_sample(sample, source, point_map, lambda b: bent_box_map(point_map, b),
                       "lens_distortion", fill, k1=k1)


def bent_box_map(point_map: Callable[[torch.Tensor], torch.Tensor],
                 boxes: torch.Tensor) -> torch.Tensor:
    """Boxes through a warp that bends lines: the hull of the mapped corners and edge midpoints
    (an approximation; an edge may bulge beyond it)."""
    x1, y1, x2, y2 = boxes.unbind(1)
    xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
    xs = torch.stack([x1, xm, x2, x1, x2, x1, xm, x2], 1)
    ys = torch.stack([y1, y1, y1, ym, ym, y2, y2, y2], 1)
    moved = point_map(torch.stack([xs, ys], -1).reshape(-1, 2)).reshape(-1, 8, 2)
    return torch.cat([moved.amin(1), moved.amax(1)], 1)


class LensDistortion(Transform):
    """Random radial lens distortion, ``k1`` drawn uniformly from a range (:func:`lens_distort`)."""

    def __init__(self, k1: tuple[float, float] = (-0.1, 0.1), fill: float = 0.0) -> None:
        low, high = k1
        if not LENS_K1_MIN <= low <= high:
            raise ArgumentError(f"LensDistortion k1 must be (low, high) with "
                             f"{LENS_K1_MIN:.4f} <= low <= high; got {k1!r}")
        self.k1, self.fill = (float(low), float(high)), fill

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        return lens_distort(sample, uniform(rng, *self.k1), self.fill)


def quarter_turn_matrix(size: int, turns: int) -> torch.Tensor:
    """The exact 2 x 3 matrix that turns a ``size x size`` image by ``turns`` quarter turns
    counter-clockwise on the screen (as ``torch.rot90(image, turns, dims=(-2, -1))``)."""
    cos, sin = ((1, 0), (0, 1), (-1, 0), (0, -1))[turns % 4]
    linear = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
    centre = torch.full((2,), (size - 1) / 2, dtype=torch.float64)
    return torch.cat([linear, (centre - linear @ centre)[:, None]], 1)


class QuarterTurn(Transform):
    """Turn a square sample by 0, 1, 2 or 3 quarter turns, drawn uniformly: with
    :class:`~cnnkit.data.transforms.HorizontalFlip` it gives all eight symmetries of the square,
    for images with no upright (microscopy, aerial views). Pixels move exactly; keypoints,
    boxes, instances and normals turn with the image (a turn keeps left and right). A
    non-square sample is refused: turning it would change its size within a batch."""

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        height, width = sample.size
        if height != width:
            raise ArgumentError(f"QuarterTurn needs square samples (crop them first, e.g. "
                                f"RandomCrop); got {height}x{width}")
        return warp_affine(sample, quarter_turn_matrix(height, randint(rng, 0, 3)))
