"""The catalog of dataset kinds: every file layout cnnkit reads, by one name each.

One list, used by the run configuration (``data.kind``), ``cnnkit data stats KIND`` and the
run's assembly. Each kind says how its splits are made:

- ``named``: the dataset has its own splits (idx: train, test; camvid: train, val, test);
- ``subfolder``: a split is a sub-folder of the root (folders, segmentation, dense-folders;
  none: the root);
- ``keyed``: one set of samples, split into train and val by their keys (file names) with a
  seed, or by a saved split file (membrane, dlc, coco-keypoints, coco-instances,
  membrane-instances, dlc-instances; see :func:`cnnkit.data.datasets.random_split`);
- ``generated``: drawn from a seed, one seed per split (synthetic, scenes,
  synthetic-instances).

The instance kinds (coco-instances, membrane-instances, dlc-instances, synthetic-instances) give
samples with instances (boxes, instance masks or keypoints, crowd flags; see
:mod:`cnnkit.data.sample`).

A new kind is one :class:`DatasetKind` entry here with its ``open`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset

from cnnkit.data.datasets.dense import DenseFolders
from cnnkit.data.datasets.folders import ClassFolders
from cnnkit.data.datasets.idx import IdxDataset
from cnnkit.data.datasets.images import DatasetError
from cnnkit.data.datasets.keypoints import COCOKeypoints, DLCKeypoints
from cnnkit.data.datasets.labels import ClassList
from cnnkit.data.datasets.segmentation import camvid, membrane, segmentation_folders
from cnnkit.data.datasets.splits import Split, random_split

SplitRule = Literal["named", "subfolder", "keyed", "generated"]


class UnknownSplitError(DatasetError):
    """A split name the dataset does not have; the message lists the ones it has."""
IMAGE_DIRS = ("image", "images", "img", "imgs")
MASK_DIRS = ("label", "labels", "mask", "masks", "annot", "annotations")
GENERATED_SPLITS = ("train", "val", "test")  # seed offsets 0, 1, 2


@dataclass(frozen=True)
class DatasetOptions:
    """The options some kinds take (each kind reads its own; see :data:`CATALOG`)."""

    num_classes: int | None = None  # segmentation, dense-folders: index masks, classes 0..n-1
    mask_values: list[int] | None = None  # segmentation: stored mask values in class order
    void_to_ignore: bool = True  # camvid: void (11) -> the ignore index
    images: str | None = None  # coco-keypoints: the image folder
    num_samples: int = 256  # synthetic: samples of the train split
    val_samples: int = 64  # synthetic: samples of the other splits
    size: int | list[int] = 64  # synthetic: image size, int or [height, width]
    seed: int = 0  # synthetic: the seed of the train split; keyed: the seed of the split
    val_fraction: int | float = 0.2  # keyed: the val part (a fraction, or a count)
    split_file: str | None = None  # keyed: a saved split (JSON) instead of a seeded one
    depth_scale: float = 1000.0  # dense-folders: stored units per metre of 16-bit depth PNGs
    keep_empty: bool = True  # coco-instances: keep images without annotations
    min_area: int = 1  # membrane-instances: smallest region (pixels) that is an instance
    box_margin: float = 0.15  # dlc-instances: keypoints' hull grown by this x its longer side


@dataclass(frozen=True)
class DatasetKind:
    """One file layout: its name, what it holds, how it is split and how it is opened."""

    name: str
    summary: str
    splits: SplitRule
    open: Callable[[Path | None, str | None, DatasetOptions], Dataset]
    official_splits: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())  # the DatasetOptions it reads
    needs_root: bool = True


def _first_dir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"{root}: no {what} folder (looked for {', '.join(names)})")


def _open_idx(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    return IdxDataset(root, split or "train")


def _open_camvid(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    return camvid(root, split or "train", void_to_ignore=options.void_to_ignore)


def _open_folders(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    return ClassFolders(root / split if split else root)


def _open_segmentation(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    path = root / split if split else root
    if options.mask_values:
        values = {v: i for i, v in enumerate(options.mask_values)}
        classes = ClassList(tuple(str(v) for v in options.mask_values))
        extra = {"mask_format": "values", "mask_values": values}
    else:
        if options.num_classes is None:
            raise DatasetError("segmentation data needs num_classes (index masks with classes "
                               "0..num_classes-1) or mask_values (stored values in class order)")
        classes, extra = ClassList(tuple(str(c) for c in range(options.num_classes))), {}
    return segmentation_folders(_first_dir(path, IMAGE_DIRS, "image"),
                                _first_dir(path, MASK_DIRS, "mask"), classes, **extra)


def _open_membrane(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    return membrane(root)


def _open_dlc(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    path = root
    if path.is_dir():
        found = sorted(path.rglob("CollectedData_*.csv"))
        if not found:
            raise DatasetError(f"{path}: no CollectedData_*.csv below it")
        if len(found) > 1:
            raise DatasetError(f"{path}: {len(found)} label files below it; name one: "
                               f"{', '.join(map(str, found[:3]))}")
        path = found[0]
    return DLCKeypoints(path)


def _open_coco_keypoints(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    if options.images is None:
        raise DatasetError("coco-keypoints data needs images (the image folder)")
    return COCOKeypoints(root, options.images)


def _open_coco_instances(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    from cnnkit.data.datasets.coco import COCOInstances

    if options.images is None:
        raise DatasetError("coco-instances data needs images (the image folder)")
    return COCOInstances(root, options.images, keep_empty=options.keep_empty)


def _open_membrane_instances(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    from cnnkit.data.instances import InstancesFromSemantic

    return InstancesFromSemantic(membrane(root), classes=[1], min_area=options.min_area)


def _open_dlc_instances(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    from cnnkit.data.instances import InstancesFromKeypoints

    return InstancesFromKeypoints(_open_dlc(root, split, options), margin=options.box_margin)


def _open_synthetic_instances(root: Path | None, split: str | None, options: DatasetOptions):
    from cnnkit.data.synthetic_instances import SyntheticInstances

    split, count = _generated_count("synthetic-instances", split, options)
    size = options.size if isinstance(options.size, int) else tuple(options.size)
    return SyntheticInstances(count, size=size, seed=options.seed + GENERATED_SPLITS.index(split))


def _open_synthetic(root: Path | None, split: str | None, options: DatasetOptions) -> Dataset:
    from cnnkit.data.synthetic import SyntheticShapes

    split = split or "train"
    if split not in GENERATED_SPLITS:
        raise DatasetError(f"synthetic splits are {', '.join(GENERATED_SPLITS)}; got {split!r}")
    size = options.size if isinstance(options.size, int) else tuple(options.size)
    count = options.num_samples if split == "train" else options.val_samples
    return SyntheticShapes(count, size=size, seed=options.seed + GENERATED_SPLITS.index(split))


def _generated_count(kind: str, split: str | None, options: DatasetOptions) -> tuple[str, int]:
    split = split or "train"
    if split not in GENERATED_SPLITS:
        raise DatasetError(f"{kind} splits are {', '.join(GENERATED_SPLITS)}; got {split!r}")
    return split, options.num_samples if split == "train" else options.val_samples


def _open_dense(root: Path, split: str | None, options: DatasetOptions) -> Dataset:
    classes = None
    if options.num_classes is not None:
        classes = ClassList(tuple(str(c) for c in range(options.num_classes)))
    return DenseFolders(root / split if split else root, depth_scale=options.depth_scale,
                        classes=classes)


def _open_scenes(root: Path | None, split: str | None, options: DatasetOptions) -> Dataset:
    from cnnkit.data.scenes import SyntheticScenes

    split, count = _generated_count("scenes", split, options)
    size = options.size if isinstance(options.size, int) else tuple(options.size)
    return SyntheticScenes(count, size=size, seed=options.seed + GENERATED_SPLITS.index(split))


CATALOG: dict[str, DatasetKind] = {kind.name: kind for kind in (
    DatasetKind("idx", "idx (MNIST-style) image and label files: train-/t10k-*-idx?-ubyte[.gz]",
                "named", _open_idx, official_splits=("train", "test")),
    DatasetKind("folders", "root[/split]/<class name>/<image>", "subfolder", _open_folders),
    DatasetKind("segmentation", "root[/split]/{image,label}/ image and mask pairs by name",
                "subfolder", _open_segmentation, options=("num_classes", "mask_values")),
    DatasetKind("camvid", "CamVid as SegNet's tutorial lays it out: root/<split>.txt lists",
                "named", _open_camvid, official_splits=("train", "val", "test"),
                options=("void_to_ignore",)),
    DatasetKind("membrane", "ISBI 2012 EM membranes: root/train/{image,label}", "keyed",
                _open_membrane),
    DatasetKind("dlc", "a DeepLabCut CollectedData_*.csv (or a folder holding one)", "keyed",
                _open_dlc),
    DatasetKind("coco-keypoints", "a COCO keypoints JSON file, with the image folder",
                "keyed", _open_coco_keypoints, options=("images",)),
    DatasetKind("coco-instances", "a COCO instances JSON file (boxes, masks, keypoints), with "
                "the image folder", "keyed", _open_coco_instances,
                options=("images", "keep_empty")),
    DatasetKind("membrane-instances", "ISBI 2012 EM membranes, each connected cell region an "
                "instance: root/train/{image,label}", "keyed", _open_membrane_instances,
                options=("min_area",)),
    DatasetKind("dlc-instances", "a DeepLabCut CollectedData_*.csv, each labelled animal one "
                "instance boxed by its keypoints", "keyed", _open_dlc_instances,
                options=("box_margin",)),
    DatasetKind("synthetic-instances", "overlapping shapes with instance masks, boxes and "
                "keypoints, from a seed", "generated", _open_synthetic_instances,
                official_splits=GENERATED_SPLITS,
                options=("num_samples", "val_samples", "size", "seed"), needs_root=False),
    DatasetKind("synthetic", "shapes drawn from a seed, with every kind of label", "generated",
                _open_synthetic, official_splits=GENERATED_SPLITS,
                options=("num_samples", "val_samples", "size", "seed"), needs_root=False),
    DatasetKind("dense-folders", "root[/split]/{image,depth,normals[,mask,valid]}/ by file stem "
                "(NYU Depth v2 style)", "subfolder", _open_dense,
                options=("depth_scale", "num_classes")),
    DatasetKind("scenes", "rendered rooms with depth, normals and semantic labels", "generated",
                _open_scenes, official_splits=GENERATED_SPLITS,
                options=("num_samples", "val_samples", "size", "seed"), needs_root=False),
)}
DATASET_KINDS = tuple(CATALOG)


def dataset_kind(name: str, where: str = "data.kind") -> DatasetKind:
    """The catalog entry ``name``, or one error line listing the kinds."""
    if name not in CATALOG:
        raise DatasetError(f"{where}: unknown dataset kind {name!r}; choose one of: "
                           f"{', '.join(DATASET_KINDS)}")
    return CATALOG[name]


def open_dataset(kind: str, root: str | Path | None = None, split: str | None = None,
                 options: DatasetOptions | None = None) -> Dataset:
    """The untransformed samples of ``kind`` at ``root`` (``split`` as the kind's rule says;
    a keyed kind returns its whole set)."""
    entry = dataset_kind(kind)
    path = None if root is None else Path(root)
    if entry.needs_root:
        if path is None:
            raise DatasetError(f"data kind {kind!r} needs a root folder (data.root)")
        if not path.exists():
            raise DatasetError(f"{path}: not found (the root of the {kind} data)")
    return entry.open(path, split, options or DatasetOptions())


def key_split(kind: str, root: str | Path | None, options: DatasetOptions | None = None,
              whole: Dataset | None = None) -> Split | None:
    """The train/val split of a keyed kind (None for other kinds): ``options.split_file`` if
    set, else :func:`random_split` of the sorted keys with ``val=options.val_fraction`` and
    ``seed=options.seed`` (the same on every machine)."""
    options = options or DatasetOptions()
    if dataset_kind(kind).splits != "keyed":
        return None
    if options.split_file is not None:
        return Split.load(options.split_file)
    whole = open_dataset(kind, root, None, options) if whole is None else whole
    return random_split(whole.keys, val=options.val_fraction, seed=options.seed)


def open_split(kind: str, root: str | Path | None, name: str,
               options: DatasetOptions | None = None) -> Dataset:
    """The untransformed samples of split ``name``, made as the kind's rule says."""
    options = options or DatasetOptions()
    entry = dataset_kind(kind)
    if entry.splits != "keyed":
        if entry.official_splits and name not in entry.official_splits:
            raise UnknownSplitError(f"{kind} has the splits "
                                    f"{', '.join(entry.official_splits)}; got {name!r}")
        return open_dataset(kind, root, name, options)
    whole = open_dataset(kind, root, None, options)
    parts = key_split(kind, root, options, whole).subsets(whole)
    if name not in parts:
        raise UnknownSplitError(f"the {kind} split has parts {', '.join(parts)}; got {name!r}")
    return parts[name]
