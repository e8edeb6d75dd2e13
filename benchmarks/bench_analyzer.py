"""Time ``cnnkit.analysis.analyze`` and measure its peak memory.

Every case runs in a fresh Python process, so that its peak resident set size (RSS) is its own
and its first call pays the one-time costs a command-line user pays (torch loads its meta
kernels and ``torch._dynamo`` on the first meta operations). For each case the table gives:
the first call, the median of the following calls, the process's RSS once the model is built
(before any analysis) and its peak RSS at the end.

    .venv/bin/python benchmarks/bench_analyzer.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CASES = {  # name: (registered model, input size, device)
    "vgg16-224-meta": ("vgg16", (3, 224, 224), "meta"),
    "resnet50-224-meta": ("resnet50", (3, 224, 224), "meta"),
    "vgg16-2048-meta": ("vgg16", (3, 2048, 2048), "meta"),
    "unet_padded-2048-meta": ("unet_padded", (1, 2048, 2048), "meta"),
    "vgg16-224-cpu": ("vgg16", (3, 224, 224), "cpu"),
}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(name: str, repeats: int) -> dict:
    """One case in this process: build, analyse ``repeats + 1`` times, report."""
    import torch

    from cnnkit.analysis import analyze
    from cnnkit.models import create

    model_name, size, device = CASES[name]
    if device == "meta":
        with torch.device("meta"):
            model = create(model_name)
    else:
        model = create(model_name)
    rss_built = _rss_mb()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        report = analyze(model, size, device=device)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"case": name, "first_s": times[0], "median_s": statistics.median(times[1:]),
            "rows": len(report.layers), "macs": report.totals["macs"],
            "rss_built_mb": rss_built, "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the first")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # child process
        print(json.dumps(run_case(args.case, args.repeats)))
        return
    print(f"{'case':24s} {'first s':>8s} {'median s':>9s} {'rows':>5s} {'GMACs':>9s} "
          f"{'RSS built MB':>13s} {'peak RSS MB':>12s}")
    for name in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", name, "--repeats",
                              str(args.repeats)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:24s} {r['first_s']:8.2f} {r['median_s']:9.3f} {r['rows']:5d} "
              f"{r['macs'] / 1e9:9.2f} {r['rss_built_mb']:13.0f} {r['peak_rss_mb']:12.0f}")


if __name__ == "__main__":
    main()
