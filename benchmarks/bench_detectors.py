"""Detector speed on this machine: inference milliseconds per image and training images/s.

Each zoo detector (the light ResNet-18 FPN variants and the reference ResNet-50 FPN ones, with
randomly initialised weights, which cost the same as trained ones once the number of proposals
is fixed) is run on random 512x512 images with ``min_size = max_size = 512``, so the network
sees 512x512. Inference: the median of ``--steps`` timed single-image forward passes in
evaluation mode after ``--warmup`` ones (decoding included: RPN, NMS, RoI heads, mask pasting
or keypoint decoding). Training: one optimizer step on a batch of ``--batch`` images with three
boxes each (with masks or keypoints for those heads), median images/s. float32 and bfloat16
autocast (box geometry stays in float32).

    .venv/bin/python benchmarks/bench_detectors.py [--only maskrcnn_resnet18_fpn] [--steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnkit.engine.devices import cpu_description
from cnnkit.models import create

NAMES = ("fasterrcnn_resnet18_fpn", "maskrcnn_resnet18_fpn", "keypointrcnn_resnet18_fpn",
         "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn")
SIZE = 512


def targets(name: str, count: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    boxes = torch.tensor([[40.0, 60.0, 200.0, 220.0], [250.0, 100.0, 330.0, 400.0],
                          [100.0, 300.0, 480.0, 480.0]], device=device)
    out = []
    for _ in range(count):
        target = {"boxes": boxes, "labels": torch.tensor([1, 1, 1], device=device)}
        if name.startswith("mask"):
            masks = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8, device=device)
            for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            target["masks"] = masks
        if name.startswith("keypoint"):
            kp = torch.rand(3, 17, 3, device=device)
            low, high = boxes[:, None, :2], boxes[:, None, 2:]
            kp[..., :2] = low + kp[..., :2] * (high - low)
            kp[..., 2] = 2
            target["keypoints"] = kp
        out.append(target)
    return out


def timed(fn, steps: int, warmup: int) -> float:
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, bf16: bool, steps: int, warmup: int, batch: int,
            device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    classes = 2 if name.startswith("keypoint") else 91
    model = create(name, num_classes=classes, min_size=SIZE, max_size=SIZE).to(device)
    image = torch.rand(3, SIZE, SIZE, device=device)

    def infer():
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            model([image])

    model.eval()
    inference = timed(infer, steps, warmup)
    images, labels = [image] * batch, targets(name, batch, device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                                momentum=0.9)

    def train_step():
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss = sum(model(images, labels).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    training = timed(train_step, steps, min(warmup, 1))
    return 1000 * inference, batch / training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(NAMES), choices=NAMES)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"{where}; {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"{SIZE}x{SIZE} input, training batch {args.batch}")
    print("| detector | parameters | inference ms/image fp32 | bf16 | training img/s fp32 | bf16 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.only:
        params = sum(p.numel() for p in create(name).parameters())
        fp32 = measure(name, False, args.steps, args.warmup, args.batch, device)
        bf16 = measure(name, True, args.steps, args.warmup, args.batch, device)
        print(f"| {name} | {params:,} | {fp32[0]:.0f} | {bf16[0]:.0f} | {fp32[1]:.2f} | "
              f"{bf16[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
