"""FCN-32s/16s/8s on VGG-16 (counts, any-size crops, alignment, convolutionalization) and
torchvision's FCN on a dilated ResNet (counts, keys, aux output)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError, WeightsError
from cnnkit.layers.init import init_weights
from cnnkit.layers.upsample import init_bilinear_
from cnnkit.models import create, get_info
from cnnkit.models.base import set_submodule
from cnnkit.models.segmentation.fcn import fcn_from_vgg_classifier, fcn_vgg
from cnnkit.models.segmentation.headless import SegmentationOutputs


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# FCN-32s's 64x64 stride-32 transposed convolution (21 x 21 x 64 x 64 = 1,806,336 weights) makes
# it the largest; the shared part (VGG-16 convolutions, fc6, fc7, score_fr) has 134,346,581.
@pytest.mark.parametrize("stride, count", [(32, 136_152_917), (16, 134_815_994),
                                           (8, 134_489_759)])
def test_fcn_vgg16_counts_and_any_input_size(stride: int, count: int) -> None:
    name = f"fcn{stride}s_vgg16"
    with torch.device("meta"):
        model = create(name).eval()
    assert n_params(model) == count == get_info(name).num_params
    assert model.features[0].padding == (100, 100)
    assert tuple(model.fc6.weight.shape) == (4096, 512, 7, 7)
    assert tuple(model.fc7.weight.shape) == (4096, 4096, 1, 1)
    final = getattr(model, f"upscore{stride}")
    assert tuple(final.weight.shape) == (21, 21, 2 * stride, 2 * stride)
    assert not final.weight.requires_grad  # fixed bilinear, as in the paper
    if stride < 32:
        assert model.upscore2.weight.requires_grad
        assert tuple(model.score_pool4.weight.shape) == (21, 512, 1, 1)
    for h, w in [(500, 500), (1, 1), (37, 211), (224, 225)]:
        out = model(torch.empty(1, 3, h, w, device="meta"))
        assert tuple(out.shape) == (1, 21, h, w)


def _geometry_only(model: nn.Module) -> nn.Module:
    """Replace every (transposed) convolution by a one-channel one with the same kernel, stride
    and padding: identity (centre tap 1) convolutions and bilinear upsampling."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.ConvTranspose2d):
            new = init_bilinear_(nn.ConvTranspose2d(1, 1, m.kernel_size, m.stride, bias=False))
        elif isinstance(m, nn.Conv2d):
            new = nn.Conv2d(1, 1, m.kernel_size, m.stride, m.padding, bias=False)
            with torch.no_grad():
                new.weight.zero_()
                new.weight[0, 0, m.kernel_size[0] // 2, m.kernel_size[1] // 2] = 1.0
        else:
            continue
        set_submodule(model, name, new)
    assert not any(p.is_meta for p in model.parameters())
    return model.eval()


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_fcn_output_is_aligned_with_the_input(stride: int) -> None:
    # A 32x32 block of ones that is exactly one pool5 cell (image rows 29..60: conv1_1 rows
    # 128..159 with the 100-pixel padding) must come back as a bump centred on the block:
    # symmetric about pixel 44.5. A crop off by one pixel anywhere breaks the symmetry.
    with torch.device("meta"):
        model = fcn_vgg(stride, num_classes=1, in_channels=1, fc_channels=4)
    model = _geometry_only(model)
    x = torch.zeros(1, 1, 96, 96)
    x[..., 29:61, 29:61] = 1.0

    def bump() -> torch.Tensor:
        with torch.no_grad():
            y = model(x)[0, 0]
        assert y.sum() > 0 and y[90:].abs().sum() == 0 and y[:, 90:].abs().sum() == 0
        return y[:90, :90]

    y = bump()
    assert torch.allclose(y, y.flip(0, 1))
    rows = torch.arange(90, dtype=y.dtype)
    assert torch.isclose((y.sum(1) * rows).sum() / y.sum(), torch.tensor(44.5))
    for skip in model.skips:
        model.skip_crops[skip] += 1
        shifted = bump()
        assert not torch.allclose(shifted, shifted.flip(0, 1)), skip
        model.skip_crops[skip] -= 1
    model.final_crop += 1
    shifted = bump()
    assert not torch.allclose(shifted, shifted.flip(0, 1))


def test_vgg_classifier_converts_to_an_equivalent_fcn() -> None:
    # VGG-16 with narrower fully connected layers (64 instead of 4096: same reshaping, fast).
    with torch.device("meta"):
        vgg = create("vgg16")
    vgg.features.to_empty(device="cpu")
    init_weights(vgg.features, "kaiming")
    vgg.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 64), nn.ReLU(), nn.Dropout(),
                                   nn.Linear(64, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 10))
    with torch.device("meta"):
        fcn = fcn_vgg(32, fc_channels=64)
    fcn.features.to_empty(device="cpu")
    fcn.fc6, fcn.fc7 = nn.Conv2d(512, 64, 7), nn.Conv2d(64, 64, 1)
    fcn_from_vgg_classifier(vgg.state_dict(), fcn)
    vgg, fcn = vgg.double().eval(), fcn.double().eval()
    assert torch.equal(fcn.features[28].weight, vgg.features[28].weight)

    def fc7_fcn(pool5: torch.Tensor) -> torch.Tensor:
        return fcn.relu7(fcn.fc7(fcn.relu6(fcn.fc6(pool5))))

    def fc7_vgg(pool5: torch.Tensor) -> torch.Tensor:
        return vgg.classifier[:5](torch.flatten(pool5, 1))

    pool5 = torch.randn(2, 512, 7, 7, dtype=torch.float64)
    out = fc7_fcn(pool5)
    assert tuple(out.shape) == (2, 64, 1, 1)
    assert torch.allclose(out[..., 0, 0], fc7_vgg(pool5), rtol=0, atol=1e-12)
    # On a larger map the FCN evaluates the classifier on every 7x7 window at once.
    big = torch.randn(1, 512, 9, 10, dtype=torch.float64)
    dense = fc7_fcn(big)
    assert tuple(dense.shape) == (1, 64, 3, 4)
    for i in range(3):
        for j in range(4):
            window = fc7_vgg(big[..., i:i + 7, j:j + 7])
            assert torch.allclose(dense[..., i, j], window, rtol=0, atol=1e-12)

    fcn.fc7 = nn.Conv2d(64, 32, 1).double()
    with pytest.raises(WeightsError, match="fc7.weight"):
        fcn_from_vgg_classifier(vgg, fcn)


@pytest.mark.parametrize("name, aux_loss, count", [("fcn_resnet50", True, 35_322_218),
                                                   ("fcn_resnet50", False, 32_957_013),
                                                   ("fcn_resnet101", True, 54_314_346)])
def test_fcn_resnet_matches_torchvision(name: str, aux_loss: bool, count: int) -> None:
    with torch.device("meta"):
        model = create(name, aux_loss=aux_loss)
    assert n_params(model) == count  # torchvision: 35,322,218 and 54,314,346 with aux
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert all(k.split(".")[0] in ("backbone", "classifier", "aux_classifier") for k in shapes)
    assert not any(k.startswith(("backbone.fc", "backbone.model")) for k in shapes)
    assert shapes["backbone.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["backbone.layer4.0.conv2.weight"] == (512, 512, 3, 3)
    assert model.backbone.layer4[0].conv2.dilation == (2, 2)  # output stride 8
    assert model.backbone.layer4[1].conv2.dilation == (4, 4)
    assert shapes["classifier.0.weight"] == (512, 2048, 3, 3)
    assert shapes["classifier.4.weight"] == (21, 512, 1, 1)
    assert ("aux_classifier.4.weight" in shapes) == aux_loss
    if aux_loss:
        assert shapes["aux_classifier.0.weight"] == (256, 1024, 3, 3)
        assert shapes["aux_classifier.4.weight"] == (21, 256, 1, 1)
    out = model.eval()(torch.empty(1, 3, 520, 520, device="meta"))
    assert tuple(out.shape) == (1, 21, 520, 520)


def test_fcn_resnet18_trains_with_aux_head() -> None:
    model = create("fcn_resnet50", backbone="resnet18", num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, SegmentationOutputs)
    assert tuple(out.out.shape) == tuple(out.aux.shape) == (2, 5, 64, 64)
    (out.out.square().mean() + 0.5 * out.aux.square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert tuple(model.eval()(torch.randn(1, 3, 45, 70)).shape) == (1, 5, 45, 70)
    with pytest.raises(InputSizeError, match="nearest to 5: 8"):
        model(torch.randn(1, 3, 5, 64))
