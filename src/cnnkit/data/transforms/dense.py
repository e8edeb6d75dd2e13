"""How the geometric transforms move the dense targets: ``depth``, ``normals`` and ``valid``.

These are per-pixel regression targets in the camera frame (see :mod:`cnnkit.data.sample`:
x right, y down, z forward; depth is camera z in metres). They move like the mask, by
nearest-neighbour sampling on pixel centres, so no value is ever interpolated across an object
border (a depth halfway between a box and the wall behind it is a surface that does not exist).
Pixels that come from outside the image get depth 0, normals 0 and ``valid`` False.

What each image operation means for the camera, and so for the values:

- resize, crop, pad and translation change only the intrinsics (focal length, principal
  point): the 3-D points and the camera frame stay, so depth and normals keep their values.
  (Eigen, Puhrsch & Fergus, NIPS 2014, divide depth by the zoom factor of their scale
  augmentation, keeping apparent size and depth consistent for fixed intrinsics; cnnkit does
  not: a resized sample is the same scene seen with another focal length. Divide the depth
  yourself if a model must assume one focal length.)
- a horizontal flip mirrors the scene in the camera's y-z plane: the normals' x component is
  negated (a vertical flip negates y); depth is unchanged.
- a rotation by theta in the image plane (about any point, square pixels assumed: fx = fy) is a
  roll of the camera about its optical axis: depth is unchanged and the normals' (x, y) turn by
  the same 2 x 2 rotation that moves the pixel coordinates (:func:`normal_rotation`).
- stretch and shear are refused when the sample has normals: they are not a rotation of the
  camera, and normals predicted on such images would no longer match the square-pixel camera
  the rest of cnnkit assumes. Depth alone may be stretched (its values stay).
"""

from __future__ import annotations

import torch

from cnnkit.data.sample import Sample
from cnnkit.errors import ArgumentError

DENSE_FIELDS = ("depth", "normals", "valid")
FILLS = {"depth": 0.0, "normals": 0.0, "valid": False}
SIMILARITY_TOLERANCE = 1e-6  # relative difference of the two singular values allowed


def dense_fields(sample: Sample) -> dict[str, torch.Tensor]:
    """The dense targets the sample has, by name."""
    return {name: getattr(sample, name) for name in DENSE_FIELDS
            if getattr(sample, name) is not None}


def take_dense(sample: Sample, rows: torch.Tensor, cols: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each target at source rows ``rows`` and columns ``cols`` (nearest-neighbour resize)."""
    return {name: value[..., rows, :][..., cols] for name, value in dense_fields(sample).items()}


def crop_dense(sample: Sample, top: int, left: int, height: int,
               width: int) -> dict[str, torch.Tensor]:
    """The window ``[top, top + height) x [left, left + width)``; outside the image: the fills."""
    in_h, in_w = sample.size
    r0, r1 = max(top, 0), min(top + height, in_h)
    c0, c1 = max(left, 0), min(left + width, in_w)
    out = {}
    for name, value in dense_fields(sample).items():
        window = value.new_full((*value.shape[:-2], height, width), FILLS[name])
        if r1 > r0 and c1 > c0:
            window[..., r0 - top:r1 - top, c0 - left:c1 - left] = value[..., r0:r1, c0:c1]
        out[name] = window
    return out


def flip_dense(sample: Sample, horizontal: bool) -> dict[str, torch.Tensor]:
    """Mirrored targets; the normals' x (horizontal) or y (vertical) component negated."""
    dim = -1 if horizontal else -2
    out = {name: value.flip(dim) for name, value in dense_fields(sample).items()}
    if "normals" in out:
        sign = out["normals"].new_tensor([-1.0, 1.0, 1.0] if horizontal else [1.0, -1.0, 1.0])
        out["normals"] = out["normals"] * sign[:, None, None]
    return out


def gather_dense(sample: Sample, x: torch.Tensor, y: torch.Tensor, inside: torch.Tensor,
                 rotation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Targets read at integer source pixels ``(x, y)`` (``H x W`` each, clamped), the fills
    where ``inside`` is False; normals' (x, y) then turned by the 2 x 2 ``rotation`` if given."""
    height, width = sample.size
    rows, cols = y.clamp(0, height - 1), x.clamp(0, width - 1)
    out = {}
    for name, value in dense_fields(sample).items():
        picked = value[..., rows, cols]
        out[name] = torch.where(inside, picked, torch.full_like(picked, FILLS[name]))
    if rotation is not None and "normals" in out:
        out["normals"] = rotate_normals(out["normals"], rotation)
    return out


def rotate_normals(normals: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """``3 x H x W`` normals with their (x, y) components multiplied by the 2 x 2 ``rotation``."""
    r = rotation.to(normals.dtype)
    xy = torch.einsum("ij,jhw->ihw", r, normals[:2])
    return torch.cat([xy, normals[2:]], 0)


def normal_rotation(linear: torch.Tensor) -> torch.Tensor:
    """The orthogonal 2 x 2 matrix ``linear / scale`` of a similarity (rotation, isotropic scale,
    possibly a mirror), which turns the normals' (x, y); a stretch or shear is an error."""
    linear = linear.to(torch.float64)
    singular = torch.linalg.svdvals(linear)
    if float(singular[1]) <= 0 or \
            float(singular[0] - singular[1]) > SIMILARITY_TOLERANCE * float(singular[0]):
        raise ArgumentError(f"an affine warp with stretch or shear (singular values "
                            f"{singular.tolist()}) cannot move surface normals: it is not a "
                            f"camera rotation; use rotation, translation and isotropic scale only")
    return linear / singular.prod().sqrt()
