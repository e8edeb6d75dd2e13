"""Every epoch draws new augmentations, also in DataLoader workers that outlive an epoch.

A run's training loader keeps its workers between epochs (``persistent_workers``); a worker
holds its own copy of the dataset, so an epoch number set in the main process only reaches it
through shared memory. Without that every epoch repeated epoch 0's crops and flips.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from cnnkit.data.datasets.transformed import TransformedDataset
from cnnkit.data.sample import Sample
from cnnkit.data.transforms import RandomCrop
from cnnkit.engine import make_loader
from cnnkit.engine.batches import set_epoch


class Ramps(Dataset):
    """Images whose every pixel differs, so any two crops differ."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> Sample:
        image = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 16, 16) / 256 + index
        return Sample(image=image, label=index)


def _epochs(workers: int, persistent: bool, epochs: int = 3) -> list[torch.Tensor]:
    dataset = TransformedDataset(Ramps(), RandomCrop(size=4), seed=7)
    loader = make_loader(dataset, 8, train=False, num_workers=workers,
                         persistent_workers=persistent)
    seen = []
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        seen.append(torch.cat([batch["image"] for batch in loader]))
    return seen


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_see_each_epoch(persistent: bool) -> None:
    reference = _epochs(0, False)
    assert not torch.equal(reference[0], reference[1])  # the crops change with the epoch
    assert not torch.equal(reference[1], reference[2])
    for got, expected in zip(_epochs(2, persistent), reference):
        assert torch.equal(got, expected)


def test_epoch_survives_pickling() -> None:
    import pickle

    dataset = TransformedDataset(Ramps(), RandomCrop(size=4), seed=7)
    dataset.set_epoch(5)
    assert pickle.loads(pickle.dumps(dataset)).epoch == 5
