"""Tiny task, model and data shared by the engine and run tests."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.tasks.base import Metric, Task


class CountMetric(Metric):
    """Accuracy from summed counts (so all_reduce makes it exact over processes)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct = torch.zeros((), dtype=torch.int64)
        self.total = torch.zeros((), dtype=torch.int64)

    def state(self) -> list[torch.Tensor]:
        return [self.correct, self.total]

    def update(self, output: Any, batch: dict) -> None:
        self.correct += (output.argmax(1) == batch["label"]).sum().cpu()
        self.total += batch["label"].numel()

    def compute(self) -> dict[str, float]:
        return {"accuracy": int(self.correct) / max(1, int(self.total)), "seen": float(self.total)}


class TinyTask(Task):
    kind = "tiny"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, nan_at_call: int | None = None) -> None:
        self.calls, self.nan_at_call = 0, nan_at_call

    def loss(self, output: Any, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        loss = F.cross_entropy(output, batch["label"])
        if output.requires_grad:  # training calls only
            self.calls += 1
            if self.calls == self.nan_at_call:
                loss = loss * float("nan")
        return loss, {"ce": loss.detach()}

    def new_metric(self) -> CountMetric:
        return CountMetric()

    def decode(self, output: Any, batch: dict) -> list[dict[str, Any]]:
        return [{"class": int(c)} for c in output.argmax(1)]

    def draw(self, image: Any, target: Any, prediction: Any, *, scale: int = 1) -> Any:
        return image


class TinyNet(Classifier):
    """conv-BN stem, one conv-BN stage, dropout + linear head; 8 x 8 inputs."""

    def __init__(self, num_classes: int = 4, dropout: float = 0.0, batch_norm: bool = True) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), norm(4), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), norm(8), nn.ReLU())
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(8, num_classes)
        self.feature_specs = [FeatureSpec("stem", 1, 4), FeatureSpec("layer1", 2, 8)]
        self.group_prefixes = {"stem": ("stem",), "stages": ("layer1",), "head": ("fc",)}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x.mean(dim=(2, 3))))


def tiny_data(count: int = 40, seed: int = 0, classes: int = 4) -> TensorDataset:
    """Random 3 x 8 x 8 images whose label is learnable (it shifts the mean of one channel)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count,), generator=generator)
    images = torch.randn(count, 3, 8, 8, generator=generator) * 0.5
    images[:, 0] += labels[:, None, None].float() - 1.5
    return TensorDataset(images, labels)


def shuffled_loader(dataset, batch_size: int = 8, seed: int = 1) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))
