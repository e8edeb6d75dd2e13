"""Dilated convolution blocks and ASPP: sizes, dilations, receptive field, torchvision layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.layers.atrous import ASPP, DilatedConvBlock, aspp_rates


def test_dilated_block_keeps_size_and_uses_its_rate() -> None:
    for rate in (1, 2, 6):
        block = DilatedConvBlock(3, 8, rate)
        assert block[0].dilation == (rate, rate) and block[0].padding == (rate, rate)
        assert block(torch.randn(2, 3, 13, 11)).shape == (2, 8, 13, 11)
    with pytest.raises(ValueError, match="dilation"):
        DilatedConvBlock(3, 8, 0)


def test_dilations_1_2_4_give_a_15x15_receptive_field() -> None:
    blocks = nn.Sequential(*[DilatedConvBlock(1, 1, r, batch_norm=False) for r in (1, 2, 4)])
    for block in blocks:
        nn.init.constant_(block[0].weight, 1.0)
        nn.init.constant_(block[0].bias, 0.0)
    x = torch.ones(1, 1, 31, 31, requires_grad=True)
    blocks(x)[0, 0, 15, 15].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (15, 15)


def test_aspp_shapes_and_branch_rates() -> None:
    aspp = ASPP(32, 16, aspp_rates(16))
    assert [b[0].dilation[0] for b in aspp.convs[1:4]] == [6, 12, 18]
    assert len(aspp.convs) == 5 and aspp.project[0].in_channels == 5 * 16
    assert aspp(torch.randn(2, 32, 9, 7)).shape == (2, 16, 9, 7)
    no_pool = ASPP(32, 16, aspp_rates(8), image_pooling=False)
    assert [b[0].dilation[0] for b in no_pool.convs[1:]] == [12, 24, 36]
    assert no_pool.project[0].in_channels == 4 * 16
    with pytest.raises(ValueError, match="output_stride"):
        aspp_rates(32)


def test_aspp_has_torchvision_keys_and_count() -> None:
    with torch.device("meta"):
        aspp = ASPP(2048)
    keys = set(aspp.state_dict())
    expected = {"convs.0.0.weight", "convs.0.1.weight", "convs.1.0.weight", "convs.3.1.running_var",
                "convs.4.1.weight", "convs.4.2.bias", "project.0.weight", "project.1.weight"}
    assert expected <= keys
    assert all(m.bias is None for m in aspp.modules() if isinstance(m, nn.Conv2d))
    # torchvision's deeplabv3_resnet50 (42,004,074) = ResNet-50 trunk 23,508,032 + this ASPP
    # + DeepLabHead's 3x3 conv, BN and classifier (595,733) + aux FCNHead (2,365,205)
    assert sum(p.numel() for p in aspp.parameters()) == 15_535_104
