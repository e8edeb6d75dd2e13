"""Scale-out: a 2-process run (gloo, CPU, file rendezvous) evaluates its best checkpoint with
the figures one process gives; SyncBatchNorm's conversion, and its refusal on the CPU."""

from __future__ import annotations

import faulthandler
import json
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from cnnkit.config import load_config
from cnnkit.engine import Trainer, cleanup_distributed, freeze, init_distributed
from cnnkit.engine.distributed import sync_batch_norm
from cnnkit.errors import CnnkitError
from cnnkit.runs import RunFolder, evaluate_run, train
from helpers.engine import TinyNet, TinyTask, tiny_data

WORLD = 2
# 11 validation samples in batches of 4: shards of 6 and 5, each with a short last batch
TINY = ["data.kind=synthetic", "data.num_samples=16", "data.val_samples=11", "data.size=32",
        "data.batch_size=4", "data.eval_batch_size=4", "data.workers=0", "train.epochs=2",
        "model.name=vgg_small_s", "model.num_classes=3", "model.in_channels=3",
        "task.kind=classification", "train.log_every=1", "train.amp=off"]


def worker(rank: int, rendezvous: str, run_dir: str) -> None:
    faulthandler.enable()  # a process that aborts prints where it was
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    init_distributed("gloo", init_method=rendezvous)
    try:
        refused = []  # a distributed CPU run cannot use SyncBatchNorm: the Trainer, the run
        for attempt in (lambda: Trainer(TinyNet(), TinyTask(), [], device="cpu", sync_bn=True,
                                        files=RunFolder(f"{run_dir}-sync"), quiet=True),
                        lambda: train(load_config(None, [*TINY, f"train.run_dir={run_dir}-sync",
                                                         "train.sync_bn=true"]), quiet=True)):
            try:
                attempt()
            except CnnkitError as err:
                refused.append(str(err))
        result = train(load_config(None, [*TINY, f"train.run_dir={run_dir}"]), quiet=True)
        out = {"metrics": result["metrics"], "report": "report" in result, "refused": refused}
        Path(f"{run_dir}-rank{rank}.json").write_text(json.dumps(out))
    finally:
        cleanup_distributed()


def test_two_processes_evaluate_the_best_checkpoint_as_one_process_does(tmp_path) -> None:
    run = tmp_path / "run"
    mp.spawn(worker, args=(f"file://{tmp_path / 'rendezvous'}", str(run)), nprocs=WORLD,
             join=True)
    ranks = [json.loads((tmp_path / f"run-rank{r}.json").read_text()) for r in range(WORLD)]
    record = json.loads((run / "eval.json").read_text())  # written by rank 0 alone
    assert ranks[0]["metrics"] == ranks[1]["metrics"] == record["metrics"]
    assert [r["report"] for r in ranks] == [True, False]
    assert sum(map(sum, record["confusion"])) == 11  # every sample counted once
    assert len(list(RunFolder(run).samples.glob("*.png"))) == 8
    assert not (tmp_path / "run-sync").exists()

    # the same checkpoint, one process, the whole validation set in one shard
    single = evaluate_run(run)["metrics"]
    alone = json.loads((run / "eval.json").read_text())
    assert alone["confusion"] == record["confusion"]
    assert set(single) == set(record["metrics"])
    for name, value in record["metrics"].items():
        if name == "loss":  # float sums over other batches: equal up to rounding
            assert value == pytest.approx(single[name], rel=1e-6)
        else:
            assert value == single[name], name

    for r in ranks:
        assert len(r["refused"]) == 2, r["refused"]
        assert all("train.sync_bn needs CUDA" in m and "\n" not in m for m in r["refused"])


def test_sync_batch_norm_keeps_parameters_and_frozen_layers() -> None:
    model = TinyNet()
    freeze(model, ["stem"])  # its batch norm keeps its running statistics
    parameters = list(model.parameters())
    synced = sync_batch_norm(model, torch.device("cuda"))  # converting touches no device
    norms = [m for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 2 and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert all(a is b for a, b in zip(synced.parameters(), parameters, strict=True))
    assert sorted(synced.state_dict()) == sorted(TinyNet().state_dict())
    before = [m.running_mean.clone() for m in norms]
    synced.train()
    synced(torch.randn(4, 3, 8, 8))  # no process group: plain batch norm
    assert torch.equal(norms[0].running_mean, before[0])  # frozen: still in evaluation mode
    assert not torch.equal(norms[1].running_mean, before[1])


def test_sync_batch_norm_refuses_the_cpu_and_one_process_ignores_it(tmp_path) -> None:
    with pytest.raises(CnnkitError, match="sync_bn needs CUDA"):
        sync_batch_norm(TinyNet(), torch.device("cpu"))
    model = TinyNet()
    loader = torch.utils.data.DataLoader(tiny_data(8), batch_size=4)
    Trainer(model, TinyTask(), loader, files=RunFolder(tmp_path), device="cpu", sync_bn=True,
            quiet=True, tensorboard=False).fit()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
