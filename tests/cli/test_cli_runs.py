"""The training commands end to end on tiny synthetic runs: train, eval, predict, sanity,
export, resume, and one-line errors for user mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cnnkit.cli import cli

DEMO = Path(__file__).resolve().parents[2] / "src" / "cnnkit" / "demo.yaml"
TINY = ["data.num_samples=16", "data.val_samples=8", "data.size=32", "data.batch_size=8",
        "model.options.base_width=4", "model.options.depth=2", "train.epochs=2"]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    run("train", str(DEMO), *TINY, f"train.run_dir={run_dir}", "--quiet")
    return run_dir


def test_train_writes_the_run_folder(trained: Path) -> None:
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "eval.json", "report.html",
                 "curves.png", "confusion.png"):
        assert (trained / name).is_file(), name
    assert len(list((trained / "samples").glob("*.png"))) == 8
    record = json.loads((trained / "eval.json").read_text())
    assert 0.0 <= record["metrics"]["miou"] <= 1.0
    assert record["class_names"] == ["background", "circle", "square", "triangle"]
    assert len(record["confusion"]) == 4
    html = (trained / "report.html").read_text()
    assert "curves.png" in html and "samples/sample_00.png" in html


def test_eval_reproduces_the_recorded_metrics(trained: Path) -> None:
    before = json.loads((trained / "eval.json").read_text())["metrics"]
    output = run("eval", str(trained))
    after = json.loads((trained / "eval.json").read_text())["metrics"]
    assert after == before and "miou" in output


def test_eval_with_flip_tta_writes_its_own_record(trained: Path) -> None:
    before = (trained / "eval.json").read_text()
    output = run("eval", str(trained), "--tta", "flip")
    record = json.loads((trained / "eval_flip.json").read_text())
    assert record["tta"] == "flip" and 0.0 <= record["metrics"]["miou"] <= 1.0
    assert (trained / "eval.json").read_text() == before and "eval_flip.json" in output


def test_eval_with_d4_tta_averages_eight_views(trained: Path) -> None:
    output = run("eval", str(trained), "--tta", "d4")
    record = json.loads((trained / "eval_d4.json").read_text())
    assert record["tta"] == "d4" and 0.0 <= record["metrics"]["miou"] <= 1.0
    assert "eval_d4.json" in output


def test_predict_writes_masks_at_the_image_size(trained: Path, tmp_path: Path) -> None:
    image = tmp_path / "shape.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
    run("predict", str(trained), str(image), "--out", str(tmp_path / "out"))
    mask = Image.open(tmp_path / "out" / "shape_mask.png")
    assert mask.size == (32, 32)
    assert (tmp_path / "out" / "shape_overlay.png").is_file()
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert records[0]["mask"] == "shape_mask.png"


def test_resume_continues_a_finished_run_to_more_epochs(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    run("train", str(DEMO), *TINY, "train.epochs=3", f"train.run_dir={copy}", "--quiet",
        "--resume", str(copy / "last.pt"))
    epochs = {line.split(",")[0] for line in (copy / "metrics.csv").read_text().splitlines()[1:]}
    assert "2" in epochs  # the third epoch (0-based 2) was trained after the resume


def test_training_into_an_existing_run_is_refused(trained: Path) -> None:
    result = CliRunner().invoke(cli, ["train", str(DEMO), *TINY, f"train.run_dir={trained}"])
    assert result.exit_code != 0


def test_sanity_overfits_one_batch() -> None:
    output = run("sanity", str(DEMO), *TINY, "model.options.base_width=16", "--steps", "300",
                 "--lr", "0.01")
    assert "reached near zero" in output


def test_export_to_onnx(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    output = run("export", str(trained), "--onnx", str(tmp_path / "model.onnx"))
    assert "max |difference|" in output and (tmp_path / "model.onnx").is_file()


@pytest.mark.parametrize("args,message", [
    (["train", "missing.yaml"], "missing.yaml"),
    (["train", str(DEMO), "optim.lrr=3"], "unknown key 'optim.lrr'"),
    (["train", str(DEMO), "model.name=resnet05"], "unknown model 'resnet05'"),
])
def test_user_mistakes_are_one_line(args, message, capfd) -> None:
    from cnnkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capfd.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_viz_writes_what_the_network_sees(trained: Path, tmp_path: Path) -> None:
    image = tmp_path / "shape.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
    output = run("viz", str(trained), str(image), "--what", "filters", "--what", "erf",
                 "--what", "activations", "--layer", "encoder.1", "--out", str(tmp_path / "v"))
    written = sorted(p.name for p in (tmp_path / "v").glob("*.png"))
    assert written == ["activations_encoder_1.png", "erf.png", "filters.png"]
    assert all(str(tmp_path / "v") in line for line in output.splitlines())
