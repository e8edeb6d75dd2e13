"""The grey baseline of a colourisation configuration: the figures of predicting ab = 0 (every
pixel grey) on its validation frames, scored by the same metric as a trained run.

Zhang et al. (ECCV 2016, table 1) list the grey prediction next to their networks because the
AuC of ab errors rewards it: most pixels of natural images are nearly grey, so a network must
beat this row, not 0. The rebalanced AuC weights each pixel by the rarity of its true colour
(the prior of the configuration's training frames) and is the figure where grey does poorly.

    .venv/bin/python benchmarks/bench_colorization_gray.py configs/camvid_colorization.yaml
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from cnnkit.config import load_config
from cnnkit.engine.distributed import make_loader
from cnnkit.engine.evaluate import evaluate
from cnnkit.errors import CnnkitError
from cnnkit.runs.assemble import assemble
from cnnkit.tasks.colorization import ColorizationTask


class Gray(nn.Module):
    """ab = 0 at every pixel (the regression head's output, in units of ab / ab_scale)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 2, *x.shape[-2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a colorization run configuration (YAML)")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
        assembly = assemble(config)
    except CnnkitError as err:  # a missing file or a bad key: one line, as the CLI prints it
        parser.exit(2, f"error: {err}\n")
    trained = assembly.task  # its class weights come from the training frames' ab prior
    if not isinstance(trained, ColorizationTask):
        parser.error(f"{args.config}: task.kind is {config.task.kind!r}, not colorization")
    task = ColorizationTask(mode="regression", class_weights=trained.class_weights)
    loader = make_loader(assembly.datasets["val"], config.data.eval_batch_size or 16,
                         train=False)
    figures = evaluate(Gray(), task, loader)
    figures.pop("loss", None)
    print(json.dumps({"config": args.config, "frames": len(assembly.datasets["val"]),
                      "gray": figures}, indent=2))


if __name__ == "__main__":
    main()
