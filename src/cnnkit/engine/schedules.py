"""Learning-rate schedules: constant, step, multi-step, divide-on-plateau, warm-up + cosine.

Each schedule sets every parameter group's ``lr`` to that group's ``initial_lr`` (its base
rate, per-group multipliers included, see :mod:`cnnkit.engine.optim`) times a factor. The trainer
calls :meth:`Schedule.step_iteration` after every optimizer step and :meth:`Schedule.step_epoch`
after every epoch (with the validation figure of the task's primary metric); a schedule reacts
to the one it is defined on. ``state_dict``/``load_state_dict`` hold only numbers, so schedules
are saved in checkpoints and resume exactly.

- :class:`StepLR`: divide by ``1/gamma`` every ``step_size`` epochs (AlexNet divided by 10).
- :class:`MultiStepLR`: multiply by ``gamma`` at each milestone epoch (ResNet on CIFAR-10:
  0.1, divided by 10 at 32k and 48k iterations; He et al., "Deep Residual Learning for Image
  Recognition", CVPR 2016).
- :class:`PlateauLR`: "learning rate 0.1, divided by 10 when the validation error plateaus"
  (He et al. 2016 on ImageNet; also AlexNet, Krizhevsky et al., NeurIPS 2012): multiply by
  ``factor`` after ``patience`` epochs without improvement of the primary metric.
- :class:`WarmupCosineLR`: linear warm-up, then cosine decay to ``final_factor``, per iteration
  (Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017, for the
  warm-up; Loshchilov and Hutter, "SGDR", ICLR 2017, for the cosine, here without restarts).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnkit.errors import CnnkitError


class Schedule:
    """Base class: ``factor()`` from ``self.iteration`` / ``self.epoch``, applied to every group."""

    per_iteration = False

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.iteration = 0
        self.epoch = 0
        self.apply()

    def factor(self) -> float:
        return 1.0

    def apply(self) -> None:
        factor = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def step_iteration(self) -> None:
        self.iteration += 1
        if self.per_iteration:
            self.apply()

    def step_epoch(self, metric: float | None = None) -> None:
        self.epoch += 1
        if not self.per_iteration:
            self.apply()

    @property
    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        self.apply()


class ConstantLR(Schedule):
    """The base rates throughout."""


class StepLR(Schedule):
    """``gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise CnnkitError(f"step_size must be >= 1 epoch; got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def factor(self) -> float:
        return self.gamma ** (self.epoch // self.step_size)


class MultiStepLR(Schedule):
    """``gamma ** (number of milestones <= epoch)``; ``per_iteration=True`` counts iterations."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: list[int],
                 gamma: float = 0.1, *, per_iteration: bool = False) -> None:
        if list(milestones) != sorted(milestones) or any(m < 1 for m in milestones):
            raise CnnkitError(f"milestones must be increasing positive integers; got {milestones}")
        self.milestones, self.gamma, self.per_iteration = list(milestones), gamma, per_iteration
        super().__init__(optimizer)

    def factor(self) -> float:
        now = self.iteration if self.per_iteration else self.epoch
        return self.gamma ** sum(1 for m in self.milestones if m <= now)


class PlateauLR(Schedule):
    """Multiply by ``factor`` when the metric has not improved for ``patience`` epochs.

    ``mode`` is "max" (accuracy, mIoU) or "min" (loss, error); an improvement must beat the best
    value by ``threshold`` relative to it. After a reduction, ``cooldown`` epochs pass before
    counting again; the factor never goes below ``min_factor``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, mode: str = "max", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, cooldown: int = 0,
                 min_factor: float = 0.0) -> None:
        if mode not in ("max", "min"):
            raise CnnkitError(f"mode must be 'max' or 'min'; got {mode!r}")
        if not 0.0 < factor < 1.0:
            raise CnnkitError(f"factor must be in (0, 1); got {factor}")
        self.mode, self.reduce_by, self.patience = mode, factor, patience
        self.threshold, self.cooldown, self.min_factor = threshold, cooldown, min_factor
        self.current = 1.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.cooldown_left = 0
        super().__init__(optimizer)

    def factor(self) -> float:
        return self.current

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        margin = abs(self.best) * self.threshold
        return value > self.best + margin if self.mode == "max" else value < self.best - margin

    def step_epoch(self, metric: float | None = None) -> None:
        self.epoch += 1
        if metric is None or math.isnan(metric):
            return  # no validation this epoch
        if self.improved(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        elif self.bad_epochs > self.patience:
            self.current = max(self.current * self.reduce_by, self.min_factor)
            self.bad_epochs, self.cooldown_left = 0, self.cooldown
            self.apply()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "current": self.current, "best": self.best,
                "bad_epochs": self.bad_epochs, "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current, self.best = float(state["current"]), state["best"]
        self.bad_epochs, self.cooldown_left = int(state["bad_epochs"]), int(state["cooldown_left"])
        super().load_state_dict(state)


class WarmupCosineLR(Schedule):
    """Linear warm-up from ``warmup_start_factor`` over ``warmup_steps`` iterations, then a
    half cosine from 1 down to ``final_factor`` at ``total_steps`` (constant afterwards)."""

    per_iteration = True

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 warmup_start_factor: float = 0.0, final_factor: float = 0.0) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise CnnkitError(f"need 0 <= warmup_steps < total_steps; got {warmup_steps} and "
                              f"{total_steps}")
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.warmup_start_factor, self.final_factor = warmup_start_factor, final_factor
        super().__init__(optimizer)

    def factor(self) -> float:
        step = self.iteration
        if step < self.warmup_steps:
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class PolyLR(Schedule):
    """``(1 - iteration / total_steps) ** power`` per iteration (DeepLab's "poly" policy; 0.9)."""

    per_iteration = True

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int,
                 power: float = 0.9) -> None:
        if total_steps < 1 or power <= 0:
            raise CnnkitError(f"poly needs total_steps >= 1 and power > 0; got {total_steps} "
                              f"and {power}")
        self.total_steps, self.power = total_steps, power
        super().__init__(optimizer)

    def factor(self) -> float:
        return max(0.0, 1.0 - self.iteration / self.total_steps) ** self.power


SCHEDULES = ("constant", "step", "multistep", "plateau", "cosine", "poly")


def build_schedule(name: str, optimizer: torch.optim.Optimizer, *, epochs: int,
                   steps_per_epoch: int, higher_is_better: bool = True,
                   **options: Any) -> Schedule:
    """A schedule by name; ``cosine`` spans ``epochs * steps_per_epoch`` iterations.

    Defaults: step every ``epochs // 3`` epochs; milestones at 50% and 75% of the epochs;
    plateau patience 10 epochs (in the direction of the task's primary metric); cosine warm-up
    0 iterations unless ``warmup_steps`` or ``warmup_epochs`` is given.
    """
    if name == "constant":
        return ConstantLR(optimizer, **options)
    if name == "step":
        options.setdefault("step_size", max(1, epochs // 3))
        return StepLR(optimizer, **options)
    if name == "multistep":
        options.setdefault("milestones", sorted({max(1, epochs // 2), max(1, epochs * 3 // 4)}))
        return MultiStepLR(optimizer, **options)
    if name == "plateau":
        options.setdefault("mode", "max" if higher_is_better else "min")
        return PlateauLR(optimizer, **options)
    if name == "cosine":
        warmup_epochs = options.pop("warmup_epochs", 0)
        options.setdefault("warmup_steps", round(warmup_epochs * steps_per_epoch))
        return WarmupCosineLR(optimizer, total_steps=epochs * steps_per_epoch, **options)
    if name == "poly":
        return PolyLR(optimizer, total_steps=epochs * steps_per_epoch, **options)
    raise CnnkitError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
