"""Image classification: cross-entropy, top-k accuracy, per-class accuracy, confusion matrix.

Loss: cross-entropy with optional ``label_smoothing`` (Szegedy et al., "Rethinking the
Inception Architecture for Computer Vision", CVPR 2016) and per-class ``class_weights``. Models
with auxiliary classifiers return a tuple, main logits first (GoogLeNet:
``(logits, aux2, aux1)``); each auxiliary loss is added with weight ``aux_weight`` = 0.3, the
"discount weight" of Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015). Metrics and
decoding use the main logits only.

Binary classification (the decks' "F = 1: what is the probability this image has a cat?"): a
model with one output (``num_classes=1``) is trained with a sigmoid and binary cross-entropy;
its logit z is read as the two-class scores [0, z] (softmax [1 - sigmoid(z), sigmoid(z)]) by
the metrics and the decoding, so the figures below are those of two classes.

Metrics (:class:`ClassificationMetric`), exact over the dataset: ``accuracy`` (top-1, the
primary metric), ``top5_accuracy`` (top-k with k clipped to the number of classes),
``mean_class_accuracy`` (mean over the classes that occur in the targets); per-class accuracy
and the confusion matrix (rows: true class, columns: predicted) as tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric, Task, main_output
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption

GOOGLENET_AUX_WEIGHT = 0.3


def weight_vector(class_weights: Sequence[float] | torch.Tensor | None,
                  num_classes: int) -> torch.Tensor | None:
    """Per-class loss weights as a float tensor (None stays None), one per class."""
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.shape != (num_classes,):
        raise ArgumentError(f"class_weights must have one weight per class ({num_classes}); "
                         f"got shape {tuple(weights.shape)}")
    return weights


def check_labels(labels: torch.Tensor, num_classes: int, name: str = "label") -> None:
    """Raise if a label lies outside ``[0, num_classes)``. Checked on the CPU only: on a GPU the
    check would wait for the device every step (the loss kernel asserts there instead)."""
    if labels.device.type == "cpu" and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].unique().tolist()
        raise CnnkitError(f"batch {name!r} has values {bad[:10]} outside [0, {num_classes}) "
                          f"(num_classes={num_classes})")


def confusion_counts(target: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``C x C`` int64 counts of (true class, predicted class) pairs."""
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def safe_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` as float64, NaN where the denominator is 0."""
    num, den = numerator.double(), denominator.double()
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))


def aux_names(output: tuple) -> list[str]:
    """Log names of the auxiliary outputs: a named tuple's field names (GoogLeNet's
    ``aux_logits2``, ``aux_logits1``), else ``aux1``, ``aux2``, ... by position."""
    fields = getattr(output, "_fields", None)
    if fields and len(fields) == len(output):
        return list(fields[1:])
    return [f"aux{i}" for i in range(1, len(output))]


def nanmean(values: torch.Tensor) -> float:
    kept = values[~values.isnan()]
    return float(kept.mean()) if kept.numel() else float("nan")


class ClassificationMetric(Metric):
    """Confusion matrix and top-k hit counts over everything seen (see the module docstring)."""

    def __init__(self, num_classes: int, topk: int = 5,
                 scores: Callable[[Any], torch.Tensor] = main_output) -> None:
        self.num_classes, self.scores = num_classes, scores
        self.topk = max(1, min(topk, num_classes))
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.topk_hits = torch.zeros((), dtype=torch.int64)

    def state(self) -> list[torch.Tensor]:
        return [self.confusion, self.topk_hits]

    def update(self, output: Any, batch: Batch) -> None:
        logits = self.scores(output).detach()
        labels = batch["label"].to(logits.device)
        check_labels(labels, self.num_classes)
        pred = logits.argmax(1)
        self.confusion += confusion_counts(labels, pred, self.num_classes).cpu()
        top = logits.topk(self.topk, dim=1).indices
        self.topk_hits += (top == labels[:, None]).any(1).sum().cpu()

    @property
    def per_class_accuracy(self) -> torch.Tensor:
        """Recall of each class (float64; NaN for classes absent from the targets)."""
        return safe_ratio(self.confusion.diagonal(), self.confusion.sum(1))

    def compute(self) -> dict[str, float]:
        total = int(self.confusion.sum())
        if total == 0:
            return {"accuracy": float("nan"), f"top{self.topk}_accuracy": float("nan"),
                    "mean_class_accuracy": float("nan")}
        return {"accuracy": int(self.confusion.diagonal().sum()) / total,
                f"top{self.topk}_accuracy": int(self.topk_hits) / total,
                "mean_class_accuracy": nanmean(self.per_class_accuracy)}


def binary_scores(output: Any) -> torch.Tensor:
    """A one-logit (binary) output z as the two-class scores [0, z]: their softmax is
    [1 - sigmoid(z), sigmoid(z)], so every multi-class figure applies unchanged."""
    logits = main_output(output)
    return torch.cat([torch.zeros_like(logits), logits], dim=1)


def class_names_for(classes: Any, num_classes: int, what: str) -> list[str] | None:
    """The names of a label space's classes, checked against the model's class count (one
    output is a binary classifier of two classes)."""
    if classes is None:
        return None
    names = list(classes.names)
    if len(names) != num_classes and not (num_classes == 1 and len(names) == 2):
        raise CnnkitError(f"the model predicts {num_classes} classes but the data's {what} "
                          f"have {len(names)} ({', '.join(names)}); set "
                          f"model.num_classes={len(names)}")
    return names


def name_of(index: int | None, class_names: Sequence[str] | None) -> str:
    """A class index as its name (the index itself when the name is unknown)."""
    if index is None:
        return "?"
    index = int(index)
    return class_names[index] if class_names and index < len(class_names) else str(index)


@register_task
class ClassificationTask(Task):
    """Cross-entropy classification over ``num_classes`` (see the module docstring)."""

    kind = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0,
                 class_weights: Sequence[float] | torch.Tensor | None = None,
                 aux_weight: float = GOOGLENET_AUX_WEIGHT, topk: int = 5,
                 class_names: Sequence[str] | None = None) -> None:
        if num_classes < 1:
            raise ArgumentError(f"num_classes must be >= 1; got {num_classes}")
        if not 0 <= label_smoothing < 1:
            raise ArgumentError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.binary = num_classes == 1  # one output: P(positive) = sigmoid(z)
        classes = 2 if self.binary else num_classes
        if class_names is not None and len(class_names) != classes:
            raise ArgumentError(f"class_names has {len(class_names)} names for {classes} "
                                "classes" + (" (a binary classifier has two)" if self.binary
                                             else ""))
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.aux_weight, self.topk = aux_weight, topk
        self.class_weights = weight_vector(class_weights, classes)
        self.class_names = list(class_names) if class_names else None

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        num_classes = model.num_classes
        return {"num_classes": num_classes,
                "class_names": class_names_for(labels.label, num_classes, "labels")}

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return self.binary_cross_entropy(logits, labels)
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits, labels, weight=weight,
                               label_smoothing=self.label_smoothing)

    def binary_cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The decks' "F = 1" case: sigmoid and binary cross-entropy on one logit; smoothing
        pulls the targets to eps/2 and 1 - eps/2; class weights weigh each sample by its class."""
        if logits.dim() != 2 or logits.shape[1] != 1:
            raise ArgumentError(f"a binary classifier outputs N x 1 logits; got "
                                f"{tuple(logits.shape)}")
        target = labels.to(logits.dtype) * (1 - self.label_smoothing) + self.label_smoothing / 2
        weight = None
        if self.class_weights is not None:
            weight = self.class_weights.to(logits.device)[labels].to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits[:, 0], target, weight=weight)

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = output if isinstance(output, tuple) else (output,)
        labels = batch["label"].to(outputs[0].device)
        check_labels(labels, 2 if self.binary else self.num_classes)
        main = self.cross_entropy(outputs[0], labels)
        parts = {"ce": main.detach()}
        total = main
        for name, aux in zip(aux_names(outputs), outputs[1:]):
            aux_loss = self.cross_entropy(aux, labels)
            parts[name] = aux_loss.detach()
            total = total + self.aux_weight * aux_loss
        return total, parts

    def new_metric(self) -> ClassificationMetric:
        if self.binary:
            return ClassificationMetric(2, 1, scores=binary_scores)
        return ClassificationMetric(self.num_classes, self.topk)

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``class`` (index), ``class_name`` (when known), ``score`` (its
        probability) and ``probabilities``."""
        scores = binary_scores(output) if self.binary else main_output(output)
        probs = torch.softmax(scores.detach().float(), dim=1).cpu()
        score, index = probs.max(1)
        return [{"class": int(i), "class_name": name_of(i, self.class_names),
                 "score": float(s), "probabilities": p.tolist()}
                for i, s, p in zip(index, score, probs)]

    def flip_back(self, output: Any, width: int) -> Any:
        return output  # class scores do not move with the image

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """The image captioned "true X, predicted Y (score)"."""
        if scale != 1:
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        predicted = f"predicted {name_of(prediction['class'], self.class_names)}"
        if prediction.get("score") is not None:
            predicted += f" ({float(prediction['score']):.2f})"
        if target is None or target.get("label") is None:
            return caption(image, predicted)
        return caption(image, f"true {name_of(target['label'], self.class_names)}, {predicted}")
