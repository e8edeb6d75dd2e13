"""Deterministic splits and per-sample seeded transforms."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from cnnkit.data.datasets import Split, TransformedDataset, kfold_splits, random_split
from cnnkit.data.sample import Sample
from cnnkit.data.synthetic import SyntheticShapes
from cnnkit.data.transforms.base import Transform, uniform


def test_random_split_is_deterministic_and_disjoint() -> None:
    keys = [f"k{i}" for i in range(20)]
    a, b = random_split(keys, val=0.25, seed=3), random_split(list(reversed(keys)), val=0.25, seed=3)
    assert a.parts == b.parts  # independent of the input order
    assert len(a["train"]) == 15 and len(a["val"]) == 5
    assert set(a["train"]) | set(a["val"]) == set(keys) and not set(a["train"]) & set(a["val"])
    assert random_split(keys, val=0.25, seed=4).parts != a.parts
    with pytest.raises(ValueError, match="leaves no training samples"):
        random_split(keys, val=20)


def test_kfold_covers_every_key_once(tmp_path) -> None:
    keys = [str(i) for i in range(10)]
    folds = kfold_splits(keys, 3, seed=0)
    vals = [k for f in folds for k in f["val"]]
    assert sorted(vals) == sorted(keys) and [len(f["val"]) for f in folds] == [4, 3, 3]
    folds[1].save(tmp_path / "fold.json")
    assert Split.load(tmp_path / "fold.json").info == {"fold": 1, "k": 3}


class Jitter(Transform):
    def apply(self, sample: Sample, rng: torch.Generator | None) -> Sample:
        return sample.replace(image=sample.image + uniform(rng, 0, 1), meta={"r": uniform(rng, 0, 1)})


def test_transformed_dataset_same_with_any_number_of_workers() -> None:
    data = TransformedDataset(SyntheticShapes(6, 32), Jitter(), seed=1)
    plain = [data[i].meta["r"] for i in range(6)]
    loader = DataLoader(data, batch_size=None, num_workers=2)
    assert [s.meta["r"] for s in loader] == plain
    data.set_epoch(1)
    assert [data[i].meta["r"] for i in range(6)] != plain
    assert data.num_classes == 4  # attributes of the wrapped dataset pass through


def test_dataloader_applies_the_transform_to_subsets() -> None:
    """DataLoader fetches batches through ``__getitems__`` when the dataset has one (Subset
    does): the wrapper must not expose the wrapped dataset's, or the transform is skipped."""
    from torch.utils.data import DataLoader, Subset

    from cnnkit.data.batch import collate_samples
    from cnnkit.data.datasets import TransformedDataset
    from cnnkit.data.synthetic import SyntheticShapes
    from cnnkit.data.transforms import Resize

    subset = Subset(SyntheticShapes(4, size=32, seed=0), [0, 2])
    wrapped = TransformedDataset(subset, Resize((16, 16)), seed=0)
    batch = next(iter(DataLoader(wrapped, batch_size=2, collate_fn=collate_samples)))
    assert tuple(batch["image"].shape) == (2, 3, 16, 16)
