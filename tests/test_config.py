"""Run configuration: YAML + overrides, typed checks, clear errors, builders, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import need_data

from cnnkit.config import (ConfigError, RunConfig, build_dataset, build_model, build_transforms,
                           class_names, dataset_split, load_config)
from cnnkit.data.heatmaps import HeatmapTarget
from cnnkit.data.sample import Sample
from cnnkit.data.transforms import HorizontalFlip, Resize

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEMO = Path(__file__).resolve().parents[1] / "src" / "cnnkit" / "demo.yaml"
SHIPPED = {name: CONFIGS / f"{name}.yaml" for name in ("fashion_mnist", "camvid", "membrane",
                                                       "dlc_openfield")}
SHIPPED["demo_shapes"] = DEMO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_give_typed_sections(tmp_path):
    path = write(tmp_path, "train: {epochs: 4}\noptim: {lr: 1e-3}\nmodel: {name: lenet5}\n")
    config = load_config(path, ["train.epochs=3", "model.options.output_stride=8",
                                "train.amp=bf16", "data.size=[48, 64]", "train.grad_clip=null"])
    assert isinstance(config, RunConfig)
    assert config.train.epochs == 3 and config.train.amp == "bf16"
    # YAML 1.1 reads 1e-3 (no dot) as text: a float field converts it
    assert config.optim.lr == 0.001 and isinstance(config.optim.lr, float)
    assert config.model.options == {"output_stride": 8}
    assert config.data.size == [48, 64] and config.train.grad_clip is None
    assert config.model.name == "lenet5" and config.data.batch_size == 32  # defaults kept


def test_unknown_key_names_file_key_and_valid_keys(tmp_path):
    path = write(tmp_path, "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: unknown key 'optim.lrr'; valid keys in optim: name, lr,")
    with pytest.raises(ConfigError, match="override 'trian.epochs=3': unknown key 'trian'; "
                                          "valid keys at the top level: name, data, model"):
        load_config(None, ["trian.epochs=3"])


def test_type_errors_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"run.yaml: train.epochs must be int; got 'ten'"):
        load_config(write(tmp_path, "train: {epochs: ten}\n"))
    with pytest.raises(ConfigError, match=r"train.amp must be str; got 1"):
        load_config(None, ["train.amp=1"])
    with pytest.raises(ConfigError, match="data.kind must be one of idx, folders"):
        load_config(None, ["data.kind=imagenet"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_save_writes_resolved_config_that_loads_back(tmp_path):
    config = load_config(CONFIGS / "camvid.yaml", ["train.epochs=2"])
    config.save(str(tmp_path / "run" / "config.yaml"))
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["model"]["name"] == "fpn_resnet18"
    assert load_config(tmp_path / "run" / "config.yaml") == config


def test_build_transforms_by_name_with_params():
    pipeline = build_transforms(["HorizontalFlip", {"Resize": {"size": [20, 30]}},
                                 {"HeatmapTarget": {"stride": 2}}])
    assert [type(t) for t in pipeline.transforms] == [HorizontalFlip, Resize, HeatmapTarget]
    sample = Sample(torch.rand(3, 10, 10), keypoints=torch.tensor([[2.0, 3.0]]))
    out = pipeline(sample, torch.Generator().manual_seed(0))
    assert out.size == (20, 30) and tuple(out.meta["heatmaps"].shape) == (1, 10, 15)
    assert build_transforms([]) is None
    expected = (r"data.train_transforms\[0\]: unknown transform 'Rezise' "
                r"\(did you mean Resize\?\); valid names: Resize")
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
    assert class_names(train, "classification") == ["circle", "square", "triangle"]
    assert class_names(train, "segmentation") == ["background", "circle", "square", "triangle"]
    model = build_model(config.model)
    assert model(train[0].image[None]).shape == (1, 4, 64, 64)
    with pytest.raises(ConfigError, match="data.test_split is not set"):
        build_dataset(config.data, "test")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_load(name):
    config = load_config(SHIPPED[name])
    assert config.name == name and config.train.run_dir == f"runs/{name}"
    for key in ("train_transforms", "eval_transforms"):
        build_transforms(getattr(config.data, key), key)


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
    names = class_names(val, "segmentation")
    assert len(names) == 11 and "Unlabelled" not in names  # void is ignored, not a class
