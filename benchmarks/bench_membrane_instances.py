"""Cell instances on the five held-out ISBI 2012 membrane slices: a trained Mask R-CNN run
against a trained semantic U-Net run whose cell class is cut into connected components.

Both are scored the same way on the same slices (the val split of configs/membrane.yaml and
configs/membrane_cells.yaml: 25/5 by random_split of the sorted file names, seed 0):

- mask and box AP (COCO, pycocotools, counting up to ``--max-detections`` per slice: a slice
  has some 115 cells, more than COCO's default 100) against the true cells: every 4-connected
  cell region of the label image of at least ``--min-area`` pixels. The U-Net's instances are its predicted
  cell regions of at least ``--min-area`` pixels, each scored by its mean cell probability;
- the challenge's foreground-restricted Rand error and variation of information (nats) of the
  partition, per slice and averaged. The true partition keeps every cell region; the U-Net's is
  its cell components (smaller ones are boundary), the Mask R-CNN's its masks with score >=
  ``--min-score`` painted best-first (pixels covered by none are boundary).

    .venv/bin/python benchmarks/bench_membrane_instances.py --rcnn runs/membrane_cells \\
        --unet runs/membrane
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import cnnkit
from cnnkit.data.datasets.catalog import DatasetOptions, open_split
from cnnkit.data.instances import instances_from_labels
from cnnkit.tasks import COCOMetric
from cnnkit.tasks.functional.partition import (information_scores, partition_from_instances,
                                               partition_from_semantic, rand_scores)


def truth_of(sample) -> dict:
    height, width = sample.image.shape[-2:]
    return {"boxes": sample.boxes, "labels": sample.box_labels, "masks": sample.instance_masks,
            "crowd": torch.zeros(len(sample.boxes), dtype=torch.bool), "size": (height, width)}


@torch.no_grad()
def unet_instances(run, image: torch.Tensor, min_area: int) -> tuple[dict, torch.Tensor]:
    """The U-Net's cell components as scored instances, and its semantic map."""
    tensor, _ = run.prepare(image)
    logits = run.model(tensor[None])
    probability = logits.float().softmax(1)[0, 1].cpu()
    semantic = run.predict(image)[0]["mask"].long()
    found = instances_from_labels(semantic, [1], min_area)
    masks = found["masks"]
    scores = (masks.float() * probability).flatten(1).sum(1) / masks.flatten(1).sum(1)
    return ({"boxes": found["boxes"], "labels": torch.ones(len(masks), dtype=torch.int64),
             "scores": scores, "masks": masks}, semantic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rcnn", required=True, help="the Mask R-CNN run folder")
    parser.add_argument("--unet", required=True, help="the semantic U-Net run folder")
    parser.add_argument("--root", default="../shared/data/membrane")
    parser.add_argument("--min-area", type=int, default=16)
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--max-detections", type=int, default=300)
    args = parser.parse_args()
    options = DatasetOptions(val_fraction=5, seed=0, min_area=args.min_area)
    slices = open_split("membrane-instances", Path(args.root), "val", options)
    rcnn, unet = cnnkit.load_run(args.rcnn), cnnkit.load_run(args.unet)
    truths, partitions = [], {"true": [], "Mask R-CNN": [], "U-Net + components": []}
    predictions: dict[str, list] = {"Mask R-CNN": [], "U-Net + components": []}
    seconds = {"Mask R-CNN": 0.0, "U-Net + components": 0.0}
    for index in range(len(slices)):
        sample = slices[index]
        truths.append(truth_of(sample))
        partitions["true"].append(partition_from_semantic(sample.mask, 1))
        start = time.perf_counter()
        found = rcnn.predict(sample.image)[0]
        seconds["Mask R-CNN"] += time.perf_counter() - start
        predictions["Mask R-CNN"].append(found)
        partitions["Mask R-CNN"].append(partition_from_instances(
            found["masks"], found["scores"], min_score=args.min_score))
        start = time.perf_counter()
        instances, semantic = unet_instances(unet, sample.image, args.min_area)
        seconds["U-Net + components"] += time.perf_counter() - start
        predictions["U-Net + components"].append(instances)
        partitions["U-Net + components"].append(
            partition_from_semantic(semantic, 1, min_area=args.min_area))
    keys = [slices.dataset.keys[i] for i in slices.indices]
    print(f"slices: {', '.join(keys)}; true cells (>= {args.min_area} px): "
          f"{sum(len(t['boxes']) for t in truths)}")
    print("| method | mask AP | mask AP50 | mask AP75 | box AP | Rand error | VI (nats) | "
          "cells found | s/slice |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    true = torch.stack(partitions["true"])
    for name, found in predictions.items():
        metric = COCOMetric(["background", "cell"], ["segm", "bbox"],
                            decoder=lambda output, batch: output, truth=lambda batch: batch,
                            max_detections=args.max_detections)
        metric.update(found, truths)
        figures = metric.compute()
        predicted = torch.stack(partitions[name])
        rand = rand_scores(predicted, true)["error"]
        vi = information_scores(predicted, true)["vi"]
        count = sum(int((p["scores"] >= args.min_score).sum()) for p in found) \
            if name == "Mask R-CNN" else sum(len(p["scores"]) for p in found)
        print(f"| {name} | {figures['segm_AP']:.3f} | {figures['segm_AP50']:.3f} | "
              f"{figures['segm_AP75']:.3f} | {figures['bbox_AP']:.3f} | {rand.mean():.4f} | "
              f"{vi.mean():.3f} | {count} | {seconds[name] / len(slices):.2f} |")
        print(f"<!-- {name} per slice: Rand error {[round(v, 4) for v in rand.tolist()]}, "
              f"VI {[round(v, 3) for v in vi.tolist()]} -->")


if __name__ == "__main__":
    main()
