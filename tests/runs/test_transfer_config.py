"""Transfer learning from a configuration: start from a checkpoint with a new head, freeze
groups (their batch-norm statistics included), or fit a linear probe on one stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnkit.config import load_config
from cnnkit.models import LinearProbe
from cnnkit.errors import CnnkitError
from cnnkit.models.weights import read_state_dict
from cnnkit.runs import train

SOURCE = {"name": "shapes", "data": {"kind": "synthetic", "num_samples": 16, "val_samples": 8,
                                     "size": 32, "batch_size": 8, "workers": 0},
          "model": {"name": "vgg_small_s", "num_classes": 3, "in_channels": 3},
          "task": {"kind": "classification"},
          "optim": {"name": "sgd", "lr": 0.05},
          "train": {"epochs": 1}}


def config_file(tmp_path: Path, name: str, **sections) -> Path:
    import yaml

    merged = {key: {**value, **sections.get(key, {})} if isinstance(value, dict) else value
              for key, value in SOURCE.items()}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merged))
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pretrained")
    config = load_config(config_file(tmp, "source"), [f"train.run_dir={tmp / 'run'}"])
    train(config, quiet=True)
    return tmp / "run" / "last.pt"


def test_linear_probe_from_config_trains_only_its_classifier(pretrained: Path,
                                                            tmp_path: Path) -> None:
    run_dir = tmp_path / "probe"
    config = load_config(config_file(tmp_path, "probe"), [
        f"model.weights={pretrained}", "model.probe_stage=1",
        f"train.run_dir={run_dir}"])
    result = train(config, quiet=True)
    before = read_state_dict(pretrained)
    after = read_state_dict(run_dir / "last.pt")
    backbone = [k for k in after if k.startswith("features.")]
    assert backbone and all(torch.equal(after[k], before[k.split(".", 2)[2]]) for k in backbone)
    assert after["fc.weight"].shape == (3, 64)  # stage 1 of vgg_small_s has 64 channels
    assert "accuracy" in result["metrics"]


def test_frozen_groups_keep_weights_and_batch_norm_statistics(pretrained: Path,
                                                              tmp_path: Path) -> None:
    run_dir = tmp_path / "frozen"
    config = load_config(config_file(tmp_path, "frozen"), [
        f"model.weights={pretrained}", "optim.freeze=[stages]",
        "optim.lr_mult={head: 1.0}", f"train.run_dir={run_dir}"])
    train(config, quiet=True)
    before, after = read_state_dict(pretrained), read_state_dict(run_dir / "last.pt")
    stage_keys = [k for k in after if k.startswith("features.")]
    assert any(k.endswith("running_mean") for k in stage_keys)
    assert all(torch.equal(after[k], before[k]) for k in stage_keys)
    assert not torch.equal(after["classifier.5.weight"], before["classifier.5.weight"])


def test_probe_and_freeze_mistakes_are_one_line(tmp_path: Path) -> None:
    from cnnkit.models import create

    with pytest.raises(CnnkitError, match="optim.freeze: .backbone_typo. names no parameter group"):
        config = load_config(config_file(tmp_path, "bad"), [
            "optim.freeze=[backbone_typo]", f"train.run_dir={tmp_path / 'bad'}"])
        train(config, quiet=True)
    with pytest.raises(CnnkitError, match="model.num_classes=3"):
        config = load_config(config_file(tmp_path, "bad"), [
            "model.num_classes=4", f"train.run_dir={tmp_path / 'bad4'}"])
        train(config, quiet=True)
    with pytest.raises((CnnkitError, ValueError, IndexError)):
        LinearProbe(create("vgg_small_s", num_classes=3), 3, stage=7)
