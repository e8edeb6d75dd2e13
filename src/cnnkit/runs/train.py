"""Training a run: ``train(config)`` assembles it, trains it and evaluates its best checkpoint.

The run folder receives the resolved configuration, the inference spec and the split (before
the first step), then the trainer's checkpoints and logs, then the evaluation, the sample
pictures and the report. Under ``torchrun`` every process trains its shard (DDP) and rank 0
alone writes files. The final evaluation is distributed like validation during training: rank 0
reads the best checkpoint and broadcasts its weights (so the other machines need no copy of the
run folder), every process evaluates its shard, the metric is summed across processes, and rank 0
writes ``eval.json``, the samples and the report (see docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import RunConfig, load_config, save_config
from cnnkit.config.loader import config_to_dict
from cnnkit.engine import (Trainer, build_optimizer, build_schedule, freeze, load_checkpoint,
                           make_loader)
from cnnkit.engine.checkpoint import orphans, repair_best
from cnnkit.engine.devices import resolve_device
from cnnkit.engine.distributed import (broadcast_module, broadcast_object, check_sync_bn,
                                       cleanup_distributed, dist_info, init_distributed)
from cnnkit.errors import CnnkitError
from cnnkit.runs.assemble import Assembly, assemble
from cnnkit.runs.data import build_batch_transforms, dataset_split
from cnnkit.runs.evaluate import evaluate_model
from cnnkit.runs.folder import RunFolder
from cnnkit.runs.lock import RunLock

log = logging.getLogger(__name__)


def build_optimizer_for(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer; ``optim.freeze`` groups or prefixes are frozen first (their
    batch-norm layers keep the running statistics they came with)."""
    optim = config.optim
    if optim.freeze:
        try:
            freeze(model, optim.freeze)
        except CnnkitError as err:
            raise CnnkitError(f"optim.freeze: {err}") from None
    return build_optimizer(model, optim.name, optim.lr, momentum=optim.momentum,
                           weight_decay=optim.weight_decay, nesterov=optim.nesterov,
                           betas=tuple(optim.betas), lr_multipliers=optim.lr_mult or None)


def build_schedule_for(config: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                       higher_is_better: bool):
    schedule = config.schedule
    options = dict(schedule.params)
    if schedule.warmup_epochs:
        if schedule.name != "cosine":
            raise CnnkitError(f"schedule.warmup_epochs works with the cosine schedule; "
                              f"got schedule.name={schedule.name!r}")
        if schedule.warmup_epochs >= config.train.epochs:
            raise CnnkitError(f"schedule.warmup_epochs must be less than train.epochs "
                              f"({config.train.epochs}); got {schedule.warmup_epochs}")
        options.update(warmup_epochs=schedule.warmup_epochs,
                       warmup_start_factor=schedule.warmup_factor)
    return build_schedule(schedule.name, optimizer, epochs=config.train.epochs,
                          steps_per_epoch=steps_per_epoch, higher_is_better=higher_is_better,
                          **options)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{name}.")
        elif a != b:
            found.append(f"{name}: {a!r} there, {b!r} now")
    return found


def _make_folder(folder: RunFolder) -> bool:
    """Create the run folder (parents too); True when it was created now."""
    if folder.path.exists() and not folder.path.is_dir():
        raise CnnkitError(f"train.run_dir={folder.path} is a file, not a folder")
    created = not folder.path.exists()
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
        probe = folder.path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise CnnkitError(f"cannot write to the run folder {folder.path} "
                          f"({err.strerror or err})") from None
    return created


def _claim(folder: RunFolder, config: RunConfig, resume: str | Path | None) -> None:
    """Refuse a folder holding another run; tidy what an interrupted run left behind."""
    for stale in orphans(folder.path, (folder.LAST, folder.BEST)):
        log.info("removing %s, left by an interrupted checkpoint write", stale.name)
        stale.unlink(missing_ok=True)
    if resume is not None:
        if Path(resume).resolve() == folder.last.resolve() and repair_best(folder.last,
                                                                           folder.best):
            log.warning("%s was older than the best epoch %s records (an interrupted copy); "
                        "copied it again", folder.best, folder.last)
        return
    if folder.last.exists():
        raise CnnkitError(f"run folder {folder.path} already holds a run ({folder.LAST}); "
                          f"resume it with --resume {folder.last} or choose train.run_dir=...")
    if not folder.run_entries():
        return
    if folder.config.is_file():
        differences = _differences(config_to_dict(load_config(folder.config)),
                                   config_to_dict(config))
        if differences:
            raise CnnkitError(f"run folder {folder.path} holds another run that wrote no "
                              f"checkpoint ({differences[0]}); choose train.run_dir=... or "
                              "remove its files")
    log.info("restarting the run in %s, which stopped before its first checkpoint",
             folder.path)
    folder.remove_run_files()


def _write(path: Path, write) -> None:
    try:
        write(path)
    except OSError as err:
        raise CnnkitError(f"could not write {path} ({err.strerror or err})") from None


def _prepare_folder(folder: RunFolder, config: RunConfig, parts: Assembly,
                    resume: str | Path | None) -> None:
    _claim(folder, config, resume)
    _write(folder.config, lambda path: save_config(config, path))
    _write(folder.spec, parts.spec.save)
    split = dataset_split(config.data)
    if split is not None:
        _write(folder.split, split.save)


def train(config: RunConfig, *, resume: str | Path | None = None, quiet: bool = False,
          max_steps: int | None = None) -> dict[str, Any]:
    """Train as configured, then evaluate the best checkpoint and write the report; returns
    ``{"run_dir", "history", "stop_reason"}`` and, after an evaluation, its figures."""
    info = init_distributed()
    if config.train.sync_bn and info.enabled:  # refused before the run folder is touched
        check_sync_bn(resolve_device(config.train.device))
    folder = RunFolder(config.train.run_dir)
    created = _make_folder(folder) if info.is_main else False
    lock = RunLock(folder.lock) if info.is_main else contextlib.nullcontext()
    try:
        with lock:
            return _train(config, folder, resume=resume, quiet=quiet, max_steps=max_steps)
    except BaseException:
        if created and not any(folder.path.iterdir()):
            folder.path.rmdir()  # nothing of ours to keep
        raise


def _train(config: RunConfig, folder: RunFolder, *, resume: str | Path | None, quiet: bool,
           max_steps: int | None) -> dict[str, Any]:
    info = dist_info()
    parts = assemble(config)
    data, seed, t = config.data, config.train.seed, config.train
    if info.is_main:
        _prepare_folder(folder, config, parts, resume)
    train_set, val_set = parts.datasets["train"], parts.datasets.get("val")
    train_loader = make_loader(train_set, data.batch_size, train=True, seed=seed,
                               num_workers=data.workers, persistent_workers=True)
    val_loader = None if val_set is None else make_loader(
        val_set, data.eval_batch_size or data.batch_size, train=False,
        num_workers=data.workers, persistent_workers=True)
    optimizer = build_optimizer_for(config, parts.model)
    scheduler = build_schedule_for(config, optimizer, len(train_loader),
                                   parts.task.higher_is_better)
    trainer = Trainer(parts.model, parts.task, train_loader, val_loader, optimizer=optimizer,
                      scheduler=scheduler, epochs=t.epochs, files=folder, device=t.device,
                      amp=t.amp, channels_last=t.channels_last, grad_clip=t.grad_clip, ema=t.ema,
                      early_stopping=t.early_stopping, seed=seed, deterministic=t.deterministic,
                      log_every=t.log_every, eval_every=t.eval_every,
                      checkpoint_every=t.checkpoint_every,
                      max_steps=max_steps, resume=resume, quiet=quiet, sync_bn=t.sync_bn,
                      config=config_to_dict(config), spec=parts.spec.to_dict(),
                      batch_transform=build_batch_transforms(data.batch_transforms))
    if info.is_main:  # the precision auto settings chose, and on which hardware
        _write(folder.config, lambda path: save_config(config, path, [trainer.precision]))
    history = trainer.fit()
    result: dict[str, Any] = {"run_dir": str(folder.path), "history": history,
                              "stop_reason": trainer.stop_reason}
    if val_set is not None:
        result.update(_evaluate_best(trainer.raw_model, parts, val_set, folder, config))
    trainer.close()
    cleanup_distributed(barrier=True)
    return result


def _evaluate_best(model: nn.Module, parts: Assembly, val_set: Any, folder: RunFolder,
                   config: RunConfig) -> dict[str, Any]:
    """The best checkpoint's figures on ``val_set``, on every process of the run (each its shard;
    only rank 0 reads the checkpoint and writes)."""
    info = dist_info()
    checkpoint = folder.checkpoint() if info.is_main else None
    if info.is_main:
        model.load_state_dict(load_checkpoint(checkpoint)["model"])
    checkpoint = broadcast_object(checkpoint)
    broadcast_module(model)
    return evaluate_model(model, parts.task, val_set, folder, config, checkpoint=checkpoint)
