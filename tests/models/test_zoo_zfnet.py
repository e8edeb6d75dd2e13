"""ZFNet (Zeiler & Fergus, ECCV 2014, Figure 3) as the "zfnet" configuration of the AlexNet
builder: layer sizes 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 6, and 62,357,608 parameters:

conv1 96*3*7*7 + 96 = 14,208; conv2 256*96*5*5 + 256 = 614,656; conv3 384*256*9 + 384 =
885,120; conv4 384*384*9 + 384 = 1,327,488; conv5 256*384*9 + 256 = 884,992; fc6 9216*4096 +
4096 = 37,752,832; fc7 16,781,312; fc8 4,097,000."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.models import FeatureExtractor, create, get_info

LAYERS = [14_208, 614_656, 885_120, 1_327_488, 884_992, 37_752_832, 16_781_312, 4_097_000]


def test_zfnet_count_and_layer_table() -> None:
    info = get_info("zfnet")
    assert info.input_size == (3, 224, 224) and info.year == 2014 and "Zeiler" in info.paper
    with torch.device("meta"):
        model = create("zfnet")
        paper_alexnet = create("alexnet_paper", groups=1)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [sum(p.numel() for p in m.parameters()) for m in layers] == LAYERS
    total = sum(p.numel() for p in model.parameters())
    assert total == sum(LAYERS) == info.num_params == 62_357_608
    # AlexNet's layers with a 7x7 instead of an 11x11 first kernel
    assert total == sum(p.numel() for p in paper_alexnet.parameters()) - 96 * 3 * (121 - 49)
    conv1, conv2 = layers[0], layers[1]
    assert (conv1.kernel_size, conv1.stride) == ((7, 7), (2, 2))
    assert (conv2.kernel_size, conv2.stride, conv2.groups) == ((5, 5), (2, 2), 1)
    assert all(m.ceil_mode and m.kernel_size == 3 and m.stride == 2
               for m in model.modules() if isinstance(m, nn.MaxPool2d))


def test_zfnet_map_sizes_follow_figure_3() -> None:
    model = create("zfnet").eval()
    sizes = []
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                sizes.append(tuple(x.shape[1:]))
        assert tuple(model.forward_head(x).shape) == (1, 1000)
    assert sizes == [(96, 110, 110), (96, 55, 55), (256, 26, 26), (256, 13, 13),
                     (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6)]
    lrn_after_pool = [type(model.features[i]).__name__ for i in (2, 3, 6, 7)]
    assert lrn_after_pool == ["MaxPool2d", "LocalResponseNorm"] * 2


def test_zfnet_features_init_and_input_sizes() -> None:
    torch.manual_seed(0)
    model = create("zfnet", num_classes=7)
    backbone = FeatureExtractor(model)
    assert backbone.strides == [2, 8, 16, 32] and backbone.channels == [96, 256, 256, 256]
    feats = backbone(torch.randn(1, 3, 224, 224))
    assert [tuple(f.shape[-2:]) for f in feats] == [(110, 110), (26, 26), (13, 13), (6, 6)]
    weights = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.count_nonzero(m.bias) == 0 for m in weights)  # biases 0 (Section 3)
    assert 0.009 < weights[5].weight.std().item() < 0.011  # N(0, 0.01)
    model.eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, 47, 47)).shape) == (1, 7)
        with pytest.raises(InputSizeError, match="ZFNet takes .* H, W >= 47"):
            model(torch.randn(1, 3, 46, 46))
