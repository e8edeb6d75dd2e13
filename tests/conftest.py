"""Shared test fixtures: the real-data root and a fixed seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.data import DATA_ROOT


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def data_root() -> Path:
    return DATA_ROOT


@pytest.fixture(autouse=True, scope="session")
def _threads() -> None:
    """Small test workloads run fastest on one thread on a 2-core machine (no oversubscription)."""
    torch.set_num_threads(1)
