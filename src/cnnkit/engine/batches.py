"""Epoch iteration that can restart mid-epoch: generator states, epoch setting, skipped batches.

The order of a shuffled epoch is fixed by the state of the loader's ``torch.Generator`` (and the
sampler's, when it has its own) at the moment the epoch's iterator is created, or by
``sampler.set_epoch(epoch)`` for a DistributedSampler. The trainer records those states at the
start of each epoch; to resume after ``k`` batches it restores them and iterates a copy of the
loader whose batch sampler skips the first ``k`` index lists, so the skipped images are never
loaded. Random augmentations stay reproducible when they are seeded per sample and epoch
(:class:`cnnkit.data.datasets.transformed.TransformedDataset`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler
from cnnkit.data.datasets.transformed import SampleError
from cnnkit.errors import ArgumentError


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The distinct generators that decide a DataLoader's order and worker seeds."""
    found: list[torch.Generator] = []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    candidates = [getattr(loader, "generator", None), getattr(sampler, "generator", None),
                  getattr(getattr(batch_sampler, "sampler", None), "generator", None)]
    for generator in candidates:
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def order_is_seeded(loader: Any) -> bool:
    """False for a shuffling loader whose order comes from the global RNG (no generator)."""
    sampler = getattr(loader, "sampler", None)
    return not (isinstance(sampler, RandomSampler) and sampler.generator is None
                and getattr(loader, "generator", None) is None)


def set_epoch(loader: Any, epoch: int) -> None:
    """Call ``set_epoch`` on the loader's sampler(s) and dataset where they have one."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None),
                  batch_sampler, getattr(loader, "dataset", None)):
        if owner is not None and callable(getattr(owner, "set_epoch", None)):
            owner.set_epoch(epoch)


class SkipBatches(Sampler[list[int]]):
    """A batch sampler without the first ``skip`` batches of ``batch_sampler``."""

    def __init__(self, batch_sampler: Iterable[list[int]], skip: int) -> None:
        self.batch_sampler, self.skip = batch_sampler, skip

    def __iter__(self) -> Iterator[list[int]]:
        yield from islice(iter(self.batch_sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.batch_sampler) - self.skip)  # type: ignore[arg-type]


def epoch_batches(loader: Any, skip: int = 0) -> Iterable[Any]:
    """The loader's batches from batch ``skip`` on (the generators must already be set)."""
    if skip == 0:
        return loader
    if isinstance(loader, DataLoader) and loader.batch_sampler is not None:
        workers = loader.num_workers
        return DataLoader(
            loader.dataset, batch_sampler=SkipBatches(loader.batch_sampler, skip),
            num_workers=workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
            timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context if workers else None,
            generator=loader.generator, prefetch_factor=loader.prefetch_factor if workers else None,
            pin_memory_device=loader.pin_memory_device)
    return islice(iter(loader), skip, None)  # other iterables: load and drop


def as_batch(batch: Any) -> dict[str, Any]:
    """A collated dict as is; an ``(images, labels)`` pair as ``{"image", "label"}``; a
    worker's :class:`~cnnkit.data.datasets.transformed.SampleError` raised as its error."""
    if isinstance(batch, dict):
        return batch
    if isinstance(batch, SampleError):
        raise batch.error
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return {"image": batch[0], "label": batch[1]}
    raise ArgumentError(f"a batch must be a dict (cnnkit.data.batch.collate_samples) or an "
                    f"(images, labels) pair; got {type(batch).__name__}")
