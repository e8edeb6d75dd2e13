"""Classification images stored as one sub-folder per class (``root/<class>/<image>``)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from cnnkit.data.datasets.images import (IMAGE_EXTENSIONS, DatasetError, SkipBad, image_size,
                                         list_images, read_image)
from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.sample import Sample


class ClassFolders(Dataset, SkipBad):
    """``root/<class name>/<image>``; classes are the sub-folder names in sorted order.

    An empty class folder or a root without class folders is an error. ``mode`` is "RGB" or "L".
    ``skip_bad=True`` decodes every image once and leaves out unreadable ones (listed in
    ``skipped``, with a warning); otherwise a bad image raises when it is loaded.
    """

    def __init__(self, root: str | Path, *, mode: str = "RGB", skip_bad: bool = False) -> None:
        self.root, self.mode = Path(root), mode
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: folder not found")
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not class_dirs:
            raise DatasetError(f"{self.root}: empty folder (expected one sub-folder per class)")
        self.classes = [p.name for p in class_dirs]
        self.items: list[tuple[Path, int]] = [
            (path, label) for label, d in enumerate(class_dirs) for path in list_images(d)]
        self.skipped: list[tuple[str, str]] = []
        if skip_bad:
            self.items, self.skipped = self._check_all(self.items, self._load, str(self.root))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(label=ClassList(tuple(self.classes)))

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]

    @property
    def keys(self) -> list[str]:
        return [str(p.relative_to(self.root)) for p, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def image_size(self, index: int) -> tuple[int, int]:
        return image_size(self.items[index][0])

    def _load(self, item: tuple[Path, int]) -> Sample:
        path, label = item
        return Sample(read_image(path, self.mode), label=label, meta={"path": str(path)})

    def __getitem__(self, index: int) -> Sample:
        return self._load(self.items[index])


__all__ = ["ClassFolders", "IMAGE_EXTENSIONS"]
