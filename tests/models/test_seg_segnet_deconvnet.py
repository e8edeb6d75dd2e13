"""SegNet, SegNet-Basic and DeconvNet: layouts, parameter counts, sizes, overfitting one batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.models import create, get_info

from test_seg_unet import count, one_thread, overfit  # noqa: F401  (fixture)


def meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create(name, **options)


def conv_channels(module: nn.Module) -> list[tuple[int, int, int]]:
    return [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in module.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_segnet_encoder_is_vgg16_bn_features_and_decoder_mirrors_it() -> None:
    model = meta("segnet")
    vgg = meta("vgg16_bn")
    ours = {k: v.shape for k, v in model.features.state_dict().items()}
    assert ours == {k: v.shape for k, v in vgg.features.state_dict().items()}
    # the authors' Caffe decoder: conv5_3_D ... conv1_2_D, then conv1_1_D to the classes
    assert conv_channels(model.decoder) == [
        (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 256, 3),
        (256, 256, 3), (256, 256, 3), (256, 128, 3), (128, 128, 3), (128, 64, 3), (64, 64, 3)]
    assert conv_channels(model.classifier) == [(64, 11, 3)]
    # 13 encoder + 12 decoder conv-BN pairs and the classifier
    encoder = 14_714_688 + 2 * (2 * 64 + 2 * 128 + 3 * 256 + 6 * 512)
    decoder = sum(c_in * c_out * 9 + 3 * c_out for c_in, c_out, _ in conv_channels(model.decoder))
    assert encoder + decoder + 64 * 11 * 9 + 11 == count(model) == 29_449_355
    assert get_info("segnet").num_params == 29_449_355


def test_segnet_shapes_and_sizes(one_thread) -> None:
    with torch.device("meta"):
        assert meta("segnet")(torch.empty(1, 3, 360, 480)).shape == (1, 11, 360, 480)
    model = create("segnet", num_classes=4)
    out = model(torch.randn(2, 3, 33, 45))  # odd sizes: unpooling restores them
    assert out.shape == (2, 4, 33, 45)
    out.mean().backward()
    with pytest.raises(InputSizeError, match="SegNet needs input sizes at least 32; got 16x64"):
        model(torch.randn(1, 3, 16, 64))


def test_segnet_basic_layout_and_count() -> None:
    model = meta("segnet_basic")
    assert conv_channels(model.features) == [(3, 64, 7)] + [(64, 64, 7)] * 3
    assert conv_channels(model.decoder) == [(64, 64, 7)] * 4
    assert conv_channels(model.classifier) == [(64, 11, 1)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None for m in convs[:-1]) and convs[-1].bias is not None
    assert not any(isinstance(m, nn.ReLU) for m in model.decoder.modules())
    expected = 3 * 64 * 49 + 7 * 64 * 64 * 49 + 8 * 2 * 64 + 64 * 11 + 11
    assert count(model) == expected == get_info("segnet_basic").num_params == 1_416_075
    with torch.device("meta"):
        assert model(torch.empty(1, 3, 360, 480)).shape == (1, 11, 360, 480)
    small = create("segnet_basic", width=8)
    assert small(torch.randn(2, 3, 17, 19)).shape == (2, 11, 17, 19)
    with pytest.raises(InputSizeError, match="SegNet-Basic needs input sizes at least 16"):
        small(torch.randn(1, 3, 15, 15))
    with pytest.raises(ValueError, match="width applies to SegNet-Basic"):
        create("segnet", width=32)


def test_segnet_decoder_unpools_at_the_encoder_argmax() -> None:
    model = create("segnet_basic", width=4).eval()
    outputs = []
    model.unpool.register_forward_hook(lambda m, args, out: outputs.append(out) and None)
    model(torch.randn(1, 3, 16, 16))
    assert [o.shape[-1] for o in outputs] == [2, 4, 8, 16]
    unpooled = outputs[0]  # 1x1 -> 2x2: one nonzero per channel, where pool 4 found its max
    assert unpooled.shape == (1, 4, 2, 2)
    assert ((unpooled != 0).sum(dim=(-2, -1)) <= 1).all()


def test_deconvnet_layout_count_and_sizes() -> None:
    model = meta("deconvnet")
    parts = {name: count(getattr(model, name)) for name in ("features", "decoder", "classifier")}
    parts.update({name: count(m) for name, m in model.bridge.named_children()})
    assert parts == {"features": 14_723_136, "fc6": 512 * 49 * 4096 + 4096 + 2 * 4096,
                     "fc7": 4096 * 4096 + 4096 + 2 * 4096, "deconv_fc6": 4096 * 49 * 512 + 3 * 512,
                     "decoder": 14_756_928, "classifier": 64 * 21 + 21}
    assert count(model) == get_info("deconvnet").num_params == 251_805_653  # paper: ~252M
    assert conv_channels(model.decoder)[-3:] == [(128, 64, 3), (64, 64, 3), (64, 64, 3)]
    with torch.device("meta"):
        assert model(torch.empty(2, 3, 224, 224)).shape == (2, 21, 224, 224)
        assert model.eval()(torch.empty(1, 3, 250, 261)).shape == (1, 21, 250, 261)
        with pytest.raises(InputSizeError, match="DeconvNet needs input sizes at least 224"):
            model(torch.empty(1, 3, 200, 224))


def test_small_segnet_basic_overfits_one_batch(one_thread) -> None:
    model = create("segnet_basic", width=16, num_classes=3)
    first, last = overfit(model)
    assert last < first / 100
