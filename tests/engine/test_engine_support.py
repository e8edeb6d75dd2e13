"""The tiny task of the engine tests checks itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers.engine import TinyNet, TinyTask, tiny_data


def test_tiny_task_loss_metric_and_decode() -> None:
    task, data = TinyTask(), tiny_data(8)
    images, labels = data.tensors
    logits = F.one_hot(labels, 4).float() * 5
    loss, parts = task.loss(logits, {"image": images, "label": labels})
    assert loss.item() < 0.05 and torch.equal(parts["ce"], loss.detach())
    metric = task.new_metric()
    metric.update(logits, {"label": labels})
    assert metric.compute() == {"accuracy": 1.0, "seen": 8.0}
    assert [d["class"] for d in task.decode(logits, {})] == labels.tolist()
    assert TinyNet()(images).shape == (8, 4)
