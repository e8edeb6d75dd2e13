"""A run's data: transforms and datasets built from the configuration's ``data`` section.

Transforms are written in the configuration as names (``HorizontalFlip``) or one-key mappings
``{Name: {param: value}}`` (YAML lists become tuples); the names are the transform classes of
:mod:`cnnkit.data.transforms` (plus :class:`~cnnkit.data.heatmaps.HeatmapTarget`) and, for
``data.batch_transforms``, those of :mod:`cnnkit.data.transforms.batched`. Datasets come from
the catalog (:mod:`cnnkit.data.datasets.catalog`), split as their kind says.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from cnnkit.config import ConfigError, DataConfig
from cnnkit.data import transforms as T
from cnnkit.data.datasets import Split, TransformedDataset, holdout_split
from cnnkit.data.datasets.catalog import DatasetOptions, UnknownSplitError, key_split
from cnnkit.data.datasets.memory import InMemory
from cnnkit.data.datasets.catalog import open_split as catalog_open_split
from cnnkit.data.heatmaps import HeatmapTarget
from cnnkit.data.transforms.batched import BATCH_TRANSFORMS, BatchCompose
from cnnkit.errors import CnnkitError

TRANSFORMS: dict[str, type] = {
    name: getattr(T, name) for name in T.__all__
    if isinstance(getattr(T, name), type) and issubclass(getattr(T, name), T.Transform)
    and name not in ("Transform", "Compose", "RandomChoice", "ToTensor")}
TRANSFORMS["HeatmapTarget"] = HeatmapTarget
SPLITS = ("train", "val", "test")


def _transform_entry(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        (name, params), = entry.items()
        if params is None:
            params = {}
        if isinstance(name, str) and isinstance(params, dict):
            return name, params
    raise ConfigError(f"{where}: a transform is a name or {{Name: {{param: value}}}}, e.g. "
                      f"{{Resize: {{size: 32}}}}; got {entry!r}")


def _build_named(spec: list[Any] | None, where: str, registry: dict[str, Any]) -> list[Any]:
    built: list[Any] = []
    for i, entry in enumerate(spec or []):
        name, params = _transform_entry(entry, f"{where}[{i}]")
        if name not in registry:
            close = difflib.get_close_matches(name, registry, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}[{i}]: unknown transform {name!r}{hint}; valid names: "
                              f"{', '.join(sorted(registry))}")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        try:
            built.append(registry[name](**params))
        except CnnkitError as err:
            raise ConfigError(f"{where}[{i}]: {name}: {err}") from None
        except TypeError as err:
            if "argument" not in str(err):
                raise
            raise ConfigError(f"{where}[{i}]: {name}: {err}") from None
    return built


def build_transforms(spec: list[Any] | None, where: str = "transforms") -> T.Compose | None:
    """A :class:`Compose` of the named transforms (None for an empty list)."""
    built = _build_named(spec, where, TRANSFORMS)
    return T.Compose(built) if built else None


def build_batch_transforms(spec: list[Any] | None,
                           where: str = "data.batch_transforms") -> BatchCompose | None:
    """The training-batch transforms of ``data.batch_transforms`` (None for an empty list)."""
    built = _build_named(spec, where, BATCH_TRANSFORMS)
    return BatchCompose(built) if built else None


def data_root(data: DataConfig) -> Path | None:
    """``data.root`` with ``~`` and ``$VARIABLES`` expanded."""
    return None if data.root is None else Path(os.path.expandvars(os.path.expanduser(data.root)))


def dataset_options(data: DataConfig) -> DatasetOptions:
    """The catalog options of the configuration (``data.split_seed`` seeds both generated
    samples and key splits)."""
    return DatasetOptions(num_classes=data.num_classes, mask_values=data.mask_values,
                          void_to_ignore=data.void_to_ignore, images=data.images,
                          num_samples=data.num_samples, val_samples=data.val_samples,
                          size=data.size, seed=data.split_seed, val_fraction=data.val_fraction,
                          split_file=data.split_file, keep_empty=data.keep_empty,
                          min_area=data.min_area, box_margin=data.box_margin,
                          depth_scale=data.depth_scale)


def dataset_split(data: DataConfig) -> Split | None:
    """The split the run makes itself (a holdout carved from the train split, or the key split
    of a kind without official splits; None otherwise); saved in the run folder so that the
    run records which samples it trained and validated on."""
    if data.holdout is not None:
        return _holdout(data)[1]  # keys only: no need to decode the images
    return key_split(data.kind, data_root(data), dataset_options(data))


def _holdout(data: DataConfig) -> tuple[Dataset, Split]:
    """The train split as files (nothing decoded yet) and the holdout's split of its keys."""
    train = _named_split(data, "train", cached=False)
    keys = getattr(train, "keys", None)
    if keys is None:
        raise ConfigError(f"data.holdout: the {data.kind} data has no sample keys to hold "
                          "out by")
    try:
        return train, holdout_split(keys, data.holdout, seed=data.split_seed)
    except CnnkitError as err:
        raise ConfigError(f"data.holdout: {err}") from None


def open_split(data: DataConfig, split: str) -> Dataset:
    """The untransformed samples of ``split`` ("train", "val" or "test"), which names
    ``data.train_split`` / ``val_split`` / ``test_split``."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if data.holdout is not None and split in ("train", "val"):
        return _holdout_part(data, split)
    return _named_split(data, split)


def _holdout_part(data: DataConfig, split: str) -> Dataset:
    """The train or val part of a holdout; with ``data.cache``, a reader that can be restricted
    to some keys (``subset``) decodes only that part's samples."""
    whole, parts = _holdout(data)
    if data.cache and callable(getattr(whole, "subset", None)):
        return InMemory(whole.subset(parts[split]), f"{data.kind} holdout {split} part")
    if data.cache:
        whole = InMemory(whole, f"{data.kind} {data.train_split}")
    return parts.subsets(whole)[split]


def _named_split(data: DataConfig, split: str, cached: bool = True) -> Dataset:
    name = getattr(data, f"{split}_split")
    if name is None:
        raise ConfigError(f"data.{split}_split is not set for this configuration")
    try:
        dataset = catalog_open_split(data.kind, data_root(data), name, dataset_options(data))
    except UnknownSplitError as err:
        raise ConfigError(f"data.{split}_split: {err}") from None
    return InMemory(dataset, f"{data.kind} {name}") if data.cache and cached else dataset


def build_dataset(data: DataConfig, split: str, *, train: bool | None = None,
                  seed: int = 0) -> TransformedDataset:
    """The samples of ``split`` through ``data.train_transforms`` (when ``train``, by default
    for the "train" split) or ``data.eval_transforms``, each sample's random draws seeded from
    ``(seed, epoch, index)`` (call ``set_epoch`` on the result every epoch)."""
    train = split == "train" if train is None else train
    key = "train_transforms" if train else "eval_transforms"
    transform = build_transforms(getattr(data, key), f"data.{key}")
    return TransformedDataset(open_split(data, split), transform, seed=seed)
