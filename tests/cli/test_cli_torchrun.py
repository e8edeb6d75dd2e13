"""The real command line under torchrun: two CPU processes (gloo) train the demo at a tiny size
and leave one run folder, written by rank 0 (skipped where torchrun cannot start)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.bad_inputs import DEMO, TINY

from cnnkit.engine.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def torchrun() -> list[str]:
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def can_listen() -> bool:
    """torchrun's rendezvous is a TCP store on this machine."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.listen(1)
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_torchrun_trains_with_two_processes_and_rank_0_writes_the_run(tmp_path) -> None:
    if not can_listen():
        pytest.skip("no TCP socket on localhost for torchrun's rendezvous")
    run = tmp_path / "run"
    command = [*torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "cnnkit.cli",
               "train", str(DEMO), *TINY, "data.num_samples=32", "train.log_every=1",
               f"train.run_dir={run}", "--quiet"]  # 32 samples: 2 steps of 8 per process
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"),
           "PYTHONFAULTHANDLER": "1"}  # a process that aborts prints where it was
    try:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=180, check=False)
    except FileNotFoundError as err:
        pytest.skip(f"torchrun cannot start here: {err}")
    if done.returncode != 0 and "rendezvous" in done.stderr.lower() and not run.exists():
        pytest.skip(f"torchrun cannot start here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[:4000] + "\n[...]\n" + done.stderr[-1500:]

    for name in ("config.yaml", "spec.json", "last.pt", "best.pt", "metrics.csv", "eval.json",
                 "report.html"):
        assert (run / name).is_file(), name
    assert not (run / ".lock").exists()
    assert [p.name for p in run.glob("metrics*")] == ["metrics.csv"]
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    train_steps = sorted({int(r["step"]) for r in rows if r["split"] == "train"})
    assert train_steps == [1, 2]  # one writer: each step once, though two processes trained it
    assert sum(r["split"] == "val" and r["name"] == "loss" for r in rows) == 1
    state = load_checkpoint(run / "last.pt")
    assert state["config"]["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 2
    record = json.loads((run / "eval.json").read_text())
    assert 0.0 <= record["metrics"]["miou"] <= 1.0
    assert sum(map(sum, record["confusion"])) == 8 * 32 * 32  # every validation pixel once
    assert done.stdout.count("report: ") == 1  # the other rank prints no report
