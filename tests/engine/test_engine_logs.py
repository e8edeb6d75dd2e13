"""CSV and TensorBoard event files (read back with TensorBoard's own reader), progress, early
stopping."""

from __future__ import annotations

import csv
import io
import logging

import pytest
import torch
from helpers.engine import CountMetric, TinyNet, TinyTask, shuffled_loader, tiny_data

from cnnkit.engine import Trainer, build_optimizer, overfit_one_batch
from cnnkit.engine.logs import RunLogger
from cnnkit.engine.progress import Progress, format_duration
from cnnkit.runs import RunFolder


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files under ``folder``, read by TensorBoard itself."""
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator").EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def run(tmp_path, *, epochs: int = 3, early_stopping: int | None = None,
        quiet: bool = True, eval_every: int = 1) -> Trainer:
    torch.manual_seed(0)
    model = TinyNet()
    trainer = Trainer(model, TinyTask(), shuffled_loader(tiny_data()),
                      shuffled_loader(tiny_data(16, seed=5)),
                      optimizer=build_optimizer(model, "sgd", lr=0.05), epochs=epochs,
                      files=RunFolder(tmp_path), device="cpu", log_every=2,
                      early_stopping=early_stopping, quiet=quiet, eval_every=eval_every,
                      progress_stream=io.StringIO())
    trainer.fit()
    return trainer


def test_trainer_writes_csv_and_tensorboard_that_agree(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        trainer = run(tmp_path, quiet=False)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "step", "split", "name", "value"]
    train_loss = [(int(r["step"]), float(r["value"])) for r in rows
                  if r["split"] == "train" and r["name"] == "loss"]
    assert [s for s, _ in train_loss] == [2, 4, 5, 6, 8, 10, 12, 14, 15]  # every 2 + epoch ends
    val = [r for r in rows if r["split"] == "val" and r["name"] == "accuracy"]
    assert [(int(r["epoch"]), int(r["step"])) for r in val] == [(1, 5), (2, 10), (3, 15)]
    assert [float(r["value"]) for r in val] == [h["val_accuracy"] for h in trainer.history]
    names = {r["name"] for r in rows if r["split"] == "train"}
    assert names == {"loss", "lr", "images_per_s", "ce"}
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    tb_loss = scalars["train/loss"]
    assert [s for s, _ in tb_loss] == [s for s, _ in train_loss]
    assert [v for _, v in tb_loss] == pytest.approx([v for _, v in train_loss], rel=1e-6)
    tb_val = [v for _, v in scalars["val/accuracy"]]
    assert tb_val == pytest.approx([float(r["value"]) for r in val])
    lines = [r.getMessage() for r in caplog.records]  # not a terminal: one log line per update
    assert lines[0].startswith("precision: amp=off -> float32 on cpu: ")
    assert lines[1].startswith("epoch 1/3 batch 2/5 loss ") and "img/s ETA" in lines[1]
    assert any(line.startswith("epoch 3/3 train_loss") for line in lines)


def test_metrics_header_is_on_disk_before_any_figure(tmp_path) -> None:
    logger = RunLogger(tmp_path / "metrics.csv", None)
    assert (tmp_path / "metrics.csv").read_text() == "epoch,step,split,name,value\n"
    logger.log("train", {"loss": 0.5}, epoch=0, step=3)
    logger.log("train", {"loss": 0.25}, epoch=0, step=6)
    logger.drop_after(3)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "epoch,step,split,name,value", "0,3,train,loss,0.5"]
    logger.close()


def test_early_stopping_after_patience_without_improvement(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(CountMetric, "compute", lambda self: {"accuracy": 0.5})
    trainer = run(tmp_path, epochs=10, early_stopping=2)
    assert trainer.stop_reason == "early stopping"
    assert len(trainer.history) == 3 and trainer.best_epoch == 1
    assert (tmp_path / "best.pt").is_file()



def test_validation_every_other_epoch_and_after_the_last(tmp_path) -> None:
    trainer = run(tmp_path, epochs=5, eval_every=2)
    assert [("val_accuracy" in h) for h in trainer.history] == [False, True, False, True, True]
    with open(tmp_path / "metrics.csv", newline="") as handle:
        epochs = {int(r["epoch"]) for r in csv.DictReader(handle) if r["split"] == "val"}
    assert epochs == {2, 4, 5}


def test_a_nan_primary_metric_is_never_the_best(tmp_path, monkeypatch) -> None:
    figures = iter([float("nan"), 0.25, float("nan"), 0.5])  # e.g. AP before any detection
    monkeypatch.setattr(CountMetric, "compute", lambda self: {"accuracy": next(figures)})
    trainer = run(tmp_path, epochs=4)
    assert trainer.best == 0.5 and trainer.best_epoch == 4
    assert trainer.evals_without_improvement == 0

def test_progress_shows_a_live_bar_on_a_terminal(caplog) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(100, stream=stream)
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        progress.update(epoch=0, epochs=2, batch=10, batches=50, step=10, loss=1.0, lr=0.1,
                        images_per_s=1234.0)
        progress.message("done")
    progress.close()
    text = stream.getvalue()
    assert "epoch 1/2" in text and "10/100" in text and "loss 1.0000 lr 0.1 1234 img/s" in text
    assert [r.getMessage() for r in caplog.records] == ["done"]  # the bar is not a log line
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05"


def test_overfit_one_batch_reaches_near_zero() -> None:
    images, labels = tiny_data(4).tensors
    result = overfit_one_batch(TinyNet(), TinyTask(), (images, labels), steps=300, lr=0.05)
    assert result["reached"] and result["final_loss"] < 0.01 * result["initial_loss"]
    assert result["initial_loss"] > 1.0 and result["steps"] < 300
    stuck = overfit_one_batch(TinyNet(), TinyTask(), (images, labels), steps=20, lr=1e-7)
    assert not stuck["reached"] and stuck["steps"] == 20
