"""sRGB <-> L*a*b* on known colours, and Zhang et al.'s ab bins, encodings, weights, decodings."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.data import ab_bins as ab
from cnnkit.data.color import in_gamut, lab_to_rgb, rgb_to_lab
from cnnkit.errors import CnnkitError

# Standard CIE L*a*b* (D65) of the sRGB primaries and mid grey.
KNOWN = [((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)), ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
         ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
         ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
         ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
         ((0.5, 0.5, 0.5), (53.3890, 0.0, 0.0))]


def image(values) -> torch.Tensor:
    """A list of colours -> a 3 x 1 x K float64 image."""
    return torch.tensor(values, dtype=torch.float64).T[:, None, :]


def test_known_colours() -> None:
    lab = rgb_to_lab(image([rgb for rgb, _ in KNOWN]))
    assert torch.allclose(lab, image([expected for _, expected in KNOWN]), atol=1e-2)
    assert lab[:, 0, 0].tolist() == pytest.approx([100.0, 0.0, 0.0], abs=1e-9)  # white, exactly
    assert lab[:, 0, 1].abs().max() < 1e-12                                       # black


def test_round_trip_batches_and_single_images() -> None:
    rgb = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    assert torch.allclose(lab_to_rgb(lab), rgb, atol=1e-5, rtol=0)
    assert torch.equal(rgb_to_lab(rgb[1]), lab[1])
    assert (lab[:, 0] >= 0).all() and (lab[:, 0] <= 100).all()
    assert in_gamut(lab).all()


def test_out_of_gamut_and_clip() -> None:
    lab = image([(50.0, 100.0, 100.0), (50.0, -100.0, -100.0), (50.0, 10.0, -10.0)])
    rgb = lab_to_rgb(lab)
    assert ((rgb < 0) | (rgb > 1)).any(dim=0).squeeze(0).tolist() == [True, True, False]
    assert in_gamut(lab).squeeze(0).tolist() == [False, False, True]
    clipped = lab_to_rgb(lab, clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_gradients_finite_at_black_and_white() -> None:
    rgb = image([(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.2, 0.5, 0.9)]).requires_grad_()
    lab_to_rgb(rgb_to_lab(rgb)).sum().backward()
    assert torch.isfinite(rgb.grad).all()


def test_shape_errors_name_the_argument() -> None:
    with pytest.raises(CnnkitError, match="rgb must be .*3 x H x W"):
        rgb_to_lab(torch.rand(4, 4, 3))
    with pytest.raises(CnnkitError, match="lab must be"):
        lab_to_rgb(torch.rand(2, 3))


def test_313_bins() -> None:
    bins = ab.ab_gamut_bins()
    assert bins.shape == (ab.NUM_AB_BINS, 2) == (313, 2)
    assert (bins % 10 == 0).all() and len(set(map(tuple, bins.tolist()))) == 313
    assert bins.min(dim=0).values.tolist() == [-90, -110]
    assert bins.max(dim=0).values.tolist() == [100, 100]
    keys = (bins[:, 0] * 1000 + bins[:, 1]).tolist()
    assert keys == sorted(keys)                                   # sorted by a, then b
    assert torch.equal(ab.ab_gamut_bins(samples=32, directions=360), bins)  # stable rule


@pytest.mark.parametrize("point, kept", [
    ((0, 0), True), ((80, 60), True), ((-80, 80), True), ((80, -100), True),
    ((-90, 50), True), ((-50, 100), True), ((100, -90), True),
    ((-90, 40), False), ((-100, 0), False), ((110, 0), False), ((0, -120), False),
    ((-60, -60), False), ((80, 80), False), ((100, 10), False), ((-60, 100), False)])
def test_known_points_classified(point, kept) -> None:
    bins = ab.ab_gamut_bins()
    assert bool((bins == torch.tensor(point, dtype=bins.dtype)).all(dim=1).any()) == kept


def test_every_srgb_colour_has_a_bin_within_half_a_cell() -> None:
    ab_values = rgb_to_lab(torch.rand(3, 64, 64, dtype=torch.float64))[1:]
    d = torch.cdist(ab_values.reshape(2, -1).T, ab.ab_gamut_bins(dtype=torch.float64))
    assert d.min(dim=1).values.max() <= 5 * math.sqrt(2)


def ab_image(points) -> torch.Tensor:
    return torch.tensor(points, dtype=torch.float32).T[:, None, :]   # 2 x 1 x K


def test_soft_encoding_at_a_bin_centre() -> None:
    z = ab.encode_ab_soft(ab_image([(0.0, 0.0), (3.0, -4.0)]))
    assert z.shape == (313, 1, 2)
    assert torch.allclose(z.sum(dim=0), torch.ones(1, 2))
    assert ((z > 0).sum(dim=0) == 5).all()
    bins = ab.ab_gamut_bins()
    centre = int(((bins[:, 0] == 0) & (bins[:, 1] == 0)).nonzero())
    expected = 1 / (1 + 4 * math.exp(-2))   # neighbours at distance 10: exp(-100 / 50)
    assert z[centre, 0, 0].item() == pytest.approx(expected, rel=1e-5)


def test_hard_encoding_and_histogram() -> None:
    bins = ab.ab_gamut_bins()
    codes = ab.encode_ab_hard(ab_image([(3.0, -4.0), (7.0, 2.0), (-86.0, 83.0)])[None])
    assert codes.shape == (1, 1, 3) and codes.dtype == torch.int64
    assert bins[codes.reshape(-1)].tolist() == [[0, 0], [10, 0], [-90, 80]]
    valid = torch.tensor([[[True, False, True]]])
    counts = ab.ab_histogram(ab_image([(3.0, -4.0), (7.0, 2.0), (1.0, 1.0)])[None], valid)
    assert counts.shape == (313,) and counts.sum() == 2 and counts.max() == 2


def test_decodings_on_known_distributions() -> None:
    bins = ab.ab_gamut_bins()
    one_hot = torch.zeros(2, 313, 1, 1)
    one_hot[0, 40], one_hot[1, 200] = 1.0, 1.0
    for decode in (ab.decode_mean, ab.decode_mode, ab.decode_annealed_mean):
        assert torch.allclose(decode(one_hot)[:, :, 0, 0], bins[[40, 200]], atol=1e-4)
    probs = torch.softmax(torch.randn(2, 313, 3, 3, dtype=torch.float64), dim=1)
    mean = ab.decode_mean(probs)
    assert torch.allclose(ab.decode_annealed_mean(probs, temperature=1.0), mean)
    assert torch.allclose(ab.decode_annealed_mean(probs, temperature=1e-3), ab.decode_mode(probs))
    logits = torch.randn(313, 2, 2)
    assert torch.allclose(ab.decode_annealed_mean(logits, temperature=1.0, from_logits=True),
                          ab.decode_mean(torch.softmax(logits, dim=0)), atol=1e-4)
    two = torch.zeros(313, 1, 1)
    two[0], two[1] = 0.75, 0.25             # T = 0.5 squares them: 9/10 and 1/10
    expected = 0.9 * bins[0] + 0.1 * bins[1]
    assert torch.allclose(ab.decode_annealed_mean(two, temperature=0.5)[:, 0, 0], expected)
    with pytest.raises(CnnkitError, match="probs must be .*Q = 313"):
        ab.decode_mean(torch.rand(1, 10, 2, 2))


def test_rebalancing_weights() -> None:
    uniform = ab.rebalance_weights(torch.ones(313))
    assert torch.allclose(uniform, torch.ones(313, dtype=torch.float64))
    counts = torch.rand(313, dtype=torch.float64) ** 4 * 1000
    prior = ab.smoothed_prior(counts)
    weights = ab.rebalance_weights(counts)
    assert prior.sum().item() == pytest.approx(1.0) and (prior > 0).all()
    assert (prior * weights).sum().item() == pytest.approx(1.0)
    assert torch.allclose(ab.rebalance_weights(counts, lam=1.0), torch.ones(313).double())
    peaked = torch.zeros(313)
    peaked[150] = 100
    w = ab.rebalance_weights(peaked)
    assert int(w.argmin()) == 150 and w.max() / w.min() > 10
    with pytest.raises(CnnkitError, match="counts must be a vector of 313"):
        ab.rebalance_weights(torch.ones(312))
