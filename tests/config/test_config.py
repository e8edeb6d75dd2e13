"""Run configuration: YAML + overrides, typed checks, clear errors, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnnkit.config import ConfigError, RunConfig, load_config, save_config
from cnnkit.runs.assemble import build_model
from cnnkit.runs.data import build_batch_transforms, build_transforms

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEMO = Path(__file__).resolve().parents[2] / "src" / "cnnkit" / "demo.yaml"
SHIPPED = {path.stem: path for path in sorted(CONFIGS.glob("*.yaml"))}
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
    with pytest.raises(ConfigError, match=r"train.amp must be str or bool; got 1"):
        load_config(None, ["train.amp=1"])
    with pytest.raises(ConfigError, match="data.kind must be one of idx, folders"):
        load_config(None, ["data.kind=imagenet"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_digits_read_as_numbers_in_a_list_of_strings_say_how_to_quote_them():
    with pytest.raises(ConfigError, match=r"data.holdout must be int or float or a list of str "
                                          r"or null; got \[1\] \(YAML reads unquoted digits as "
                                          r"a number: quote them"):
        load_config(None, ["data.holdout=[0001]"])
    assert load_config(None, ["data.holdout=['0001']"]).data.holdout == ["0001"]
    with pytest.raises(ConfigError, match=r"train.epochs must be int; got 'ten'$"):
        load_config(None, ["train.epochs=ten"])


def test_save_writes_resolved_config_that_loads_back(tmp_path):
    config = load_config(CONFIGS / "camvid.yaml", ["train.epochs=2"])
    save_config(config, tmp_path / "run" / "config.yaml")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["model"]["name"] == "fpn_resnet18"
    assert load_config(tmp_path / "run" / "config.yaml") == config


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_load(name):
    config = load_config(SHIPPED[name])
    assert config.name == name and config.train.run_dir == f"runs/{name}"
    for key in ("train_transforms", "eval_transforms"):
        build_transforms(getattr(config.data, key), key)
    build_batch_transforms(config.data.batch_transforms)
    build_model(config.model)  # the model's name and options are valid
