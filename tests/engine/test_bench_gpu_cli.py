"""benchmarks/bench_gpu.py without a GPU: its arguments, and its one-line refusal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # its dataclass looks its module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_gpu", None)


def test_arguments_and_variants(bench) -> None:
    args = bench.parse_args([])
    assert (args.batch, args.steps, args.warmup, args.compile_mode) == (64, 30, 5, "default")
    assert [v.key for v in args.variants] == bench.KEYS
    chosen = bench.parse_args(["--batch", "8", "--steps", "12", "--variants", "graphs, fp32"])
    assert chosen.batch == 8 and [v.key for v in chosen.variants] == ["fp32", "graphs"]
    for bad in (["--variants", "fp64"], ["--steps", "5"], ["--batch", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_refuses_without_cuda_in_one_line(bench, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        bench.main(["--steps", "6"])
    message = str(stop.value.code)
    assert "needs a CUDA GPU" in message and "\n" not in message
