"""Data held in memory: the same samples as the files, and whole batches at once."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Subset

from cnnkit.data.batch import collate_samples
from cnnkit.data.datasets import TransformedDataset
from cnnkit.data.datasets.catalog import DatasetOptions, open_dataset
from cnnkit.data.datasets.memory import InMemory
from cnnkit.data.transforms import Compose, HorizontalFlip, Normalize
from cnnkit.engine.distributed import make_loader


def folder(tmp_path, count: int = 5) -> object:
    rng = np.random.default_rng(0)
    for sub in ("image", "label"):
        (tmp_path / sub).mkdir()
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(
            tmp_path / "image" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (6, 7), dtype=np.uint8)).save(
            tmp_path / "label" / f"{i}.png")
    return open_dataset("segmentation", tmp_path, None, DatasetOptions(num_classes=3))


def test_in_memory_samples_equal_the_files(tmp_path) -> None:
    files = folder(tmp_path)
    memory = InMemory(files)
    assert memory.samples[0].image.dtype == torch.uint8  # 8-bit images kept as uint8
    for i in range(len(files)):
        a, b = files[i], memory[i]
        assert torch.equal(a.image, b.image) and a.image.dtype == b.image.dtype
        assert torch.equal(a.mask, b.mask) and a.meta == b.meta
    assert memory.keys == files.keys and memory.label_space == files.label_space
    assert memory.get_batch([0, 1]) is None  # masks move with the image: per sample


class Digits(torch.utils.data.Dataset):
    """Labelled 1 x 4 x 4 uint8-valued images held as numbers, like an idx file."""

    def __init__(self) -> None:
        self.images = torch.arange(10 * 16, dtype=torch.float32).reshape(10, 1, 4, 4) % 256

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index):
        from cnnkit.data.sample import Sample
        return Sample(self.images[index] / 255.0, label=index % 3, meta={"index": index})


def test_batched_access_equals_sample_by_sample() -> None:
    memory = InMemory(Digits())
    normalize = Compose([Normalize([0.5], [0.25])])
    data = TransformedDataset(Subset(memory, [9, 3, 5, 0]), normalize)
    batch = data.__getitems__([0, 2, 3])
    expected = collate_samples([data[0], data[2], data[3]])
    assert isinstance(batch, dict) and torch.equal(batch["image"], expected["image"])
    assert torch.equal(batch["label"], expected["label"]) and batch["meta"] == expected["meta"]
    loader = make_loader(data, 2, train=False)
    first = next(iter(loader))
    assert torch.equal(first["image"], collate_samples([data[0], data[1]])["image"])
    flipping = TransformedDataset(memory, Compose([HorizontalFlip(p=1.0)]))
    assert isinstance(flipping.__getitems__([0, 1]), list)  # random transforms: per sample
