"""Residual blocks: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

- :class:`BasicBlock`: two 3x3 convolutions (ResNet-18/34 and the CIFAR ResNets).
- :class:`Bottleneck`: 1x1 reduce, 3x3, 1x1 expand (x4), for ResNet-50 and deeper; with
  ``groups``/``base_width`` it is the ResNeXt block (Xie et al., "Aggregated Residual
  Transformations for Deep Neural Networks", CVPR 2017) and the wide bottleneck of torchvision's
  Wide ResNet-50-2.
- :class:`WideBasicBlock`: the pre-activation block (BN-ReLU-conv) of Zagoruyko & Komodakis,
  "Wide Residual Networks", BMVC 2016, which follows He et al., "Identity Mappings in Deep
  Residual Networks", ECCV 2016.

Both post-activation blocks take an optional Squeeze-and-Excitation module (``se_reduction``,
Hu et al., CVPR 2018), applied to the residual branch before the addition, as in the SE paper.

Shortcuts when the shape changes (paper section 3.3): option A (:class:`ZeroPadShortcut`) is
the parameter-free identity that subsamples and pads the new channels with zeros; option B
(:func:`projection_shortcut`) is a strided 1x1 convolution followed by batch norm (the batch norm
follows torchvision; the paper only says "projection"). Module and parameter names follow
torchvision (``conv1``, ``bn1``, ..., ``downsample.0``/``.1``) so its checkpoints load.

``residual=False`` removes the shortcut altogether (no identity, no projection, no addition):
the "plain" block of the paper's degradation experiment (sections 4.1 and 4.2). ``norm``
("batch" by default, or "group", "layer", "instance"; :func:`cnnkit.layers.norm.make_norm`)
chooses the normalisation after each convolution; the modules keep the names ``bn1``, ``bn2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers.norm import make_norm
from cnnkit.layers.squeeze_excite import SqueezeExcite
from cnnkit.errors import ArgumentError

SHORTCUTS = ("A", "B", "none")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
            dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias whose padding keeps the size (divided by ``stride``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, dilation=dilation, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: ``x[:, :, ::stride, ::stride]`` with zero channels appended.

    It has no parameters. The new channels go after the existing ones (the paper does not say
    where; some implementations split them on both sides, which is the same up to a fixed
    permutation of channels that the following convolutions absorb).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels or stride < 1:
            raise ArgumentError(f"ZeroPadShortcut cannot go from {in_channels} to {out_channels} "
                             f"channels with stride {stride}: it needs out >= in and stride >= 1")
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def projection_shortcut(in_channels: int, out_channels: int, stride: int, *,
                        norm: str = "batch") -> nn.Sequential:
    """Option B shortcut: strided 1x1 convolution + batch norm (torchvision's ``downsample``)."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride),
                         make_norm(norm, out_channels))


def check_shortcut(kind: str) -> None:
    if kind not in SHORTCUTS:
        raise ArgumentError(f"shortcut must be 'A' (zero-padded identity), 'B' (1x1 projection) "
                            f"or 'none' (plain network, no shortcut); got {kind!r}")


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, *,
                  norm: str = "batch") -> nn.Module | None:
    """The shortcut of one block: ``None`` for the identity (the shape does not change) and for
    ``"none"`` (no shortcut: build the block with ``residual=False``), else option ``"A"``
    (zero padding) or ``"B"`` (projection with a ``norm`` layer)."""
    check_shortcut(kind)
    if kind == "none" or (stride == 1 and in_channels == out_channels):
        return None
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return projection_shortcut(in_channels, out_channels, stride, norm=norm)


def _check_plain(residual: bool, downsample: nn.Module | None) -> None:
    if not residual and downsample is not None:
        raise ArgumentError("a block with residual=False has no shortcut: downsample must be None")


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN (+SE), plus shortcut, then ReLU. Output has ``planes`` channels.

    ``first_dilation`` (default ``dilation``) is the dilation of the first, possibly strided,
    convolution: the first block of a dilated stage keeps the previous stage's dilation there.
    ``residual=False``: the plain block, ReLU(BN(conv(ReLU(BN(conv(x)))))) without the addition.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, dilation: int = 1,
                 first_dilation: int | None = None, se_reduction: int | None = None,
                 residual: bool = True, norm: str = "batch") -> None:
        super().__init__()
        _check_plain(residual, downsample)
        self.conv1 = conv3x3(in_channels, planes, stride, dilation=first_dilation or dilation)
        self.bn1 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = make_norm(norm, planes)
        self.se = SqueezeExcite(planes, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.residual = residual

    def zero_init_last(self) -> None:
        """Zero the last BN's gamma: the residual branch starts at zero (Goyal et al., 2017)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if not self.residual:
            return self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN (+SE), plus shortcut, then ReLU.

    The inner width is ``int(planes * base_width / 64) * groups`` (torchvision's rule: 64 and 1
    give ResNet, ``groups=32, base_width=4`` ResNeXt-32x4d, ``base_width=128`` Wide ResNet-50-2);
    the output has ``4 * planes`` channels.

    By default the stride is in the 3x3 convolution (torchvision's "ResNet v1.5");
    ``stride_in_1x1=True`` puts it in the first 1x1 convolution as in the original paper and
    its Caffe models. The 3x3 convolution uses ``first_dilation`` (default ``dilation``).
    ``residual=False`` drops the shortcut and the addition (a plain bottleneck).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, first_dilation: int | None = None,
                 stride_in_1x1: bool = False, se_reduction: int | None = None,
                 residual: bool = True, norm: str = "batch") -> None:
        super().__init__()
        _check_plain(residual, downsample)
        width = int(planes * (base_width / 64.0)) * groups
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = make_norm(norm, width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups, first_dilation or dilation)
        self.bn2 = make_norm(norm, width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = make_norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(out_channels, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.residual = residual

    def zero_init_last(self) -> None:
        """Zero the last BN's gamma: the residual branch starts at zero (Goyal et al., 2017)."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if not self.residual:
            return self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class WideBasicBlock(nn.Module):
    """Pre-activation block of Wide ResNets: BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, plus
    shortcut, with no activation after the addition.

    When the shape changes, the shortcut is a 1x1 convolution (no batch norm) applied to the
    pre-activated input ``relu(bn1(x))``, which both paths then share, as in Zagoruyko &
    Komodakis's code; otherwise it is the identity on ``x``. Dropout (the paper's
    "dropout between convolutions") is active only when ``dropout > 0``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"dropout must be in [0, 1); got {dropout}")
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = (None if stride == 1 and in_channels == out_channels
                         else conv1x1(in_channels, out_channels, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        identity = x if self.shortcut is None else self.shortcut(activated)
        return out + identity
