"""Per-sample against whole-batch augmentation: training throughput on Fashion-MNIST.

Three loops train the Fashion-MNIST config's model (channels-last) on the real training images
with the config's loader (batch 128, one worker):

- ``step only``: the same batch again and again (no loading at all), the ceiling;
- ``per-sample``: Pad(2) + RandomCrop(28) + HorizontalFlip + Normalize on every sample in the
  loader worker (what the config did before batch transforms);
- ``batch``: Normalize per sample, then BatchRandomShift(2) + BatchHorizontalFlip on the whole
  batch in the training process (the shipped config).

Also the cost of one sample through each per-sample pipeline, in the main process. Needs
``../shared/data/fashion-mnist`` (or ``--root``).

    .venv/bin/python benchmarks/bench_batch_transforms.py [--steps 80]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnkit.config import load_config
from cnnkit.config.build import build_batch_transforms, build_dataset, build_model
from cnnkit.data.batch import to_device
from cnnkit.engine.distributed import make_loader

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist.yaml"
NORMALIZE = {"Normalize": {"mean": [0.2860], "std": [0.3530]}}
PER_SAMPLE = [{"Pad": {"padding": 2}}, {"RandomCrop": {"size": 28}},
              {"HorizontalFlip": {"p": 0.5}}, NORMALIZE]


def images_per_second(config, batch_transform, steps: int, *, reuse_one_batch: bool) -> float:
    torch.manual_seed(0)
    data = build_dataset(config.data, "train", seed=0)
    loader = make_loader(data, config.data.batch_size, train=True, num_workers=config.data.workers,
                         persistent_workers=True)
    model = build_model(config.model).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = iter(loader)
    fixed = to_device(next(batches), "cpu", channels_last=True)
    for _ in range(3):  # warm up the workers and the kernels
        next(batches)
    count, start = 0, time.perf_counter()
    for _ in range(steps):
        batch = fixed if reuse_one_batch else to_device(next(batches), "cpu", channels_last=True)
        if batch_transform is not None:
            batch = batch_transform(batch)
        loss = F.cross_entropy(model(batch["image"]), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def sample_ms(config, samples: int = 3000) -> float:
    data = build_dataset(config.data, "train", seed=0)
    start = time.perf_counter()
    for i in range(samples):
        data[i]
    return (time.perf_counter() - start) / samples * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--root", default=None, help="Fashion-MNIST folder (default: config's)")
    args = parser.parse_args()
    overrides = [f"data.root={args.root}"] if args.root else []
    shipped = load_config(CONFIG, overrides)
    per_sample = load_config(CONFIG, overrides + [f"data.train_transforms={PER_SAMPLE}",
                                                  "data.batch_transforms=[]"])
    batch_transform = build_batch_transforms(shipped.data.batch_transforms)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {shipped.data.batch_size}, {shipped.data.workers} worker(s), {args.steps} steps")
    print(f"per-sample pipeline, ms per sample: Pad+RandomCrop+HorizontalFlip+Normalize "
          f"{sample_ms(per_sample):.3f}; Normalize only {sample_ms(shipped):.3f}")
    print("| loop | images/s |\n| --- | ---: |")
    print(f"| step only (one batch reused) | "
          f"{images_per_second(shipped, None, args.steps, reuse_one_batch=True):.0f} |")
    print(f"| per-sample augmentation in the worker | "
          f"{images_per_second(per_sample, None, args.steps, reuse_one_batch=False):.0f} |")
    print(f"| batch augmentation in the training process | "
          f"{images_per_second(shipped, batch_transform, args.steps, reuse_one_batch=False):.0f} |")


if __name__ == "__main__":
    main()
