"""Distributed data-parallel training launched by ``torchrun``, and reproducible data loaders.

``torchrun --nproc_per_node N script.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and joins the process
group (NCCL on GPUs, gloo on the CPU). Each process then trains a replica on its shard of every
global batch (:class:`torch.utils.data.DistributedSampler`, the same seed everywhere, so the
shards partition one permutation), gradients are averaged by DistributedDataParallel, only rank 0
writes logs and checkpoints, and validation metrics are summed across processes.
:func:`sync_batch_norm` swaps batch norms for ``torch.nn.SyncBatchNorm`` (CUDA only: torch's
SyncBatchNorm refuses CPU modules, so a gloo run on the CPU is refused in one line), and
:func:`broadcast_module` hands rank 0's weights to every process (the final evaluation loads the
best checkpoint on rank 0 alone, so other machines need no copy of the run folder).

:func:`make_loader` builds loaders whose order is a function of a seed and the epoch only:
a seeded ``torch.Generator`` for shuffling (its state goes into checkpoints), a
``DistributedSampler`` for training in distributed runs and :class:`ShardSampler` (no padding, so
each validation sample counts once) for evaluation.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from cnnkit.data.batch import collate_samples
from cnnkit.data.datasets.transformed import SampleError
from cnnkit.errors import CnnkitError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """This process's place in the running process group (rank 0 of 1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo()


def init_distributed(backend: str | None = None, init_method: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    Without ``WORLD_SIZE`` (or with 1) nothing is initialised. The backend defaults to NCCL
    when CUDA is available, gloo otherwise; on GPUs each process uses ``cuda:LOCAL_RANK``.
    ``init_method`` replaces torchrun's ``MASTER_ADDR``/``MASTER_PORT`` rendezvous (e.g. a
    shared ``file://`` path).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist_info()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method=init_method,
                            rank=int(os.environ["RANK"]), world_size=world_size)
    return dist_info()


def cleanup_distributed(barrier: bool = False) -> None:
    """Leave the process group. ``barrier=True`` (the end of a successful run) waits until every
    process got there, so none tears its connections down while another still talks to it.
    Objects that still hold the group (a DistributedDataParallel wrapper and its pending work)
    are collected first: left to the interpreter's exit, gloo's threads can abort the process."""
    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` in order: every sample on exactly one process."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, seed: int = 0,
                num_workers: int = 0, collate_fn: Callable | None = collate_samples,
                drop_last: bool | None = None, pin_memory: bool = False,
                persistent_workers: bool = False) -> DataLoader:
    """A DataLoader for training (shuffled from ``seed``) or evaluation (in order).

    ``batch_size`` is per process. In a distributed run training uses a DistributedSampler
    seeded with ``seed`` (the trainer calls its ``set_epoch``) and evaluation a
    :class:`ShardSampler`. Training drops the last incomplete batch unless told otherwise.
    """
    info = dist_info()
    generator = torch.Generator().manual_seed(seed)
    drop_last = train if drop_last is None else drop_last
    sampler: Sampler | None = None
    if info.enabled:
        sampler = (DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                      shuffle=True, seed=seed, drop_last=drop_last) if train
                   else ShardSampler(len(dataset), info.rank, info.world_size))
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None,
                      sampler=sampler, num_workers=num_workers,
                      collate_fn=partial(collate_or_error, collate_fn or default_collate),
                      drop_last=drop_last, pin_memory=pin_memory, generator=generator,
                      worker_init_fn=quiet_worker if num_workers else None,
                      persistent_workers=persistent_workers and num_workers > 0)


def default_collate(samples: list[Any]) -> Any:
    from torch.utils.data import default_collate as torch_collate

    return torch_collate(samples)


def collate_or_error(collate: Callable[[list[Any]], Any], samples: list[Any] | dict) -> Any:
    """``collate(samples)``, or the first sample's error when a worker could not read one; a
    batch the dataset collated itself (in-memory data) passes as it is."""
    if isinstance(samples, dict):
        return samples
    for sample in samples:
        if isinstance(sample, SampleError):
            return sample
    return collate(samples)


def quiet_worker(_worker_id: int) -> None:
    """Loader workers leave SIGINT to the main process, which stops the run with a checkpoint
    (a terminal's Ctrl-C reaches every process of the group). SIGTERM keeps its default: it is
    how the main process ends its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def broadcast_flag(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (a no-op without a process group)."""
    info = dist_info()
    if not info.enabled:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
        else torch.device("cpu")
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Every process takes rank 0's buffers (batch-norm statistics): each replica updates its
    own from its shard while training, and the checkpoint holds rank 0's."""
    if not dist_info().enabled:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist_info().enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_to_main(value: object) -> list[object] | None:
    """Every process's ``value`` as a list on rank 0 (None elsewhere); ``[value]`` when alone."""
    info = dist_info()
    if not info.enabled:
        return [value]
    gathered: list[object] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def broadcast_object(value: object) -> object:
    """Rank 0's ``value`` on every process (picklable; ``value`` itself without a group)."""
    if not dist_info().enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)  # NCCL: through the current CUDA device
    return box[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every process (in place; a no-op
    without a process group). Tensors stay where they are, on the process's device; a
    channels-last tensor travels through a contiguous copy."""
    if not dist_info().enabled:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            sent = tensor.data if tensor.is_contiguous() else tensor.data.contiguous()
            dist.broadcast(sent, src=0)
            if sent is not tensor.data:
                tensor.data.copy_(sent)


def sync_batch_norm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` with every batch norm turned into ``torch.nn.SyncBatchNorm`` (statistics over
    the global batch); call it before DDP wrapping. Unlike
    ``SyncBatchNorm.convert_sync_batchnorm`` alone, a converted layer keeps its forward pre-hooks
    (the ones :func:`cnnkit.engine.freeze` adds to keep frozen batch norms in evaluation mode).
    Parameters and buffers are the same tensors, so an optimizer built before stays valid and
    checkpoints keep their keys. CPU modules are refused: torch's DDP rejects SyncBatchNorm on
    the CPU, so a ``device`` other than CUDA (a gloo run on the CPU) is one CnnkitError."""
    check_sync_bn(device)
    hooks = {name: list(layer._forward_pre_hooks.values())
             for name, layer in model.named_modules()
             if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)}
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, kept in hooks.items():
        layer = model.get_submodule(name) if name else model
        for hook in kept:
            if hook not in layer._forward_pre_hooks.values():
                layer.register_forward_pre_hook(hook)
    return model


def check_sync_bn(device: torch.device) -> None:
    """One CnnkitError unless ``device`` is a CUDA device (where SyncBatchNorm runs)."""
    if device.type != "cuda":
        raise CnnkitError(f"train.sync_bn needs CUDA devices (NCCL): torch's SyncBatchNorm does "
                          f"not run on {device.type} (gloo); set train.sync_bn=false")
