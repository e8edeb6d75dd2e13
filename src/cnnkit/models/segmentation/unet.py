"""U-Net: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015.

A contracting path of (two 3x3 convolutions + ReLU, 2x2 max pool) levels doubling the width, a
bottleneck, and an expanding path of (2x2 up-convolution halving the width, concatenation with
the centre-cropped encoder map of the same level, two 3x3 convolutions + ReLU) levels, ending in
a 1x1 convolution to the classes. With the paper's unpadded ("valid") convolutions every 3x3
convolution removes a 2-pixel border, so the map is smaller than the input: 572x572 gives
388x388 (the paper's Figure 1), and only the sizes ``188 + 16k`` tile exactly (every map before a
pool has an even size); :meth:`UNet.output_size` says what comes out. ``padding="same"``
keeps the size (any multiple of ``2**depth``). The network at the paper's sizes (1 input
channel, 2 classes, width 64, depth 4) has 31,030,658 parameters.

Options beyond the paper: ``batch_norm`` after every 3x3 convolution (biases dropped),
``upsampling="bilinear"`` (bilinear interpolation then a 3x3 "same" convolution instead of the
2x2 up-convolution), ``padding``, ``depth``, ``base_width``; and ``encoder=<zoo name>``: a
zoo classifier without its head (e.g. ResNet-34, feature maps at strides 2..32) as the
contracting path, a decoder with one up-block per encoder map (padded convolutions, batch norm)
and a last up-block without skip to the input resolution.

Initialisation: He et al. normal (fan-in), as the paper's "std sqrt(2/N), N = 9 x input
channels"; an encoder keeps its own initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from cnnkit.layers.upsample import UpsampleConv
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.registry import register
from cnnkit.models.features import pick_taps, read_taps
from cnnkit.errors import ArgumentError, require_positive

PAPER = ("O. Ronneberger, P. Fischer, T. Brox, U-Net: Convolutional Networks for Biomedical "
         "Image Segmentation, MICCAI 2015")
Upsampling = Literal["transpose", "bilinear"]
Padding = Literal["valid", "same"]
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)


class DoubleConv(nn.Sequential):
    """Two (3x3 convolution [+ batch norm] + ReLU); ``padding="valid"`` removes 4 pixels."""

    def __init__(self, in_channels: int, out_channels: int, *, padding: Padding = "valid",
                 batch_norm: bool = False) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1 if padding == "same" else 0,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The central ``size`` (H, W) window of ``x`` (the paper's "copy and crop")."""
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top:top + size[0], left:left + size[1]]


class UpBlock(nn.Module):
    """Upsample by ``factor`` to ``up_channels``, concatenate the (cropped) skip map, DoubleConv.

    ``upsampling="transpose"``: the paper's up-convolution (kernel = stride = ``factor``);
    ``"bilinear"``: bilinear interpolation then a 3x3 "same" convolution.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *,
                 up_channels: int | None = None, factor: int = 2,
                 upsampling: Upsampling = "transpose", padding: Padding = "valid",
                 batch_norm: bool = False) -> None:
        super().__init__()
        up_channels = out_channels if up_channels is None else up_channels
        if upsampling == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, up_channels, factor, stride=factor)
        elif upsampling == "bilinear":
            self.up = UpsampleConv(in_channels, up_channels, factor, mode="bilinear")
        else:
            raise ArgumentError(f"upsampling must be 'transpose' or 'bilinear'; got {upsampling!r}")
        self.conv = DoubleConv(up_channels + skip_channels, out_channels, padding=padding,
                               batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1)
        return self.conv(x)


def valid_unet_sizes(depth: int) -> tuple[InputSizes, int]:
    """Input sizes of the valid-convolution U-Net of ``depth`` pools, and how many pixels the
    output is smaller than the input (572 -> 388 at depth 4: 184)."""
    bottom = 1
    while True:  # smallest bottleneck output whose decoder maps all stay >= 1 pixel
        decoder = [bottom]
        for _ in range(depth):
            decoder.append(2 * decoder[-1] - 4)
        if min(decoder) >= 1:
            break
        bottom += 1
    size = bottom + 4
    for _ in range(depth):
        size = 2 * size + 4
    return InputSizes(size, 2 ** depth), size - decoder[-1]


def _init_he_fan_in(modules: Sequence[nn.Module]) -> None:
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class UNet(DenseModel):
    """The paper's U-Net; see the module docstring. ``output_size(n)`` gives the map size."""

    def __init__(self, *, num_classes: int = 2, in_channels: int = 1, depth: int = 4,
                 base_width: int = 64, batch_norm: bool = False,
                 upsampling: Upsampling = "transpose", padding: Padding = "valid") -> None:
        super().__init__()
        if padding not in ("valid", "same"):
            raise ArgumentError(f"padding must be 'valid' (the paper) or 'same'; got {padding!r}")
        require_positive(depth=depth, base_width=base_width, num_classes=num_classes, in_channels=in_channels)
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        options = {"padding": padding, "batch_norm": batch_norm}
        self.encoder = nn.ModuleList(DoubleConv(c_in, c_out, **options) for c_in, c_out
                                     in zip([in_channels, *widths[:-2]], widths[:-1]))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1], **options)
        self.decoder = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i],
                                             upsampling=upsampling, **options)
                                     for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.num_classes, self.padding = num_classes, padding
        if padding == "valid":
            self.input_sizes, self._shrink = valid_unet_sizes(depth)
            self.display_name = "U-Net (valid convs)"
        else:
            self.input_sizes, self._shrink = InputSizes(2 ** depth, 2 ** depth), 0
            self.display_name = "U-Net (same convs)"
        _init_he_fan_in([self])

    def output_size(self, size: int) -> int:
        """Height (or width) of the output for an input of ``size`` (valid sizes only)."""
        if not self.input_sizes.valid(size):
            raise ArgumentError(f"{self.display_name} does not take size {size}; valid: "
                             f"{self.input_sizes.describe()}")
        return size - self._shrink

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x, skip)
        return self.head(x)


class EncoderUNet(DenseModel):
    """A U-Net decoder on a zoo backbone's feature maps (padded convolutions, batch norm);
    logits at the input resolution for sizes that are multiples of the deepest stride."""

    def __init__(self, encoder: str, *, num_classes: int = 21, in_channels: int = 3,
                 decoder_channels: Sequence[int] | None = None,
                 upsampling: Upsampling = "transpose", batch_norm: bool = True) -> None:
        super().__init__()
        self.encoder = headless_backbone(encoder, in_channels=in_channels)
        self.taps = pick_taps(self.encoder, range(len(self.encoder.feature_specs)))
        channels = [spec.channels for spec in self.taps]
        strides = [spec.stride for spec in self.taps]
        factors = [deep // shallow for shallow, deep in zip(strides, strides[1:])]
        blocks = len(factors) + (strides[0] > 1)
        if decoder_channels is None:
            if blocks > len(DEFAULT_DECODER_CHANNELS):
                raise ArgumentError(f"encoder {encoder!r} has {len(strides)} feature maps; give "
                                 f"decoder_channels ({blocks} widths)")
            decoder_channels = DEFAULT_DECODER_CHANNELS[:blocks]
        if len(decoder_channels) != blocks:
            raise ArgumentError(f"decoder_channels needs {blocks} widths for encoder {encoder!r} "
                             f"(strides {strides}); got {list(decoder_channels)}")
        options = {"upsampling": upsampling, "padding": "same", "batch_norm": batch_norm}
        skip_channels = [*reversed(channels[:-1]), 0][:blocks]
        up_factors = [*reversed(factors), strides[0]][:blocks]
        in_widths = [channels[-1], *decoder_channels[:-1]]
        self.decoder = nn.ModuleList(
            UpBlock(c_in, skip, c_out, factor=f, **options)
            for c_in, skip, c_out, f in zip(in_widths, skip_channels, decoder_channels, up_factors))
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 1)
        self.num_classes = num_classes
        self.input_sizes = InputSizes(strides[-1], strides[-1])
        self.display_name = f"U-Net ({encoder} encoder)"
        _init_he_fan_in([self.decoder, self.head])

    def output_size(self, size: int) -> int:
        return size

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        features = read_taps(self.encoder, self.taps, x)
        x = features[-1]
        skips = [*reversed(features[:-1]), None]
        for block, skip in zip(self.decoder, skips):
            x = block(x, skip)
        return self.head(x)


def unet(*, num_classes: int = 2, in_channels: int = 1, depth: int = 4, base_width: int = 64,
         batch_norm: bool = False, upsampling: Upsampling = "transpose", padding: Padding = "valid",
         encoder: str | None = None,
         decoder_channels: Sequence[int] | None = None) -> UNet | EncoderUNet:
    """Build a U-Net; with ``encoder`` a zoo backbone name, an :class:`EncoderUNet` (then
    ``depth``, ``base_width`` do not apply and ``padding`` must be "same")."""
    if encoder is None:
        if decoder_channels is not None:
            raise ArgumentError("decoder_channels applies to encoder U-Nets; use base_width/depth")
        return UNet(num_classes=num_classes, in_channels=in_channels, depth=depth,
                    base_width=base_width, batch_norm=batch_norm, upsampling=upsampling,
                    padding=padding)
    if padding != "same":
        raise ArgumentError(f"a U-Net on encoder {encoder!r} uses padded convolutions: pass "
                         f"padding='same'; got {padding!r}")
    return EncoderUNet(encoder, num_classes=num_classes, in_channels=in_channels,
                       decoder_channels=decoder_channels, upsampling=upsampling,
                       batch_norm=batch_norm)


register("unet", unet, task="segmentation", paper=PAPER, year=2015, input_size=(1, 572, 572),
         num_params=31_030_658, num_classes=2,
         notes=("the paper's network: unpadded 3x3 convolutions, 2x2 up-convolutions, crop and "
                "copy; 572x572 -> 388x388 (output smaller than the input, see output_size); "
                "input sizes 188 + 16k (smallest 188 -> 4x4)"))
register("unet_padded", unet, task="segmentation", paper=PAPER, year=2015,
         input_size=(1, 512, 512), num_params=31_030_658, num_classes=2,
         notes=("padded 3x3 convolutions: output at the input resolution; input sizes multiples "
                "of 16 (smallest 16); otherwise the paper's network"),
         padding="same")
register("unet_resnet34", unet, task="segmentation", paper=PAPER, year=2015,
         input_size=(3, 224, 224), num_params=24_349_458, num_classes=2, in_channels=3,
         notes=("ResNet-34 encoder from the zoo without avgpool/fc (maps at strides 2..32), "
                "decoder widths 256, 128, 64, 32, 16 with batch norm and 2x2 up-convolutions, "
                "padded convolutions; input sizes multiples of 32 (smallest 32)"),
         encoder="resnet34", padding="same", batch_norm=True)
