"""The trainer on collated Sample batches (SyntheticShapes) with the classification task."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.data.synthetic import SyntheticShapes
from cnnkit.runs import RunFolder
from cnnkit.engine import Trainer, build_optimizer, build_schedule, load_checkpoint, make_loader
from cnnkit.engine import devices
from cnnkit.engine.devices import precision_note, resolve_amp, resolve_channels_last
from cnnkit.errors import CnnkitError
from helpers.engine import TinyNet, TinyTask, shuffled_loader, tiny_data

tasks = pytest.importorskip("cnnkit.tasks.classification")


def small_convnet(num_classes: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def test_synthetic_shapes_bf16_channels_last_plateau(tmp_path) -> None:
    train = make_loader(SyntheticShapes(32, size=32, seed=0), 8, train=True, seed=3)
    val = make_loader(SyntheticShapes(16, size=32, seed=1), 8, train=False)
    model = small_convnet()
    opt = build_optimizer(model, "sgd", lr=0.05, decay_norm_and_bias=False)
    schedule = build_schedule("plateau", opt, epochs=2, steps_per_epoch=len(train), patience=0)
    trainer = Trainer(model, tasks.ClassificationTask(3), train, val, optimizer=opt,
                      scheduler=schedule, epochs=2, files=RunFolder(tmp_path), device="cpu", amp="bf16",
                      channels_last=True, grad_clip=1.0, quiet=True, log_every=1)
    history = trainer.fit()
    assert [h["epoch"] for h in history] == [1, 2] and trainer.step == 8
    assert {"val_accuracy", "val_top3_accuracy", "val_loss", "train_loss"} <= set(history[0])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["config"]["amp"] == "bf16" and state["epoch"] == 2
    assert (tmp_path / "best.pt").is_file()


def test_bf16_training_lowers_the_loss(tmp_path) -> None:
    model = TinyNet()
    trainer = Trainer(model, TinyTask(), shuffled_loader(tiny_data()), None,
                      optimizer=build_optimizer(model, "sgd", lr=0.1), epochs=5,
                      files=RunFolder(tmp_path), device="cpu", amp="bf16", channels_last="auto",
                      quiet=True, log_every=1)
    trainer.fit()
    assert trainer.amp_dtype is torch.bfloat16 and trainer.channels_last is True
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[4]) for r in rows if ",train,loss," in r]
    assert len(losses) == 25 and sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32


def test_amp_auto_takes_bf16_where_the_cpu_computes_it(monkeypatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "_cpuinfo", lambda: {"model name": "Xeon", "flags": "avx2 fma"})
    assert resolve_amp("auto", cpu) is None  # bf16 would be emulated: float32
    assert resolve_channels_last("auto", None) is False
    assert "float32" in precision_note("auto", cpu, None, False)
    for flags in ("avx512f avx512_bf16", "amx_bf16 amx_tile"):
        monkeypatch.setattr(devices, "_cpuinfo", lambda f=flags: {"model name": "X", "flags": f})
        assert resolve_amp("auto", cpu) is torch.bfloat16
        assert resolve_channels_last("auto", torch.bfloat16) is True
    note = precision_note("auto", cpu, torch.bfloat16, True)
    assert note == "precision: amp=auto -> bfloat16 autocast, channels-last on cpu: X (amx_bf16)"
    assert resolve_channels_last(False, torch.bfloat16) is False  # an explicit choice stays


def test_amp_modes() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("off", cpu) is None
    assert resolve_amp("fp16", cpu) is torch.float16 and resolve_amp("bf16", cpu) is torch.bfloat16
    with pytest.raises(CnnkitError, match="amp must be one of"):
        resolve_amp("fp8", cpu)
