"""DenseFolders (NYU-style image/depth/normals/mask/valid folders), its errors, the
dense-folders catalog kind and the depth statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.datasets import (ClassList, DatasetError, DenseFolders, read_normals,
                                  read_valid)
from cnnkit.data.datasets.catalog import DatasetOptions, open_split
from cnnkit.data.stats import dataset_stats, depth_stats
from cnnkit.errors import ArgumentError

H, W = 4, 6
UP = np.array([0.0, -0.6, -0.8])  # a unit normal


def save(path, array, mode=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def encode(normals: np.ndarray) -> np.ndarray:
    """H x W x 3 unit normals -> 8-bit RGB (rgb = (n + 1) * 255 / 2)."""
    return np.round((normals + 1) * 127.5).astype(np.uint8)


def make_folder(root, stems=("a", "b"), mask=True, valid=True) -> None:
    rng = np.random.default_rng(0)
    for k, stem in enumerate(stems):
        save(root / "image" / f"{stem}.png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        depth = np.full((H, W), 1500 + 100 * k, dtype=np.uint16)
        depth[0, 0] = 0  # a sensor hole
        save(root / "depth" / f"{stem}.png", depth)
        normals = encode(np.broadcast_to(UP, (H, W, 3)).copy())
        normals[1, 1] = 0  # black: unknown
        save(root / "normals" / f"{stem}.png", normals)
        if mask:
            save(root / "mask" / f"{stem}.png", (np.arange(H * W) % 3).reshape(H, W).astype(np.uint8))
        if valid:
            keep = np.full((H, W), 255, np.uint8)
            keep[3, 5] = 0
            save(root / "valid" / f"{stem}.png", keep)


def test_reads_every_target(tmp_path) -> None:
    make_folder(tmp_path)
    data = DenseFolders(tmp_path, classes=ClassList(("x", "y", "z")))
    assert len(data) == 2 and data.keys == ["a.png", "b.png"] and data.image_size(1) == (H, W)
    assert data.label_space.mask.names == ("x", "y", "z") and data.has_masks
    s = data[1]
    assert s.image.shape == (3, H, W) and s.depth.dtype == torch.float32
    assert float(s.depth[2, 2]) == pytest.approx(1.6) and float(s.depth[0, 0]) == 0
    assert torch.allclose(s.normals[:, 2, 2], torch.tensor(UP, dtype=torch.float32), atol=0.01)
    assert torch.allclose(s.normals.norm(dim=0)[s.valid], torch.ones(()), atol=1e-5)
    assert s.mask.tolist()[0][:3] == [0, 1, 2]
    unknown = {(0, 0), (1, 1), (3, 5)}  # depth hole, black normal, valid file
    assert {tuple(p) for p in (~s.valid).nonzero().tolist()} == unknown
    assert float(s.depth[3, 5]) == 0 and bool((s.normals[:, 3, 5] == 0).all())
    assert float(s.depth[1, 1]) > 0  # depth is kept where only the normal is unknown
    assert s.meta["depth_path"].endswith("depth/b.png")


def test_npy_targets_and_normals_sign(tmp_path) -> None:
    save(tmp_path / "image" / "a.jpg", np.zeros((H, W, 3), np.uint8))
    save(tmp_path / "image" / "b.jpg", np.zeros((H, W, 3), np.uint8))
    (tmp_path / "depth").mkdir()
    (tmp_path / "normals").mkdir()
    np.save(tmp_path / "depth" / "a.npy", np.full((H, W), 2.5, np.float32))
    np.save(tmp_path / "depth" / "b.npy", np.full((H, W), np.nan, np.float32))
    gl = np.broadcast_to(UP * [1, -1, -1], (H, W, 3)).astype(np.float32)  # y up, z backward
    np.save(tmp_path / "normals" / "a.npy", gl)
    np.save(tmp_path / "normals" / "b.npy", np.ascontiguousarray(gl.transpose(2, 0, 1)) * 2)
    data = DenseFolders(tmp_path, normals_sign=(1, -1, -1))
    a, b = data[0], data[1]
    assert torch.allclose(a.depth, torch.full((H, W), 2.5)) and bool(a.valid.all())
    assert torch.allclose(a.normals[:, 0, 0], torch.tensor(UP, dtype=torch.float32))
    assert torch.allclose(b.normals, a.normals)  # 3 x H x W, renormalised
    assert not bool(b.valid.any()) and data.label_space.mask is None


def test_readers(tmp_path) -> None:
    save(tmp_path / "n.png", np.array([[[128, 128, 128], [255, 128, 128]]], np.uint8))
    normals, known = read_normals(tmp_path / "n.png")
    assert known.tolist() == [[False, True]]
    assert torch.allclose(normals[:, 0, 1], torch.tensor([1.0, 0.0, 0.0]), atol=0.01)
    save(tmp_path / "v.png", np.array([[0, 255]], np.uint8))
    assert read_valid(tmp_path / "v.png").tolist() == [[False, True]]
    save(tmp_path / "one.png", np.array([[0, 1]], bool))
    assert read_valid(tmp_path / "one.png").tolist() == [[False, True]]


def test_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"nowhere: folder not found"):
        DenseFolders(tmp_path / "nowhere")
    save(tmp_path / "image" / "a.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(DatasetError, match=r": no depth or normals folder \(looked for depth, "):
        DenseFolders(tmp_path)
    save(tmp_path / "depth" / "b.png", np.zeros((H, W), np.uint16))
    with pytest.raises(DatasetError, match=r"image/a\.png: missing pair: no depth file named "
                                           r"a\.\* in .*depth \(1 image\(s\) without one\)"):
        DenseFolders(tmp_path)
    save(tmp_path / "depth" / "a.png", np.zeros((H + 1, W), np.uint16))
    with pytest.raises(DatasetError, match=r"depth/b\.png: missing pair: no image named b\.\*"):
        DenseFolders(tmp_path)
    (tmp_path / "depth" / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"depth/a\.png: depth is 6 x 5 \(W x H\) but its "
                                           r"image a\.png is 6 x 4"):
        DenseFolders(tmp_path)[0]
    save(tmp_path / "depth" / "a.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError, match=r"depth/a\.png: a depth image must be 16-bit"):
        DenseFolders(tmp_path)[0]
    np.save(tmp_path / "depth" / "a.npy", np.zeros((H, W), np.float32))
    with pytest.raises(DatasetError, match=r"depth/a\.(png|npy): two depth files named a\.\*"):
        DenseFolders(tmp_path)
    (tmp_path / "depth" / "a.png").unlink()
    save(tmp_path / "normals" / "a.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError, match=r"normals/a\.png: a normals image must be 8-bit RGB"):
        DenseFolders(tmp_path)[0]
    save(tmp_path / "normals" / "a.png", np.zeros((H, W, 3), np.uint8))
    save(tmp_path / "valid" / "a.png", np.full((H, W), 7, np.uint8))
    with pytest.raises(DatasetError, match=r"valid/a\.png: a valid mask holds 0 \(unknown\) and "
                                           r"255 \(known\); got values \[7\]"):
        DenseFolders(tmp_path)[0]
    save(tmp_path / "mask" / "a.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError, match=r"mask: a mask folder needs its classes"):
        DenseFolders(tmp_path)
    with pytest.raises(ArgumentError, match=r"depth_scale must be > 0"):
        DenseFolders(tmp_path, depth_scale=0, classes=ClassList(("x",)))
    with pytest.raises(ArgumentError, match=r"normals_sign must be three of 1 / -1"):
        DenseFolders(tmp_path, normals_sign=(1, 0, 1), classes=ClassList(("x",)))


def test_catalog_kind_and_statistics(tmp_path) -> None:
    make_folder(tmp_path / "train", stems=("a", "b", "c"))
    make_folder(tmp_path / "val", stems=("d",), mask=False, valid=False)
    options = DatasetOptions(num_classes=3, depth_scale=500.0)
    train = open_split("dense-folders", tmp_path, "train", options)
    val = open_split("dense-folders", tmp_path, "val", options)
    assert (len(train), len(val)) == (3, 1) and not val.has_masks
    assert float(train[0].depth[1, 1]) == pytest.approx(3.0)  # 1500 / 500
    stats = dataset_stats(train, with_mean_std=False)
    assert stats["kind"] == "segmentation" and stats["num_classes"] == 3
    assert stats["depth"] == {"samples": 3, "valid_fraction": round(21 / 24, 6), "min": 3.0,
                              "max": 3.4, "mean": 3.2}
    val_stats = dataset_stats(val, with_mean_std=False)
    assert val_stats["kind"] == "dense" and val_stats["depth"]["valid_fraction"] == round(22 / 24, 6)
    assert depth_stats(train, max_samples=1)["samples"] == 1
