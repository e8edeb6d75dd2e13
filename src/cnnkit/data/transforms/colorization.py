"""The colourisation target: lightness in, ab out (Zhang, Isola & Efros, "Colorful Image
Colorization", ECCV 2016).

:class:`ColorizationTarget` converts the sample's sRGB image to CIE L*a*b*
(:func:`cnnkit.data.color.rgb_to_lab`), keeps the lightness as the network input, a 1-channel
image ``L / 50 - 1`` in [-1, 1] (:func:`lightness_to_input`; the reference implementation
centres L the same way, ``(L - 50) / 100``, at half the scale), and stores the ab target,
``2 x H x W`` float32, in ``meta["ab"]``, which :func:`cnnkit.data.batch.collate_samples`
stacks into ``batch["ab"]`` (N x 2 x H x W). With ``keep_rgb=True`` the RGB image is kept in
``meta["rgb"]`` as well (not collated; for pictures).

Where it goes in a pipeline: **last**, after the geometric transforms (crops, flips, resizes
move the RGB image, and the target is computed from the moved image, so L and ab always stay
aligned) and after any colour augmentation: a :class:`~cnnkit.data.transforms.ColorJitter`
before it changes the target only through the image (the target is a function of the jittered
RGB image, so input and target stay one consistent picture). Colour transforms cannot come
after it: the image is then one channel in [-1, 1], not RGB in [0, 1]. Nor can ``Normalize``
(the lightness is already centred); an image outside [0, 1] is refused. It is not logged in
``meta["transforms"]``: it does not move pixels, so predictions map back through the
geometric transforms alone.

A 1-channel image (a grayscale picture, e.g. at prediction time) is taken as gray, ``R = G =
B``: its L is the lightness of that gray and its ab target is 0.
"""

from __future__ import annotations

import torch

from cnnkit.data.color import rgb_to_lab
from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform
from cnnkit.errors import ArgumentError

L_HALF_RANGE = 50.0  # input = L / 50 - 1: L in [0, 100] -> [-1, 1]
RANGE_TOLERANCE = 1e-4


def lightness_to_input(lightness: torch.Tensor) -> torch.Tensor:
    """CIE L (0..100) -> the network input ``L / 50 - 1`` (-1..1)."""
    return lightness / L_HALF_RANGE - 1.0


def input_to_lightness(image: torch.Tensor) -> torch.Tensor:
    """The network input ``L / 50 - 1`` -> CIE L (0..100); the inverse of
    :func:`lightness_to_input`."""
    return (image + 1.0) * L_HALF_RANGE


class ColorizationTarget(Transform):
    """RGB image -> (L input, ``meta["ab"]`` target); see the module docstring."""

    def __init__(self, keep_rgb: bool = False) -> None:
        self.keep_rgb = bool(keep_rgb)

    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        image = sample.image
        where = sample.meta.get("path", "sample")
        if image.shape[0] not in (1, 3):
            raise ArgumentError(f"{where}: ColorizationTarget needs an RGB (or gray) image "
                                f"3 x H x W; got {tuple(image.shape)}")
        if image.numel() and (float(image.min()) < -RANGE_TOLERANCE
                              or float(image.max()) > 1 + RANGE_TOLERANCE):
            raise ArgumentError(f"{where}: ColorizationTarget needs an image in [0, 1]; got "
                                f"values in [{float(image.min()):.3g}, {float(image.max()):.3g}] "
                                "(put it before Normalize, as the last transform)")
        rgb = image.float().clamp(0.0, 1.0)
        lab = rgb_to_lab(rgb.expand(3, -1, -1))
        ab = lab[1:] if image.shape[0] == 3 else torch.zeros_like(lab[1:])
        meta = {**sample.meta, "ab": ab.to(torch.float32).contiguous()}
        if self.keep_rgb:
            meta["rgb"] = rgb.expand(3, -1, -1).clone()
        return sample.replace(image=lightness_to_input(lab[:1]).to(torch.float32), meta=meta)
