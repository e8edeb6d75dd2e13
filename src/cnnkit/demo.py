"""``cnnkit demo``: the lecture decks' network arithmetic, reproduced by the analyzer."""

from __future__ import annotations

import click
from torch import nn

from cnnkit.textfmt import text_table


def _cost_table() -> str:
    """The decks' cost comparisons, each measured by the analyzer on a real layer stack."""
    from cnnkit.analysis import analyze

    c = 64
    cases = [
        ("one 5x5 conv, C=64, 32x32", nn.Conv2d(c, c, 5, padding=2, bias=False), (c, 32, 32)),
        ("two 3x3 convs (same field)", nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False),
                                                     nn.Conv2d(c, c, 3, padding=1, bias=False)),
         (c, 32, 32)),
        ("Inception: 5x5 conv 200->92", nn.Conv2d(200, 92, 5, padding=2, bias=False), (200, 32, 32)),
        ("  with 1x1 reduction to 16", nn.Sequential(nn.Conv2d(200, 16, 1, bias=False),
                                                     nn.Conv2d(16, 92, 5, padding=2, bias=False)),
         (200, 32, 32)),
        ("256 filters 5x5x3, 8x8 out", nn.Conv2d(3, 256, 5, bias=False), (3, 12, 12)),
        ("  depthwise 5x5 + 1x1 to 256", nn.Sequential(nn.Conv2d(3, 3, 5, groups=3, bias=False),
                                                       nn.Conv2d(3, 256, 1, bias=False)),
         (3, 12, 12)),
    ]
    rows = []
    for label, module, size in cases:
        totals = analyze(module, size).totals
        rows.append([label, f"{totals['params']:,}", f"{totals['macs']:,}"])
    return text_table(["layer(s)", "weights", "MACs"], rows, [False, True, True])


def run_demo() -> None:
    from cnnkit.analysis import analyze
    from cnnkit.models import create

    click.echo("== AlexNet as in the decks (227x227x3, two-group convolutions) ==")
    click.echo(analyze(create("alexnet_paper"), (3, 227, 227), name="alexnet_paper").format("table"))
    click.echo("\n== VGG16 at 224x224: totals ==")
    vgg = analyze(create("vgg16"), (3, 224, 224), name="vgg16")
    for key, value in vgg.totals.items():
        click.echo(f"  {key:>24}: {value:,}" if isinstance(value, int) else f"  {key:>24}: {value}")
    click.echo("\n== Costs the decks compare ==")
    click.echo(_cost_table())
    click.echo("\nNext: `cnnkit models` lists the zoo; `cnnkit summary NAME` analyses any of it.")
