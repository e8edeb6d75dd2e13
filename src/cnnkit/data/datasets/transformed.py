"""Apply a transform with a generator seeded from ``(seed, epoch, index)``.

Each sample's augmentation then depends only on those three numbers, not on the number of
DataLoader workers nor on which worker loads it. Call :meth:`TransformedDataset.set_epoch`
before each epoch. The epoch lives in a shared-memory tensor, so workers that outlive an epoch
(``persistent_workers=True``) read the new value instead of the one they started with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from cnnkit.data.sample import Sample
from cnnkit.data.transforms.base import Transform
from cnnkit.errors import CnnkitError


@dataclass
class SampleError:
    """A sample a DataLoader worker could not read, carrying its one-line error.

    Raised in a worker process, a :class:`CnnkitError` would reach the main process wrapped by
    torch into a multi-line "Caught ... in DataLoader worker process 0" traceback; returned as
    this object it travels with the batch, and the trainer raises the original error there
    (:func:`cnnkit.engine.batches.as_batch`)."""

    error: CnnkitError


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed from three integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class TransformedDataset(Dataset):
    """``dataset[i]`` passed through ``transform(sample, generator)``."""

    def __init__(self, dataset: Dataset, transform: Transform | None, seed: int = 0,
                 keep_original: bool = False) -> None:
        self.dataset, self.transform, self.seed = dataset, transform, seed
        self.keep_original = keep_original  # the untransformed mask in meta["original_mask"]
        # Shared with the DataLoader's worker processes (forked or spawned), which keep a copy
        # of this object for as long as they live.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample | SampleError:
        try:
            return self._get(index)
        except CnnkitError as err:
            if get_worker_info() is None:
                raise
            return SampleError(err)  # the main process raises it (see SampleError)

    def __getitems__(self, indices: list[int]) -> list[Sample | SampleError] | dict:
        """The samples of ``indices``; as one collated batch dict at once when the data is in
        memory and the transforms are batchable (see :class:`~cnnkit.data.transforms.Transform`)."""
        if self.transform is None or self.transform.batchable:
            source, mapped = _batch_source(self.dataset, indices)
            batch = source.get_batch(mapped) if source is not None else None
            if batch is not None:
                if self.transform is not None:
                    batch["image"] = self.transform.apply_batch(batch["image"])
                size = tuple(batch["image"].shape[-2:])
                for meta in batch["meta"]:
                    meta.setdefault("original_size", size)
                return batch
        return [self[i] for i in indices]

    def _get(self, index: int) -> Sample:
        sample = self.dataset[index]
        if self.transform is None:
            return sample
        if "original_size" not in sample.meta:  # what predictions are mapped back to
            sample = sample.replace(meta={**sample.meta, "original_size": sample.size})
        if self.keep_original and sample.mask is not None:
            sample = sample.replace(meta={**sample.meta, "original_mask": sample.mask})
        rng = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
        return self.transform(sample, rng)

    def __getattr__(self, name: str):
        # Attributes of the wrapped dataset (classes, skeleton, ...) are visible here, but never
        # its special methods: DataLoader fetches through ``__getitems__`` when a dataset has one
        # (torch's Subset does), which would hand out samples without the transform.
        if name in ("dataset", "_epoch") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _batch_source(dataset: Dataset, indices: list[int]) -> tuple[object | None, list[int]]:
    """The dataset under ``Subset`` wrappers that serves whole batches (``get_batch``), with
    ``indices`` mapped through the subsets; None when there is none."""
    from torch.utils.data import Subset

    while isinstance(dataset, Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return (dataset if callable(getattr(dataset, "get_batch", None)) else None), indices
