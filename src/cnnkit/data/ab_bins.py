"""The quantised ab plane of Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016).

Colourisation as classification over Q bins of the ab plane of CIE L*a*b*
(:mod:`cnnkit.data.color`). Tensors of bins are ``Q x 2`` (a, b) centres; per-pixel
distributions put Q at dim -3 (``Q x H x W`` or ``N x Q x H x W``); ab images are
``2 x H x W`` or ``N x 2 x H x W``.

**The bins** (:func:`ab_gamut_bins`) are computed, not read from a table. The paper keeps the
points of the ab grid of step 10 that are "in gamut" (Q = 313, its Fig. 3a) without stating
the test. Testing each cell directly gives fewer (counted by dense sampling): 262 grid points
have an sRGB colour (any L) in their own cell (ab within +-5), 309 within +-10. The rule that
gives exactly 313 here is:

    keep the grid point (a, b) when the square ``[a - 10, a + 10] x [b - 10, b + 10]`` meets
    the convex hull of the ab values of all sRGB colours (all L),

i.e. its L-infinity distance to that hull is at most one grid step; equivalently, (a, b) is a
corner of a grid cell that meets the hull. The hull is the hull of the ab values of the faces
of the RGB cube (they contain the silhouette of the gamut); the distance comes from the hull's
support function ``h(u) = max_p u.p`` as ``max_u (u.g - h(u))`` over directions u of unit
L1 norm (the dual of L-infinity), so no polygon is built. The nearest excluded point is
10.04 away and the farthest kept one 9.72, so the count is stable against the sampling. The
313 points span a in [-90, 100] and b in [-110, 100] (sorted by a, then b); the original's
``pts_in_hull.npy`` name suggests the same construction, but it was not compared point by
point.

**Encodings**: soft (the paper's: the 5 nearest bins weighted by a Gaussian of the distance,
sigma = 5, normalised to sum to 1) and hard (the nearest bin).

**Class rebalancing** (the paper's weights): from bin counts over a dataset, p is smoothed
with a Gaussian (sigma = 5) over the ab plane, ``w ~ ((1 - lam) p~ + lam / Q)^-1``
(lam = 0.5), scaled so that ``sum_q p~_q w_q = 1``. The smoothing is a normalised convolution
over the kept bins, ``p~_q = sum_r K_qr p_r / sum_r K_qr`` (then scaled to sum to 1), with
``K_qr = exp(-|c_q - c_r|^2 / (2 sigma^2))``. The paper does not say how the gamut edge is
handled; a plain filter of the whole plane (out-of-gamut cells counting as zeros) would lower
the edge bins. The two agree away from the edge, and this one keeps a uniform p uniform.

**Decoding** a distribution Z into ab: the mean ``sum_q Z_q c_q``, the mode ``c_argmax``, and
the paper's annealed mean ``H(Z) = E[f_T(Z)]`` with ``f_T(z) = exp(log z / T) / sum
exp(log z / T)``, T = 0.38 (T = 1: the mean, T -> 0: the mode).
"""

import math

import torch

from cnnkit.data.color import rgb_to_lab
from cnnkit.errors import CnnkitError

GRID_SIZE = 10
NUM_AB_BINS = 313
SIGMA = 5.0
NEIGHBOURS = 5
REBALANCE_LAMBDA = 0.5
ANNEAL_TEMPERATURE = 0.38

_CACHE: dict = {}


def _cube_surface(samples: int) -> torch.Tensor:
    """``6 samples^2 x 3`` RGB points on the faces of the unit cube (float64)."""
    v = torch.linspace(0.0, 1.0, samples, dtype=torch.float64)
    u, w = torch.meshgrid(v, v, indexing="ij")
    faces = []
    for axis in range(3):
        for level in (0.0, 1.0):
            cols = [u.reshape(-1), w.reshape(-1)]
            cols.insert(axis, torch.full_like(cols[0], level))
            faces.append(torch.stack(cols, dim=-1))
    return torch.cat(faces)


def gamut_hull_distance(points: torch.Tensor, samples: int = 64,
                        directions: int = 1440) -> torch.Tensor:
    """L-infinity distance of ab ``points`` (P x 2) to the convex hull of the sRGB gamut's ab
    values (0 inside); a lower bound that converges as ``samples`` and ``directions`` grow."""
    rgb = _cube_surface(samples).T.reshape(3, -1, 1)
    ab = rgb_to_lab(rgb)[1:].reshape(2, -1).T
    angle = torch.arange(directions, dtype=torch.float64) * (2 * math.pi / directions)
    u = torch.stack([angle.cos(), angle.sin()], dim=-1)
    u = u / u.abs().sum(dim=-1, keepdim=True)           # unit L1 norm
    support = (ab @ u.T).amax(dim=0)                      # h(u) for every direction
    gap = points.to(torch.float64) @ u.T - support
    return gap.amax(dim=-1).clamp_min(0.0)


def ab_gamut_bins(grid_size: int = GRID_SIZE, samples: int = 64, directions: int = 1440,
                  dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The ``Q x 2`` in-gamut bin centres, sorted by a then b (Q = 313 for ``grid_size=10``):
    the grid points within L-infinity distance ``grid_size`` of the gamut's ab hull (see the
    module docstring). Computed once per argument set (~0.1 s), cached, returned as a copy."""
    key = (grid_size, samples, directions)
    if key not in _CACHE:
        reach = grid_size * math.ceil(140 / grid_size)
        axis = torch.arange(-reach, reach + 1, grid_size, dtype=torch.float64)
        grid = torch.cartesian_prod(axis, axis)           # sorted by a, then b
        keep = gamut_hull_distance(grid, samples, directions) <= grid_size
        _CACHE[key] = grid[keep]
    return _CACHE[key].to(dtype=dtype, device=device, copy=True)


def _ab_pixels(ab: torch.Tensor, fn: str) -> torch.Tensor:
    if not isinstance(ab, torch.Tensor) or ab.dim() not in (3, 4) or ab.shape[-3] != 2:
        got = tuple(ab.shape) if isinstance(ab, torch.Tensor) else type(ab).__name__
        raise CnnkitError(f"{fn}: ab must be 2 x H x W or N x 2 x H x W; got {got}")
    return ab.movedim(-3, -1).reshape(-1, 2)


def _bins_for(bins, like: torch.Tensor) -> torch.Tensor:
    bins = ab_gamut_bins() if bins is None else bins
    if bins.dim() != 2 or bins.shape[1] != 2:
        raise CnnkitError(f"bins must be Q x 2 (a, b) centres; got {tuple(bins.shape)}")
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return bins.to(dtype=dtype, device=like.device)


def _squared_distances(ab: torch.Tensor, bins, fn: str) -> tuple:
    pixels = _ab_pixels(ab, fn)
    centres = _bins_for(bins, ab)
    d2 = torch.cdist(pixels.to(centres.dtype), centres,
                     compute_mode="donot_use_mm_for_euclid_dist") ** 2
    return d2, centres


def _restore(flat: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """P x K -> the layout of ``ab`` with K channels at dim -3."""
    shape = ab.shape[:-3] + ab.shape[-2:] + flat.shape[-1:]
    return flat.reshape(shape).movedim(-1, -3)


def encode_ab_soft(ab: torch.Tensor, bins: torch.Tensor | None = None,
                   neighbours: int = NEIGHBOURS, sigma: float = SIGMA) -> torch.Tensor:
    """Soft targets Z (Q at dim -3): the ``neighbours`` nearest bins of each pixel weighted by
    ``exp(-d^2 / (2 sigma^2))`` and normalised to sum to 1; the other bins get 0."""
    d2, centres = _squared_distances(ab, bins, "encode_ab_soft")
    if not 1 <= neighbours <= centres.shape[0]:
        raise CnnkitError(f"encode_ab_soft: neighbours must be in [1, {centres.shape[0]}]; "
                          f"got {neighbours}")
    near, index = d2.topk(neighbours, dim=-1, largest=False)
    weight = torch.exp(-(near - near[:, :1]) / (2.0 * sigma ** 2))  # shifted: no underflow
    weight = weight / weight.sum(dim=-1, keepdim=True)
    flat = torch.zeros_like(d2).scatter_(1, index, weight)
    return _restore(flat, ab)


def encode_ab_hard(ab: torch.Tensor, bins: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest bin of each pixel (int64, ``H x W`` or ``N x H x W``)."""
    d2, _ = _squared_distances(ab, bins, "encode_ab_hard")
    return _restore(d2.argmin(dim=-1, keepdim=True), ab).squeeze(-3)


def ab_histogram(ab: torch.Tensor, valid: torch.Tensor | None = None,
                 bins: torch.Tensor | None = None) -> torch.Tensor:
    """Bin counts (Q, float64) of the valid pixels' nearest bins; add them over a dataset and
    pass the sum to :func:`rebalance_weights`."""
    codes = encode_ab_hard(ab, bins)
    num_bins = _bins_for(bins, ab).shape[0]
    if valid is not None:
        if valid.shape != codes.shape:
            raise CnnkitError(f"ab_histogram: valid must be {tuple(codes.shape)} (the ab image "
                              f"without its channel dim); got {tuple(valid.shape)}")
        codes = codes[valid.bool()]
    return torch.bincount(codes.reshape(-1), minlength=num_bins).to(torch.float64)


def smoothed_prior(counts: torch.Tensor, bins: torch.Tensor | None = None,
                   sigma: float = SIGMA) -> torch.Tensor:
    """The empirical bin distribution smoothed over the ab plane (see the module docstring)."""
    centres = _bins_for(bins, torch.empty(0, dtype=torch.float64, device=counts.device))
    if counts.shape != (centres.shape[0],):
        raise CnnkitError(f"counts must be a vector of {centres.shape[0]} bin counts (Q); "
                          f"got {tuple(counts.shape)}")
    counts = counts.to(torch.float64)
    if (counts < 0).any() or counts.sum() <= 0:
        raise CnnkitError("counts must be non-negative with a positive sum")
    p = counts / counts.sum()
    d2 = torch.cdist(centres, centres, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    kernel = torch.exp(-d2 / (2.0 * sigma ** 2))
    smooth = (kernel @ p) / kernel.sum(dim=1)
    return smooth / smooth.sum()


def rebalance_weights(counts: torch.Tensor, bins: torch.Tensor | None = None,
                      lam: float = REBALANCE_LAMBDA, sigma: float = SIGMA) -> torch.Tensor:
    """Per-bin weights w (Q, float64) with ``w ~ ((1 - lam) p~ + lam / Q)^-1`` and
    ``sum_q p~_q w_q = 1``, p~ = :func:`smoothed_prior` of ``counts``."""
    if not 0.0 <= lam <= 1.0:
        raise CnnkitError(f"lam must be in [0, 1]; got {lam}")
    prior = smoothed_prior(counts, bins, sigma)
    weights = 1.0 / ((1.0 - lam) * prior + lam / prior.numel())
    return weights / (prior * weights).sum()


def _distribution(probs: torch.Tensor, bins, fn: str) -> torch.Tensor:
    centres = _bins_for(bins, probs)
    if probs.dim() not in (3, 4) or probs.shape[-3] != centres.shape[0]:
        raise CnnkitError(f"{fn}: probs must be Q x H x W or N x Q x H x W with "
                          f"Q = {centres.shape[0]}; got {tuple(probs.shape)}")
    return centres


def decode_mean(probs: torch.Tensor, bins: torch.Tensor | None = None) -> torch.Tensor:
    """ab (2 at dim -3) = ``sum_q Z_q c_q``; ``probs`` should sum to 1 over Q."""
    centres = _distribution(probs, bins, "decode_mean")
    return (probs.movedim(-3, -1) @ centres).movedim(-1, -3)


def decode_mode(probs: torch.Tensor, bins: torch.Tensor | None = None) -> torch.Tensor:
    """ab (2 at dim -3) of the most probable bin (also works on logits)."""
    centres = _distribution(probs, bins, "decode_mode")
    return centres[probs.argmax(dim=-3)].movedim(-1, -3)


def decode_annealed_mean(probs: torch.Tensor, bins: torch.Tensor | None = None,
                         temperature: float = ANNEAL_TEMPERATURE,
                         from_logits: bool = False) -> torch.Tensor:
    """The paper's annealed mean: the mean of ``f_T(Z)``, Z re-tempered by ``temperature``.

    ``from_logits=True`` takes raw scores (``log Z`` up to a constant, so ``f_T`` is a softmax
    of ``logits / T``); otherwise ``probs`` are probabilities (zeros allowed).
    """
    centres = _distribution(probs, bins, "decode_annealed_mean")
    if temperature <= 0:
        raise CnnkitError(f"temperature must be > 0 (use decode_mode for T -> 0); "
                          f"got {temperature}")
    log_z = probs if from_logits else probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
    tempered = torch.softmax(log_z / temperature, dim=-3)
    return decode_mean(tempered, centres)
