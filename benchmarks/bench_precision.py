"""Training-step throughput in float32 and bfloat16 autocast, NCHW and channels-last, on this CPU.

One SGD step (forward, loss, backward, optimizer) of a zoo model on random data, as the trainer
runs it; the figure is the median images/s of ``--steps`` timed steps after ``--warmup`` steps.
It prints the CPU's model name, its bfloat16 capability (what ``train.amp: auto`` reads) and one
line per model with the four combinations, and the matrix-multiply peaks in float32 and bf16.

    .venv/bin/python benchmarks/bench_precision.py [--steps 6] [--only vgg_small_s2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnkit.engine.devices import cpu_description, cpu_has_bf16
from cnnkit.models import create

CASES = {  # name: (model options, input C x H x W, batch, task)
    "vgg_small_s2": ({"num_classes": 10, "in_channels": 1}, (1, 28, 28), 128, "classes"),
    "resnet18": ({"num_classes": 1000}, (3, 224, 224), 16, "classes"),
    "fpn_resnet18": ({"num_classes": 11, "pyramid_channels": 128, "head_channels": 64},
                     (3, 180, 240), 8, "pixels"),
    "unet_padded": ({"num_classes": 2, "in_channels": 3}, (3, 176, 240), 8, "pixels"),
}


def step_rate(name: str, bf16: bool, channels_last: bool, steps: int, warmup: int) -> float:
    options, size, batch, kind = CASES[name]
    torch.manual_seed(0)
    model = create(name, **options).train()
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    images = torch.randn(batch, *size).contiguous(memory_format=memory)
    classes = options["num_classes"]
    target = (torch.randint(0, classes, (batch,)) if kind == "classes"
              else torch.randint(0, classes, (batch, *size[1:])))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = model(images)
            output = output[0] if isinstance(output, tuple) else output
            loss = F.cross_entropy(output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=list(CASES))
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}; bf16 support: {cpu_has_bf16()}; threads "
          f"{torch.get_num_threads()}; torch {torch.__version__}")
    print(f"matmul 2048: float32 {matmul_peak(torch.float32):.0f} GFLOP/s, bfloat16 "
          f"{matmul_peak(torch.bfloat16):.0f} GFLOP/s")
    print("| network, input, batch | fp32 NCHW | fp32 channels-last | bf16 NCHW | "
          "bf16 channels-last |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in args.only:
        _, size, batch, _ = CASES[name]
        rates = [step_rate(name, bf16, last, args.steps, args.warmup)
                 for bf16 in (False, True) for last in (False, True)]
        shown = "x".join(map(str, size))
        print(f"| {name}, {shown}, {batch} | " + " | ".join(f"{r:,.1f}" for r in rates) + " |",
              flush=True)


if __name__ == "__main__":
    main()
