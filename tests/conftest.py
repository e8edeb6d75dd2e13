"""Shared test fixtures: the real-data root and a fixed seed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DATA_ROOT = Path(os.environ.get("CNNKIT_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def data_root() -> Path:
    return DATA_ROOT


def need_data(name: str) -> Path:
    """The dataset folder ``name`` under the shared data root, or skip the test."""
    path = DATA_ROOT / name
    if not path.is_dir():
        pytest.skip(f"dataset {name!r} not found at {path} (set CNNKIT_DATA to its root)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _threads() -> None:
    """Small test workloads run fastest on one thread on a 2-core machine (no oversubscription)."""
    torch.set_num_threads(1)
