"""Colour augmentation: brightness, contrast, saturation and hue jitter, grayscale, PCA colour.

Every transform here changes the image only; masks, keypoints and boxes pass through untouched.
Images are ``C x H x W`` floats in [0, 1] (see :mod:`cnnkit.data.sample`); results are clamped
back to [0, 1].

- Brightness multiplies the image by a factor; contrast blends it with the mean of its
  grayscale; saturation blends it with its grayscale; hue rotates the H of HSV. A factor of 1
  (hue shift 0) leaves the image unchanged, and :class:`ColorJitter` skips an operation whose
  range is that single value, so zero ranges give back the very same tensor values.
- Grayscale uses the ITU-R BT.601 luma weights (0.299, 0.587, 0.114).
- :class:`PCAColor` is the "fancy PCA" colour augmentation of Krizhevsky, Sutskever & Hinton,
  "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012: to every pixel
  add ``sum_i alpha_i * lambda_i * p_i`` with ``(lambda_i, p_i)`` the eigenpairs of the 3x3
  covariance of the training set's RGB pixels (:func:`cnnkit.data.stats_color.pca_color_components`)
  and ``alpha_i ~ N(0, sigma)`` drawn once per image. The paper worked on [0, 255] pixels, where
  the eigenvalues are 255^2 times larger than for our [0, 1] pixels, so the same sigma gives a
  much smaller offset here. Many re-implementations (e.g. fb.resnet.torch) multiply ``alpha``
  by the square roots of the eigenvalues (standard deviations) instead: pass
  ``eigvals.sqrt()`` to get that behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform, chance, uniform
from cnnkit.errors import ArgumentError

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _check_rgb(image: torch.Tensor, what: str) -> None:
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ArgumentError(f"{what} needs an RGB image (3 x H x W); got shape {tuple(image.shape)}")


def to_grayscale(image: torch.Tensor) -> torch.Tensor:
    """Luma (1 x H x W, or ... x 1 x H x W) of an RGB image; a 1-channel image is returned as is."""
    if image.shape[-3] == 1:
        return image
    _check_rgb(image, "to_grayscale")
    r, g, b = image.unbind(-3)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(-3)


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * image + (1.0 - factor) * other).clamp(0.0, 1.0)


def adjust_brightness(image: torch.Tensor, factor: float) -> torch.Tensor:
    """``image * factor``, clamped; 0 gives black, 1 the image."""
    return (image * factor).clamp(0.0, 1.0)


def adjust_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the mean grey level of the image; 0 gives a flat grey image, 1 the image."""
    mean = to_grayscale(image).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(image, mean, factor)


def adjust_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the grayscale image; 0 gives grey, 1 the image, > 1 more saturated colours."""
    _check_rgb(image, "adjust_saturation")
    return _blend(image, to_grayscale(image), factor)


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV with H, S, V in [0, 1] (H in turns: 1/3 is green)."""
    _check_rgb(image, "rgb_to_hsv")
    r, g, b = image.unbind(-3)
    value, _ = image.max(dim=-3)
    low, _ = image.min(dim=-3)
    chroma = value - low
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    safe_value = torch.where(value > 0, value, torch.ones_like(value))
    saturation = torch.where(value > 0, chroma / safe_value, torch.zeros_like(value))
    hue_r = ((g - b) / safe) % 6
    hue_g = (b - r) / safe + 2
    hue_b = (r - g) / safe + 4
    hue = torch.where(value == r, hue_r, torch.where(value == g, hue_g, hue_b))
    hue = torch.where(chroma > 0, hue / 6.0, torch.zeros_like(hue)) % 1.0
    return torch.stack([hue, saturation, value], dim=-3)


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = image.unbind(-3)
    sector = hue * 6.0
    # standard formula: channel n = V - V*S*max(0, min(k, 4 - k, 1)), k = (n + H*6) mod 6
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + sector) % 6.0
        ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return torch.stack(channels, dim=-3)


def adjust_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5]); 0 returns the image unchanged."""
    if not -0.5 <= shift <= 0.5:
        raise ArgumentError(f"hue shift must be in [-0.5, 0.5] turns; got {shift}")
    if shift == 0:
        return image
    hsv = rgb_to_hsv(image)
    hsv = torch.stack([(hsv[..., 0, :, :] + shift) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]], -3)
    return hsv_to_rgb(hsv).clamp(0.0, 1.0)


def _factor_range(name: str, value: float | tuple[float, float], centre: float,
                  bound: tuple[float, float]) -> tuple[float, float]:
    """``v`` -> ``[centre - v, centre + v]`` clipped to ``bound``; a pair is taken as the range."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ArgumentError(f"ColorJitter {name} must be >= 0 or a (low, high) pair; got {value}")
        low, high = max(bound[0], centre - value), min(bound[1], centre + value)
    else:
        low, high = (float(v) for v in value)
    if not bound[0] <= low <= high <= bound[1]:
        raise ArgumentError(f"ColorJitter {name} range must satisfy {bound[0]} <= low <= high <= "
                         f"{bound[1]}; got ({low}, {high})")
    return float(low), float(high)


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue, image only.

    ``brightness``, ``contrast``, ``saturation``: ``b`` draws the factor from
    ``[max(0, 1 - b), 1 + b]`` (or give a ``(low, high)`` pair); ``hue``: ``h`` in [0, 0.5] draws
    the shift from ``[-h, h]`` turns. Operations run in the order brightness, contrast, saturation,
    hue, or in a random order with ``random_order=True``. The drawn values are recorded in
    ``meta["color_jitter"]``.
    """

    def __init__(self, brightness: float | tuple[float, float] = 0.0,
                 contrast: float | tuple[float, float] = 0.0,
                 saturation: float | tuple[float, float] = 0.0,
                 hue: float | tuple[float, float] = 0.0, random_order: bool = False) -> None:
        inf = float("inf")
        self.brightness = _factor_range("brightness", brightness, 1.0, (0.0, inf))
        self.contrast = _factor_range("contrast", contrast, 1.0, (0.0, inf))
        self.saturation = _factor_range("saturation", saturation, 1.0, (0.0, inf))
        self.hue = _factor_range("hue", hue, 0.0, (-0.5, 0.5))
        self.random_order = random_order

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        ops = [("brightness", self.brightness, 1.0, adjust_brightness),
               ("contrast", self.contrast, 1.0, adjust_contrast),
               ("saturation", self.saturation, 1.0, adjust_saturation),
               ("hue", self.hue, 0.0, adjust_hue)]
        ops = [op for op in ops if op[1] != (op[2], op[2])]  # skip identity ranges
        if self.random_order and len(ops) > 1:
            ops = [ops[i] for i in torch.randperm(len(ops), generator=rng).tolist()]
        image, drawn = sample.image, {}
        for name, (low, high), _, function in ops:
            drawn[name] = uniform(rng, low, high)
            image = function(image, drawn[name])
        if not drawn:
            return sample
        return sample.replace(image=image, meta={**sample.meta, "color_jitter": drawn})


class Grayscale(Transform):
    """Grayscale with probability ``p``, keeping the number of channels (grey replicated)."""

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ArgumentError(f"Grayscale p must be a probability in [0, 1]; got {p}")
        self.p = p

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        if self.p < 1.0 and not chance(rng, self.p):
            return sample
        image = sample.image
        return sample.replace(image=to_grayscale(image).expand_as(image).clone())


class PCAColor(Transform):
    """AlexNet's PCA colour augmentation (see the module docstring for the paper and scaling).

    ``eigvals`` (3) and ``eigvecs`` (3 x 3, one component per column), as returned by
    :func:`cnnkit.data.stats_color.pca_color_components`. The offset is drawn once per image
    and added to every pixel; ``clamp`` keeps the result in [0, 1].
    """

    def __init__(self, eigvals: Sequence[float] | torch.Tensor,
                 eigvecs: Sequence[Sequence[float]] | torch.Tensor, sigma: float = 0.1,
                 clamp: bool = True) -> None:
        self.eigvals = torch.as_tensor(eigvals, dtype=torch.float64)
        self.eigvecs = torch.as_tensor(eigvecs, dtype=torch.float64)
        if self.eigvals.shape != (3,) or self.eigvecs.shape != (3, 3):
            raise ArgumentError(f"PCAColor needs 3 eigenvalues and 3 x 3 eigenvectors; got "
                             f"{tuple(self.eigvals.shape)} and {tuple(self.eigvecs.shape)}")
        if sigma < 0:
            raise ArgumentError(f"PCAColor sigma must be >= 0; got {sigma}")
        self.sigma = sigma
        self.clamp = clamp

    def offset(self, rng: torch.Generator | None) -> torch.Tensor:
        """One RGB offset ``P (alpha * lambda)`` with ``alpha ~ N(0, sigma)``."""
        alpha = torch.randn(3, generator=rng, dtype=torch.float64) * self.sigma
        return self.eigvecs @ (alpha * self.eigvals)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        _check_rgb(sample.image, "PCAColor")
        if self.sigma == 0:
            return sample
        delta = self.offset(rng)
        image = sample.image + delta.to(sample.image.device, sample.image.dtype)[:, None, None]
        if self.clamp:
            image = image.clamp(0.0, 1.0)
        return sample.replace(image=image, meta={**sample.meta, "pca_color": delta.tolist()})
