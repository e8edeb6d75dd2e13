"""Where a shipped configuration's training time goes: the data loader against the training step,
the step against the machine's matrix-multiply peak, and a per-operator profile of the step.

For one configuration (its model, batch, precision, memory format, data pipeline and workers):

- loader: images/s of the training loader alone (the config's transforms, workers and cache),
  timed after the first batch, over ``--images`` images;
- step: images/s of forward + loss + backward + optimizer on one real batch, as the trainer
  runs it (autocast and channels-last resolved as ``train.amp`` / ``train.channels_last`` say);
  the loader must deliver at least 3x this;
- achieved GFLOP/s of the step (2 x 3 x the analyzer's forward MACs per image, the usual
  estimate of a training step) against the measured peak of a 2048 x 2048 matrix product in
  the step's precision;
- the ten operators with the most self CPU time in a torch.profiler trace of ``--steps`` steps.

    .venv/bin/python benchmarks/bench_config_speed.py configs/fashion_mnist.yaml [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnkit.analysis import analyze
from cnnkit.config import load_config
from cnnkit.data.batch import to_device
from cnnkit.engine import make_loader
from cnnkit.engine.batches import as_batch
from cnnkit.engine.devices import (cpu_description, resolve_amp, resolve_channels_last,
                                   resolve_device)
from cnnkit.engine.evaluate import autocast_context
from cnnkit.runs import assemble
from cnnkit.runs.data import build_batch_transforms
from cnnkit.runs.train import build_optimizer_for


def loader_rate(dataset, config, images: int) -> float:
    data = config.data
    loader = make_loader(dataset, data.batch_size, train=True, seed=0,
                         num_workers=data.workers, persistent_workers=True)
    seen, start = 0, None
    while seen < images:
        for raw in loader:
            if start is None:
                start = time.perf_counter()
                continue
            seen += as_batch(raw)["image"].shape[0]
            if seen >= images:
                break
    return seen / (time.perf_counter() - start)


def matmul_peak(dtype: torch.dtype | None, n: int = 2048) -> float:
    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--images", type=int, default=1024)
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    parts = assemble(config, splits=("train",))
    device = resolve_device(config.train.device)
    dtype = resolve_amp(config.train.amp, device)
    channels_last = resolve_channels_last(config.train.channels_last, dtype)
    model, task = parts.model.to(device), parts.task
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer_for(config, model)
    batch_transform = build_batch_transforms(config.data.batch_transforms)
    loader = make_loader(parts.datasets["train"], config.data.batch_size, train=True, seed=0)
    batch = to_device(as_batch(next(iter(loader))), device, channels_last=channels_last)
    size = batch["image"].shape[0]

    def step() -> None:
        moved = batch_transform(batch) if batch_transform is not None else batch
        with autocast_context(device, dtype):
            loss, _ = task.loss(model(moved["image"]), moved)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(2):
        step()
    times = [_timed(step) for _ in range(args.steps)]
    step_rate = size / statistics.median(times)
    macs = analyze(parts.model, tuple(batch["image"].shape[1:]), device="meta").totals["macs"]
    achieved = 6 * macs * step_rate / 1e9
    peak = matmul_peak(dtype)
    rate = loader_rate(parts.datasets["train"], config, args.images)
    precision = "bf16 autocast" if dtype == torch.bfloat16 else "float32"
    print(f"{config.name}: {config.model.name}, batch {size}, {precision}, "
          f"{'channels-last' if channels_last else 'NCHW'}, {torch.get_num_threads()} threads, "
          f"{cpu_description()}")
    print(f"- step: {step_rate:,.1f} img/s ({1000 * statistics.median(times):.1f} ms); "
          f"{achieved:,.0f} GFLOP/s = {100 * achieved / peak:.0f}% of the {precision} matmul "
          f"peak {peak:,.0f} GFLOP/s")
    print(f"- loader: {rate:,.1f} img/s with {config.data.workers} worker(s)"
          f"{' and the data in memory' if config.data.cache else ''} = "
          f"{rate / step_rate:.1f}x what the step consumes")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
    print("- the ten operators with the most self CPU time over "
          f"{args.steps} steps:\n```\n{table}```")


if __name__ == "__main__":
    main()
