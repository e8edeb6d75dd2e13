"""What a dataset's labels mean: class names and colours, and the keypoints' skeleton.

Every dataset in cnnkit describes its labels with one :class:`LabelSpace` (its ``label_space``
property): the classes of ``sample.label`` (image classes), the classes of ``sample.mask``
(pixel classes, the void class left out when it is ignored), the :class:`Skeleton` of
``sample.keypoints`` (and of ``sample.instance_keypoints``) and the classes of instances
(``sample.box_labels`` of an instance sample: name 0 is "background", 1..C the objects). A
task takes what it needs from it (the class names of its predictions, the left/right pairs of
keypoints), so nothing has to guess from a dataset's type.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset, Subset

from cnnkit.data.datasets.transformed import TransformedDataset
from cnnkit.errors import ArgumentError
from cnnkit.geometry import Skeleton

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassList:
    """Class names, their display/mask colours (optional) and the void class (optional)."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...] | None = None
    void_index: int | None = None

    def __post_init__(self) -> None:
        if self.colors is not None and len(self.colors) != len(self.names):
            raise ArgumentError(f"{len(self.names)} class names but {len(self.colors)} colours")
        if self.void_index is not None and not 0 <= self.void_index < len(self.names):
            raise ArgumentError(f"void_index {self.void_index} is not a class "
                                f"(0..{len(self.names) - 1})")

    def __len__(self) -> int:
        return len(self.names)

    def without_void(self) -> ClassList:
        """The classes a network predicts when void pixels are ignored (void removed)."""
        if self.void_index is None:
            return self
        keep = [i for i in range(len(self.names)) if i != self.void_index]
        colors = None if self.colors is None else tuple(self.colors[i] for i in keep)
        return ClassList(tuple(self.names[i] for i in keep), colors)


@dataclass(frozen=True)
class LabelSpace:
    """The meaning of a dataset's labels (any part may be None: the dataset has no such label)."""

    label: ClassList | None = None  # classes of sample.label
    mask: ClassList | None = None  # classes of sample.mask, as the network predicts them
    skeleton: Skeleton | None = None  # keypoint names and left/right pairs
    instances: ClassList | None = None  # classes of sample.box_labels of instances, 0 background


def base_dataset(dataset: Dataset) -> Dataset:
    """The file dataset under ``TransformedDataset`` and ``Subset`` wrappers."""
    while isinstance(dataset, (TransformedDataset, Subset)):
        dataset = dataset.dataset
    return dataset


def label_space(dataset: Dataset) -> LabelSpace:
    """The :class:`LabelSpace` of ``dataset`` (through its wrappers); empty when it declares
    none (a user's own dataset)."""
    return getattr(base_dataset(dataset), "label_space", None) or LabelSpace()
