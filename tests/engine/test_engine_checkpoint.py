"""Checkpoints: atomic writes, exact resume mid-epoch, NaN stop keeping the last good file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from cnnkit.runs import RunFolder
from cnnkit.engine import (CheckpointError, NonFiniteLossError, Trainer, WarmupCosineLR,
                           build_optimizer, load_checkpoint, save_checkpoint)
from cnnkit.engine import checkpoint as checkpoint_module
from helpers.engine import TinyNet, TinyTask, shuffled_loader, tiny_data

EPOCHS, BATCHES = 3, 5  # 40 samples in batches of 8


def make_trainer(run_dir: Path, dataset: Dataset | None = None, task: TinyTask | None = None,
                 **options) -> tuple[Trainer, TinyNet]:
    torch.manual_seed(0)
    model = TinyNet(dropout=0.3)  # dropout: the torch RNG stream must resume exactly too
    loader = shuffled_loader(dataset if dataset is not None else tiny_data())
    val_loader = DataLoader(tiny_data(16, seed=5), batch_size=8)  # validation keeps its order
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4)
    schedule = WarmupCosineLR(opt, total_steps=EPOCHS * BATCHES, warmup_steps=3)
    options.setdefault("log_every", 2)
    trainer = Trainer(model, task or TinyTask(), loader, val_loader, optimizer=opt,
                      scheduler=schedule, epochs=EPOCHS, files=RunFolder(run_dir), device="cpu",
                      quiet=True, **options)
    return trainer, model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"format": checkpoint_module.FORMAT, "step": 1}, path)

    def broken_save(obj, target):  # writes half a file, then the disk "fails"
        Path(target).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match=r"could not write .*last.pt \(No space left on "
                                              r"device\); the previous last.pt is intact"):
        save_checkpoint({"format": checkpoint_module.FORMAT, "step": 2}, path)
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left over
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_resume_from_mid_epoch_gives_identical_weights(tmp_path) -> None:
    straight, straight_model = make_trainer(tmp_path / "straight")
    history = straight.fit()
    assert len(history) == EPOCHS and straight.step == EPOCHS * BATCHES

    first, _ = make_trainer(tmp_path / "resumed", max_steps=7)  # stops in epoch 2, batch 2
    first.fit()
    assert first.stop_reason == "max_steps"
    state = load_checkpoint(tmp_path / "resumed" / "last.pt")  # weights_only=True load
    assert (state["epoch"], state["step"], state["batches_done"]) == (1, 7, 2)
    assert len(state["rng"]) == 1 and len(state["loader_generators"]) == 1

    second, resumed_model = make_trainer(tmp_path / "resumed", resume=tmp_path / "resumed" / "last.pt")
    second.fit()
    assert second.step == EPOCHS * BATCHES
    assert_same_weights(straight_model, resumed_model)
    assert [h["val_accuracy"] for h in second.history] == [h["val_accuracy"] for h in history]
    assert second.history[-1]["val_loss"] == history[-1]["val_loss"]
    # the optimizer's momentum buffers match as well
    for a, b in zip(straight.optimizer.state.values(), second.optimizer.state.values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    best = load_checkpoint(tmp_path / "resumed" / "best.pt")
    assert best["best"] == max(h["val_accuracy"] for h in history)


class FailingDataset(Dataset):
    """Raises on the ``fail_at``-th read, like a loader crash in the middle of an epoch."""

    def __init__(self, fail_at: int) -> None:
        self.data, self.reads, self.fail_at = tiny_data(), 0, fail_at

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        self.reads += 1
        if self.reads == self.fail_at:
            raise RuntimeError("simulated crash")
        return self.data[index]


def test_resume_after_a_crash_from_a_step_checkpoint(tmp_path) -> None:
    straight, straight_model = make_trainer(tmp_path / "straight")
    straight.fit()
    crashing, _ = make_trainer(tmp_path / "run", FailingDataset(fail_at=8 * 8 + 3),
                               checkpoint_every=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit()  # dies while loading step 9; the last checkpoint is from step 6
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 6
    resumed, resumed_model = make_trainer(tmp_path / "run", checkpoint_every=3,
                                          resume=tmp_path / "run" / "last.pt")
    resumed.fit()
    assert_same_weights(straight_model, resumed_model)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    train_steps = [int(r.split(",")[1]) for r in rows[1:] if ",train,loss," in r]
    assert train_steps == sorted(train_steps)  # rows after step 6 of the crashed run were dropped


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    trainer, model = make_trainer(tmp_path, task=TinyTask(nan_at_call=12), log_every=5)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit()
    message = str(err.value)
    assert "nan at step 12 (epoch 3, batch 2)" in message
    assert "last.pt (step 10)" in message
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 10 and state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not all(torch.isfinite(p).all() for p in model.parameters())  # the live model is broken
    assert trainer.stop_reason == "non-finite loss"
    assert not math.isnan(state["history"][-1]["train_loss"])
