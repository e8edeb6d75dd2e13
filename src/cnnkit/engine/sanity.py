"""Sanity check before a long run: a network must be able to memorise one batch.

"Make sure you can memorise a single data point: train on one image; it must reach a very low
training loss, and quickly" (the lecture's sanity check #1; also Karpathy, "A Recipe for
Training Neural Networks", 2019, "overfit one batch"). If it cannot, something is wrong in the
loss, the labels, the network or the training code.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from cnnkit.engine.batches import as_batch
from cnnkit.errors import CnnkitError
from cnnkit.tasks.base import Task


def overfit_one_batch(model: nn.Module, task: Task, batch: Any, *, steps: int = 200,
                      lr: float = 1e-3, optimizer: str = "adam", relative: float = 1e-2,
                      threshold: float = 1e-3, copy_model: bool = True,
                      device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train on ``batch`` alone for up to ``steps`` steps (Adam or SGD with momentum 0.9).

    Returns ``initial_loss``, ``final_loss``, ``steps`` run and ``reached``: whether the loss
    went below ``relative`` x the initial loss or below ``threshold`` (it stops there). The
    model runs in training mode (dropout and batch statistics included) without weight decay;
    with ``copy_model`` (default) the caller's model is left untouched.
    """
    if steps < 1:
        raise CnnkitError(f"steps must be >= 1; got {steps}")
    if optimizer not in ("adam", "sgd"):
        raise CnnkitError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    net = copy.deepcopy(model) if copy_model else model
    net.to(device).train()
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
             for k, v in as_batch(batch).items()}
    params = [p for p in net.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9))
    initial = final = None
    done = 0
    for done in range(1, steps + 1):
        loss, _ = task.loss(task.forward(net, batch), batch)
        value = float(loss.detach())
        if initial is None:
            initial = value
        final = value
        if not torch.isfinite(loss):
            break
        if value <= relative * initial or value <= threshold:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    reached = final is not None and (final <= relative * initial or final <= threshold)
    return {"initial_loss": initial, "final_loss": final, "steps": done, "reached": bool(reached)}
