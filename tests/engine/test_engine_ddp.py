"""Two CPU processes (gloo) with batches of 4 reach the weights of one process with batches of 8."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from cnnkit.runs import RunFolder
from cnnkit.engine import (Trainer, build_optimizer, cleanup_distributed, init_distributed,
                           load_checkpoint, make_loader)
from helpers.engine import TinyNet, TinyTask, tiny_data

WORLD, GLOBAL_BATCH, EPOCHS = 2, 8, 2


def build(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = TinyNet(batch_norm=False)  # batch statistics would differ per process
    return model, build_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4)


def worker(rank: int, rendezvous: str, run_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed("gloo", init_method=rendezvous)
    try:
        model, opt = build()
        train = tiny_data(32)
        sampler = DistributedSampler(train, shuffle=False)  # global batch k = samples 8k..8k+7
        loader = DataLoader(train, batch_size=GLOBAL_BATCH // WORLD, sampler=sampler)
        val = make_loader(tiny_data(31, seed=5), 4, train=False, collate_fn=None)  # 16 + 15
        trainer = Trainer(model, TinyTask(), loader, val, optimizer=opt, epochs=EPOCHS,
                          files=RunFolder(run_dir), device="cpu", quiet=True, log_every=2)
        trainer.fit()
        torch.save({"model": model.state_dict(), "history": trainer.history},
                   Path(run_dir) / f"rank{info.rank}.pt")
        trainer.close()  # the DDP wrapper lets go of the process group before it is destroyed
    finally:
        cleanup_distributed()


def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path) -> None:
    # a file rendezvous: no TCP port to pick, so no race with other processes for one
    rendezvous = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(worker, args=(rendezvous, str(tmp_path / "ddp")), nprocs=WORLD, join=True)

    model, opt = build()
    loader = DataLoader(tiny_data(32), batch_size=GLOBAL_BATCH)
    val = make_loader(tiny_data(31, seed=5), 4, train=False, collate_fn=None)
    single = Trainer(model, TinyTask(), loader, val, optimizer=opt, epochs=EPOCHS,
                     files=RunFolder(tmp_path / "single"), device="cpu", quiet=True, log_every=2)
    single.fit()

    reference = model.state_dict()
    for rank in range(WORLD):
        result = torch.load(tmp_path / "ddp" / f"rank{rank}.pt", weights_only=True)
        for key, value in result["model"].items():
            assert torch.allclose(value, reference[key], rtol=1e-5, atol=1e-6), (rank, key)
        for ours, theirs in zip(result["history"], single.history):
            assert ours["val_seen"] == theirs["val_seen"] == 31.0  # every sample once, summed
            assert ours["val_accuracy"] == theirs["val_accuracy"]
            assert abs(ours["val_loss"] - theirs["val_loss"]) < 1e-5
    files = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert files == ["best.pt", "last.pt", "metrics.csv", "rank0.pt", "rank1.pt", "tensorboard"]
    state = load_checkpoint(tmp_path / "ddp" / "last.pt")  # written by rank 0 alone
    assert len(state["rng"]) == WORLD and state["config"]["world_size"] == WORLD
    assert all(torch.equal(state["model"][k], v) for k, v in
               torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)["model"].items())
