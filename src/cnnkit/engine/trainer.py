"""The training loop: mixed precision, checkpoints with exact resume, logs, early stopping.

``Trainer(model, task, train_loader, val_loader, optimizer=..., scheduler=..., epochs=...,
files=RunFolder(...)).fit()`` trains and returns the history (one dict per epoch). ``files``
says where the checkpoints and logs go (``last``, ``best``, ``metrics``, ``tensorboard``; a
:class:`cnnkit.runs.RunFolder` is one), so that the run folder's layout has one owner. Per step it runs the
forward pass under autocast, the task's loss, backward (through a GradScaler for float16),
optional gradient-norm clipping, the optimizer and the schedule's iteration step. It never waits
for the device inside a step: losses are kept on the device and read every ``log_every`` steps
(then the progress line, ``metrics.csv`` and TensorBoard are written, and a non-finite loss
stops the run naming its step). After each epoch (every ``eval_every``) it validates over the
whole validation set, steps the schedule with the primary metric, writes ``files.last`` and,
when the primary metric improved, copies it to ``files.best`` (see
:mod:`cnnkit.engine.checkpoint`).

``resume=files.last`` continues as if the run had never stopped, also from the middle of an
epoch (``checkpoint_every`` steps, or ``max_steps``): same weights, optimizer, schedule, RNG
streams and data order, provided the loader's order comes from a generator (shuffle with
``generator=``, or :func:`cnnkit.engine.distributed.make_loader`) and augmentations are seeded
per sample.

``sync_bn=True`` turns the model's batch norms into ``torch.nn.SyncBatchNorm`` before DDP
wrapping in a distributed run (statistics over the global batch instead of each process's
share; a single process is left as it is). It needs CUDA devices: torch's SyncBatchNorm refuses
CPU modules, so a distributed CPU (gloo) run with it stops with one CnnkitError.

``deterministic=True`` asks torch for deterministic kernels (a process-wide setting that stays on)
and sets ``CUBLAS_WORKSPACE_CONFIG`` if unset; on GPUs set that variable before CUDA starts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

import torch
from torch import nn

from cnnkit.data.batch import to_device
from cnnkit.engine import checkpoint as ckpt
from cnnkit.engine.batches import (
    as_batch,
    epoch_batches,
    loader_generators,
    order_is_seeded,
    set_epoch,
)
from cnnkit.engine.devices import (
    precision_note,
    resolve_amp,
    resolve_channels_last,
    resolve_device,
)
from cnnkit.engine.distributed import (
    broadcast_buffers,
    broadcast_flag,
    dist_info,
    gather_to_main,
    sync_batch_norm,
)
from cnnkit.engine.ema import WeightAverage
from cnnkit.engine.evaluate import autocast_context, evaluate
from cnnkit.engine.logs import RunLogger
from cnnkit.engine.optim import build_optimizer
from cnnkit.engine.progress import Progress
from cnnkit.engine.schedules import ConstantLR, Schedule
from cnnkit.engine.signals import StopRequests, TrainingInterrupted
from cnnkit.errors import CnnkitError
from cnnkit.tasks.base import Task

log = logging.getLogger("cnnkit.train")


class NonFiniteLossError(CnnkitError):
    """The training loss became NaN or infinite; the message names the step and epoch."""


class TrainingFiles(Protocol):
    """Where a trainer writes: checkpoints ``last`` and ``best``, ``metrics`` (CSV) and the
    ``tensorboard`` folder (:class:`cnnkit.runs.RunFolder` has them all)."""

    last: Path
    best: Path
    metrics: Path
    tensorboard: Path


class Trainer:
    """Trains ``model`` on ``task``; see the module docstring. ``early_stopping`` is a patience
    in evaluations without improvement of ``task.primary_metric``; ``max_steps`` stops (with a
    checkpoint) after that many optimizer steps in all, counting those before a resume.
    ``ema``: the decay of a moving average of the weights (:mod:`cnnkit.engine.ema`) that is
    validated and saved as the model (the trained weights are kept for resuming)."""

    def __init__(self, model: nn.Module, task: Task, train_loader: Any, val_loader: Any = None, *,
                 optimizer: torch.optim.Optimizer | None = None, scheduler: Schedule | None = None,
                 epochs: int = 1, files: TrainingFiles, device: str | torch.device = "auto",
                 amp: str = "off", channels_last: bool | str = False,
                 grad_clip: float | None = None, ema: float | None = None,
                 early_stopping: int | None = None, seed: int = 0, deterministic: bool = False,
                 log_every: int = 50, eval_every: int = 1, checkpoint_every: int | None = None,
                 max_steps: int | None = None, resume: str | Path | None = None, quiet: bool = False,
                 sync_bn: bool = False,
                 tensorboard: bool = True, progress_stream: TextIO | None = None,
                 config: dict[str, Any] | None = None, spec: dict[str, Any] | None = None,
                 batch_transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        if epochs < 1 or log_every < 1 or eval_every < 1:
            raise CnnkitError(f"epochs, log_every and eval_every must be >= 1; got {epochs}, "
                              f"{log_every}, {eval_every}")
        self.info = dist_info()
        self.device = resolve_device(device)
        self.amp_dtype = resolve_amp(amp, self.device)
        channels_last = resolve_channels_last(channels_last, self.amp_dtype)
        self.precision = precision_note(amp, self.device, self.amp_dtype, channels_last)
        ckpt.seed_everything(seed + self.info.rank)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = not deterministic and self.device.type == "cuda"
        self.task, self.train_loader, self.val_loader = task, train_loader, val_loader
        self.epochs, self.files = epochs, files
        self.spec = ckpt.plain_config(spec) if spec is not None else None
        self.channels_last, self.grad_clip = channels_last, grad_clip
        self.batch_transform = batch_transform
        self.early_stopping, self.log_every, self.eval_every = early_stopping, log_every, eval_every
        self.checkpoint_every, self.max_steps, self.quiet = checkpoint_every, max_steps, quiet
        if sync_bn and self.info.enabled:  # keeps the parameter tensors ``optimizer`` holds
            model = sync_batch_norm(model, self.device)
        model.to(self.device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer if optimizer is not None else build_optimizer(model)
        self.scheduler = scheduler if scheduler is not None else ConstantLR(self.optimizer)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type) if use_scaler else None
        self.model = model
        self.ema = WeightAverage(model, ema) if ema is not None else None
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.steps_per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else 0
        self.epoch, self.step, self.batches_done = 0, 0, 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.evals_without_improvement = 0
        self.history: list[dict[str, float]] = []
        self.stop_reason: str | None = None
        self._epoch_loss = [0.0, 0]  # sum and count of the epoch's training losses
        self._epoch_generator_states: list[torch.Tensor] = []
        self._last_saved: tuple[Path, int] | None = None
        self.config = ckpt.plain_config({
            "epochs": epochs, "amp": amp, "channels_last": channels_last, "grad_clip": grad_clip,
            "ema": ema,
            "precision": self.precision,
            "early_stopping": early_stopping, "seed": seed, "deterministic": deterministic,
            "sync_bn": sync_bn,
            "log_every": log_every, "eval_every": eval_every, "world_size": self.info.world_size,
            "task": getattr(task, "name", type(task).__name__), "model": type(model).__name__,
            "optimizer": type(self.optimizer).__name__, "schedule": type(self.scheduler).__name__,
            **(config or {})})
        self.logger = RunLogger(files.metrics, files.tensorboard if tensorboard else None,
                                enabled=self.info.is_main)
        self.progress = Progress(epochs * self.steps_per_epoch, stream=progress_stream,
                                 quiet=quiet or not self.info.is_main)
        if not order_is_seeded(train_loader):
            log.warning("the training loader shuffles from the global RNG (no generator=): "
                        "a resumed run will see another data order")
        if resume is not None:
            self.load(resume)
        self.progress.message(self.precision)

    def close(self) -> None:
        """Drop the DistributedDataParallel wrapper: its reducer holds the process group, which
        must be destroyed while the interpreter is alive (see ``cleanup_distributed``)."""
        self.model = self.raw_model

    # ------------------------------------------------------------------ state
    @property
    def raw_model(self) -> nn.Module:
        return ckpt.unwrap_model(self.model)

    @property
    def kept_model(self) -> nn.Module:
        """The weights validated and saved as the run's model: the moving average when there is
        one, else the trained weights."""
        return self.ema.module if self.ema is not None else self.raw_model

    def state_dict(self) -> dict[str, Any] | None:
        """The checkpoint contents (on rank 0; None on the other ranks)."""
        rng = gather_to_main(ckpt.rng_state())
        if not self.info.is_main:
            return None
        generators = (self._epoch_generator_states if self.batches_done
                      else [g.get_state() for g in loader_generators(self.train_loader)])
        averaged = {} if self.ema is None else {"trained_model": self.raw_model.state_dict(),
                                                  "ema_updates": self.ema.updates}
        return {"format": ckpt.FORMAT, "model": self.kept_model.state_dict(), **averaged,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": self.epoch, "step": self.step, "batches_done": self.batches_done,
                "best": self.best, "best_epoch": self.best_epoch,
                "evals_without_improvement": self.evals_without_improvement,
                "epoch_loss": list(self._epoch_loss), "history": self.history, "rng": rng,
                "loader_generators": generators, "config": self.config,
                **({"spec": self.spec} if self.spec is not None else {})}

    def _epoch_position(self) -> str:
        if self.batches_done == 0:
            return f"end of epoch {self.epoch}"
        return f"epoch {self.epoch + 1}, batch {self.batches_done}"

    def _kept(self) -> str:
        return (f"the last good checkpoint is {self._last_saved[0]} (step {self._last_saved[1]})"
                if self._last_saved else "no checkpoint had been written yet")

    def _improves(self, primary: float) -> bool:
        """Whether ``primary`` beats the best so far; a NaN (e.g. AP with no detection at all)
        never does, and never blocks a later finite value."""
        if math.isnan(primary):
            return False
        if self.best is None or math.isnan(self.best):
            return True
        return primary > self.best if self.task.higher_is_better else primary < self.best

    def save(self) -> Path:
        """Write the checkpoint ``files.last`` atomically (rank 0 only); never a model whose
        parameters or buffers are not finite (that stops the run, naming them)."""
        bad = ckpt.nonfinite_tensors(self.raw_model)
        if self.ema is not None:
            bad += [f"average {name}" for name in ckpt.nonfinite_tensors(self.ema.module)]
        if broadcast_flag(bool(bad)):
            self.stop_reason = "non-finite weights"
            self.logger.flush()
            named = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise ckpt.NonFiniteStateError(
                f"the model's {named or 'tensors (on another process)'} became NaN or infinite "
                f"by step {self.step} ({self._epoch_position()}); stopped without saving: "
                f"{self._kept()}. Try a lower learning rate, gradient clipping (grad_clip) or "
                "amp='off'/'bf16'")
        state = self.state_dict()
        path = Path(self.files.last)
        if state is not None:
            ckpt.save_checkpoint(state, path)
            self._last_saved = (path, self.step)
        return path

    def load(self, path: str | Path) -> None:
        """Restore everything :meth:`state_dict` saved, to continue the run exactly."""
        state = ckpt.load_checkpoint(path)
        try:
            self.raw_model.load_state_dict(state.get("trained_model", state["model"]))
            if self.ema is not None:
                self.ema.load(state["model"], state.get("ema_updates", 0))
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise ckpt.CheckpointError(f"{path} does not fit this run's model or optimizer "
                                       f"({str(err).splitlines()[0].strip()}); resume with "
                                       "the configuration it was trained with") from None
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.batches_done = state["epoch"], state["step"], state["batches_done"]
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.evals_without_improvement = state["evals_without_improvement"]
        self._epoch_loss = [float(state["epoch_loss"][0]), int(state["epoch_loss"][1])]
        self.history = list(state["history"])
        generators = loader_generators(self.train_loader)
        if len(generators) == len(state["loader_generators"]):
            for generator, saved in zip(generators, state["loader_generators"]):
                generator.set_state(saved)
        rng = state["rng"]
        ckpt.set_rng_state(rng[self.info.rank] if len(rng) == self.info.world_size else rng[0])
        self.logger.drop_after(self.step, self.epoch)
        self.progress.start_steps = self.step
        self._last_saved = (Path(path), self.step)

    # ------------------------------------------------------------------ loop
    def fit(self) -> list[dict[str, float]]:
        """Train until ``epochs`` (or ``max_steps``, or early stopping); return the history.

        SIGINT and SIGTERM stop it at the next step with a checkpoint to resume from
        (:class:`~cnnkit.engine.signals.TrainingInterrupted`)."""
        try:
            with StopRequests() as self._stop:
                while self.epoch < self.epochs and self.stop_reason is None:
                    if not self._train_epoch():
                        self.stop_reason = "max_steps"
                        break
                    self._end_epoch()
                    self._obey_stop(check=True)
        finally:
            self.logger.flush()
            self.progress.close()
        return self.history

    def _obey_stop(self, check: bool) -> None:
        """After a step: on a received signal, save and stop (every process agrees first)."""
        received = getattr(self, "_stop", None) and self._stop.received
        if self.info.enabled:
            if not check:
                return
            received = received or ("SIGTERM" if broadcast_flag(bool(received)) else None)
        if not received:
            return
        self.stop_reason = f"interrupted ({received})"
        self._flush_window()
        saved = None
        if not self._last_saved or self._last_saved[1] != self.step:
            saved = self.save()
        elif self.info.is_main:
            saved = self._last_saved[0]
        self.progress.message(f"{received}: stopping after step {self.step}")
        raise TrainingInterrupted(received, self.step, saved if self.info.is_main else None)

    def _train_epoch(self) -> bool:
        """One epoch (or its rest); False when ``max_steps`` stopped it."""
        generators = loader_generators(self.train_loader)
        self._epoch_generator_states = [g.get_state() for g in generators]
        set_epoch(self.train_loader, self.epoch)
        self.model.train()
        self._window: list[torch.Tensor] = []
        self._window_parts: dict[str, list[Any]] = {}
        self._window_images, self._window_start = 0, time.perf_counter()
        self._epoch_start = time.perf_counter()  # a resumed epoch counts from the resume
        for raw in epoch_batches(self.train_loader, self.batches_done):
            batch = to_device(as_batch(raw), self.device, channels_last=self.channels_last)
            self._train_step(batch if self.batch_transform is None else self.batch_transform(batch))
            self.step += 1
            self.batches_done += 1
            if self.step % self.log_every == 0:
                self._flush_window()
            if self.max_steps is not None and self.step >= self.max_steps:
                self._flush_window()
                self.save()
                return False
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self._flush_window()
                self.save()
            self._obey_stop(check=self.step % self.log_every == 0)
        self._flush_window()
        return True

    def _train_step(self, batch: dict[str, Any]) -> None:
        with autocast_context(self.device, self.amp_dtype):
            output = self.task.forward(self.model, batch)
            loss, parts = self.task.loss(output, batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.raw_model)
        self.scheduler.step_iteration()
        self._window.append(loss.detach())
        for name, value in parts.items():
            self._window_parts.setdefault(name, []).append(
                value.detach() if isinstance(value, torch.Tensor) else value)
        self._window_images += batch["image"].shape[0]

    def _flush_window(self) -> None:
        """Read the losses kept since the last flush: stop on a non-finite one, log the mean."""
        if not self._window:
            return
        losses = torch.stack(self._window).float().cpu()
        finite = torch.isfinite(losses)
        if broadcast_flag(not bool(finite.all())):
            self._stop_on_nonfinite(losses, finite)
        now = time.perf_counter()
        mean_loss = float(losses.mean())
        self._epoch_loss[0] += float(losses.sum())
        self._epoch_loss[1] += len(losses)
        images_per_s = self._window_images * self.info.world_size / max(now - self._window_start, 1e-9)
        figures = {"loss": mean_loss, "lr": max(self.scheduler.lrs), "images_per_s": images_per_s}
        for name, values in self._window_parts.items():
            if values and isinstance(values[0], torch.Tensor):
                figures[name] = float(torch.stack(values).float().mean())
            else:
                figures[name] = sum(values) / len(values)
        self.logger.log("train", figures, epoch=self.epoch, step=self.step)
        self.progress.update(epoch=self.epoch, epochs=self.epochs, batch=self.batches_done,
                             batches=self.steps_per_epoch, step=self.step, loss=mean_loss,
                             lr=figures["lr"], images_per_s=images_per_s)
        self._window, self._window_parts = [], {}
        self._window_images, self._window_start = 0, now

    def _stop_on_nonfinite(self, losses: torch.Tensor, finite: torch.Tensor) -> None:
        if bool(finite.all()):
            where = "on another process"
        else:
            first = int((~finite).nonzero()[0])
            step = self.step - len(losses) + first + 1
            batch = self.batches_done - len(losses) + first + 1
            where = f"{losses[first].item()} at step {step} (epoch {self.epoch + 1}, batch {batch})"
        self.stop_reason = "non-finite loss"
        self.logger.flush()
        raise NonFiniteLossError(f"training loss is {where}; stopped without saving: "
                                 f"{self._kept()}. "
                                 "Try a lower learning rate, gradient clipping (grad_clip) or "
                                 "amp='off'/'bf16'")

    def _end_epoch(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        total, count = self._epoch_loss
        record: dict[str, float] = {"epoch": self.epoch + 1, "step": self.step,
                                    "train_loss": total / count if count else float("nan"),
                                    "lr": max(self.scheduler.lrs), "seconds": seconds}
        self.epoch += 1
        self.batches_done, self._epoch_loss = 0, [0.0, 0]
        primary, improved = None, False
        due = self.epoch % self.eval_every == 0 or self.epoch == self.epochs
        if self.val_loader is not None and due:
            broadcast_buffers(self.kept_model)  # validate with the statistics rank 0 saves
            figures = evaluate(self.kept_model, self.task, self.val_loader, device=self.device,
                               amp_dtype=self.amp_dtype, channels_last=self.channels_last)
            record.update({f"val_{name}": value for name, value in figures.items()})
            self.logger.log("val", figures, epoch=self.epoch, step=self.step)
            primary = figures.get(self.task.primary_metric)
            if primary is None:
                raise CnnkitError(f"the metric of task {self.task.name!r} gave no "
                                  f"{self.task.primary_metric!r} (it gave {sorted(figures)})")
            improved = self._improves(primary)
            if improved:
                self.best, self.best_epoch, self.evals_without_improvement = primary, self.epoch, 0
            else:
                self.evals_without_improvement += 1
        self.scheduler.step_epoch(primary)
        self.history.append(record)
        if self.early_stopping is not None and self.evals_without_improvement >= self.early_stopping:
            self.stop_reason = "early stopping"
        last = self.save()
        if improved and self.info.is_main:
            ckpt.copy_checkpoint(last, self.files.best)
        shown = " ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "step"))
        self.progress.message(f"epoch {self.epoch}/{self.epochs} {shown}"
                              + (" (best)" if improved else "")
                              + (f"; stopping early: no improvement of {self.task.primary_metric} "
                                 f"in {self.early_stopping} evaluations" if self.stop_reason else ""))
