"""cnnkit: analyse, build, train and evaluate convolutional networks.

``import cnnkit`` stays light; the analyzer is loaded on first use of ``cnnkit.analyze``, the
run layer on first use of ``cnnkit.load_run`` (a trained run, ready to predict).
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "analyze": "cnnkit.analysis",
    "empirical_receptive_field": "cnnkit.analysis",
    "arith": "cnnkit.arith",
    "models": "cnnkit.models",
    "load_run": "cnnkit.runs",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return module if module.__name__.endswith(name) else getattr(module, name)
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
