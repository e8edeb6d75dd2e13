"""A multi-task dense network: one FPN trunk, one head per task, and the learned task weights.

- Trunk: the feature pyramid and the panoptic-FPN semantic branch of
  :mod:`cnnkit.models.segmentation.fpn` (Lin et al., CVPR 2017; Kirillov et al., CVPR 2019) on a
  zoo backbone: P2..P5 merged into one map at stride 4 (``head_channels`` channels), shared by
  every task. The FPN's own classifier is left out.
- Heads: per task, a 3x3 convolution + GroupNorm + ReLU and a 1x1 convolution to the task's
  channels (depth 1: log depth; normals 3; segmentation ``num_classes`` logits), bilinearly
  upsampled to the input size. ``forward`` returns a dict keyed by task kind, as the multitask
  task (:mod:`cnnkit.tasks.multitask`) reads it.
- :class:`LogVariances`: the learned log-variances ``s_i`` of Kendall, Gal & Cipolla, "Multi-Task
  Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics" (CVPR 2018), one
  scalar per task, initialised to 0 (weight 1). Tasks have no parameters, so the model holds
  them and returns them in ``output["log_variances"]``; the task's ``weighting="uncertainty"``
  turns them into ``sum_i exp(-s_i) L_i + s_i``. ``log_variances=False`` leaves them out.

Differences: the papers are single-task (FPN) or use a SegNet-style encoder-decoder with a
deep-supervision-free decoder per task (Kendall et al.); this is a light multi-head design for
CPU training, not a reproduction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.segmentation.fpn import FPNSegmenter
from cnnkit.models.segmentation.headless import resize

PAPER = ("A. Kendall, Y. Gal, R. Cipolla, Multi-Task Learning Using Uncertainty to Weigh Losses "
         "for Scene Geometry and Semantics, CVPR 2018; T.-Y. Lin et al., Feature Pyramid "
         "Networks for Object Detection, CVPR 2017")
DENSE_KINDS = ("depth", "normals", "segmentation")
LOG_VARIANCES = "log_variances"


def head_channels_for(kind: str, num_classes: int) -> int:
    """Output channels of a head of ``kind``: depth 1, normals 3, segmentation the classes."""
    channels = {"depth": 1, "normals": 3, "segmentation": num_classes}
    if kind not in channels:
        raise ArgumentError(f"tasks: unknown dense task {kind!r}; choose from "
                            f"{', '.join(DENSE_KINDS)}")
    return channels[kind]


def check_kinds(tasks: Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(tasks)
    if not kinds or len(set(kinds)) != len(kinds):
        raise ArgumentError(f"tasks must name distinct task kinds of {', '.join(DENSE_KINDS)}; "
                            f"got {list(kinds)}")
    for kind in kinds:
        head_channels_for(kind, 1)
    return kinds


class LogVariances(nn.Module):
    """One learned log-variance ``s_i`` per task (Kendall et al.), initialised to 0."""

    def __init__(self, kinds: Sequence[str]) -> None:
        super().__init__()
        self.kinds = tuple(kinds)
        self.values = nn.Parameter(torch.zeros(len(self.kinds)))

    def forward(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.kinds, self.values.unbind(0)))


def dense_head(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv + GroupNorm + ReLU, then a 1x1 conv to ``out_channels``."""
    groups = 32 if in_channels % 32 == 0 else 1
    return nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, 1))


class MultiTaskFPN(DenseModel):
    """``trunk`` (an FPN without classifier), ``heads`` by kind, optional ``log_variances``."""

    def __init__(self, backbone: str, *, tasks: Sequence[str], num_classes: int,
                 in_channels: int, pyramid_channels: int, head_channels: int,
                 log_variances: bool) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.task_kinds = check_kinds(tasks)
        self.trunk = FPNSegmenter(backbone, num_classes=1, in_channels=in_channels,
                                  pyramid_channels=pyramid_channels, head_channels=head_channels)
        self.trunk.classifier = nn.Identity()  # the heads below replace it
        self.heads = nn.ModuleDict({kind: dense_head(head_channels,
                                                     head_channels_for(kind, num_classes))
                                    for kind in self.task_kinds})
        init_weights(self.heads, "kaiming")
        self.log_variances = LogVariances(self.task_kinds) if log_variances else None
        self.num_classes = num_classes
        self.display_name = f"multi-task FPN ({backbone}: {', '.join(self.task_kinds)})"
        self.input_sizes = InputSizes(minimum=32)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The shared stride-4 map: the panoptic-FPN sum of the pyramid levels."""
        levels = self.trunk.pyramid(x)
        sizes = [tuple(p.shape[-2:]) for p in levels]
        total = 0
        for level, (p, stages) in enumerate(zip(levels, self.trunk.head)):
            for i, stage in enumerate(stages):
                p = stage(p, sizes[max(level - i - 1, 0)])
            total = total + p
        return total

    def predict(self, x: torch.Tensor) -> dict[str, object]:
        shared = self.features(x)
        out: dict[str, object] = {kind: resize(head(shared), x.shape[-2:])
                                  for kind, head in self.heads.items()}
        if self.log_variances is not None:
            out[LOG_VARIANCES] = self.log_variances()
        return out


def multitask_fpn(backbone: str = "resnet18", *, num_classes: int = 4, in_channels: int = 3,
                  tasks: Sequence[str] = DENSE_KINDS, pyramid_channels: int = 128,
                  head_channels: int = 64, log_variances: bool = True) -> MultiTaskFPN:
    """One FPN trunk on a zoo ``backbone`` and a head per task of ``tasks`` (``num_classes``:
    the segmentation classes)."""
    return MultiTaskFPN(backbone, tasks=tasks, num_classes=num_classes, in_channels=in_channels,
                        pyramid_channels=pyramid_channels, head_channels=head_channels,
                        log_variances=log_variances)
