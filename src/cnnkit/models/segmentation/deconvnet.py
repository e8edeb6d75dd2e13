"""DeconvNet: Noh, Hong & Han, "Learning Deconvolution Network for Semantic Segmentation",
ICCV 2015.

The convolution network is VGG16's 13 convolutions (with batch norm after every convolution and
deconvolution, as in the paper; the zoo's ``vgg16_bn`` ``features``, same state_dict keys) and
its two fully connected layers as convolutions: fc6 = 7x7 convolution to 4096 channels (7x7 ->
1x1 at the 224x224 input), fc7 = 1x1 convolution to 4096. The deconvolution network mirrors it:
a 7x7 deconvolution back to 7x7x512, then five (max unpooling with the matching pool's indices,
3x3 deconvolutions) stages, the deconvolutions mirroring the convolutions' channels (512, 512,
512 -> 256, 256 -> 128, 128 -> 64, 64), and a 1x1 convolution to the 21 PASCAL VOC classes.

The paper gives about 252M parameters; this network has 251,805,653 (VGG16-BN convolutions
14,723,136, fc6 102,772,736, fc7 16,789,504, the 7x7 deconvolution 102,761,984, the mirrored
deconvolutions 14,756,928, the classifier 1,365; batch norm included): the two 7x7 layers between
7x7x512 maps and 4096 channels hold 82% of them.

The deconvolution layers are 3x3 transposed convolutions with stride 1 and padding 1, the same
shape as a "same" convolution. Any input of at least 224x224 works (unpooling restores odd
sizes; the 7x7 deconvolution undoes fc6's size exactly). Not included: the paper's two-stage
training, instance-wise (proposal) inference and the ensemble with FCN. Initialisation: He et
al. normal (fan-out), batch norms as identity. fc6, fc7 and the 7x7 deconvolution see 1x1 maps
at 224x224, so their batch norms need batches of >= 2 in training mode.
"""

from __future__ import annotations

from torch import nn

from cnnkit.layers.init import init_weights
from cnnkit.models.registry import register
from cnnkit.models.segmentation.segnet import MaxUnpoolingNet, mirror_decoder, vgg16_bn_features
from cnnkit.errors import require_positive

PAPER = ("H. Noh, S. Hong, B. Han, Learning Deconvolution Network for Semantic Segmentation, "
         "ICCV 2015")
FC_WIDTH = 4096
FC6_KERNEL = 7


def _deconv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


def deconvnet(*, num_classes: int = 21, in_channels: int = 3,
              fc_width: int = FC_WIDTH) -> MaxUnpoolingNet:
    """DeconvNet; ``fc_width`` (4096 in the paper) sets the width of fc6/fc7."""
    require_positive(num_classes=num_classes, in_channels=in_channels, fc_width=fc_width)
    features = vgg16_bn_features(in_channels)
    channels = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
    bridge = nn.Sequential()
    bridge.add_module("fc6", nn.Sequential(nn.Conv2d(channels, fc_width, FC6_KERNEL),
                                           nn.BatchNorm2d(fc_width), nn.ReLU(inplace=True)))
    bridge.add_module("fc7", nn.Sequential(nn.Conv2d(fc_width, fc_width, 1),
                                           nn.BatchNorm2d(fc_width), nn.ReLU(inplace=True)))
    bridge.add_module("deconv_fc6", nn.Sequential(
        nn.ConvTranspose2d(fc_width, channels, FC6_KERNEL), nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True)))
    decoder, out_channels = mirror_decoder(features, _deconv_bn_relu, first_keeps_width=True)
    classifier = nn.Conv2d(out_channels, num_classes, 1)
    model = MaxUnpoolingNet(features, decoder, classifier, bridge=bridge, num_classes=num_classes,
                            display_name="DeconvNet", min_size=32 * FC6_KERNEL)
    for part in (model.bridge, model.decoder, model.classifier):
        init_weights(part, "kaiming")
    return model


register("deconvnet", deconvnet, task="segmentation", paper=PAPER, year=2015,
         input_size=(3, 224, 224), num_params=251_805_653, num_classes=21,
         notes=("VGG16-BN convolutions, fc6/fc7 as 7x7/1x1 convolutions, mirrored unpooling + "
                "3x3 deconvolution decoder, batch norm everywhere; the paper gives ~252M "
                "parameters (this one 251,805,653); any input size >= 224; training mode "
                "needs batches of >= 2 (batch norm on fc6/fc7's 1x1 maps)"))
