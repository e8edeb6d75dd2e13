"""Build transforms, datasets and models from the sections of a :class:`RunConfig`."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset, Subset

from cnnkit.config.loader import ConfigError
from cnnkit.config.schema import DataConfig, ModelConfig
from cnnkit.data import transforms as T
from cnnkit.data.datasets import (COCOKeypoints, Split, TransformedDataset, camvid, membrane,
                                  random_split)
from cnnkit.data.datasets.by_kind import open_dataset
from cnnkit.data.heatmaps import HeatmapTarget
from cnnkit.data.transforms.batched import BATCH_TRANSFORMS, BatchCompose

TRANSFORMS: dict[str, type] = {
    "Resize": T.Resize, "Crop": T.Crop, "CenterCrop": T.CenterCrop, "Pad": T.Pad,
    "RandomCrop": T.RandomCrop, "RandomResizedCrop": T.RandomResizedCrop,
    "ResNetScale": T.ResNetScale, "HorizontalFlip": T.HorizontalFlip,
    "VerticalFlip": T.VerticalFlip, "Affine": T.Affine, "LensDistortion": T.LensDistortion,
    "ColorJitter": T.ColorJitter, "Grayscale": T.Grayscale, "PCAColor": T.PCAColor,
    "Normalize": T.Normalize, "HeatmapTarget": HeatmapTarget,
}
UNSPLIT_KINDS = ("membrane", "dlc", "coco-keypoints")  # split here from keys with a seed


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


def build_transforms(spec: list[Any] | None, where: str = "transforms") -> T.Compose | None:
    """A :class:`Compose` of the named transforms (None for an empty list).

    Entries are names (``"HorizontalFlip"``) or one-key mappings ``{Name: {param: value}}``;
    YAML lists in parameters become tuples. Valid names: the keys of :data:`TRANSFORMS`.
    """
    built = _build_named(spec, where, TRANSFORMS)
    return T.Compose(built) if built else None


def build_batch_transforms(spec: list[Any] | None,
                           where: str = "data.batch_transforms") -> BatchCompose | None:
    """The training-batch transforms of ``data.batch_transforms`` (None for an empty list);
    valid names: the keys of :data:`~cnnkit.data.transforms.batched.BATCH_TRANSFORMS`."""
    built = _build_named(spec, where, BATCH_TRANSFORMS)
    return BatchCompose(built) if built else None


def _build_named(spec: list[Any] | None, where: str, registry: dict[str, Any]) -> list[Any]:
    built: list[Any] = []
    for i, entry in enumerate(spec or []):
        name, params = _transform_entry(entry, f"{where}[{i}]")
        if name not in registry:
            close = difflib.get_close_matches(name, registry, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}[{i}]: unknown transform {name!r}{hint}; valid names: "
                              f"{', '.join(registry)}")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        try:
            built.append(registry[name](**params))
        except TypeError as err:
            raise ConfigError(f"{where}[{i}]: {name}: {err}") from None
        except ValueError as err:
            raise ConfigError(f"{where}[{i}]: {err}") from None
    return built


def data_root(data: DataConfig) -> Path | None:
    """``data.root`` with ``~`` and ``$VARIABLES`` expanded."""
    return None if data.root is None else Path(os.path.expandvars(os.path.expanduser(data.root)))


def _whole(data: DataConfig) -> Dataset:
    root = data_root(data)
    if root is None:
        raise ConfigError(f"data.root must be set for data.kind {data.kind!r}")
    if data.kind == "membrane":
        return membrane(root)
    if data.kind == "coco-keypoints":
        if data.images is None:
            raise ConfigError("data.images (the image folder) must be set for coco-keypoints")
        return COCOKeypoints(root, data.images)
    return open_dataset("dlc", str(root))


def dataset_split(data: DataConfig, dataset: Dataset | None = None) -> Split | None:
    """The key split used for membrane, dlc and coco-keypoints (None for other kinds):
    ``data.split_file`` if set, else :func:`random_split` of the sorted keys with
    ``val=data.val_fraction`` and ``seed=data.split_seed`` (the same on every machine).
    Save it in the run folder with ``split.save(path)`` to record it."""
    if data.kind not in UNSPLIT_KINDS:
        return None
    if data.split_file is not None:
        return Split.load(data.split_file)
    dataset = _whole(data) if dataset is None else dataset
    return random_split(dataset.keys, val=data.val_fraction, seed=data.split_seed)


def open_split(data: DataConfig, split: str) -> Dataset:
    """The untransformed samples of ``split`` ("train", "val" or "test"), which names
    ``data.train_split`` / ``val_split`` / ``test_split`` (see :class:`DataConfig`)."""
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test; got {split!r}")
    name = getattr(data, f"{split}_split")
    if name is None:
        raise ConfigError(f"data.{split}_split is not set for this configuration")
    if data.kind == "synthetic":
        from cnnkit.data.synthetic import SyntheticShapes

        size = data.size if isinstance(data.size, int) else tuple(data.size)
        offset = {"train": 0, "val": 1, "test": 2}[split]
        count = data.num_samples if split == "train" else data.val_samples
        return SyntheticShapes(count, size=size, seed=data.split_seed + offset)
    if data.kind in UNSPLIT_KINDS:
        whole = _whole(data)
        parts = dataset_split(data, whole).subsets(whole)
        if name not in parts:
            raise ConfigError(f"data.{split}_split: the split has parts {', '.join(parts)}; "
                              f"got {name!r}")
        return parts[name]
    root = data_root(data)
    if data.kind == "camvid":
        return camvid(root, name, void_to_ignore=data.void_to_ignore)
    return open_dataset(data.kind, None if root is None else str(root), name,
                        num_classes=data.num_classes, mask_values=data.mask_values,
                        images=data.images)


def build_dataset(data: DataConfig, split: str, *, train: bool | None = None,
                  seed: int = 0) -> TransformedDataset:
    """The samples of ``split`` through ``data.train_transforms`` (when ``train``, by default
    for the "train" split) or ``data.eval_transforms``, each sample's random draws seeded from
    ``(seed, epoch, index)`` (call ``set_epoch`` on the result every epoch)."""
    train = split == "train" if train is None else train
    key = "train_transforms" if train else "eval_transforms"
    transform = build_transforms(getattr(data, key), f"data.{key}")
    return TransformedDataset(open_split(data, split), transform, seed=seed)


def base_dataset(dataset: Dataset) -> Dataset:
    """The file dataset under ``TransformedDataset`` and ``Subset`` wrappers."""
    while isinstance(dataset, (TransformedDataset, Subset)):
        dataset = dataset.dataset
    return dataset


def class_names(dataset: Dataset, task_kind: str) -> list[str] | None:
    """Names of the classes (or keypoints) a task predicts on ``dataset``, when it knows them."""
    from cnnkit.data.synthetic import SHAPES, SyntheticShapes

    base = base_dataset(dataset)
    if task_kind.startswith("keypoints"):
        skeleton = getattr(base, "skeleton", None)
        return list(skeleton.names) if skeleton is not None else None
    if isinstance(base, SyntheticShapes) and task_kind == "classification":
        return list(SHAPES)
    if isinstance(base, SyntheticShapes) and task_kind == "segmentation":
        return ["background", *SHAPES]  # mask values: 0, then 1 + the shape's index
    classes = getattr(base, "classes", None)
    if classes is None:
        return None
    names = list(getattr(classes, "names", classes))
    void = getattr(classes, "void_index", None)
    if void is not None and getattr(base, "void_to_ignore", False):
        del names[void]  # void pixels are ignored, not predicted
    return names


def build_model(model: ModelConfig) -> nn.Module:
    """``cnnkit.models.create`` with the section's name, counts, weights and options; with
    ``probe_stage``, a :class:`~cnnkit.models.LinearProbe` on that stage of the model."""
    from cnnkit.models import create

    net = create(model.name, num_classes=model.num_classes, in_channels=model.in_channels,
                 weights=model.weights, **model.options)
    if model.probe_stage is None:
        return net
    from cnnkit.models import LinearProbe

    return LinearProbe(net, net.num_classes, stage=model.probe_stage)
