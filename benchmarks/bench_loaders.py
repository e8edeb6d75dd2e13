"""Images per second of the real-data loaders through a DataLoader with 0, 1 and 2 workers.

Each dataset goes through a simple training pipeline of cnnkit transforms (random crop and
flips; resize for the keypoint frames) inside ``TransformedDataset``; batches of 16 are
collated by stacking images (and masks). The clock starts when the first batch arrives (worker
start-up excluded) and stops after ``--images`` images (small datasets are read for several epochs, with
persistent workers).

    .venv/bin/python benchmarks/bench_loaders.py [--data ../shared/data] [--images 512]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from cnnkit.data.batch import collate_samples
from cnnkit.data.datasets import DLCKeypoints, IdxDataset, TransformedDataset, camvid, membrane
from cnnkit.data.transforms import (Compose, HorizontalFlip, Pad, RandomCrop, Resize,
                                    VerticalFlip)


def pipelines(root: Path) -> dict:
    """name: (dataset, transform)."""
    return {
        "fashion-mnist train": (IdxDataset(root / "fashion-mnist", "train"),
                                Compose([Pad(2), RandomCrop(28), HorizontalFlip()])),
        "camvid train": (camvid(root / "camvid", "train"),
                         Compose([RandomCrop(256), HorizontalFlip()])),
        "membrane train": (membrane(root / "membrane"),
                           Compose([RandomCrop(256), HorizontalFlip(), VerticalFlip()])),
        "dlc-openfield": (DLCKeypoints(root / "dlc-openfield" / "labeled-data" / "m4s1" /
                                       "CollectedData_Pranav.csv"),
                          Compose([Resize(240), HorizontalFlip()])),
    }


def measure(dataset, workers: int, images: int, batch_size: int = 16) -> float:
    """Images/s over ``images`` images; small datasets are read for several epochs."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=collate_samples, generator=torch.Generator().manual_seed(0),
                        persistent_workers=workers > 0)
    seen, start = 0, None
    while seen < images:
        for batch in loader:
            if start is None:
                start = time.perf_counter()
                continue
            seen += batch["image"].shape[0]
            if seen >= images:
                break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." /
                                               "shared" / "data"))
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)  # per process; workers are the parallelism being measured
    print(f"CPU cores: {os.cpu_count()}, torch {torch.__version__}, batch 16, "
          f"up to {args.images} images after the first batch")
    print("| dataset | transforms | " + " | ".join(f"{w} workers img/s" for w in args.workers) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in args.workers) + " |")
    for name, (dataset, transform) in pipelines(Path(args.data)).items():
        data = TransformedDataset(dataset, transform, seed=0)
        rates = [measure(data, w, args.images) for w in args.workers]
        names = ", ".join(type(t).__name__ for t in transform.transforms)
        print(f"| {name} | {names} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
