"""Loaders on the real datasets in the shared data folder (skipped when it is absent)."""

from __future__ import annotations

import pytest
import torch
from helpers.data import need_data

from cnnkit.data.datasets import (DLCKeypoints, IdxDataset, Split, camvid, membrane,
                                  random_split)
from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.data.stats import pixel_counts


def test_fashion_mnist_counts_per_class() -> None:
    root = need_data("fashion-mnist")
    train, test = IdxDataset(root, "train"), IdxDataset(root, "test")  # labels only: fast
    assert len(train) == 60_000 and len(test) == 10_000
    assert torch.bincount(train.labels).tolist() == [6_000] * 10
    assert torch.bincount(test.labels).tolist() == [1_000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


def test_fashion_mnist_sample() -> None:
    sample = IdxDataset(need_data("fashion-mnist"), "test")[0]
    assert sample.image.shape == (1, 28, 28) and sample.image.dtype == torch.float32
    assert 0.0 <= float(sample.image.min()) and float(sample.image.max()) <= 1.0
    assert sample.label == 9  # the first t10k label of Fashion-MNIST is an ankle boot


def test_camvid_train_pairs_labels_and_pixel_fractions() -> None:
    root = need_data("camvid")
    train = camvid(root, "train")
    assert len(train) == 367 and len(camvid(root, "val")) == 101
    counts = pixel_counts(train, 12)
    assert counts["ignored"] == 0
    assert int((counts["counts"] > 0).sum()) == 12  # labels 0..11, 11 = void
    fractions = (counts["counts"].double() / counts["counts"].sum()).tolist()
    # the figures of camvid/SOURCE.md ("measured pixel fractions, train annot"), 3 decimals
    # (Sky is 0.16845 here, which SOURCE.md gives as .169: hence abs=1e-3, not rounding)
    expected = [.169, .233, .010, .317, .045, .097, .012, .011, .059, .006, .003, .040]
    assert fractions == pytest.approx(expected, abs=1e-3)
    assert counts["counts"].tolist() == [10682767, 14750079, 623349, 20076880, 2845085, 6166762,
                                         743859, 714595, 3719877, 405385, 184967, 2503995]


def test_camvid_void_to_ignore() -> None:
    root = need_data("camvid")
    raw, ignored = camvid(root, "train")[0], camvid(root, "train", void_to_ignore=True)[0]
    assert raw.image.shape == (3, 360, 480) and raw.mask.shape == (360, 480)
    void = raw.mask == 11
    assert bool(void.any())
    assert bool((ignored.mask[void] == IGNORE_INDEX).all())
    assert torch.equal(ignored.mask[~void], raw.mask[~void])
    assert camvid(root, "train", void_to_ignore=True).num_classes == 11


def test_membrane_pairs_and_split(tmp_path) -> None:
    data = membrane(need_data("membrane"))
    assert len(data) == 30
    sample = data[0]
    assert sample.image.shape == (1, 512, 512)
    assert sorted(torch.unique(sample.mask).tolist()) == [0, 1]
    split = random_split(data.keys, val=5, seed=0)
    assert len(split["train"]) == 25 and len(split["val"]) == 5
    assert split["val"] == ["20.png", "21.png", "3.png", "7.png", "9.png"]  # seed 0, fixed
    split.save(tmp_path / "membrane_split.json")
    again = Split.load(tmp_path / "membrane_split.json")
    assert again.parts == split.parts and again.seed == 0
    parts = again.subsets(data)
    assert len(parts["train"]) == 25 and parts["val"][0].meta["path"].endswith("/20.png")


def test_dlc_openfield_frames_and_coordinates() -> None:
    root = need_data("dlc-openfield")
    data = DLCKeypoints(root / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv")
    assert len(data) == 116
    assert data.skeleton.names == ("snout", "leftear", "rightear", "tailbase")
    assert data.skeleton.flip_pairs == ((1, 2),)
    sample = data[0]
    assert sample.image.shape == (3, 480, 640)
    assert sample.meta["path"].endswith("img0000.png")
    # row img0000.png of CollectedData_Pranav.csv
    expected = torch.tensor([[21.521, 265.428], [33.819, 265.941], [19.984, 250.056],
                             [87.11, 152.698]])
    assert torch.allclose(sample.keypoints, expected, atol=1e-4)
    assert bool(sample.visible.all())
