"""The moving average of the weights: its arithmetic, and the trainer validating, saving and
resuming it."""

from __future__ import annotations

import pytest
import torch
from helpers.engine import TinyNet, TinyTask, shuffled_loader, tiny_data
from torch import nn

from cnnkit.engine import Trainer, build_optimizer
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.engine.ema import WeightAverage
from cnnkit.errors import ArgumentError
from cnnkit.runs import RunFolder


def test_the_average_follows_the_warm_up_decay_and_copies_counters() -> None:
    model = nn.BatchNorm1d(2)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(2.0)
    average.update(model)  # the first update copies
    assert average.module.weight.tolist() == [2.0, 2.0] and average.updates == 1
    with torch.no_grad():
        model.weight.fill_(4.0)
    model.num_batches_tracked.fill_(7)
    average.update(model)  # decay min(0.9, 3 / 12) = 0.25: 2 + 0.75 * (4 - 2)
    assert average.module.weight.tolist() == pytest.approx([3.5, 3.5])
    assert int(average.module.num_batches_tracked) == 7 and average.updates == 2
    for _ in range(200):
        average.update(model)
    assert average.module.weight.tolist() == pytest.approx([4.0, 4.0], abs=1e-6)
    assert not average.module.weight.requires_grad
    with pytest.raises(ArgumentError, match="ema decay must be in"):
        WeightAverage(model, decay=1.0)


def run(tmp_path, epochs: int, resume=None) -> Trainer:
    torch.manual_seed(0)
    model = TinyNet()
    trainer = Trainer(model, TinyTask(), shuffled_loader(tiny_data()),
                      shuffled_loader(tiny_data(16, seed=5)),
                      optimizer=build_optimizer(model, "sgd", lr=0.05), epochs=epochs,
                      files=RunFolder(tmp_path), device="cpu", ema=0.8, quiet=True,
                      tensorboard=False, resume=resume)
    trainer.fit()
    return trainer


def test_the_trainer_saves_the_average_and_resumes_both(tmp_path) -> None:
    whole = run(tmp_path / "whole", epochs=3)
    state = load_checkpoint(tmp_path / "whole" / "last.pt")
    average = whole.ema.module.state_dict()
    trained = whole.raw_model.state_dict()
    assert all(torch.equal(state["model"][k], average[k]) for k in average)
    assert all(torch.equal(state["trained_model"][k], trained[k]) for k in trained)
    assert state["ema_updates"] == whole.step
    assert not torch.equal(state["model"]["fc.weight"], state["trained_model"]["fc.weight"])
    run(tmp_path / "split", epochs=2)
    resumed = run(tmp_path / "split", epochs=3, resume=tmp_path / "split" / "last.pt")
    again = load_checkpoint(tmp_path / "split" / "last.pt")
    assert all(torch.equal(again["model"][k], state["model"][k]) for k in state["model"])
    assert [h["val_accuracy"] for h in resumed.history] == [h["val_accuracy"]
                                                            for h in whole.history]
