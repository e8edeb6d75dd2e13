"""Optimizers over a model's parameter groups, with per-group learning-rate multipliers.

:func:`build_optimizer` makes SGD (momentum 0.9 by default, as in AlexNet, VGG and ResNet),
Adam (Kingma and Ba, ICLR 2015) or AdamW (Loshchilov and Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019). Parameters come from ``model.param_groups()`` (``stem``,
``stages``, ``head`` for the zoo's classifiers; one group ``all`` for other modules), each group
at ``lr * lr_multipliers[group]``; frozen parameters (``requires_grad=False``) are left out.
With ``decay_norm_and_bias=False``, one-dimensional parameters (batch-norm scales and shifts,
biases) get no weight decay, a common refinement the original papers did not use.

Every optimizer parameter group carries ``name`` ("stages" or "stages/no_decay") and
``lr_multiplier``; schedules scale ``initial_lr`` = lr x multiplier.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cnnkit.errors import CnnkitError

OPTIMIZERS = ("sgd", "adam", "adamw")


def model_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """``model.param_groups()`` when the model declares groups, else ``{"all": parameters}``."""
    groups = getattr(model, "param_groups", None)
    if callable(groups):
        return groups()
    return {"all": list(model.parameters())}


def build_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.1, *,
                    momentum: float = 0.9, weight_decay: float = 1e-4, nesterov: bool = False,
                    betas: tuple[float, float] = (0.9, 0.999),
                    decay_norm_and_bias: bool = True,
                    lr_multipliers: Mapping[str, float] | None = None) -> torch.optim.Optimizer:
    """An optimizer over the trainable parameters of ``model``, grouped as the model declares.

    ``lr_multipliers`` maps group names to factors of ``lr`` (missing groups: 1.0; 0.0 freezes
    the group, as :func:`cnnkit.engine.transfer.freeze` does). Unknown group names are an error.
    """
    if name not in OPTIMIZERS:
        raise CnnkitError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if lr <= 0:
        raise CnnkitError(f"lr must be > 0; got {lr}")
    groups = model_groups(model)
    multipliers = dict(lr_multipliers or {})
    unknown = sorted(set(multipliers) - set(groups))
    if unknown:
        raise CnnkitError(f"lr_multipliers name groups {unknown} that {type(model).__name__} does "
                          f"not have; its groups are {sorted(groups)}")
    param_groups = []
    for group, params in groups.items():
        multiplier = float(multipliers.get(group, 1.0))
        if multiplier < 0:
            raise CnnkitError(f"lr multiplier of group {group!r} must be >= 0; got {multiplier}")
        if multiplier == 0.0:
            for param in params:
                param.requires_grad_(False)
            continue
        trainable = [p for p in params if p.requires_grad]
        split = {group: trainable, f"{group}/no_decay": []}
        if not decay_norm_and_bias:
            split = {group: [p for p in trainable if p.ndim > 1],
                     f"{group}/no_decay": [p for p in trainable if p.ndim <= 1]}
        for group_name, group_params in split.items():
            if group_params:
                decay = 0.0 if group_name.endswith("/no_decay") else weight_decay
                param_groups.append({"params": group_params, "lr": lr * multiplier,
                                     "weight_decay": decay, "name": group_name,
                                     "lr_multiplier": multiplier})
    if not param_groups:
        raise CnnkitError(f"{type(model).__name__} has no trainable parameters (all groups frozen)")
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay)
    optimizer_class = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return optimizer_class(param_groups, lr=lr, betas=betas, weight_decay=weight_decay)
