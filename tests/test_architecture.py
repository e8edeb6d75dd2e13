"""The floors of cnnkit point one way: the import-linter contracts of pyproject.toml hold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch) -> None:
    cli = pytest.importorskip("importlinter.cli")
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_a_violation_would_be_caught(tmp_path, monkeypatch) -> None:
    """The contract is not vacuous: a model that imported the runs floor breaks it."""
    cli = pytest.importorskip("importlinter.cli")
    package = tmp_path / "cnnkit"
    for floor in ("runs", "models"):
        (package / floor).mkdir(parents=True)
        (package / floor / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "models" / "bad.py").write_text("import cnnkit.runs\n")
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_package = "cnnkit"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "floors"\ntype = "layers"\n'
                      'layers = ["cnnkit.runs", "cnnkit.models"]\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "cnnkit" or m.startswith("cnnkit.")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    assert cli.lint_imports(config_filename=str(config), no_cache=True) == 1
