"""The decks' first check of a configuration: can its model drive the loss on one batch to
(near) zero? (:func:`cnnkit.engine.overfit_one_batch`.)"""

from __future__ import annotations

from typing import Any

from cnnkit.config import RunConfig
from cnnkit.data.batch import collate_samples
from cnnkit.engine import overfit_one_batch
from cnnkit.engine.devices import resolve_device
from cnnkit.runs.assemble import assemble


def sanity(config: RunConfig, *, steps: int = 300, lr: float = 1e-3) -> dict[str, Any]:
    """Overfit the first training batch of ``config`` with its model and task."""
    parts = assemble(config, splits=("train",))
    train_set = parts.datasets["train"]
    count = min(config.data.batch_size, len(train_set))
    batch = collate_samples([train_set[i] for i in range(count)])
    return overfit_one_batch(parts.model, parts.task, batch, steps=steps, lr=lr,
                             device=resolve_device(config.train.device))
