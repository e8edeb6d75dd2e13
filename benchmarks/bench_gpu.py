"""ResNet-50 at 224x224 on a CUDA GPU: training and inference images/s of a plain PyTorch loop
and of cnnkit's Trainer, in float32, channels-last, bf16 autocast, torch.compile and CUDA graphs.

Like ``bench_trainer.py``, both loops run the same freshly initialised ``create("resnet50")``
(1000 classes) with SGD (momentum 0.9) on the same synthetic batches, here kept on the GPU (a
pool of 4 distinct batches, repeated), so no data loading is measured. What differs from that
benchmark:

- The Trainer's figure is the steady rate ``(steps - warmup) x batch / (t(steps) - t(warmup))``
  from two fits of a new Trainer (``steps`` and ``warmup`` batches): its fixed costs per fit
  (the end-of-epoch checkpoint, about 200 MB with the momentum, the logs) cancel out.
- cnnkit's inference is :func:`cnnkit.engine.evaluate`, the Trainer's validation: it adds the
  task's loss and metric (the confusion matrix is read back to the host every batch).
- "fp32" keeps torch's defaults: cuDNN convolutions may use TF32 (printed in the header).
- ``torch.compile`` (``--compile-mode``: "default", or "max-autotune", which tunes kernels for
  minutes and adds CUDA graphs) compiles on the first steps; that warm-up, less the steady time
  of as many steps, is the compile column. The Trainer then gets the same compiled module, so
  its fits find the compiled graphs cached and compile nothing.
- CUDA graphs: one static-shape inference step (bf16, channels-last) captured with
  ``torch.cuda.CUDAGraph`` and replayed after copying each batch into its input; the plain loop
  only (training and cnnkit's evaluation are not captured). Its warm-up and capture time is in
  the last column.

    python benchmarks/bench_gpu.py [--batch 64] [--steps 30] [--warmup 5] [--variants ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnkit.engine import Trainer, evaluate
from cnnkit.models import create
from cnnkit.runs import RunFolder
from cnnkit.tasks import build_task

SIZE, CLASSES, POOL = 224, 1000, 4
DEVICE = "cuda"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    graphs: bool = False  # inference replayed from a captured CUDA graph (plain loop only)


VARIANTS = (Variant("fp32", "float32 NCHW"),
            Variant("fp32-cl", "float32 channels-last", channels_last=True),
            Variant("bf16", "bf16 autocast NCHW", bf16=True),
            Variant("bf16-cl", "bf16 autocast channels-last", bf16=True, channels_last=True),
            Variant("compile", "bf16 channels-last torch.compile", True, True, compile=True),
            Variant("graphs", "bf16 channels-last CUDA graph", True, True, graphs=True))
KEYS = [v.key for v in VARIANTS]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (default 5)")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "max-autotune-no-cudagraphs", "max-autotune"])
    parser.add_argument("--variants", default=",".join(KEYS),
                        help=f"comma-separated, from {','.join(KEYS)} (default: all)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.warmup < 1 or args.steps <= args.warmup:
        parser.error("need --batch >= 1, --warmup >= 1 and --steps > --warmup")
    chosen = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in KEYS]
    if unknown or not chosen:
        parser.error(f"unknown variant {', '.join(unknown) or '(none)'}; choose from "
                     f"{', '.join(KEYS)}")
    args.variants = [v for v in VARIANTS if v.key in chosen]
    return args


def timed(fn: Callable[[], object]) -> float:
    """Seconds of ``fn()`` on the GPU: synchronised before and after."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def autocast(v: Variant, cache: bool = True):
    return torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=v.bf16, cache_enabled=cache)


def make_batches(steps: int, batch: int, v: Variant) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator(device=DEVICE).manual_seed(0)
    fmt = torch.channels_last if v.channels_last else torch.contiguous_format
    pool = [{"image": torch.randn(batch, 3, SIZE, SIZE, device=DEVICE, generator=g)
             .contiguous(memory_format=fmt),
             "label": torch.randint(0, CLASSES, (batch,), device=DEVICE, generator=g)}
            for _ in range(min(POOL, steps))]
    return [pool[i % len(pool)] for i in range(steps)]


def fresh_model(v: Variant, compile_mode: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create("resnet50", num_classes=CLASSES).to(DEVICE)
    if v.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model, mode=compile_mode) if v.compile else model


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def plain_train(model, optimizer, batches, v: Variant) -> float:
    model.train()

    def run() -> None:
        for batch in batches:
            with autocast(v):
                loss = F.cross_entropy(model(batch["image"]), batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return timed(run)


def plain_infer(model, batches, v: Variant) -> float:
    model.eval()

    def run() -> None:
        with torch.inference_mode(), autocast(v):
            for batch in batches:
                model(batch["image"])
    return timed(run)


def graph_infer(model, batches, v: Variant) -> tuple[float, float]:
    """(capture seconds, replay seconds): warm-up on a side stream, capture, then per batch a
    copy into the static input and a replay. Autocast's weight cache is off while capturing."""
    model.eval()
    static = batches[0]["image"].clone()

    def capture() -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), autocast(v, cache=False):
                for _ in range(3):
                    model(static)
            torch.cuda.current_stream().wait_stream(side)
            with torch.cuda.graph(graph), autocast(v, cache=False):
                model(static)  # the output stays in the graph's memory pool
        return graph

    start = time.perf_counter()
    graph = capture()
    torch.cuda.synchronize()
    captured = time.perf_counter() - start

    def run() -> None:
        for batch in batches:
            static.copy_(batch["image"])
            graph.replay()
    return captured, timed(run)


def trainer_train(model, batches, v: Variant, task) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, task, batches, optimizer=sgd(model), epochs=1,
                          files=RunFolder(run_dir), device=DEVICE, amp="bf16" if v.bf16 else "off",
                          channels_last=v.channels_last, quiet=True, tensorboard=False)
        return timed(trainer.fit)


def trainer_infer(model, batches, v: Variant, task) -> float:
    return timed(lambda: evaluate(model, task, batches, device=DEVICE,
                                  amp_dtype=torch.bfloat16 if v.bf16 else None,
                                  channels_last=v.channels_last))


def measure(v: Variant, args: argparse.Namespace, task) -> list[list[str]]:
    """The plain and the cnnkit row of one variant: train and inference images/s, compile s."""
    batches = make_batches(args.steps, args.batch, v)
    warm, images = batches[:args.warmup], args.steps * args.batch
    steady = (args.steps - args.warmup) * args.batch
    model = fresh_model(v, args.compile_mode)
    plain, ours = [v.label, "plain"], [v.label, "cnnkit"]
    compile_s = []
    if v.graphs:
        plain.append("-")
        ours += ["-", "-", "-"]
        captured, seconds = graph_infer(model, batches, v)
        plain += [f"{images / seconds:,.0f}", f"capture {captured:.2f}"]
        return [plain, ours]
    optimizer = sgd(model)
    first = plain_train(model, optimizer, warm, v)
    seconds = plain_train(model, optimizer, batches, v)
    plain.append(f"{images / seconds:,.0f}")
    compile_s.append(first - args.warmup * seconds / args.steps)
    trainer_train(model, warm, v, task)  # cuDNN autotuning, caches
    short, full = trainer_train(model, warm, v, task), trainer_train(model, batches, v, task)
    ours.append(f"{steady / max(full - short, 1e-9):,.0f}")
    first = plain_infer(model, warm, v)
    seconds = plain_infer(model, batches, v)
    plain.append(f"{images / seconds:,.0f}")
    compile_s.append(first - args.warmup * seconds / args.steps)
    trainer_infer(model, warm, v, task)
    ours.append(f"{images / trainer_infer(model, batches, v, task):,.0f}")
    note = (f"train {compile_s[0]:.1f}, inference {compile_s[1]:.1f}" if v.compile else "-")
    plain.append(note)
    ours.append("(reuses plain's)" if v.compile else "-")
    return [plain, ours]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    torch.backends.cudnn.benchmark = True  # as the Trainer sets it on GPUs
    task = build_task("classification", num_classes=CLASSES)
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; TF32: convolutions "
          f"{torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}")
    print(f"ResNet-50, {SIZE}x{SIZE}, batch {args.batch}, {args.steps} steps "
          f"({args.warmup} warm-up), SGD momentum 0.9, compile mode {args.compile_mode}\n",
          flush=True)
    rows = []
    for v in args.variants:
        rows += measure(v, args, task)
        torch.compiler.reset()  # compiled graphs hold their model's memory
        torch.cuda.empty_cache()
    print("| variant | loop | train images/s | inference images/s | compile / capture s |")
    print("| --- | --- | ---: | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
