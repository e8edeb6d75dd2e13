"""Deterministic train/val(/test) and k-fold splits of sample keys, saved as JSON.

Splits are made on sample *keys* (file names), sorted first, then permuted by a
``torch.Generator`` seeded with ``seed``: the same keys and seed give the same split on any
machine, and the JSON file records it so a result can be reproduced even if files are added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from cnnkit.data.datasets.images import DatasetError
from cnnkit.errors import ArgumentError, NotFoundError


@dataclass
class Split:
    """Named parts (e.g. ``{"train": [...], "val": [...]}``) of a dataset's keys."""

    parts: dict[str, list[str]]
    seed: int
    method: str = "fraction"
    info: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[str]:
        if name not in self.parts:
            raise NotFoundError(f"split has no part {name!r}; it has {', '.join(self.parts)}")
        return self.parts[name]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls(parts={k: list(v) for k, v in data["parts"].items()}, seed=int(data["seed"]),
                       method=data.get("method", "fraction"), info=data.get("info", {}))
        except FileNotFoundError:
            raise DatasetError(f"{path}: split file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise DatasetError(f"{path}: not a split file ({err!r})") from None

    def subsets(self, dataset: Dataset) -> dict[str, Subset]:
        """One ``Subset`` per part, by the dataset's ``keys``; unknown keys are an error."""
        index = {k: i for i, k in enumerate(dataset.keys)}  # type: ignore[attr-defined]
        out = {}
        for name, keys in self.parts.items():
            missing = [k for k in keys if k not in index]
            if missing:
                raise DatasetError(f"split part {name!r} names {len(missing)} key(s) not in the "
                                   f"dataset, e.g. {missing[0]!r}")
            out[name] = Subset(dataset, [index[k] for k in keys])
        return out


def _permuted(keys: Sequence[str], seed: int) -> list[str]:
    ordered = sorted(keys)
    if len(set(ordered)) != len(ordered):
        raise DatasetError("split keys must be unique")
    gen = torch.Generator().manual_seed(seed)
    return [ordered[i] for i in torch.randperm(len(ordered), generator=gen).tolist()]


def _count(n: int, size: float | int, name: str) -> int:
    count = size if isinstance(size, int) else round(size * n)
    if isinstance(size, float) and not 0.0 <= size < 1.0:
        raise ArgumentError(f"{name} fraction must be in [0, 1); got {size}")
    if not 0 <= count < n:
        raise ArgumentError(f"{name} size {size} leaves no training samples out of {n}")
    return count


def random_split(keys: Sequence[str], val: float | int = 0.2, test: float | int = 0,
                 seed: int = 0) -> Split:
    """Train/val(/test) split: ``val``/``test`` are fractions (float) or counts (int)."""
    order = _permuted(keys, seed)
    n_val, n_test = _count(len(order), val, "val"), _count(len(order), test, "test")
    if n_val + n_test >= len(order):
        raise ArgumentError(f"val {n_val} + test {n_test} leave no training samples of {len(order)}")
    parts = {"train": sorted(order[n_val + n_test:]), "val": sorted(order[:n_val])}
    if n_test:
        parts["test"] = sorted(order[n_val:n_val + n_test])
    return Split(parts, seed, "fraction", {"val": val, "test": test, "num_keys": len(order)})


def kfold_splits(keys: Sequence[str], k: int, seed: int = 0) -> list[Split]:
    """``k`` splits whose val parts are disjoint and cover every key once (sizes differ by <= 1)."""
    if not 2 <= k <= len(keys):
        raise ArgumentError(f"k must be in 2..{len(keys)} (the number of keys); got {k}")
    order = _permuted(keys, seed)
    folds = [order[i::k] for i in range(k)]
    return [Split({"train": sorted(x for j, f in enumerate(folds) if j != i for x in f),
                   "val": sorted(folds[i])}, seed, "kfold", {"fold": i, "k": k})
            for i in range(k)]


def holdout_split(keys: Sequence[str], holdout: float | int | Sequence[str],
                  seed: int = 0) -> Split:
    """A validation part carved out of a training split: a fraction (float) or a count (int) of
    its keys drawn with ``seed``, or the keys starting with any of the given prefixes (e.g. a
    CamVid sequence, ``["0001TP"]``, so that validation frames never neighbour training ones)."""
    if isinstance(holdout, (int, float)) and not isinstance(holdout, bool):
        return random_split(keys, val=holdout, seed=seed)
    prefixes = tuple(str(p) for p in holdout)
    if not prefixes:
        raise ArgumentError("holdout names no key prefixes; give a fraction, a count or prefixes")
    val = sorted(k for k in keys if k.startswith(prefixes))
    train = sorted(k for k in keys if not k.startswith(prefixes))
    if not val or not train:
        raise ArgumentError(f"holdout prefixes {list(prefixes)} select {len(val)} of "
                            f"{len(keys)} samples; they must select some but not all")
    return Split({"train": train, "val": val}, seed, "prefixes", {"prefixes": list(prefixes)})
