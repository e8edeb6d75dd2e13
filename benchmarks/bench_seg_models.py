"""Which dense model fits an hour of CPU: training-step time per image of segmentation models.

Each model is built from the zoo with 11 classes (CamVid) and trained for a few steps with Adam
on a random batch at the given size; the figure is the median step time divided by the batch,
with the model in the default (NCHW) and the channels-last memory format. The forward MACs come
from the analyzer, and the seconds per epoch are for CamVid's 367 training images (data loading
and validation not included).

    .venv/bin/python benchmarks/bench_seg_models.py [--batch 8] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnkit.analysis import analyze
from cnnkit.models import create

CLASSES = 11
TRAIN_IMAGES = 367
# (label, registered name, builder options, (height, width)): the input size is the half
# resolution 180x240 where the model takes it, else the nearest size it accepts.
CANDIDATES = [
    ("fpn_resnet18 (pyramid 128, head 64)", "fpn_resnet18",
     {"pyramid_channels": 128, "head_channels": 64}, (180, 240)),
    ("U-Net, ResNet-18 encoder", "unet_resnet34",
     {"encoder": "resnet18", "decoder_channels": [128, 64, 48, 32, 16]}, (192, 256)),
    ("U-Net padded, width 16, BN", "unet_padded", {"base_width": 16, "batch_norm": True},
     (176, 240)),
    ("SegNet-Basic", "segnet_basic", {}, (180, 240)),
]


def step_seconds(model: torch.nn.Module, images: torch.Tensor, target: torch.Tensor,
                 steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        loss = F.cross_entropy(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| model | input | parameters | forward GMACs | ms per image (NCHW) "
          "| ms per image (channels-last) | s per epoch of 367 (best) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label, name, options, (height, width) in CANDIDATES:
        torch.manual_seed(0)
        model = create(name, num_classes=CLASSES, in_channels=3, **options)
        params = sum(p.numel() for p in model.parameters())
        macs = analyze(model, (3, height, width)).totals["macs"] / 1e9
        images = torch.randn(args.batch, 3, height, width)
        target = torch.randint(0, CLASSES, (args.batch, height, width))
        nchw = step_seconds(model, images, target, args.steps) / args.batch
        model = model.to(memory_format=torch.channels_last)
        nhwc = step_seconds(model, images.contiguous(memory_format=torch.channels_last), target,
                            args.steps) / args.batch
        print(f"| {label} | {height}x{width} | {params:,} | {macs:.2f} | {nchw * 1e3:.0f} "
              f"| {nhwc * 1e3:.0f} | {min(nchw, nhwc) * TRAIN_IMAGES:.0f} |", flush=True)


if __name__ == "__main__":
    main()
