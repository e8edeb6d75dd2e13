"""The detectors' backbone: a zoo ResNet (C2..C5) + a feature pyramid + one max-pooled level.

Lin, Dollar, Girshick, He, Hariharan & Belongie, "Feature Pyramid Networks for Object
Detection", CVPR 2017: every backbone stage C2..C5 (strides 4..32) gets a lateral 1x1
convolution to ``out_channels`` (256); top-down, each level adds the level above it upsampled
(nearest neighbour, to its exact size); a 3x3 convolution smooths each sum into P2..P5; P6 is
P5 subsampled by 2 (a 1x1 max pool with stride 2), used by the RPN only.

As torchvision's ``BackboneWithFPN`` (names and layout, so its checkpoints load): the ResNet is
``body`` (``conv1`` ... ``layer4``, no pool or classifier), the pyramid ``fpn`` with
``inner_blocks.i.0`` (lateral) and ``layer_blocks.i.0`` (smoothing) convolutions with biases,
initialised Kaiming-uniform (a=1) with zero biases; the maps are named ``"0"``..``"3"`` and
``"pool"``. ``norm="frozen"`` replaces every batch norm of the ResNet by
:class:`FrozenBatchNorm2d` (statistics and affine parameters fixed, as buffers), which the
reference's COCO models use; ``"batch"`` (and cnnkit's other norms) keep a trainable norm, for
training from scratch. ``trainable_layers`` (0..5) leaves that many stages trainable, from
``layer4`` down to ``conv1`` (5 also ``bn1``), and freezes the other parameters.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.layers.norm import NORMS
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.detection._legacy import LegacyKeys
from cnnkit.models.features import pick_taps, read_taps

BACKBONE_NORMS = ("frozen", *NORMS)
TRAINABLE_ORDER = ("layer4", "layer3", "layer2", "layer1", "conv1")
LEVEL_NAMES = ("0", "1", "2", "3", "pool")


class FrozenBatchNorm2d(LegacyKeys, nn.Module):
    """Batch norm with fixed statistics and affine parameters, all four buffers (``weight``,
    ``bias``, ``running_mean``, ``running_var``): ``x * w / sqrt(var + eps) + (b - mean * ...)``.

    A checkpoint's ``num_batches_tracked`` (from a trainable batch norm) is ignored on loading.
    The reference's legacy COCO checkpoints were trained with ``eps = 0``
    (:func:`~cnnkit.models.detection.zoo.load_reference_checkpoint` sets it)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        require_positive(num_features=num_features)
        self.num_features, self.eps = num_features, float(eps)
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def rename_legacy(self, state: dict, prefix: str) -> None:
        state.pop(prefix + "num_batches_tracked", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.reshape(1, -1, 1, 1) * (
            self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        shift = self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale
        return x * scale + shift

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def freeze_batch_norms(module: nn.Module) -> nn.Module:
    """Replace (in place) every ``nn.BatchNorm2d`` under ``module`` by a
    :class:`FrozenBatchNorm2d` holding its current values; returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps).to(
                device=child.running_mean.device, dtype=child.running_mean.dtype)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batch_norms(child)
    return module


class FeaturePyramidNetwork(LegacyKeys, nn.Module):
    """Top-down pathway with lateral connections over maps given finest first, plus the extra
    max-pooled level; ``forward(maps)`` returns an ordered dict ``"0", "1", ..., "pool"``."""

    def __init__(self, in_channels_list: list[int], out_channels: int) -> None:
        super().__init__()
        require_positive(out_channels=out_channels)
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, out_channels, 1))
                                          for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1))
            for _ in in_channels_list)
        if not any(p.is_meta for p in self.parameters()):
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_uniform_(m.weight, a=1)
                    nn.init.zeros_(m.bias)

    def legacy_keys(self) -> dict[str, str]:
        return {f"{block}.{i}.{kind}": f"{block}.{i}.0.{kind}"
                for block in ("inner_blocks", "layer_blocks")
                for i in range(len(self.inner_blocks)) for kind in ("weight", "bias")}

    def forward(self, maps: list[torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        last = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](last)]
        for i in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[i](maps[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[i](last))
        results.append(F.max_pool2d(results[-1], 1, 2, 0))
        names = [str(i) for i in range(len(maps))] + ["pool"]
        return OrderedDict(zip(names, results))


class ResNetFPN(nn.Module):
    """``body`` (a headless zoo ResNet) and ``fpn``; ``forward(x)`` gives the pyramid as an
    ordered dict of ``out_channels``-channel maps ``"0"`` (stride 4) .. ``"3"`` (32), ``"pool"``
    (64)."""

    def __init__(self, backbone: str = "resnet50", *, trainable_layers: int = 3,
                 norm: str = "frozen", out_channels: int = 256, in_channels: int = 3) -> None:
        super().__init__()
        if norm not in BACKBONE_NORMS:
            raise ArgumentError(f"norm must be one of {', '.join(BACKBONE_NORMS)}; got {norm!r}")
        if (isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int)
                or not 0 <= trainable_layers <= 5):
            raise ArgumentError(f"trainable_layers must be an integer in 0..5 (stages left "
                                f"trainable from layer4 down); got {trainable_layers!r}")
        options = {} if norm == "frozen" else {"norm": norm}
        body = headless_backbone(backbone, in_channels=in_channels, options=options)
        specs = list(body.feature_specs)
        names = [s.module for s in specs[-4:]]
        if [s.stride for s in specs[-4:]] != [4, 8, 16, 32] or names != [
                "layer1", "layer2", "layer3", "layer4"] or not hasattr(body, "conv1"):
            raise ArgumentError(f"backbone must be a zoo ResNet (conv1, layer1..layer4 at strides "
                                f"4..32, e.g. 'resnet50'); {backbone!r} has maps {names} at "
                                f"strides {[s.stride for s in specs]}")
        if norm == "frozen":
            freeze_batch_norms(body)
        trainable = list(TRAINABLE_ORDER[:trainable_layers])
        if trainable_layers == 5:
            trainable.append("bn1")
        for name, param in body.named_parameters():
            if not any(name.startswith(prefix) for prefix in trainable):
                param.requires_grad_(False)
        self.body = body
        self.taps = pick_taps(body, range(-4, 0))
        self.fpn = FeaturePyramidNetwork([s.channels for s in self.taps], out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(read_taps(self.body, self.taps, x))
