"""Helpers shared by the zoo's family tests."""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.analysis import analyze


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mult_adds(model: nn.Module, size: int, channels: int = 3) -> int:
    """Multiply-adds of all Conv2d and Linear layers for one ``size`` x ``size`` image."""
    return analyze(model, (channels, size, size)).totals["macs"]


def on_meta(builder, **options) -> nn.Module:
    with torch.device("meta"):
        return builder(**options).eval()
