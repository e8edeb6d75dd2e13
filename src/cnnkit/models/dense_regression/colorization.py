"""The colourisation network of Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016.

A VGG-style stack without pooling, on the lightness channel: eight blocks of 3x3 convolutions
with ReLU, each of blocks 1-7 closed by a batch norm. Blocks 1-3 halve the resolution in their
last convolution (stride 2, where VGG pools); block 4 keeps it; blocks 5 and 6 use dilation 2
(padding 2) to keep VGG's receptive field at the higher resolution; block 7 is plain; block 8
upsamples by 2 with a 4x4 transposed convolution (stride 2), two 3x3 convolutions and a 1x1
convolution to ``num_classes`` = 313 scores per pixel (the ab bins of
:mod:`cnnkit.data.ab_bins`) at **1/4 of the input resolution**. Channels: 64, 128, 256, 512,
512, 512, 512, 256, times ``width``.

What the output is and how it is used lives in the colourisation task
(:mod:`cnnkit.tasks.colorization`): the softmax, the annealed-mean decoding (T = 0.38) and the
bilinear upsampling of the decoded ab to the input size (the reference implementation does
those in the network: a fixed 1x1 convolution holding the bin centres, 313 x 2 = 626 weights,
then a 4x upsampling). ``num_classes=2`` gives the paper's regression baseline head (ab /
110 per pixel, see the task).

Layout: blocks ``model1`` .. ``model8`` (``nn.Sequential``), whose ``state_dict`` keys and shapes
at ``width=1`` match the reference PyTorch port's ECCV generator (richzhang/colorization,
``colorizers/eccv16.py``) except its fixed ``model_out``; its input is ``(L - 50) / 100``, half
the ``L / 50 - 1`` of :class:`~cnnkit.data.transforms.ColorizationTarget`. Parameters at
``width=1``: 32,235,385 (the reference's 32,236,011 less ``model_out``'s 626); the paper says
nothing of the count. Differences: ``width``; input sizes multiples of 8 (the output is exactly
a quarter); the paper's deep supervision readouts on blocks 6 and 7 are not built. Initialisation:
He et al. normal (the paper starts blocks 1-5 from VGG; not available here).
"""

from __future__ import annotations

from torch import nn
import torch

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import register

PAPER = "R. Zhang, P. Isola, A. A. Efros, Colorful Image Colorization, ECCV 2016"
NUM_AB_BINS = 313
# Blocks 1-7: (convolutions, channels, stride of the last one, dilation)
BLOCKS = ((2, 64, 2, 1), (2, 128, 2, 1), (3, 256, 2, 1), (3, 512, 1, 1), (3, 512, 1, 2),
          (3, 512, 1, 2), (3, 512, 1, 1))
BLOCK8_CHANNELS = 256


def _block(in_channels: int, count: int, channels: int, stride: int,
           dilation: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(count):
        last = i == count - 1
        layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3,
                             stride=stride if last else 1, padding=dilation, dilation=dilation),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.BatchNorm2d(channels))


class ZhangColorization(DenseModel):
    """Blocks ``model1`` .. ``model8``; ``predict`` returns ``N x num_classes x H/4 x W/4``."""

    def __init__(self, *, num_classes: int = NUM_AB_BINS, in_channels: int = 1,
                 width: float = 1.0) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        if not width > 0:
            raise ArgumentError(f"width must be > 0; got {width}")
        channels = in_channels
        for index, (count, base, stride, dilation) in enumerate(BLOCKS, start=1):
            out = max(1, round(base * width))
            self.add_module(f"model{index}", _block(channels, count, out, stride, dilation))
            channels = out
        up = max(1, round(BLOCK8_CHANNELS * width))
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(channels, up, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(up, up, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(up, up, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(up, num_classes, 1))
        init_weights(self, "kaiming")
        self.num_classes, self.width = num_classes, width
        self.display_name = f"Zhang et al. colorization (width {width:g})"
        self.input_sizes = InputSizes(minimum=8, step=8)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(1, 9):
            x = getattr(self, f"model{index}")(x)
        return x


def zhang_colorization(*, num_classes: int = NUM_AB_BINS, in_channels: int = 1,
                       width: float = 1.0) -> ZhangColorization:
    """Zhang et al.'s network; ``num_classes`` 313 (bins) or 2 (ab regression)."""
    return ZhangColorization(num_classes=num_classes, in_channels=in_channels, width=width)


_NOTES = ("{what}; output at 1/4 of the input (multiples of 8), decoded and upsampled by the "
          "colorization task; block keys as the reference ECCV generator{keys}")
for _name, _width, _classes, _count, _what in (
        ("zhang_colorization", 1.0, NUM_AB_BINS, 32_235_385, "the paper's widths, 313 bins"),
        ("zhang_colorization_small", 0.125, NUM_AB_BINS, 514_241,
         "width 1/8 (8 to 64 channels) for CPU training, 313 bins"),
        ("zhang_colorization_small_regression", 0.125, 2, 503_978,
         "width 1/8, the paper's L2 regression baseline (2 channels, ab / 110)")):
    register(_name, zhang_colorization, task="colorization", paper=PAPER, year=2016,
             input_size=(1, 224, 224), num_params=_count, num_classes=_classes,
             notes=_NOTES.format(what=_what, keys="" if _width == 1 else " (narrower)"),
             width=_width)
