"""A trained run is a portable artifact: moved, with its training data deleted, it predicts,
exports and evaluates (on another data root) exactly as before; ``cnnkit.load_run`` predicts on
paths, PIL images, numpy arrays and tensors alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

import cnnkit
from cnnkit.cli import cli
from cnnkit.data.synthetic import SyntheticShapes
from cnnkit.runs import InferenceSpec, RunFolder
from cnnkit.viz import to_pil

CONFIG = {
    "name": "portable",
    "data": {"kind": "segmentation", "num_classes": 4, "train_split": "train",
             "val_split": "val", "batch_size": 4, "workers": 0,
             "eval_transforms": [{"Resize": {"size": [32, 32]}}],
             "train_transforms": [{"Resize": {"size": [32, 32]}}]},
    "model": {"name": "unet_padded", "num_classes": 4, "in_channels": 3,
              "options": {"base_width": 4, "depth": 2, "batch_norm": True}},
    "task": {"kind": "segmentation"},
    "optim": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
    "train": {"epochs": 1, "seed": 0},
}


def write_folder(root: Path, count: int, seed: int) -> None:
    """Images (40 x 48, so the eval transforms resize them) and index masks, as PNG files."""
    shapes = SyntheticShapes(count, size=(40, 48), seed=seed)
    for sub in ("image", "label"):
        (root / sub).mkdir(parents=True)
    for i in range(count):
        sample = shapes[i]
        to_pil(sample.image).save(root / "image" / f"{i:03d}.png")
        Image.fromarray(sample.mask.numpy().astype(np.uint8)).save(root / "label" / f"{i:03d}.png")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("portable")
    data = tmp / "data"
    write_folder(data / "train", 8, seed=1)
    write_folder(data / "val", 4, seed=2)
    config = {**CONFIG, "data": {**CONFIG["data"], "root": str(data)},
              "train": {**CONFIG["train"], "run_dir": str(tmp / "run")}}
    (tmp / "run.yaml").write_text(yaml.safe_dump(config))
    invoke("--quiet", "train", str(tmp / "run.yaml"))
    images = []
    for i in range(2):
        path = tmp / f"new_{i}.png"
        shutil.copy(data / "val" / "image" / f"{i:03d}.png", path)
        images.append(path)
    return {"tmp": tmp, "data": data, "run": tmp / "run", "images": images}


def outputs(run_dir: Path, images: list[Path], work: Path, data_root: Path) -> dict:
    """What predict, export and eval give for the run at ``run_dir``."""
    invoke("predict", str(run_dir), *map(str, images), "--out", str(work / "pred"))
    masks = [np.asarray(Image.open(work / "pred" / f"{p.stem}_mask.png")) for p in images]
    records = json.loads((work / "pred" / "predictions.json").read_text())
    invoke("export", str(run_dir), "--onnx", str(work / "model.onnx"))
    invoke("eval", str(run_dir), "--data-root", str(data_root))
    figures = json.loads((run_dir / "eval.json").read_text())["metrics"]
    return {"masks": masks, "records": [{k: v for k, v in r.items() if k != "image"}
                                        for r in records],
            "onnx": onnx_outputs(work / "model.onnx"), "metrics": figures}


def onnx_outputs(path: Path) -> np.ndarray:
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def test_moved_run_without_its_data_predicts_exports_and_evaluates_the_same(trained) -> None:
    tmp = trained["tmp"]
    before = outputs(trained["run"], trained["images"], tmp / "before", trained["data"])
    other_root = tmp / "elsewhere" / "data"
    shutil.copytree(trained["data"], other_root)
    moved = tmp / "moved" / "run"
    moved.parent.mkdir()
    shutil.move(str(trained["run"]), moved)
    shutil.rmtree(trained["data"])  # the training data is gone
    after = outputs(moved, trained["images"], tmp / "after", other_root)
    assert all(np.array_equal(a, b) for a, b in zip(before["masks"], after["masks"]))
    assert before["masks"][0].shape == (40, 48)  # masks at the original image size
    assert before["records"] == after["records"]
    assert np.array_equal(before["onnx"], after["onnx"])
    assert before["metrics"] == after["metrics"]


def test_load_run_predicts_on_paths_images_arrays_and_tensors(trained) -> None:
    run = cnnkit.load_run(trained["run"] if trained["run"].exists()
                          else trained["tmp"] / "moved" / "run")
    path = trained["images"][0]
    picture = Image.open(path)
    array = np.array(picture.convert("RGB"))
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    results = [run.predict(x)[0]["mask"] for x in (path, picture, array, tensor)]
    assert all(torch.equal(results[0], r) for r in results[1:])
    assert results[0].shape == (40, 48)
    assert run.meta["task"] == "segmentation" and run.meta["input"]["size"] == [32, 32]
    assert run.meta["class_names"] == ["0", "1", "2", "3"]
    assert len(run.predict([path, picture])) == 2


def test_the_spec_is_in_the_folder_and_in_every_checkpoint(trained) -> None:
    run_dir = trained["run"] if trained["run"].exists() else trained["tmp"] / "moved" / "run"
    folder = RunFolder(run_dir)
    spec = InferenceSpec.load(folder.spec)
    state = torch.load(folder.best, map_location="cpu", weights_only=True)
    assert InferenceSpec.from_dict(state["spec"]) == spec
    assert spec.kind == "segmentation" and spec.model["name"] == "unet_padded"
    assert spec.transforms == [{"Resize": {"size": [32, 32]}}]
    assert spec.versions["torch"] == torch.__version__
    alone = trained["tmp"] / "best_alone.pt"  # a checkpoint file is enough by itself
    shutil.copy(folder.best, alone)
    assert cnnkit.load_run(alone).spec == spec
