"""Keypoint R-CNN against the heatmap network on the held-out DeepLabCut open-field frames.

Both runs are trained with the same split (configs/dlc_keypoint_rcnn.yaml and
configs/dlc_openfield.yaml: 95 % / 5 % by random_split of the sorted frame names, seed 0). On
each val frame the Keypoint R-CNN's top-scoring detection gives the four keypoints (a frame
without a detection counts every keypoint as missed); the heatmap network gives them directly.
Errors are Euclidean, in the original 640x480 pixel coordinates, over the labelled keypoints;
PCK is the share within ``--pck`` pixels.

    .venv/bin/python benchmarks/bench_dlc_keypoints.py --rcnn runs/dlc_keypoint_rcnn \\
        --heatmap runs/dlc_openfield
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import cnnkit
from cnnkit.data.datasets.catalog import DatasetOptions, open_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rcnn", required=True, help="the Keypoint R-CNN run folder")
    parser.add_argument("--heatmap", required=True, help="the heatmap network's run folder")
    parser.add_argument("--root", default="../shared/data/dlc-openfield")
    parser.add_argument("--pck", type=float, default=5.0)
    args = parser.parse_args()
    frames = open_split("dlc", Path(args.root), "val",
                        DatasetOptions(val_fraction=0.05, seed=0))
    runs = {"Keypoint R-CNN": cnnkit.load_run(args.rcnn),
            "heatmap network": cnnkit.load_run(args.heatmap)}
    errors: dict[str, list[float]] = {name: [] for name in runs}
    missed = dict.fromkeys(runs, 0)
    seconds = dict.fromkeys(runs, 0.0)
    for index in range(len(frames)):
        sample = frames[index]
        truth, visible = sample.keypoints, sample.visible.bool()
        for name, run in runs.items():
            start = time.perf_counter()
            found = run.predict(sample.image)[0]
            seconds[name] += time.perf_counter() - start
            if name == "Keypoint R-CNN":
                if len(found["scores"]) == 0:
                    missed[name] += 1
                    errors[name] += [float("inf")] * int(visible.sum())
                    continue
                points = torch.as_tensor(found["keypoints"])[int(found["scores"].argmax()), :, :2]
            else:
                points = torch.as_tensor(found["keypoints"], dtype=torch.float32)[:, :2]
            errors[name] += (points - truth).norm(dim=1)[visible].tolist()
    keys = [frames.dataset.keys[i] for i in frames.indices]
    print(f"val frames: {', '.join(keys)}; {len(errors['heatmap network'])} keypoints")
    print(f"| method | mean error (px) | median (px) | PCK@{args.pck:g}px | frames without a "
          f"detection | s/frame |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in errors.items():
        tensor = torch.tensor(values)
        print(f"| {name} | {tensor.mean():.2f} | {tensor.median():.2f} | "
              f"{100 * (tensor <= args.pck).float().mean():.1f} % | {missed[name]} | "
              f"{seconds[name] / len(frames):.2f} |")


if __name__ == "__main__":
    main()
