"""Colour jitter, grayscale, PCA colour augmentation, pixel statistics, ToTensor and Normalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.sample import Sample
from cnnkit.geometry import Skeleton
from cnnkit.data.stats_color import mean_std, pca_color_components, pixel_covariance
from cnnkit.data.transforms import (ColorJitter, Grayscale, Normalize, PCAColor, to_channels_last,
                                    to_tensor)
from cnnkit.data.transforms.color import adjust_hue, hsv_to_rgb, rgb_to_hsv, to_grayscale


def labelled_sample() -> Sample:
    image = torch.rand(3, 6, 8)
    return Sample(image=image, label=3, mask=torch.randint(0, 5, (6, 8)),
                  keypoints=torch.tensor([[1.0, 2.0], [5.0, 4.0]]),
                  skeleton=Skeleton(("left", "right"), ((0, 1),)),
                  boxes=torch.tensor([[0.0, 0.0, 3.0, 4.0]]), box_labels=torch.tensor([1]))


def assert_labels_untouched(before: Sample, after: Sample) -> None:
    assert after.label == before.label
    assert torch.equal(after.mask, before.mask)
    assert torch.equal(after.keypoints, before.keypoints)
    assert torch.equal(after.visible, before.visible)
    assert torch.equal(after.boxes, before.boxes)
    assert after.skeleton == before.skeleton


def test_jitter_with_zero_ranges_is_the_identity() -> None:
    sample = labelled_sample()
    out = ColorJitter(0, 0, 0, 0, random_order=True)(sample, torch.Generator().manual_seed(1))
    assert torch.equal(out.image, sample.image)
    assert_labels_untouched(sample, out)


def test_jitter_changes_the_image_only_and_is_reproducible() -> None:
    sample = labelled_sample()
    jitter = ColorJitter(0.4, 0.4, 0.4, 0.1, random_order=True)
    first = jitter(sample, torch.Generator().manual_seed(7))
    again = jitter(sample, torch.Generator().manual_seed(7))
    assert not torch.equal(first.image, sample.image)
    assert torch.equal(first.image, again.image)
    assert first.image.min() >= 0 and first.image.max() <= 1
    assert set(first.meta["color_jitter"]) == {"brightness", "contrast", "saturation", "hue"}
    assert "color_jitter" not in sample.meta  # the input sample is not modified
    assert_labels_untouched(sample, first)


def test_brightness_factor_is_recorded_and_applied() -> None:
    sample = Sample(image=torch.full((3, 2, 2), 0.25))
    out = ColorJitter(brightness=(2.0, 2.0))(sample)
    assert out.meta["color_jitter"] == {"brightness": 2.0}
    assert torch.equal(out.image, torch.full((3, 2, 2), 0.5))


def test_hue_rotation_and_hsv_round_trip() -> None:
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 2, 2)
    green = adjust_hue(red, 1 / 3)
    torch.testing.assert_close(green, torch.tensor([0.0, 1.0, 0.0])[:, None, None].expand(3, 2, 2))
    image = torch.rand(3, 5, 7)
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(image)), image, atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_hue(adjust_hue(image, 0.5), -0.5), image, atol=1e-6, rtol=0)


def test_grayscale_uses_bt601_weights_and_keeps_channels() -> None:
    sample = labelled_sample()
    out = Grayscale()(sample)
    r, g, b = sample.image
    grey = 0.299 * r + 0.587 * g + 0.114 * b
    assert out.image.shape == (3, 6, 8)
    for channel in out.image:
        torch.testing.assert_close(channel, grey)
    assert_labels_untouched(sample, out)
    assert torch.equal(Grayscale(p=0.0)(sample).image, sample.image)


def test_saturation_zero_gives_grey() -> None:
    sample = labelled_sample()
    out = ColorJitter(saturation=(0.0, 0.0))(sample)
    torch.testing.assert_close(out.image, to_grayscale(sample.image).expand(3, 6, 8))


def test_pca_components_of_a_known_covariance() -> None:
    # pixels drawn from N(0.5, C) with C = Q diag(0.04, 0.01, 0.0025) Q^T, Q a known rotation
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [1.5, 0.2, -0.7]],
                                        dtype=torch.float64))
    variances = torch.tensor([0.04, 0.01, 0.0025], dtype=torch.float64)
    covariance = q @ torch.diag(variances) @ q.T
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(200_000, 3, generator=gen, dtype=torch.float64) @ \
        torch.linalg.cholesky(covariance).T + 0.5
    images = [pixels[i * 20_000:(i + 1) * 20_000].T.reshape(3, 100, 200) for i in range(10)]
    eigvals, eigvecs = pca_color_components(images)
    torch.testing.assert_close(eigvals, variances, rtol=0.02, atol=0)
    for i in range(3):  # directions equal up to sign
        assert abs(float(eigvecs[:, i] @ q[:, i])) > 0.999
    torch.testing.assert_close(eigvecs.T @ eigvecs, torch.eye(3, dtype=torch.float64))
    # the streamed covariance equals the one of all pixels at once
    _, streamed = pixel_covariance(images)
    torch.testing.assert_close(streamed, torch.cov(pixels.T, correction=0))


def test_pca_color_with_sigma_zero_is_identity_and_offset_is_along_components() -> None:
    sample = labelled_sample()
    eigvals = torch.tensor([0.2, 0.02, 0.004])
    eigvecs = torch.eye(3)
    assert torch.equal(PCAColor(eigvals, eigvecs, sigma=0.0)(sample).image, sample.image)
    flat = labelled_sample().replace(image=torch.full((3, 6, 8), 0.5))
    out = PCAColor(eigvals, eigvecs, sigma=0.1)(flat, torch.Generator().manual_seed(3))
    alpha = torch.randn(3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.1
    expected = 0.5 + (alpha * eigvals.double()).float()  # eigvecs = I: offset_i = alpha_i lambda_i
    torch.testing.assert_close(out.image, expected[:, None, None].expand(3, 6, 8))
    assert_labels_untouched(flat, out)


def test_mean_std_is_exact_against_torch() -> None:
    images = [torch.rand(3, 5 + i, 7 + 2 * i) for i in range(6)]
    everything = torch.cat([im.flatten(1) for im in images], dim=1).double()
    mean, std = mean_std(images)
    torch.testing.assert_close(mean, everything.mean(dim=1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(std, everything.std(dim=1, correction=0), rtol=1e-12, atol=1e-12)
    _, unbiased = mean_std(images, unbiased=True)
    torch.testing.assert_close(unbiased, everything.std(dim=1), rtol=1e-12, atol=1e-12)


def test_mean_std_accepts_datasets_samples_pairs_and_batches() -> None:
    batch = torch.rand(4, 3, 6, 6)
    expected = mean_std(batch)

    class Dataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return batch[i], i

    for source in (Dataset(), [Sample(image=im) for im in batch], [batch[:2], batch[2:]]):
        got = mean_std(source)
        torch.testing.assert_close(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1])
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])
    with pytest.raises(ValueError, match="same number of channels"):
        mean_std([torch.rand(3, 2, 2), torch.rand(1, 2, 2)])


def test_to_tensor_from_uint8_numpy_and_pil() -> None:
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    tensor = to_tensor(array)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    assert tensor[1, 0, 2] == pytest.approx(array[0, 2, 1] / 255)
    assert torch.equal(to_tensor(Image.fromarray(array)), tensor)
    grey = to_tensor(Image.fromarray(np.full((4, 5), 255, dtype=np.uint8)))
    assert grey.shape == (1, 4, 5) and bool((grey == 1).all())
    with pytest.raises(ValueError, match="uint8, bool and float"):
        to_tensor(np.zeros((2, 2, 3), dtype=np.int32))


def test_normalize_and_channels_last() -> None:
    sample = labelled_sample()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    out = Normalize(mean, std)(sample)
    torch.testing.assert_close(out.image[2], (sample.image[2] - 0.3) / 0.5)
    assert_labels_untouched(sample, out)
    with pytest.raises(ValueError, match="3 channel"):
        Normalize(mean, std)(Sample(image=torch.rand(1, 2, 2)))
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize(mean, [0.2, 0.0, 0.1])
    batch = torch.rand(2, 3, 4, 5)
    last = to_channels_last(batch)
    assert torch.equal(last, batch) and last.is_contiguous(memory_format=torch.channels_last)
    assert last.stride() == (60, 1, 15, 3)
