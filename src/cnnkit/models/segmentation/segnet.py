"""SegNet and SegNet-Basic: Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.

The encoder is a stack of convolution + batch norm + ReLU layers and 2x2 max pools that keep
their argmax indices; the decoder mirrors it stage by stage: it max-unpools with the indices of
the matching pool (values back at the argmax positions, zeros elsewhere; no learned upsampling,
no copied feature maps) and densifies the sparse map with convolutions whose channel counts
mirror the encoder's.

- ``segnet``: the VGG16 encoder with batch norm (13 convolutions; the zoo's ``vgg16_bn``
  ``features``, same state_dict keys, so its ImageNet weights load into ``features``) and the
  mirrored decoder of the authors' Caffe model, whose last 3x3 convolution (mirror of conv1_1)
  outputs the class scores. Default 11 classes: CamVid's 11 classes, the "void" label ignored in
  the loss.
- ``segnet_basic`` (the smaller variant the paper uses to compare decoders): 4 encoder and
  4 decoder layers of 64 channels with 7x7 kernels, batch norm after every convolution, no
  biases, no ReLU in the decoder, then a 1x1 convolution to the classes. ``width`` changes
  the 64. The Caffe release's local response normalisation of the input and its convolution
  biases are left out, as in the paper's text.

Unpooling is given each pool's input size, so any input of at least ``2**pools`` pixels works
(CamVid's 360x480 included), not only multiples of 32. Initialisation: He et al. normal
(fan-out), batch norms as identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnkit.layers.init import init_weights
from cnnkit.layers.unpool import MaxUnpool
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import create, register
from cnnkit.errors import ArgumentError, require_positive

PAPER = ("V. Badrinarayanan, A. Kendall, R. Cipolla, SegNet: A Deep Convolutional Encoder-Decoder "
         "Architecture for Image Segmentation, TPAMI 2017")
ConvFactory = Callable[[int, int], list[nn.Module]]


def vgg16_bn_features(in_channels: int = 3) -> nn.Sequential:
    """The zoo's ``vgg16_bn`` ``features`` (13 conv-BN-ReLU and 5 max pools), initialised as VGG
    initialises them, without building its 120M-parameter classifier (it is built on the meta
    device and only the features are materialised, on the current default device)."""
    device = torch.empty(0).device
    with torch.device("meta"):
        features = create("vgg16_bn", in_channels=in_channels).features
    features = features.to_empty(device=device)
    for m in features.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
    return init_weights(features, "kaiming")


def encoder_stages(features: nn.Sequential) -> list[list[nn.Conv2d]]:
    """The convolutions of ``features`` grouped by the max pool that ends each stage."""
    stages: list[list[nn.Conv2d]] = [[]]
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            stages[-1].append(layer)
        elif isinstance(layer, nn.MaxPool2d):
            stages.append([])
    if stages[-1]:
        raise ArgumentError("the encoder must end with a max pool (each stage is undone by an unpool)")
    return stages[:-1]


def mirror_decoder(features: nn.Sequential, make_layer: ConvFactory, *,
                   first_keeps_width: bool) -> tuple[nn.ModuleList, int]:
    """Decoder stages mirroring the encoder (deepest first): a convolution ``c_in -> c_out`` of
    the encoder becomes ``c_out -> c_in`` in the decoder, in reverse order.

    The mirror of the very first encoder convolution (``in_channels -> w``) is either ``w -> w``
    (``first_keeps_width``: SegNet-Basic, DeconvNet) or left out, since SegNet's classifier takes
    its place. Returns the stages and the decoder's output channels.
    """
    stages = []
    out_channels = 0
    for index, convs in reversed(list(enumerate(encoder_stages(features)))):
        layers: list[nn.Module] = []
        for position, conv in reversed(list(enumerate(convs))):
            c_in, c_out = conv.out_channels, conv.in_channels
            if index == 0 and position == 0:
                if not first_keeps_width:
                    break
                c_out = conv.out_channels
            layers += make_layer(c_in, c_out)
            out_channels = c_out
        stages.append(nn.Sequential(*layers))
    return nn.ModuleList(stages), out_channels


class MaxUnpoolingNet(DenseModel):
    """Encoder (``features``: flat conv/BN/ReLU/MaxPool2d layers), optional ``bridge``, decoder
    stages each preceded by max unpooling with the indices of the mirrored pool, ``classifier``.
    Shared by SegNet, SegNet-Basic and DeconvNet."""

    def __init__(self, features: nn.Sequential, decoder: nn.ModuleList, classifier: nn.Module, *,
                 num_classes: int, display_name: str, min_size: int,
                 bridge: nn.Module | None = None) -> None:
        super().__init__()
        for layer in features:
            if isinstance(layer, nn.MaxPool2d):
                layer.return_indices = True
        self.features = features
        self.bridge = bridge if bridge is not None else nn.Identity()
        self.unpool = MaxUnpool(2)
        self.decoder = decoder
        self.classifier = classifier
        self.num_classes = num_classes
        self.display_name = display_name
        self.input_sizes = InputSizes(min_size, 1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        pools = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                size = x.shape[-2:]
                x, indices = layer(x)
                pools.append((indices, size))
            else:
                x = layer(x)
        x = self.bridge(x)
        for stage, (indices, size) in zip(self.decoder, reversed(pools)):
            x = stage(self.unpool(x, indices, size))
        return self.classifier(x)


def _conv_bn(kernel_size: int, *, bias: bool, relu: bool) -> ConvFactory:
    def make(c_in: int, c_out: int) -> list[nn.Module]:
        layers = [nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=bias),
                  nn.BatchNorm2d(c_out)]
        return layers + [nn.ReLU(inplace=True)] if relu else layers
    return make


def basic_features(in_channels: int, width: int, depth: int, kernel_size: int) -> nn.Sequential:
    """SegNet-Basic's encoder: ``depth`` x (conv k x k without bias, BN, ReLU, 2x2 max pool)."""
    make = _conv_bn(kernel_size, bias=False, relu=True)
    layers: list[nn.Module] = []
    for c_in in [in_channels] + [width] * (depth - 1):
        layers += make(c_in, width) + [nn.MaxPool2d(2, 2)]
    return nn.Sequential(*layers)


# encoder -> how the decoder and classifier are built (see the module docstring)
SEGNET_CONFIGS: dict[str, dict] = {
    "vgg16_bn": {"kernel_size": 3, "bias": True, "decoder_relu": True, "classifier_kernel": 3,
                 "first_keeps_width": False, "pools": 5, "name": "SegNet"},
    "basic": {"kernel_size": 7, "bias": False, "decoder_relu": False, "classifier_kernel": 1,
              "first_keeps_width": True, "pools": 4, "name": "SegNet-Basic"},
}


def segnet(encoder: str = "vgg16_bn", *, num_classes: int = 11, in_channels: int = 3,
           width: int = 64) -> MaxUnpoolingNet:
    """SegNet (``encoder="vgg16_bn"``) or SegNet-Basic (``encoder="basic"``, ``width`` channels)."""
    if encoder not in SEGNET_CONFIGS:
        raise ArgumentError(f"SegNet encoder must be one of {list(SEGNET_CONFIGS)}; got {encoder!r}")
    require_positive(num_classes=num_classes, in_channels=in_channels, width=width)
    config = SEGNET_CONFIGS[encoder]
    k = config["kernel_size"]
    if encoder == "vgg16_bn":
        if width != 64:
            raise ArgumentError(f"width applies to SegNet-Basic (encoder='basic'); the VGG16 encoder "
                             f"has fixed widths; got width={width}")
        features = vgg16_bn_features(in_channels)
    else:
        features = basic_features(in_channels, width, config["pools"], k)
    make = _conv_bn(k, bias=config["bias"], relu=config["decoder_relu"])
    decoder, channels = mirror_decoder(features, make,
                                       first_keeps_width=config["first_keeps_width"])
    c = config["classifier_kernel"]
    classifier = nn.Conv2d(channels, num_classes, c, padding=c // 2)
    model = MaxUnpoolingNet(features, decoder, classifier, num_classes=num_classes,
                            display_name=config["name"], min_size=2 ** config["pools"])
    init_weights(model.decoder, "kaiming")
    init_weights(model.classifier, "kaiming")
    return model


register("segnet", segnet, task="segmentation", paper=PAPER, year=2017,
         input_size=(3, 360, 480), num_params=29_449_355, num_classes=11,
         notes=("VGG16-BN encoder (the zoo's vgg16_bn features) and mirrored decoder with "
                "max-unpooling by the pooling indices; 11 CamVid classes (void ignored); any input "
                "size >= 32 (unpooling restores odd sizes)"))
register("segnet_basic", segnet, task="segmentation", paper=PAPER, year=2017,
         input_size=(3, 360, 480), num_params=1_416_075, num_classes=11,
         notes=("4 + 4 layers of 64 7x7 convolutions with batch norm, no biases, no ReLU in the "
                "decoder, 1x1 classifier; no input LRN; any input size >= 16"),
         encoder="basic")
