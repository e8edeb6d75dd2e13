"""Does bfloat16 autocast change accuracy? Short runs of the shipped configurations in float32 and
in bf16 (channels-last), with two seeds each, so the precision's effect can be set against the
run-to-run noise. Prints one markdown row per run: precision, seed, wall-clock time, figures.

    .venv/bin/python benchmarks/bench_amp_accuracy.py --config configs/fashion_mnist.yaml \\
        --epochs 3 --seeds 0 1 --set data.holdout=5000
    .venv/bin/python benchmarks/bench_amp_accuracy.py --config configs/camvid_fast.yaml \\
        --epochs 8 --seeds 0 1
"""

from __future__ import annotations

import argparse
import tempfile
import time

from cnnkit.config import load_config
from cnnkit.runs import train

PRECISIONS = {"float32": ["train.amp=off", "train.channels_last=false"],
              "bf16": ["train.amp=bf16", "train.channels_last=true"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="Configuration overrides for every run.")
    args = parser.parse_args()
    print(f"| {args.config}, {args.epochs} epochs | seed | minutes | figures (validation split) |")
    print("| --- | ---: | ---: | --- |")
    for seed in args.seeds:
        for name, precision in PRECISIONS.items():
            with tempfile.TemporaryDirectory() as folder:
                config = load_config(args.config, [*precision, f"train.epochs={args.epochs}",
                                                   f"train.seed={seed}",
                                                   f"train.run_dir={folder}/run",
                                                   *args.set])
                start = time.perf_counter()
                result = train(config, quiet=True)
                minutes = (time.perf_counter() - start) / 60
            shown = ", ".join(f"{k} {100 * v:.2f}" for k, v in result["metrics"].items()
                              if "/" not in k and k != "loss")
            print(f"| {name} | {seed} | {minutes:.1f} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
