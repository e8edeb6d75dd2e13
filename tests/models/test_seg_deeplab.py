"""DeepLabv3 (torchvision counts and keys, output stride 8 vs 16) and DeepLabv3+."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.models import create, get_info
from cnnkit.models.segmentation.headless import read_taps


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, aux_loss, count", [("deeplabv3_resnet50", True, 42_004_074),
                                                   ("deeplabv3_resnet50", False, 39_638_869),
                                                   ("deeplabv3_resnet101", True, 60_996_202)])
def test_deeplabv3_matches_torchvision(name: str, aux_loss: bool, count: int) -> None:
    with torch.device("meta"):
        model = create(name, aux_loss=aux_loss)
    assert n_params(model) == count  # torchvision: 42,004,074 and 60,996,202 with aux
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert all(k.split(".")[0] in ("backbone", "classifier", "aux_classifier") for k in shapes)
    assert shapes["backbone.layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert shapes["classifier.0.convs.0.0.weight"] == (256, 2048, 1, 1)
    assert shapes["classifier.0.convs.3.0.weight"] == (256, 2048, 3, 3)
    assert shapes["classifier.0.convs.4.1.weight"] == (256, 2048, 1, 1)  # image pooling
    assert shapes["classifier.0.project.0.weight"] == (256, 1280, 1, 1)
    assert shapes["classifier.1.weight"] == (256, 256, 3, 3)
    assert shapes["classifier.4.weight"] == (21, 256, 1, 1)
    assert ("aux_classifier.4.weight" in shapes) == aux_loss
    if aux_loss:
        assert shapes["aux_classifier.4.weight"] == (21, 256, 1, 1)


@pytest.mark.parametrize("output_stride, rates, size", [(8, (12, 24, 36), 65),
                                                       (16, (6, 12, 18), 33)])
def test_deeplabv3_output_stride(output_stride: int, rates: tuple, size: int) -> None:
    with torch.device("meta"):
        model = create("deeplabv3_resnet50", output_stride=output_stride).eval()
        x = torch.empty(1, 3, 520, 520)
        layer3, layer4 = read_taps(model.backbone, model.taps, x)
        out = model(x)
    assert n_params(model) == 42_004_074  # dilation changes no weight shape
    assert tuple(layer3.shape) == (1, 1024, size, size)  # layer3 and layer4 share the stride
    assert tuple(layer4.shape) == (1, 2048, size, size)
    assert tuple(conv[0].dilation[0] for conv in list(model.classifier[0].convs)[1:4]) == rates
    assert tuple(out.shape) == (1, 21, 520, 520)
    with pytest.raises(ValueError, match="output_stride"):
        create("deeplabv3_resnet50", output_stride=32)


def test_deeplabv3plus_resnet50() -> None:
    info = get_info("deeplabv3plus_resnet50")
    with torch.device("meta"):
        model = create("deeplabv3plus_resnet50").eval()
        low, deep = read_taps(model.backbone, model.taps, torch.empty(1, 3, 513, 513))
        out = model(torch.empty(2, 3, 513, 513))
    assert n_params(model) == info.num_params == 40_352_181
    assert [s.module for s in model.taps] == ["layer1", "layer4"]
    assert tuple(low.shape) == (1, 256, 129, 129) and tuple(deep.shape) == (1, 2048, 33, 33)
    assert model.aspp.rates == (6, 12, 18)
    assert tuple(model.reduce[0].weight.shape) == (48, 256, 1, 1)
    assert tuple(model.decoder[0].weight.shape) == (256, 304, 3, 3)
    assert tuple(out.shape) == (2, 21, 513, 513)
    with torch.device("meta"):
        assert n_params(create("deeplabv3plus_resnet101")) == 59_344_309


def test_deeplab_resnet18_forward_backward() -> None:
    for name in ("deeplabv3_resnet50", "deeplabv3plus_resnet50"):
        model = create(name, backbone="resnet18", num_classes=3).train()
        out = model(torch.randn(2, 3, 32, 32))
        outputs = out if isinstance(out, tuple) else (out,)  # v3: (out, aux) in training
        assert [tuple(o.shape) for o in outputs] == [(2, 3, 32, 32)] * len(outputs)
        sum(o.square().mean() for o in outputs).backward()
        assert all(p.grad is not None for p in model.parameters()), name
    with pytest.raises(InputSizeError, match="nearest to 12: 16"):
        model(torch.randn(2, 3, 12, 32))  # v3+ at output stride 16
