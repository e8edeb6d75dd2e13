"""sRGB <-> CIE L*a*b* conversion on image tensors (``3 x H x W`` or ``N x 3 x H x W``).

The standard chain, with the D65 white point and the 2-degree observer:

1. sRGB companding undone per channel (IEC 61966-2-1): ``c / 12.92`` for ``c <= 0.04045``,
   else ``((c + 0.055) / 1.055) ** 2.4``;
2. linear RGB -> CIE XYZ with the sRGB primaries' matrix (Lindbloom's 7-digit values);
3. XYZ -> L*a*b* (CIE 15): ``L = 116 f(Y/Yn) - 16``, ``a = 500 (f(X/Xn) - f(Y/Yn))``,
   ``b = 200 (f(Y/Yn) - f(Z/Zn))`` with ``f(t) = t^(1/3)`` above ``(6/29)^3`` and the linear
   segment ``t / (3 (6/29)^2) + 4/29`` below it.

L lies in [0, 100]; a and b roughly in [-87, 99] and [-108, 95] for sRGB colours. The white
point ``(Xn, Yn, Zn)`` is taken as the XYZ of RGB white under the same matrix (the row sums:
0.95047, 1.0000001, 1.08883), so white maps to exactly (100, 0, 0); it differs from the
nominal D65 (0.95047, 1, 1.08883) by 1e-7. The inverse uses the exact inverse matrix and the
exact inverse of every step, so ``lab_to_rgb(rgb_to_lab(x))`` returns ``x`` to rounding.

``lab_to_rgb`` extends the companding linearly below 0 and by the power law above 1, so an
L*a*b* value outside the sRGB gamut gives RGB values outside [0, 1]: :func:`in_gamut` tests
for that, and ``clip=True`` clamps the result to [0, 1] (a crude gamut mapping that changes
hue and lightness; it is off by default so that out-of-gamut predictions stay visible).

Both directions are differentiable (the branches are selected with ``torch.where`` on
clamped arguments, so no NaN gradient leaks from the branch not taken) and keep the dtype of
their input; use float64 when exactness matters.
"""

import torch

from cnnkit.errors import CnnkitError

# Linear sRGB -> XYZ (D65), rows X, Y, Z.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_XYZ_TO_RGB = tuple(map(tuple, torch.linalg.inv(
    torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)).tolist()))
WHITE_XYZ = tuple(sum(row) for row in _RGB_TO_XYZ)  # XYZ of RGB (1, 1, 1)

_DELTA = 6.0 / 29.0
_SRGB_KNEE = 0.04045           # companded value where the power law starts
_LINEAR_KNEE = 0.0031308       # the same point in linear light


def _check_image(x: torch.Tensor, name: str, what: str, fn: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or x.shape[-3] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise CnnkitError(f"{fn}: {name} must be a {what} tensor 3 x H x W or N x 3 x H x W; "
                          f"got {got}")
    if not x.is_floating_point():
        raise CnnkitError(f"{fn}: {name} must be a floating-point tensor; got {x.dtype}")


def _mix(matrix: tuple, c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> list:
    return [m0 * c0 + m1 * c1 + m2 * c2 for m0, m1, m2 in matrix]


def _f(t: torch.Tensor) -> torch.Tensor:
    cube = _DELTA ** 3
    return torch.where(t > cube, t.clamp_min(cube) ** (1.0 / 3.0),
                       t / (3 * _DELTA ** 2) + 4.0 / 29.0)


def _f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA, t.clamp_min(_DELTA) ** 3, 3 * _DELTA ** 2 * (t - 4.0 / 29.0))


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB companding (values below 0 follow the linear segment)."""
    return torch.where(c > _SRGB_KNEE, ((c.clamp_min(_SRGB_KNEE) + 0.055) / 1.055) ** 2.4,
                       c / 12.92)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB companding (values below 0 follow the linear segment)."""
    return torch.where(c > _LINEAR_KNEE,
                       1.055 * c.clamp_min(_LINEAR_KNEE) ** (1.0 / 2.4) - 0.055, c * 12.92)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (``3 x H x W`` or ``N x 3 x H x W``) -> L*a*b* (L in [0, 100]).

    Values outside [0, 1] are converted by the same formulas (no clamping).
    """
    _check_image(rgb, "rgb", "sRGB", "rgb_to_lab")
    r, g, b = (srgb_to_linear(c) for c in rgb.unbind(-3))
    x, y, z = (v / w for v, w in zip(_mix(_RGB_TO_XYZ, r, g, b), WHITE_XYZ))
    fx, fy, fz = _f(x), _f(y), _f(z)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """L*a*b* (``3 x H x W`` or ``N x 3 x H x W``) -> sRGB.

    Out-of-gamut colours give values outside [0, 1] unless ``clip=True``, which clamps every
    channel to [0, 1] (see the module docstring).
    """
    _check_image(lab, "lab", "L*a*b*", "lab_to_rgb")
    big_l, a, b = lab.unbind(-3)
    fy = (big_l + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0
    x, y, z = (_f_inv(f) * w for f, w in zip((fx, fy, fz), WHITE_XYZ))
    rgb = torch.stack([linear_to_srgb(c) for c in _mix(_XYZ_TO_RGB, x, y, z)], dim=-3)
    return rgb.clamp(0.0, 1.0) if clip else rgb


def in_gamut(lab: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
    """Boolean map (``H x W`` or ``N x H x W``): the L*a*b* colour is an sRGB colour, i.e. its
    RGB channels all lie in ``[-tol, 1 + tol]`` (``tol`` absorbs rounding)."""
    rgb = lab_to_rgb(lab)
    return ((rgb >= -tol) & (rgb <= 1.0 + tol)).all(dim=-3)
