"""16-bit images read at full precision, and depth maps from 16-bit PNGs and float arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.datasets import DatasetError, read_depth, read_image
from cnnkit.errors import ArgumentError

VALUES = np.array([[0, 1000, 2500], [65535, 40000, 7]], dtype=np.uint16)


def save16(path, array: np.ndarray, big_endian: bool = False) -> None:
    if big_endian:
        Image.frombytes("I;16B", array.shape[::-1], array.astype(">u2").tobytes()).save(path)
    else:
        Image.fromarray(array).save(path)


@pytest.mark.parametrize("name,big", [("a.png", False), ("b.tif", True)])
def test_16bit_image_is_scaled_not_white(tmp_path, name, big) -> None:
    save16(tmp_path / name, VALUES, big)
    rgb = read_image(tmp_path / name)
    assert rgb.shape == (3, 2, 3) and rgb.dtype == torch.float32
    expected = torch.from_numpy(VALUES.astype(np.float32) / 65535)
    assert torch.allclose(rgb[0], expected) and torch.equal(rgb[0], rgb[2])
    gray = read_image(tmp_path / name, "L")
    assert gray.shape == (1, 2, 3) and torch.allclose(gray[0], expected)


def test_32bit_integer_image_is_scaled_without_clipping(tmp_path) -> None:
    Image.fromarray(np.array([[0, 65535, 131070]], dtype=np.int32)).save(tmp_path / "i.tif")
    assert torch.allclose(read_image(tmp_path / "i.tif", "L")[0, 0], torch.tensor([0.0, 1.0, 2.0]))


def test_8bit_images_unchanged(tmp_path) -> None:
    array = np.array([[[0, 128, 255]]], dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "c.png")
    assert torch.equal(read_image(tmp_path / "c.png")[:, 0, 0],
                       torch.tensor([0, 128, 255], dtype=torch.float32) * np.float32(1 / 255))


def test_depth_png_in_millimetres(tmp_path) -> None:
    save16(tmp_path / "d.png", VALUES)
    depth = read_depth(tmp_path / "d.png", 1000.0)
    assert depth.dtype == torch.float32 and depth.shape == (2, 3)
    assert torch.allclose(depth, torch.tensor([[0.0, 1.0, 2.5], [65.535, 40.0, 0.007]]))
    assert torch.allclose(read_depth(tmp_path / "d.png", 5000.0)[0], torch.tensor([0, 0.2, 0.5]))


def test_depth_npy_and_float_tiff_in_metres(tmp_path) -> None:
    array = np.array([[1.5, np.nan, -1.0], [0.0, np.inf, 3.25]], dtype=np.float32)
    np.save(tmp_path / "d.npy", array)
    expected = torch.tensor([[1.5, 0, 0], [0, 0, 3.25]])
    assert torch.equal(read_depth(tmp_path / "d.npy"), expected)
    np.save(tmp_path / "e.npy", array[None].astype(np.float64))
    assert torch.equal(read_depth(tmp_path / "e.npy"), expected)
    Image.fromarray(np.nan_to_num(array, nan=0, posinf=0)).save(tmp_path / "f.tif")
    assert torch.equal(read_depth(tmp_path / "f.tif", 1000.0), expected)


def test_depth_errors_name_the_file(tmp_path) -> None:
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "eight.png")
    with pytest.raises(DatasetError, match=r"eight\.png: a depth image must be 16-bit "
                                           r"single-channel \(mode I;16 or I\) or float \(mode "
                                           r"F\); got mode 'L'"):
        read_depth(tmp_path / "eight.png")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(DatasetError, match=r"cube\.npy: a depth array must be H x W; got shape "
                                           r"\(2, 3, 4\)"):
        read_depth(tmp_path / "cube.npy")
    np.save(tmp_path / "ints.npy", np.zeros((2, 3), np.int32))
    with pytest.raises(DatasetError, match=r"ints\.npy: a depth array must hold float metres"):
        read_depth(tmp_path / "ints.npy")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(DatasetError, match=r"bad\.npy: corrupt or unreadable \.npy array"):
        read_depth(tmp_path / "bad.npy")
    with pytest.raises(DatasetError, match=r"gone\.npy: file not found"):
        read_depth(tmp_path / "gone.npy")
    with pytest.raises(ArgumentError, match=r"depth scale must be > 0"):
        read_depth(tmp_path / "eight.png", 0)
