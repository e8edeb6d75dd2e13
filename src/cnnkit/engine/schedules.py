"""Learning-rate schedules on ``torch.optim.lr_scheduler``, with the trainer's two hooks.

Each :class:`Schedule` wraps one PyTorch scheduler and says when it moves: the trainer calls
:meth:`Schedule.step_iteration` after every optimizer step and :meth:`Schedule.step_epoch`
after every epoch (with the validation figure of the task's primary metric); a schedule reacts
to the one it is defined on. Every parameter group keeps its own base rate (per-group
multipliers included, see :mod:`cnnkit.engine.optim`). ``state_dict`` is the PyTorch
scheduler's (plain numbers), so schedules are saved in checkpoints and resume exactly; the
closed-form factors below (warm-up + cosine, poly) are recomputed from the step count, never
accumulated.

- :class:`StepLR`: divide by ``1/gamma`` every ``step_size`` epochs (AlexNet divided by 10).
- :class:`MultiStepLR`: multiply by ``gamma`` at each milestone epoch (ResNet on CIFAR-10:
  0.1, divided by 10 at 32k and 48k iterations; He et al., "Deep Residual Learning for Image
  Recognition", CVPR 2016).
- :class:`PlateauLR`: "learning rate 0.1, divided by 10 when the validation error plateaus"
  (He et al. 2016 on ImageNet; also AlexNet, Krizhevsky et al., NeurIPS 2012): PyTorch's
  ``ReduceLROnPlateau`` in the direction of the task's primary metric.
- :class:`WarmupCosineLR`: linear warm-up, then cosine decay to ``final_factor``, per iteration
  (Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017, for the
  warm-up; Loshchilov and Hutter, "SGDR", ICLR 2017, for the cosine, here without restarts).
- :class:`PolyLR`: DeepLab's "poly" policy, ``(1 - iteration / total) ** power``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from cnnkit.errors import ArgumentError, CnnkitError


class Schedule:
    """A PyTorch scheduler stepped per iteration (``per_iteration``) or per epoch."""

    per_iteration = False

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler

    def step_iteration(self) -> None:
        if self.per_iteration:
            self.scheduler.step()

    def step_epoch(self, metric: float | None = None) -> None:
        if not self.per_iteration:
            self.scheduler.step()

    @property
    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.scheduler.state_dict().items()
                if key != "lr_lambdas"}  # plain numbers only (the factors are our code)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **state})
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
            group["lr"] = lr


class _Factor(Schedule):
    """``LambdaLR`` with a closed-form factor of the step count."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> None:
        super().__init__(optimizer, lr_scheduler.LambdaLR(optimizer, factor))


class ConstantLR(_Factor):
    """The base rates throughout."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        super().__init__(optimizer, lambda _step: 1.0)


class StepLR(Schedule):
    """``gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int,
                 gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ArgumentError(f"step_size must be >= 1 epoch; got {step_size}")
        super().__init__(optimizer, lr_scheduler.StepLR(optimizer, step_size, gamma))


class MultiStepLR(Schedule):
    """``gamma ** (number of milestones <= epoch)``; ``per_iteration=True`` counts iterations."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: list[int],
                 gamma: float = 0.1, *, per_iteration: bool = False) -> None:
        if list(milestones) != sorted(milestones) or any(m < 1 for m in milestones):
            raise ArgumentError(f"milestones must be increasing positive integers; got "
                                f"{milestones}")
        self.per_iteration = per_iteration
        super().__init__(optimizer, lr_scheduler.MultiStepLR(optimizer, list(milestones),
                                                             gamma))


class PlateauLR(Schedule):
    """Multiply by ``factor`` when the metric has not improved for more than ``patience``
    epochs; ``mode`` "max" (accuracy, mIoU) or "min" (loss, error); an improvement must beat
    the best by ``threshold`` relative to it; ``cooldown`` epochs pass after a reduction before
    counting again; the rate never goes below ``min_factor`` x its base."""

    def __init__(self, optimizer: torch.optim.Optimizer, mode: str = "max", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, cooldown: int = 0,
                 min_factor: float = 0.0) -> None:
        if mode not in ("max", "min"):
            raise ArgumentError(f"mode must be 'max' or 'min'; got {mode!r}")
        if not 0.0 < factor < 1.0:
            raise ArgumentError(f"factor must be in (0, 1); got {factor}")
        self.mode = mode
        floors = [min_factor * group["lr"] for group in optimizer.param_groups]
        super().__init__(optimizer, lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
            threshold_mode="rel", cooldown=cooldown, min_lr=floors))

    def step_epoch(self, metric: float | None = None) -> None:
        if metric is not None and not math.isnan(metric):  # no validation: nothing to judge
            self.scheduler.step(metric)

    @property
    def best(self) -> float:
        return self.scheduler.best

    @property
    def bad_epochs(self) -> int:
        return self.scheduler.num_bad_epochs

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
        for group, lr in zip(self.optimizer.param_groups, self.scheduler._last_lr):
            group["lr"] = lr


class WarmupCosineLR(_Factor):
    """Linear warm-up from ``warmup_start_factor`` over ``warmup_steps`` iterations, then a
    half cosine from 1 down to ``final_factor`` at ``total_steps`` (constant afterwards)."""

    per_iteration = True

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 warmup_start_factor: float = 0.0, final_factor: float = 0.0) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise ArgumentError(f"need 0 <= warmup_steps < total_steps; got {warmup_steps} and "
                                f"{total_steps}")
        self.total_steps, self.warmup_steps = total_steps, warmup_steps

        def factor(step: int) -> float:
            if step < warmup_steps:
                return warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup_steps
            progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
            return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        super().__init__(optimizer, factor)


class PolyLR(_Factor):
    """``(1 - iteration / total_steps) ** power`` per iteration (DeepLab's "poly" policy; 0.9)."""

    per_iteration = True

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int,
                 power: float = 0.9) -> None:
        if total_steps < 1 or power <= 0:
            raise ArgumentError(f"poly needs total_steps >= 1 and power > 0; got {total_steps} "
                                f"and {power}")
        super().__init__(optimizer,
                         lambda step: max(0.0, 1.0 - step / total_steps) ** power)


SCHEDULES = ("constant", "step", "multistep", "plateau", "cosine", "poly")


def build_schedule(name: str, optimizer: torch.optim.Optimizer, *, epochs: int,
                   steps_per_epoch: int, higher_is_better: bool = True,
                   **options: Any) -> Schedule:
    """A schedule by name; ``cosine`` and ``poly`` span ``epochs * steps_per_epoch`` iterations.

    Defaults: step every ``epochs // 3`` epochs; milestones at 50% and 75% of the epochs;
    plateau patience 10 epochs (in the direction of the task's primary metric); cosine warm-up
    0 iterations unless ``warmup_steps`` or ``warmup_epochs`` is given.
    """
    if name not in SCHEDULES:
        raise CnnkitError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    try:
        if name == "constant":
            return ConstantLR(optimizer, **options)
        if name == "step":
            options.setdefault("step_size", max(1, epochs // 3))
            return StepLR(optimizer, **options)
        if name == "multistep":
            options.setdefault("milestones",
                               sorted({max(1, epochs // 2), max(1, epochs * 3 // 4)}))
            return MultiStepLR(optimizer, **options)
        if name == "plateau":
            options.setdefault("mode", "max" if higher_is_better else "min")
            return PlateauLR(optimizer, **options)
        if name == "cosine":
            warmup_epochs = options.pop("warmup_epochs", 0)
            options.setdefault("warmup_steps", round(warmup_epochs * steps_per_epoch))
            return WarmupCosineLR(optimizer, total_steps=epochs * steps_per_epoch, **options)
        return PolyLR(optimizer, total_steps=epochs * steps_per_epoch, **options)
    except TypeError as err:  # an option the schedule does not take
        if "argument" not in str(err):
            raise
        raise CnnkitError(f"schedule {name!r}: {err}") from None
