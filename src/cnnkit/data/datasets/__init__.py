"""Datasets read from local files, returning :class:`~cnnkit.data.sample.Sample` objects."""

from cnnkit.data.datasets.coco import COCOInstances
from cnnkit.data.datasets.coco_results import (to_coco_json, write_coco_dataset,
                                                write_coco_results)
from cnnkit.data.datasets.dense import DenseFolders, read_normals, read_valid
from cnnkit.data.datasets.folders import ClassFolders
from cnnkit.data.datasets.idx import FASHION_MNIST_CLASSES, IdxDataset, read_idx
from cnnkit.data.datasets.images import DatasetError, read_depth, read_image, read_mask
from cnnkit.data.datasets.keypoints import COCOKeypoints, DLCKeypoints, left_right_pairs
from cnnkit.data.datasets.labels import ClassList, LabelSpace, base_dataset, label_space
from cnnkit.data.datasets.segmentation import (CAMVID_CLASSES, MEMBRANE_CLASSES,
                                               SegmentationPairs, camvid, match_by_name,
                                               membrane, read_pair_list, segmentation_folders)
from cnnkit.data.datasets.splits import Split, holdout_split, kfold_splits, random_split
from cnnkit.data.datasets.transformed import TransformedDataset, sample_seed

__all__ = [
    "CAMVID_CLASSES", "COCOKeypoints", "ClassFolders", "ClassList", "DLCKeypoints",
    "DatasetError", "DenseFolders", "FASHION_MNIST_CLASSES", "IdxDataset", "LabelSpace",
    "MEMBRANE_CLASSES", "SegmentationPairs", "Split", "TransformedDataset", "base_dataset",
    "camvid", "kfold_splits", "label_space", "left_right_pairs", "match_by_name", "membrane",
    "holdout_split", "random_split", "read_depth", "read_idx", "read_image", "read_mask", "read_normals",
    "read_pair_list", "read_valid", "sample_seed", "segmentation_folders",
]
__all__ += ["COCOInstances", "to_coco_json", "write_coco_dataset", "write_coco_results"]
