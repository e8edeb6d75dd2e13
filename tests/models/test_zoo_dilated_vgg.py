"""VGG and FCN-32s without their last downsampling: ``output_stride`` 16 (pool5 at stride 1) or
8 (pool4 and pool5), the following convolutions dilated (DeepLab v1's recipe)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.layers.upsample import init_bilinear_
from cnnkit.models import FeatureExtractor, create, get_info
from cnnkit.models.base import set_submodule
from cnnkit.models.segmentation.fcn import fcn_vgg


@pytest.mark.parametrize("output_stride, strides, side, conv5_dilation, dilation", [
    (32, [2, 4, 8, 16, 32], 7, 1, 1), (16, [2, 4, 8, 16, 16], 14, 1, 2),
    (8, [2, 4, 8, 8, 8], 28, 2, 4)])
def test_vgg_output_stride(output_stride, strides, side, conv5_dilation, dilation) -> None:
    with torch.device("meta"):
        model = create("vgg16_bn", output_stride=output_stride).eval()
        default = create("vgg16_bn")
    assert sum(p.numel() for p in model.parameters()) == get_info("vgg16_bn").num_params
    assert list(model.state_dict()) == list(default.state_dict())
    assert [s.stride for s in model.feature_specs] == strides
    assert [s.stride for s in model.prepool_feature_specs] == [1] + strides[:-1]
    assert model.dilation == dilation
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    dilated = {32: 0, 16: 1, 8: 2}[output_stride]
    assert all(p.stride == 2 and p.kernel_size == 2 for p in pools[:5 - dilated])
    assert all((p.stride, p.kernel_size, p.padding) == (1, 3, 1) for p in pools[5 - dilated:])
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert all(c.dilation == (conv5_dilation,) * 2 == c.padding
               for c in convs[-3:])
    assert all(c.dilation == (1, 1) for c in convs[:-3])
    backbone = FeatureExtractor(model)
    maps = backbone(torch.empty(1, 3, 224, 224, device="meta"))
    assert [m.shape[-1] for m in maps] == [224 // s for s in strides]
    assert maps[-1].shape[-1] == side
    assert tuple(model(torch.empty(1, 3, 224, 224, device="meta")).shape) == (1, 1000)


def test_vgg_output_stride_runs_and_errors() -> None:
    model = create("vgg_c", output_stride=8, num_classes=3)
    out = model(torch.randn(1, 3, 32, 32))
    assert tuple(out.shape) == (1, 3)
    conv1x1 = [m for m in model.features if isinstance(m, nn.Conv2d)][-1]
    assert conv1x1.kernel_size == (1, 1) and conv1x1.padding == (0, 0)
    with pytest.raises(ArgumentError, match=r"output_stride must be one of \[8, 16, 32\]; got 4"):
        create("vgg11", output_stride=4)
    with torch.device("meta"):
        deeplab_like = create("fcn_resnet50", backbone="vgg16").eval()  # dilated VGG, OS 8
    assert [s.stride for s in deeplab_like.backbone.feature_specs][-1] == 8
    assert tuple(deeplab_like(torch.empty(1, 3, 64, 64, device="meta")).shape) == (1, 21, 64, 64)


@pytest.mark.parametrize("output_stride, final, count", [(16, "upscore16", 134_798_165),
                                                         (8, "upscore8", 134_459_477)])
def test_fcn32s_on_a_dilated_vgg(output_stride: int, final: str, count: int) -> None:
    # FCN-32s's count (136,152,917) with the 21 x 21 x 64 x 64 upsampler replaced by a
    # 21 x 21 x 32 x 32 (16) or 21 x 21 x 16 x 16 (8) one
    assert count == 136_152_917 - 21 * 21 * (64 ** 2 - (2 * output_stride) ** 2)
    with torch.device("meta"):
        model = create("fcn32s_vgg16", output_stride=output_stride).eval()
    assert sum(p.numel() for p in model.parameters()) == count
    assert model.fc6.dilation == (32 // output_stride,) * 2 and model.fc6.padding == (0, 0)
    assert tuple(getattr(model, final).weight.shape) == (21, 21, 2 * output_stride,
                                                         2 * output_stride)
    assert not hasattr(model, "upscore32")
    for h, w in [(500, 500), (1, 1), (37, 211), (224, 225)]:
        assert tuple(model(torch.empty(1, 3, h, w, device="meta")).shape) == (1, 21, h, w)
    with pytest.raises(ArgumentError, match="dilation applies to FCN-32s only"):
        fcn_vgg(16, output_stride=16)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_dilated_fcn_output_is_aligned_with_the_input(output_stride: int) -> None:
    """Every convolution replaced by a one-channel identity (centre tap 1) with its kernel,
    stride, padding and dilation, the upsampling bilinear: a block of ones that is one pool5
    cell of the undilated net (image rows 29..60) must come back symmetric about its centre,
    44.5; a final crop off by one breaks the symmetry."""
    with torch.device("meta"):
        model = fcn_vgg(32, num_classes=1, in_channels=1, fc_channels=4,
                        output_stride=output_stride)
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.ConvTranspose2d):
            new = init_bilinear_(nn.ConvTranspose2d(1, 1, m.kernel_size, m.stride, bias=False))
        elif isinstance(m, nn.Conv2d):
            new = nn.Conv2d(1, 1, m.kernel_size, m.stride, m.padding, m.dilation, bias=False)
            with torch.no_grad():
                new.weight.zero_()
                new.weight[0, 0, m.kernel_size[0] // 2, m.kernel_size[1] // 2] = 1.0
        else:
            continue
        set_submodule(model, name, new)
    model.eval()
    x = torch.zeros(1, 1, 96, 96)
    x[..., 29:61, 29:61] = 1.0
    with torch.no_grad():
        y = model(x)[0, 0, :90, :90]
    assert y.sum() > 0 and torch.allclose(y, y.flip(0, 1))
    rows = torch.arange(90, dtype=y.dtype)
    assert torch.isclose((y.sum(1) * rows).sum() / y.sum(), torch.tensor(44.5))
    model.final_crop += 1
    with torch.no_grad():
        shifted = model(x)[0, 0, :90, :90]
    assert not torch.allclose(shifted, shifted.flip(0, 1))
