"""Training a run: ``train(config)`` assembles it, trains it and evaluates its best checkpoint.

The run folder receives the resolved configuration, the inference spec and the split (before
the first step), then the trainer's checkpoints and logs, then the evaluation, the sample
pictures and the report. Under ``torchrun`` every process trains its shard (DDP); rank 0 alone
writes files and evaluates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import RunConfig, save_config
from cnnkit.config.loader import config_to_dict
from cnnkit.engine import (Trainer, build_optimizer, build_schedule, freeze, load_checkpoint,
                           make_loader)
from cnnkit.engine.distributed import cleanup_distributed, dist_info, init_distributed
from cnnkit.errors import CnnkitError
from cnnkit.runs.assemble import Assembly, assemble
from cnnkit.runs.data import build_batch_transforms, dataset_split
from cnnkit.runs.evaluate import evaluate_model
from cnnkit.runs.folder import RunFolder


def build_optimizer_for(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer; ``optim.freeze`` groups or prefixes are frozen first (their
    batch-norm layers keep the running statistics they came with)."""
    optim = config.optim
    if optim.freeze:
        freeze(model, optim.freeze)
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
        options.update(warmup_epochs=schedule.warmup_epochs,
                       warmup_start_factor=schedule.warmup_factor)
    return build_schedule(schedule.name, optimizer, epochs=config.train.epochs,
                          steps_per_epoch=steps_per_epoch, higher_is_better=higher_is_better,
                          **options)


def _prepare_folder(folder: RunFolder, config: RunConfig, parts: Assembly,
                    resume: str | Path | None) -> None:
    if resume is None and folder.last.exists():
        raise CnnkitError(f"run folder {folder.path} already holds a run ({folder.LAST}); "
                          f"resume it with --resume {folder.last} or choose train.run_dir=...")
    folder.path.mkdir(parents=True, exist_ok=True)
    save_config(config, folder.config)
    parts.spec.save(folder.spec)
    split = dataset_split(config.data)
    if split is not None:
        split.save(folder.split)


def train(config: RunConfig, *, resume: str | Path | None = None, quiet: bool = False,
          max_steps: int | None = None) -> dict[str, Any]:
    """Train as configured, then evaluate the best checkpoint and write the report; returns
    ``{"run_dir", "history", "stop_reason"}`` and, after an evaluation, its figures."""
    info = init_distributed()
    folder = RunFolder(config.train.run_dir)
    parts = assemble(config)
    data, seed, t = config.data, config.train.seed, config.train
    if dist_info().is_main:
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
                      amp=t.amp, channels_last=t.channels_last, grad_clip=t.grad_clip,
                      early_stopping=t.early_stopping, seed=seed, deterministic=t.deterministic,
                      max_steps=max_steps, resume=resume, quiet=quiet,
                      config=config_to_dict(config), spec=parts.spec.to_dict(),
                      batch_transform=build_batch_transforms(data.batch_transforms))
    history = trainer.fit()
    cleanup_distributed()
    result: dict[str, Any] = {"run_dir": str(folder.path), "history": history,
                              "stop_reason": trainer.stop_reason}
    if val_set is not None and info.is_main:
        checkpoint = folder.checkpoint()
        parts.model.load_state_dict(load_checkpoint(checkpoint)["model"])
        result.update(evaluate_model(parts.model, parts.task, val_set, folder, config,
                                     checkpoint=checkpoint))
    return result
