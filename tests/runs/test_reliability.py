"""What a run guarantees when things go wrong: reproducible seeds, no poisoned checkpoints, a
clean folder after a kill, one run per folder, and a signal that stops with a checkpoint."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.bad_inputs import DEMO, TINY

from cnnkit.config import load_config
from cnnkit.engine.checkpoint import load_checkpoint, orphans, repair_best, save_checkpoint
from cnnkit.engine.checkpoint import NonFiniteStateError
from cnnkit.engine.logs import RunLogger
from cnnkit.runs import RunFolder, train
from cnnkit.runs.lock import RunFolderLocked, RunLock

ROOT = Path(__file__).resolve().parents[2]
CRASH = [*TINY, "train.epochs=4", "train.checkpoint_every=1", "train.deterministic=true",
         "train.log_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def cnnkit(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnkit.cli", "--quiet", *args], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def figures(path: Path) -> list[tuple]:
    """metrics.csv without its timings (throughput and seconds differ from run to run)."""
    with open(path, newline="") as handle:
        return [(r["epoch"], r["step"], r["split"], r["name"], r["value"])
                for r in csv.DictReader(handle) if r["name"] not in ("images_per_s", "seconds")]


def test_a_seed_makes_two_runs_identical(tmp_path) -> None:
    for name in ("a", "b"):
        train(load_config(DEMO, TINY + ["train.deterministic=true",
                                        f"train.run_dir={tmp_path / name}"]), quiet=True)
    assert same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    assert figures(tmp_path / "a" / "metrics.csv") == figures(tmp_path / "b" / "metrics.csv")


def test_non_finite_weights_are_never_saved(tmp_path) -> None:
    config = load_config(DEMO, TINY + ["optim.name=sgd", "optim.lr=1e9", "train.epochs=2",
                                       f"train.run_dir={tmp_path / 'run'}"])
    with pytest.raises(NonFiniteStateError, match=r"running_var became NaN or infinite by step "
                                                   r"2 \(end of epoch 1\); stopped without "
                                                   r"saving: no checkpoint had been written"):
        train(config, quiet=True)
    folder = RunFolder(tmp_path / "run")
    for checkpoint in (folder.last, folder.best):
        if checkpoint.is_file():  # whatever was written is finite
            assert all(torch.isfinite(t).all() for t in weights(checkpoint).values()
                       if t.is_floating_point())
    assert not folder.lock.exists()


def test_metrics_header_orphans_and_repeated_rows(tmp_path) -> None:
    logger = RunLogger(tmp_path / "metrics.csv")
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,step,split,name,value\n")
    logger.log("train", {"loss": 1.0}, epoch=0, step=5)
    logger.log("val", {"miou": 0.5}, epoch=1, step=5)  # after a checkpoint at step 5, epoch 0
    logger.log("train", {"loss": 0.5}, epoch=1, step=7)
    with open(tmp_path / "metrics.csv", "a") as handle:
        handle.write("1,8,train,lo")  # a row cut short by a kill
    logger.drop_after(5, 0)  # resuming from that checkpoint redoes the validation
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows == ["epoch,step,split,name,value", "0,5,train,loss,1.0"]
    logger.close()
    stale = tmp_path / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half")
    assert orphans(tmp_path, ("last.pt", "best.pt")) == [stale]


def test_an_interrupted_best_copy_is_repaired(tmp_path) -> None:
    state = {"format": "cnnkit.checkpoint/1", "epoch": 3, "step": 30, "batches_done": 0,
             "best": 0.9, "best_epoch": 3, "model": {"w": torch.ones(1)}}
    save_checkpoint(state, tmp_path / "last.pt")
    save_checkpoint({**state, "epoch": 2, "step": 20}, tmp_path / "best.pt")  # the older best
    assert repair_best(tmp_path / "last.pt", tmp_path / "best.pt")
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 30
    assert not repair_best(tmp_path / "last.pt", tmp_path / "best.pt")  # nothing left to do
    save_checkpoint({**state, "batches_done": 4}, tmp_path / "last.pt")  # mid-epoch: not best
    assert not repair_best(tmp_path / "last.pt", tmp_path / "best.pt")


def test_one_run_per_folder_and_stale_locks(tmp_path) -> None:
    with RunLock(tmp_path / ".lock"):
        with pytest.raises(RunFolderLocked, match="in use by process"):
            RunLock(tmp_path / ".lock").acquire()
    assert not (tmp_path / ".lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket
    (tmp_path / ".lock").write_text(f'{{"pid": {dead}, "host": "{socket.gethostname()}"}}')
    with RunLock(tmp_path / ".lock") as lock:  # the owner is gone: the lock is taken over
        assert lock.held


def test_two_runs_started_at_once_in_one_folder_exactly_one_runs(tmp_path) -> None:
    args = ["train", str(DEMO), *TINY, f"train.run_dir={tmp_path / 'run'}"]
    first, second = cnnkit(*args), cnnkit(*args)
    results = [(p.wait(timeout=120), p.stderr.read()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use by process" in loser or "already holds a run" in loser, loser


def test_sigterm_stops_with_a_checkpoint_that_resumes_exactly(tmp_path) -> None:
    straight = cnnkit("train", str(DEMO), *CRASH, f"train.run_dir={tmp_path / 'straight'}")
    assert straight.wait(timeout=120) == 0, straight.stderr.read()
    run = tmp_path / "run"
    process = cnnkit("train", str(DEMO), *CRASH, f"train.run_dir={run}")
    while not (run / "last.pt").exists():
        time.sleep(0.01)
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGTERM)
    code, err = process.wait(timeout=60), process.stderr.read()
    if code == 0:
        pytest.skip("the run finished before the signal arrived")
    assert code == 143, err
    line = err.strip().splitlines()[-1]
    assert "stopped by SIGTERM" in line and f"--resume {run / 'last.pt'}" in line
    resumed = cnnkit("train", str(DEMO), *CRASH, f"train.run_dir={run}", "--resume",
                     str(run / "last.pt"))
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    assert same_weights(run / "last.pt", tmp_path / "straight" / "last.pt")


def test_killed_at_random_moments_and_resumed_it_ends_as_if_never_killed(tmp_path) -> None:
    """SIGKILL at random moments (half of them the moment a checkpoint is being written),
    resuming after each; the final weights equal an uninterrupted run's, bit for bit."""
    start = time.monotonic()
    straight = cnnkit("train", str(DEMO), *CRASH, f"train.run_dir={tmp_path / 'straight'}")
    assert straight.wait(timeout=120) == 0, straight.stderr.read()
    whole = time.monotonic() - start  # kill moments scale with this machine's speed
    run, chance, kills = tmp_path / "run", random.Random(0), 0
    for attempt in range(20):
        resume = ["--resume", str(run / "last.pt")] if (run / "last.pt").exists() else []
        process = cnnkit("train", str(DEMO), *CRASH, f"train.run_dir={run}", *resume)
        if attempt < 6:  # kill: at a random moment, or while a checkpoint is written
            deadline = time.monotonic() + chance.uniform(0.3, 0.8) * whole
            while process.poll() is None and time.monotonic() < deadline:
                if attempt % 2 and orphans(run, ("last.pt", "best.pt")):
                    break  # a temporary checkpoint file exists: kill in the middle of it
                time.sleep(0.002)
            if process.poll() is None:
                process.kill()
                kills += 1
        code = process.wait(timeout=120)
        if code == 0:
            break
        assert attempt < 6 or code == 0, process.stderr.read()
    assert code == 0 and kills >= 1  # the first attempt cannot finish before its kill
    assert same_weights(run / "last.pt", tmp_path / "straight" / "last.pt")
    assert same_weights(run / "best.pt", tmp_path / "straight" / "best.pt")
    assert figures(run / "metrics.csv") == figures(tmp_path / "straight" / "metrics.csv")
    assert not orphans(run, ("last.pt", "best.pt")) and not (run / ".lock").exists()
