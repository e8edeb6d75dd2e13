"""CSV and TensorBoard event files (read back with our own reader), progress, early stopping."""

from __future__ import annotations

import csv
import io
import struct

import pytest
import torch

from cnnkit.engine import Trainer, build_optimizer, overfit_one_batch, read_events
from cnnkit.engine.logs import (EventWriter, crc32c, encode_event, frame_record, masked_crc32c,
                                read_records)
from cnnkit.engine.progress import Progress, format_duration
from cnnkit.errors import CnnkitError
from test_engine_support import CountMetric, TinyNet, TinyTask, shuffled_loader, tiny_data


def test_crc32c_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_event_encoding_by_hand() -> None:
    data = encode_event(1.5, 3, scalars={"a": 2.0})
    # Event: wall_time (field 1, fixed64), step (2, varint), summary (5, 10 bytes) = Summary:
    # value (1, 8 bytes) = Value: tag (1, "a"), simple_value (2, fixed32)
    expected = (b"\x09" + struct.pack("<d", 1.5) + b"\x10\x03"
                + b"\x2a\x0a" + b"\x0a\x08" + b"\x0a\x01a" + b"\x15" + struct.pack("<f", 2.0))
    assert data == expected
    record = frame_record(data)
    assert struct.unpack("<Q", record[:8])[0] == len(data) and record[12:-4] == data


def test_event_file_round_trip_and_crc_check(tmp_path) -> None:
    writer = EventWriter(tmp_path)
    writer.scalars(10, {"train/loss": 0.25, "train/lr": 0.1})
    writer.scalars(300, {"val/accuracy": 0.875})
    writer.close()
    events = read_events(writer.path)
    assert events[0]["file_version"] == "brain.Event:2"
    assert [(e["step"], e["scalars"]) for e in events[1:]] == [
        (10, {"train/loss": 0.25, "train/lr": pytest.approx(0.1)}), (300, {"val/accuracy": 0.875})]
    raw = bytearray(writer.path.read_bytes())
    raw[-6] ^= 0xFF  # flip a byte of the last record's data
    writer.path.write_bytes(bytes(raw))
    with pytest.raises(CnnkitError, match="CRC mismatch"):
        read_records(writer.path)


def run(tmp_path, *, epochs: int = 3, early_stopping: int | None = None,
        stream: io.StringIO | None = None) -> Trainer:
    torch.manual_seed(0)
    model = TinyNet()
    trainer = Trainer(model, TinyTask(), shuffled_loader(tiny_data()),
                      shuffled_loader(tiny_data(16, seed=5)),
                      optimizer=build_optimizer(model, "sgd", lr=0.05), epochs=epochs,
                      run_dir=tmp_path, device="cpu", log_every=2, early_stopping=early_stopping,
                      quiet=stream is None, progress_stream=stream)
    trainer.fit()
    return trainer


def test_trainer_writes_csv_and_tensorboard_that_agree(tmp_path) -> None:
    stream = io.StringIO()
    trainer = run(tmp_path, stream=stream)
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
    (event_file,) = (tmp_path / "tensorboard").iterdir()
    events = read_events(event_file)
    tb_loss = [(e["step"], e["scalars"]["train/loss"]) for e in events if "train/loss" in e["scalars"]]
    assert [s for s, _ in tb_loss] == [s for s, _ in train_loss]
    assert [v for _, v in tb_loss] == pytest.approx([v for _, v in train_loss], rel=1e-6)
    tb_val = [e["scalars"]["val/accuracy"] for e in events if "val/accuracy" in e["scalars"]]
    assert tb_val == pytest.approx([float(r["value"]) for r in val])
    lines = stream.getvalue().splitlines()  # not a TTY: one line per update
    assert lines[0].startswith("epoch 1/3 batch 2/5 loss ") and "img/s ETA" in lines[0]
    assert any(line.startswith("epoch 3/3 train_loss") for line in lines)


def test_early_stopping_after_patience_without_improvement(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(CountMetric, "compute", lambda self: {"accuracy": 0.5})
    trainer = run(tmp_path, epochs=10, early_stopping=2)
    assert trainer.stop_reason == "early stopping"
    assert len(trainer.history) == 3 and trainer.best_epoch == 1
    assert (tmp_path / "best.pt").is_file()


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(100, stream=stream)
    progress.update(epoch=0, epochs=2, batch=10, batches=50, step=10, loss=1.0, lr=0.1,
                    images_per_s=1234.0)
    progress.message("done")
    text = stream.getvalue()
    assert text.startswith("\repoch 1/2 batch 10/50 loss 1.0000 lr 0.1 1234 img/s ETA ")
    assert text.endswith("\ndone\n")
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05"


def test_overfit_one_batch_reaches_near_zero() -> None:
    images, labels = tiny_data(4).tensors
    result = overfit_one_batch(TinyNet(), TinyTask(), (images, labels), steps=300, lr=0.05)
    assert result["reached"] and result["final_loss"] < 0.01 * result["initial_loss"]
    assert result["initial_loss"] > 1.0 and result["steps"] < 300
    stuck = overfit_one_batch(TinyNet(), TinyTask(), (images, labels), steps=20, lr=1e-7)
    assert not stuck["reached"] and stuck["steps"] == 20
