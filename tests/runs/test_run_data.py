"""A run's data and model from the configuration: transforms, datasets, splits, labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.data import need_data

from cnnkit.config import ConfigError, load_config
from cnnkit.data.datasets import label_space
from cnnkit.data.heatmaps import HeatmapTarget
from cnnkit.data.sample import Sample
from cnnkit.data.transforms import HorizontalFlip, Resize
from cnnkit.runs.assemble import build_model
from cnnkit.runs.data import build_dataset, build_transforms, dataset_split

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEMO = Path(__file__).resolve().parents[2] / "src" / "cnnkit" / "demo.yaml"


def test_build_transforms_by_name_with_params():
    pipeline = build_transforms(["HorizontalFlip", {"Resize": {"size": [20, 30]}},
                                 {"HeatmapTarget": {"stride": 2}}])
    assert [type(t) for t in pipeline.transforms] == [HorizontalFlip, Resize, HeatmapTarget]
    sample = Sample(torch.rand(3, 10, 10), keypoints=torch.tensor([[2.0, 3.0]]))
    out = pipeline(sample, torch.Generator().manual_seed(0))
    assert out.size == (20, 30) and tuple(out.meta["heatmaps"].shape) == (1, 10, 15)
    assert build_transforms([]) is None
    expected = (r"data.train_transforms\[0\]: unknown transform 'Rezise' "
                r"\(did you mean Resize\?\); valid names: Affine, CenterCrop, ColorJitter, ")
    with pytest.raises(ConfigError, match=expected):
        build_transforms([{"Rezise": {"size": 3}}], "data.train_transforms")
    with pytest.raises(ConfigError, match=r"transforms\[0\]: HorizontalFlip: .*unexpected keyword"):
        build_transforms([{"HorizontalFlip": {"prob": 0.5}}])


def test_synthetic_datasets_and_model_build():
    config = load_config(DEMO, ["data.num_samples=8", "data.val_samples=4"])
    train, val = build_dataset(config.data, "train"), build_dataset(config.data, "val")
    assert (len(train), len(val)) == (8, 4)
    assert tuple(train[0].image.shape) == (3, 64, 64)
    assert not torch.equal(train[0].image, val[0].image)  # val comes from another seed
    labels = label_space(train)
    assert labels.label.names == ("circle", "square", "triangle")
    assert labels.mask.names == ("background", "circle", "square", "triangle")
    model = build_model(config.model)
    assert model(train[0].image[None]).shape == (1, 4, 64, 64)
    with pytest.raises(ConfigError, match="data.test_split is not set"):
        build_dataset(config.data, "test")


def test_membrane_split_is_25_5_and_deterministic(data_root):
    root = need_data("membrane")
    config = load_config(CONFIGS / "membrane.yaml", [f"data.root={root}"])
    split = dataset_split(config.data)
    assert (len(split["train"]), len(split["val"])) == (25, 5)
    assert split.parts == dataset_split(config.data).parts
    val = build_dataset(config.data, "val")
    assert len(val) == 5 and tuple(val[0].mask.shape) == (512, 512)


def test_dlc_split_and_camvid_classes(data_root):
    dlc = load_config(CONFIGS / "dlc_openfield.yaml", [f"data.root={need_data('dlc-openfield')}"])
    split = dataset_split(dlc.data)
    assert (len(split["train"]), len(split["val"])) == (110, 6)  # 5 % of 116, rounded
    camvid = load_config(CONFIGS / "camvid.yaml", [f"data.root={need_data('camvid')}"])
    val = build_dataset(camvid.data, "val")
    assert len(val) == 101 and tuple(val[0].image.shape) == (3, 180, 240)
    names = label_space(val).mask.names
    assert len(names) == 11 and "Unlabelled" not in names  # void is ignored, not a class


def test_a_holdout_carves_validation_out_of_the_train_split():
    config = load_config(DEMO, ["data.num_samples=40", "data.holdout=0.25", "data.split_seed=3"])
    train, val = build_dataset(config.data, "train"), build_dataset(config.data, "val")
    assert (len(train), len(val)) == (30, 10)
    split = dataset_split(config.data)
    assert not set(split["train"]) & set(split["val"])
    assert split.parts == dataset_split(config.data).parts  # the same every time
    everything = load_config(DEMO, ["data.num_samples=12", "data.holdout=[]"])
    with pytest.raises(ConfigError, match="data.holdout: holdout names no key prefixes"):
        build_dataset(everything.data, "val")


def test_a_holdout_by_key_prefix_keeps_whole_groups_apart(tmp_path):
    from PIL import Image
    for split in ("train", "val"):
        for name in ("seqA_1", "seqA_2", "seqB_1", "seqC_1"):
            for sub, mode in (("image", "RGB"), ("label", "L")):
                path = tmp_path / split / sub / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new(mode, (8, 8)).save(path)
    config = load_config(DEMO, ["data.kind=segmentation", f"data.root={tmp_path}",
                                "data.num_classes=2", "data.holdout=[seqA]"])
    val = build_dataset(config.data, "val")
    assert sorted(s.meta["path"].split("/")[-1] for s in val) == ["seqA_1.png", "seqA_2.png"]
    assert len(build_dataset(config.data, "train")) == 2


def test_a_cached_holdout_decodes_for_its_datasets_not_for_its_split_file(tmp_path, caplog):
    from PIL import Image
    for name in ("seqA_1", "seqB_1", "seqB_2"):
        for sub, mode in (("image", "RGB"), ("label", "L")):
            path = tmp_path / "train" / sub / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new(mode, (8, 8)).save(path)
    config = load_config(DEMO, ["data.kind=segmentation", f"data.root={tmp_path}",
                                "data.num_classes=2", "data.holdout=[seqA]", "data.cache=true"])
    with caplog.at_level("INFO", logger="cnnkit.data.datasets.memory"):
        assert dataset_split(config.data).parts == {"train": ["seqB_1.png", "seqB_2.png"],
                                                    "val": ["seqA_1.png"]}
        assert not [r for r in caplog.records if "decoded into memory" in r.message]
        val, train = build_dataset(config.data, "val"), build_dataset(config.data, "train")
    decoded = [r.message for r in caplog.records if "decoded into memory" in r.message]
    assert decoded == ["segmentation holdout val part: 1 samples decoded into memory (0 MB of "
                       "images)", "segmentation holdout train part: 2 samples decoded into "
                       "memory (0 MB of images)"]  # each sample once
    assert [s.meta["path"].split("/")[-1] for s in val] == ["seqA_1.png"]
    assert [s.meta["path"].split("/")[-1] for s in train] == ["seqB_1.png", "seqB_2.png"]
    assert label_space(train).mask is not None and train.dataset.keys == dataset_split(
        config.data).parts["train"]
