"""The real datasets of the shared data folder, for the tests that need them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_ROOT = Path(os.environ.get("CNNKIT_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))


def need_data(name: str) -> Path:
    """The dataset folder ``name`` under the shared data root, or skip the test."""
    path = DATA_ROOT / name
    if not path.is_dir():
        pytest.skip(f"dataset {name!r} not found at {path} (set CNNKIT_DATA to its root)")
    return path
