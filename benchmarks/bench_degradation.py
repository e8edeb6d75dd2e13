"""The degradation experiment (He et al., CVPR 2016): train plain and residual networks of 20
and 56 layers from configs/degradation.yaml and draw their training-loss curves in one figure.

    .venv/bin/python benchmarks/bench_degradation.py [--epochs 3] [--out benchmarks/figures]

Prints a markdown table (final training loss over the last epoch, validation accuracy on the
held-out training images, minutes) and writes ``degradation.png``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cnnkit.config import load_config
from cnnkit.runs import RunFolder, train
from cnnkit.viz import Series, line_plot, read_metrics_csv

NETWORKS = ("plain20_cifar", "plain56_cifar", "resnet20_cifar", "resnet56_cifar")
STYLE = {"plain20_cifar": ((31, 119, 180), True), "plain56_cifar": ((214, 39, 40), True),
         "resnet20_cifar": ((31, 119, 180), False), "resnet56_cifar": ((214, 39, 40), False)}


def smoothed(values: list[float], window: int = 5) -> list[float]:
    return [sum(values[max(0, i - window + 1):i + 1]) / (i + 1 - max(0, i - window + 1))
            for i in range(len(values))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/figures")
    args = parser.parse_args()
    series, rows = [], []
    with tempfile.TemporaryDirectory() as base:
        for name in NETWORKS:
            run_dir = Path(base) / name
            config = load_config("configs/degradation.yaml", [
                f"model.name={name}", f"train.epochs={args.epochs}", f"train.run_dir={run_dir}"])
            start = time.perf_counter()
            result = train(config, quiet=True)
            minutes = (time.perf_counter() - start) / 60
            metrics = read_metrics_csv(RunFolder(run_dir).metrics)
            losses = [(r["step"], r["value"]) for r in metrics
                      if r["split"] == "train" and r["name"] == "loss"]
            steps = [s for s, _ in losses]
            color, dashed = STYLE[name]
            series.append(Series(name, steps, smoothed([v for _, v in losses]), color=color,
                                 dashed=dashed))
            last_epoch = result["history"][-1]
            rows.append(f"| {name} | {last_epoch['train_loss']:.4f} | "
                        f"{100 * result['metrics']['accuracy']:.2f} | {minutes:.1f} |")
            print(rows[-1], flush=True)
    figure = line_plot(series, title="Training loss: plain (dashed) and residual (solid)",
                       xlabel="step", ylabel="training loss")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure.save(out / "degradation.png")
    print("| network | training loss, last epoch | validation accuracy % | minutes |")
    print("| --- | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
