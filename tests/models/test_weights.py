"""Loading local checkpoints: round trip, new heads, clear mismatches, no code execution."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from cnnkit.errors import WeightsError
from cnnkit.models import create
from cnnkit.models.weights import load_weights, read_state_dict, save_weights


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, suffix: str) -> None:
    model = create("resnet18", num_classes=10).eval()
    path = save_weights(model, tmp_path / f"r18{suffix}")
    fresh = create("resnet18", num_classes=10, weights=path).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model(x), fresh(x))


def test_other_class_count_gets_a_new_head_and_a_message(tmp_path: Path, caplog) -> None:
    path = save_weights(create("resnet18", num_classes=1000), tmp_path / "imagenet.pth")
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        model = create("resnet18", num_classes=10, weights=path)
    assert "1000 classes in the checkpoint and 10 in the model; new head fc" in caplog.text
    source = read_state_dict(path)
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"], source["layer4.1.conv2.weight"])
    assert model.fc.weight.shape == (10, 512)


def test_wrong_architecture_lists_the_mismatches(tmp_path: Path) -> None:
    path = save_weights(create("resnet34"), tmp_path / "r34.pth")
    with pytest.raises(WeightsError) as err:
        create("resnet18", weights=path)
    text = str(err.value)
    assert "r34.pth does not fit ResNet" in text
    assert "unexpected in the checkpoint: layer1.2.conv1.weight" in text


def test_shape_mismatch_outside_the_head_is_an_error(tmp_path: Path) -> None:
    path = save_weights(create("resnet18", in_channels=1), tmp_path / "gray.pth")
    with pytest.raises(WeightsError, match=r"conv1.weight \(checkpoint \[64, 1, 7, 7\] vs model \[64, 3, 7, 7\]\)"):
        create("resnet18", weights=path)


def test_wrapped_and_prefixed_state_dicts_are_unwrapped(tmp_path: Path) -> None:
    model = create("resnet18", num_classes=4)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "ddp.pth")
    report = load_weights(create("resnet18", num_classes=4), tmp_path / "ddp.pth")
    assert report.loaded == len(model.state_dict()) and not report.missing


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    torch.save({"weight": Exploit()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="will not unpickle"):
        read_state_dict(tmp_path / "evil.pth")


@pytest.mark.parametrize("name,content,match", [
    ("missing.pth", None, "does not exist"),
    ("weights.npz", b"xx", "unknown weights format '.npz'"),
    ("broken.safetensors", b"not a safetensors file", "not a readable safetensors file"),
    ("truncated.pth", b"PK\x03\x04broken", "not a readable PyTorch checkpoint"),
])
def test_bad_files_give_one_clear_error(tmp_path: Path, name, content, match) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((WeightsError, FileNotFoundError), match=match):
        read_state_dict(path)
