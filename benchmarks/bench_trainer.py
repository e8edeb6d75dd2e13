"""Training-step speed: cnnkit's Trainer against a plain hand-written PyTorch loop, and the
achieved GFLOP/s of a training step against the machine's measured matrix-multiply peak.

Both loops train the same freshly initialised model (same seed) with SGD (momentum 0.9) on the
same in-memory batches, so only the loop differs: the Trainer adds its schedule, progress line,
loss logging every ``log_every`` steps, CSV/TensorBoard logs and the end-of-epoch checkpoint.
Timed runs alternate (plain, trainer, plain, trainer, ...) after one warm-up run of each, and
each figure is the median. A training step costs about 3x the forward pass (forward, and the
backward's two products per layer); its FLOPs are 2 x 3 x the forward MACs the analyzer counts.

    .venv/bin/python benchmarks/bench_trainer.py [--model vgg_small_s] [--size 28] [--batch 128]
        [--bf16] [--channels-last]

``--bf16``: both loops in bfloat16 autocast with channels-last memory (what ``train.amp: auto``
chooses on a CPU with bf16 instructions), the peak then that of a bf16 matrix product.
``--channels-last`` alone: float32 in channels-last memory (``train.channels_last: true``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from cnnkit.analysis import analyze
from cnnkit.engine import Trainer
from cnnkit.models import create
from cnnkit.runs import RunFolder
from cnnkit.tasks import build_task


def make_batches(steps: int, batch: int, channels: int, size: int, classes: int,
                 memory: torch.memory_format) -> list:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(batch, channels, size, size, generator=g).contiguous(
                memory_format=memory),
             "label": torch.randint(0, classes, (batch,), generator=g)} for _ in range(steps)]


class Clock:
    """Wall-clock and CPU seconds (all threads of this process) since it was made. The wall
    clock also counts time the virtual machine's host gave to other guests, the CPU time does
    not; when both vary alike between runs, the spread is not such stolen time."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def plain_loop(model: torch.nn.Module, batches: list, bf16: bool) -> tuple[float, float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    clock = Clock()
    for batch in batches:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(batch["image"]).float(), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    float(loss.detach())  # wait for the last step
    return clock.read()


def trainer_loop(model: torch.nn.Module, batches: list, classes: int, bf16: bool,
                 channels_last: bool) -> tuple[float, float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, build_task("classification", num_classes=classes), batches,
                          optimizer=optimizer, epochs=1, files=RunFolder(run_dir), device="cpu",
                          amp="bf16" if bf16 else "off", channels_last=channels_last,
                          quiet=True)
        clock = Clock()
        trainer.fit()
        return clock.read()


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n matrix product in ``dtype`` (the best of ``repeats``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg_small_s")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 autocast and channels-last in both loops")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels-last memory in both loops (implied by --bf16)")
    args = parser.parse_args()
    channels_last = args.bf16 or args.channels_last
    memory = torch.channels_last if channels_last else torch.contiguous_format

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        model = create(args.model, num_classes=args.classes, in_channels=args.channels)
        return model.to(memory_format=memory)

    batches = make_batches(args.steps, args.batch, args.channels, args.size, args.classes,
                           memory)
    plain_loop(fresh(), batches[:5], args.bf16)
    trainer_loop(fresh(), batches[:5], args.classes, args.bf16, channels_last)
    plain, trained = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(fresh(), batches, args.bf16))
        trained.append(trainer_loop(fresh(), batches, args.classes, args.bf16, channels_last))
    t_plain, t_trainer = (statistics.median(w for w, _ in runs) for runs in (plain, trained))
    c_plain, c_trainer = (statistics.median(c for _, c in runs) for runs in (plain, trained))
    images = args.steps * args.batch
    macs = analyze(fresh(), (args.channels, args.size, args.size)).totals["macs"]
    step_flops = 2 * 3 * macs * args.batch
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak = matmul_peak(dtype)
    print(f"model {args.model}, input {args.channels}x{args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps, {'bf16' if args.bf16 else 'float32'}"
          f"{' channels-last' if channels_last else ' NCHW'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, runs, wall in (("plain loop", plain, t_plain), ("trainer   ", trained, t_trainer)):
        print(f"{name}: {images / wall:,.0f} images/s  (runs: "
              f"{', '.join(f'{w:.2f}' for w, _ in runs)} s; CPU "
              f"{', '.join(f'{c:.2f}' for _, c in runs)} s)")
    print(f"trainer / plain throughput: {t_plain / t_trainer:.3f} by the wall clock, "
          f"{c_plain / c_trainer:.3f} by CPU time")
    achieved = step_flops * args.steps / t_trainer / 1e9
    print(f"forward MACs per image {macs:,}; training step {step_flops / 1e9:.2f} GFLOP")
    print(f"achieved {achieved:.1f} GFLOP/s; {dtype} matmul peak {peak:.1f} GFLOP/s "
          f"({100 * achieved / peak:.1f}% of peak)")


if __name__ == "__main__":
    main()
