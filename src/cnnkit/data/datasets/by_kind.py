"""Open a dataset from a kind name and a root path (used by ``cnnkit data stats``)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from cnnkit.data.datasets.folders import ClassFolders
from cnnkit.data.datasets.idx import IdxDataset
from cnnkit.data.datasets.images import DatasetError
from cnnkit.data.datasets.keypoints import COCOKeypoints, DLCKeypoints
from cnnkit.data.datasets.segmentation import ClassList, camvid, segmentation_folders

KINDS = ("idx", "folders", "segmentation", "camvid", "dlc", "coco-keypoints", "synthetic")
IMAGE_DIRS = ("image", "images", "img", "imgs")
MASK_DIRS = ("label", "labels", "mask", "masks", "annot", "annotations")


def _first_dir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"{root}: no {what} folder (looked for {', '.join(names)})")


def open_dataset(kind: str, root: str | None, split: str | None = None, *,
                 num_classes: int | None = None, mask_values: list[int] | None = None,
                 images: str | None = None, num_samples: int = 64, seed: int = 0) -> Dataset:
    """The dataset of ``kind`` (one of :data:`KINDS`) at ``root``.

    idx: ``root`` holds ``train-/t10k-*-idx?-ubyte[.gz]``, split train or test. folders:
    ``root[/split]/<class>/<image>``. segmentation: ``root[/split]/{image,label}`` (index masks;
    ``mask_values`` lists stored values in class order, e.g. 0,255). camvid: ``root/<split>.txt``.
    dlc: a CollectedData CSV, or a folder searched for one. coco-keypoints: the JSON, with
    ``images`` the image folder. synthetic: ``num_samples`` generated from ``seed`` (no root).
    """
    if kind not in KINDS:
        raise DatasetError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if kind == "synthetic":
        from cnnkit.data.synthetic import SyntheticShapes

        return SyntheticShapes(num_samples, seed=seed)
    if root is None:
        raise DatasetError(f"{kind} needs a ROOT path")
    path = Path(root)
    if not path.exists():
        raise DatasetError(f"{path}: not found")
    if kind == "idx":
        return IdxDataset(path, split or "train")
    if kind == "camvid":
        return camvid(path, split or "train")
    if kind in ("folders", "segmentation") and split:
        path = path / split
    if kind == "folders":
        return ClassFolders(path)
    if kind == "segmentation":
        if mask_values:
            values = {v: i for i, v in enumerate(mask_values)}
            classes = ClassList(tuple(str(v) for v in mask_values))
            options = {"mask_format": "values", "mask_values": values}
        else:
            if num_classes is None:
                raise DatasetError("segmentation needs --num-classes (or --mask-values)")
            classes, options = ClassList(tuple(str(c) for c in range(num_classes))), {}
        return segmentation_folders(_first_dir(path, IMAGE_DIRS, "image"),
                                    _first_dir(path, MASK_DIRS, "mask"), classes, **options)
    if kind == "dlc":
        if path.is_dir():
            found = sorted(path.rglob("CollectedData_*.csv"))
            if not found:
                raise DatasetError(f"{path}: no CollectedData_*.csv below it")
            if len(found) > 1:
                raise DatasetError(f"{path}: {len(found)} label files below it; name one: "
                                   f"{', '.join(map(str, found[:3]))}")
            path = found[0]
        return DLCKeypoints(path)
    if images is None:
        raise DatasetError("coco-keypoints needs --images (the image folder)")
    return COCOKeypoints(path, images)
