"""Analytic receptive fields, tracked per tensor and per spatial dimension, exactly.

For convolution and pooling this is the classic recurrence (Araujo, Norris & Sim, "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019): with kernel ``k``, stride
``s``, left padding ``p``, dilation ``d`` and ``k_eff = d (k - 1) + 1``,

    jump'  = jump * s
    size'  = size + (k_eff - 1) * jump
    start' = start + ((k_eff - 1) / 2 - p) * jump

where ``size`` is the side of the input region one output unit sees (padding included),
``jump`` the distance in input pixels between neighbouring units and ``start`` the centre of
unit 0's region (pixel ``i`` has centre ``i``; negative = in the padding).

Upsampling breaks the recurrence: after a stride-2 transposed convolution, even and odd output
units sit differently on the input grid, and later layers mix the two. So each dimension keeps,
besides the jump, the region of every unit over one *period* ``P`` (the units whose index is 0,
1, ..., P-1 modulo P): unit ``o`` covers ``[o * jump + lo[o % P], o * jump + hi[o % P]]``.
Without upsampling ``P = 1`` and this is the recurrence above; with it, every op maps the exact
regions (taps of transposed convolutions and interpolation included), so analytic and
back-propagated fields agree unit by unit away from the borders. Reported ``size`` is the
largest region over the period, ``start`` the centre of unit 0's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from cnnkit.errors import ArgumentError

MAX_PERIOD = 4096  # beyond this a dimension keeps only the envelope of its regions (noted)


Region = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class Axis:
    """Regions along one spatial dimension: unit o covers o*jump + [lo[o % P], hi[o % P]]
    (None: that unit sees no input, e.g. between the nails of a strided placement), joined with
    the ``fixed`` region (the same for every unit, from an image-level branch such as
    squeeze-and-excitation gating or a pooled, broadcast feature) when there is one."""

    jump: Fraction
    lo: tuple[Fraction | None, ...]
    hi: tuple[Fraction | None, ...]
    fixed: Region | None = None

    @property
    def period(self) -> int:
        return len(self.lo)

    def moving(self, o: int) -> Region | None:
        lo = self.lo[o % self.period]
        if lo is None:
            return None
        return o * self.jump + lo, o * self.jump + self.hi[o % self.period]

    def bounds(self, o: int) -> Region | None:
        return _hull([self.moving(o), self.fixed])

    def _sizes(self) -> list[Fraction]:
        regions = [b for b in map(self.bounds, range(self.period)) if b is not None]
        return [hi - lo + 1 for lo, hi in regions] or [Fraction(0)]

    @property
    def size(self) -> Fraction:
        return max(self._sizes())

    @property
    def min_size(self) -> Fraction:
        return min(self._sizes())

    @property
    def start(self) -> Fraction:
        """Centre of unit 0's region (of the first unit that sees something, moved back)."""
        for o in range(self.period):
            region = self.bounds(o)
            if region is not None:
                return (region[0] + region[1]) / 2 - o * self.jump
        return Fraction(0)


def _hull(regions: Iterable[Region | None]) -> Region | None:
    present = [r for r in regions if r is not None]
    if not present:
        return None
    return min(r[0] for r in present), max(r[1] for r in present)


@dataclass(frozen=True)
class TensorRF:
    """Field of every unit of one tensor. ``dims``: one :class:`Axis` per spatial dimension of
    the input (None: unknown, ``note`` says why). ``axes``: tensor dimensions that still index
    positions (None once they are gone, e.g. after flatten: every unit sees all of it)."""

    dims: tuple[Axis, ...] | None
    axes: tuple[int, ...] | None
    note: str | None = None


def input_rf(ndim: int, spatial: int) -> TensorRF:
    """A model input of rank ``ndim`` whose last ``spatial`` dimensions are positions."""
    one, zero = Fraction(1), Fraction(0)
    return TensorRF(tuple(Axis(one, (zero,), (zero,)) for _ in range(spatial)),
                    tuple(range(ndim - spatial, ndim)))


def unknown(note: str) -> TensorRF:
    return TensorRF(None, None, note)


def per_dim(value, n: int) -> tuple:
    values = tuple(value) if isinstance(value, Sequence) else (value,) * n
    return values * n if len(values) == 1 and n > 1 else values[-n:]


def _map(axis: Axis, jump: Fraction, period_of: Callable[[int], int],
         taps: Callable[[int], Iterable[int]]) -> tuple[Axis, str | None]:
    """New axis whose unit o reads input units ``taps(o)``; ``period_of(P)`` new units repeat
    when the input repeats every P units."""
    note = None
    if period_of(axis.period) > MAX_PERIOD:  # keep one envelope region instead of thousands
        lo, hi = _hull((lo, hi) for lo, hi in zip(axis.lo, axis.hi) if lo is not None) or (
            None, None)
        axis = Axis(axis.jump, (lo,), (hi,), axis.fixed)
        note = "field varies with position; envelope shown"
    lo, hi = [], []
    for o in range(period_of(axis.period)):
        region = _hull(axis.moving(i) for i in taps(o))
        lo.append(None if region is None else region[0] - o * jump)
        hi.append(None if region is None else region[1] - o * jump)
    return Axis(jump, tuple(lo), tuple(hi), axis.fixed), note


def _apply(rf: TensorRF, make: Callable[[int, Axis], tuple[Axis, str | None]]) -> TensorRF:
    if rf.dims is None or rf.axes is None or not rf.dims:
        return rf
    dims, notes = zip(*(make(i, a) for i, a in enumerate(rf.dims)))
    note = next((n for n in notes if n), rf.note)
    return replace(rf, dims=tuple(dims), note=note)


def _ratio_period(r: Fraction) -> Callable[[int], int]:
    """Units o and o + q read inputs P apart when q * r is a multiple of P."""
    return lambda p: r.denominator * p // math.gcd(r.numerator, p)


def window(rf: TensorRF, kernel, stride, padding, dilation=1) -> TensorRF:
    """Convolution or pooling (``padding`` = padding before the first input)."""
    n = len(rf.dims or ())
    ks, ss, ps, ds = (per_dim(v, n) for v in (kernel, stride, padding, dilation))

    def make(i: int, a: Axis):
        k, s, p, d = int(ks[i]), int(ss[i]), int(ps[i]), int(ds[i])
        return _map(a, a.jump * s, lambda q: q // math.gcd(q, s),
                    lambda o: (s * o - p + d * j for j in range(k)))
    return _apply(rf, make)


def transposed(rf: TensorRF, kernel, stride, padding, dilation=1) -> TensorRF:
    """Transposed convolution: output o takes input i through tap j when o = i*s - p + d*j."""
    n = len(rf.dims or ())
    ks, ss, ps, ds = (per_dim(v, n) for v in (kernel, stride, padding, dilation))

    def make(i: int, a: Axis):
        k, s, p, d = int(ks[i]), int(ss[i]), int(ps[i]), int(ds[i])

        def taps(o: int) -> list[int]:
            return [(o + p - d * j) // s for j in range(k) if (o + p - d * j) % s == 0]
        return _map(a, a.jump / s, lambda q: q * s, taps)
    return _apply(rf, make)


def resample(rf: TensorRF, in_sizes: Sequence[int], ratios: Sequence[Fraction],
             offsets: Sequence[Fraction], taps: Callable[[Fraction], list[int]]) -> TensorRF:
    """Interpolation: output o reads input coordinate ``x = (o + offset) * ratio - offset``
    through the inputs ``taps(x)``. Upsampling a single position (e.g. a pooled image-level
    branch) gives jump 0: every unit sees the same region, which never disagrees in jump."""
    def make(i: int, a: Axis):
        if in_sizes[i] == 1:
            lo, hi = a.bounds(0)  # jump 0: the same region for every unit
            return Axis(Fraction(0), (lo,), (hi,)), None
        r, off = Fraction(ratios[i]), Fraction(offsets[i])
        return _map(a, a.jump * r, _ratio_period(r), lambda o: taps((o + off) * r - off))
    return _apply(rf, make)


def whole(rf: TensorRF, in_sizes: Sequence[int], keep_axes: bool) -> TensorRF:
    """Every output unit sees the whole input map (global pooling, flatten + linear)."""
    out = window(rf, tuple(in_sizes), tuple(in_sizes), 0)
    return out if keep_axes or out.dims is None else replace(out, axes=None)


def adaptive(rf: TensorRF, in_sizes: Sequence[int], out_sizes: Sequence[int]) -> TensorRF:
    """Adaptive pooling: unit o pools inputs floor(o*in/out) .. ceil((o+1)*in/out) - 1 (a fixed
    window when out divides in; the whole map when out is 1)."""
    def make(i: int, a: Axis):
        r = Fraction(in_sizes[i], out_sizes[i])
        return _map(a, a.jump * r, _ratio_period(r),
                    lambda o: range(math.floor(o * r), math.ceil((o + 1) * r)))
    return _apply(rf, make)


def shift(rf: TensorRF, offsets: Sequence[int], steps: Sequence[int] | None = None) -> TensorRF:
    """Crop (offset > 0), pad (offset < 0) or subsample (step) the spatial axes."""
    steps = steps or [1] * len(offsets)
    return window(rf, 1, tuple(steps), tuple(-o for o in offsets))


def union(rfs: Sequence[TensorRF], broadcast: Sequence[Sequence[bool]] | None = None) -> TensorRF:
    """Units that combine several tensors (add, concat, multi-input layers) see all of their
    regions. Jumps must agree, else the field is unknown (noted). An input with one position
    along a dimension (``broadcast[i][d]``, or jump 0) adds its region to every unit: it joins
    the ``fixed`` region and its jump does not count."""
    if any(r.dims is None for r in rfs):
        return next(r for r in rfs if r.dims is None)
    if len(rfs) == 1:
        return rfs[0]
    n = len(rfs[0].dims)
    broadcast = broadcast or [[False] * n for _ in rfs]
    if any(len(r.dims) != n for r in rfs):
        return unknown("inputs with different numbers of spatial dimensions")
    moving = [[r.axes is not None and not b[d] and r.dims[d].jump != 0 for d in range(n)]
              for r, b in zip(rfs, broadcast)]
    dims = []
    for d in range(n):
        axes = [r.dims[d] for r in rfs]
        live = [a for a, m in zip(axes, moving) if m[d]]
        if len({a.jump for a in live}) > 1:
            shown = _distinct([format_value([a.jump for a in r.dims]) for r in rfs])
            return unknown(f"branches disagree in jump: {' vs '.join(map(str, shown))}")
        fixed = _hull([a.bounds(0) for a, m in zip(axes, moving) if not m[d]]
                      + [a.fixed for a in live])
        if not live:  # nothing moves: one region for every unit (jump 0)
            lo, hi = fixed or (None, None)
            dims.append(Axis(Fraction(0), (lo,), (hi,)))
            continue
        period = math.lcm(*(a.period for a in live))
        regions = [_hull(a.moving(o) for a in live) for o in range(period)]
        jump = live[0].jump
        dims.append(Axis(jump, tuple(None if r is None else r[0] - o * jump
                                     for o, r in enumerate(regions)),
                         tuple(None if r is None else r[1] - o * jump
                               for o, r in enumerate(regions)), fixed))
    axes = next((r.axes for r, m in zip(rfs, moving) if all(m)), None)
    axes = axes or next((r.axes for r in rfs if r.axes is not None), None)
    return TensorRF(tuple(dims), axes, next((r.note for r in rfs if r.note), None))


def _distinct(values: list) -> list:
    return [v for i, v in enumerate(values) if v not in values[:i]]


def _number(x: Fraction) -> int | float:
    return int(x) if Fraction(x).denominator == 1 else float(x)


def format_value(values: Sequence[Fraction]) -> int | float | list:
    """One number when all dimensions agree, else a list (one per spatial dimension)."""
    nums = [_number(v) for v in values]
    return nums[0] if len(set(nums)) == 1 else nums


def to_json(rf: TensorRF | None) -> dict | None:
    """``{"size", "jump", "start"}``, plus ``"period"`` and ``"min_size"`` when upsampling made
    units differ; None when unknown or when the input has no spatial dimension."""
    if rf is None or rf.dims is None or not rf.dims:
        return None
    out = {key: format_value([getattr(a, key) for a in rf.dims])
           for key in ("size", "jump", "start")}
    if any(a.period > 1 for a in rf.dims):
        out["period"] = format_value([a.period for a in rf.dims])
        out["min_size"] = format_value([a.min_size for a in rf.dims])
    return out


def unit_box(rf: TensorRF, unit: Sequence[int], clip: Sequence[int] | None = None) -> list[list]:
    """Inclusive input-pixel bounds ``[[lo, hi], ...]`` of output unit ``unit`` (one index per
    spatial dimension), ``[]`` when it sees no input; ``clip`` (the input's spatial sizes)
    cuts off the padding."""
    if rf.dims is None:
        raise ArgumentError(f"receptive field unknown: {rf.note}")
    out = []
    for d, (a, o) in enumerate(zip(rf.dims, unit)):
        region = a.bounds(o)
        if region is None:  # this unit sees no input
            return []
        lo, hi = region
        if clip is not None:
            lo, hi = max(lo, 0), min(hi, clip[d] - 1)
        out.append([_number(lo), _number(hi)])
    return out
