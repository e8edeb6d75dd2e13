"""Zoom-out features (Mostajabi et al., CVPR 2015) on zoo backbones: counts, shapes, the
nested-region means by hand, the per-map first layer against the concatenated form, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError
from cnnkit.models import create, get_info
from cnnkit.models.features import read_taps
from cnnkit.models.segmentation.zoomout import zoom_out_pool, zoomout

HEADLESS = {"vgg16": 14_714_688, "resnet18": 11_176_512}  # backbones without pool and fc


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("backbone, width, count", [("vgg16", 4 * 1472, 20_767_573),
                                                    ("resnet18", 4 * 1024, 15_394_389)])
def test_counts(backbone: str, width: int, count: int) -> None:
    name = f"zoomout_{backbone}"
    with torch.device("meta"):
        model = create(name)
        linear = create(name, hidden_channels=())
        one_int = create(name, hidden_channels=0)
    assert model.feature_channels == width  # 3 windows + global, per channel of every map
    assert n_params(model) == get_info(name).num_params == count
    assert count == HEADLESS[backbone] + width * 1024 + 2 * 1024 + 1024 * 21 + 21
    assert n_params(linear) == n_params(one_int) == HEADLESS[backbone] + width * 21 + 21


@pytest.mark.parametrize("name", ["zoomout_vgg16", "zoomout_resnet18"])
@pytest.mark.parametrize("size", [(224, 224), (224, 200), (33, 47), (32, 32)])
def test_output_at_input_size(name: str, size: tuple[int, int]) -> None:
    with torch.device("meta"):
        model = create(name).eval()
        out = model(torch.empty(2, 3, *size))
        features = model.zoomout_features(torch.empty(1, 3, *size))
        finest = read_taps(model.backbone, model.taps, torch.empty(1, 3, *size))[0].shape[-2:]
    assert tuple(out.shape) == (2, 21, *size)
    assert [s.stride for s in model.taps] == [2, 4, 8, 16, 32]
    assert tuple(features.shape) == (1, model.feature_channels, *finest)  # at stride 2


def test_zoom_out_pool_by_hand() -> None:
    x = torch.arange(20.0).view(1, 1, 4, 5)  # x[r, c] = 5r + c
    pooled = zoom_out_pool(x, windows=(1, 3, 7), global_pool=True)
    assert tuple(pooled.shape) == (1, 4, 4, 5)
    local, proximal, distant, scene = pooled[0]
    assert torch.equal(local, x[0, 0])
    assert proximal[0, 0] == 3.0    # (0 + 1 + 5 + 6) / 4: the cells inside the map only
    assert proximal[1, 1] == 6.0    # (0+1+2 + 5+6+7 + 10+11+12) / 9
    assert proximal[3, 4] == 16.0   # (13 + 14 + 18 + 19) / 4
    assert distant[0, 0] == 9.0     # rows 0..3, cols 0..3: 5 * 1.5 + 1.5
    assert distant[2, 2] == 9.5     # the whole 4 x 5 map
    assert torch.all(scene == 9.5)
    assert torch.equal(zoom_out_pool(x, (3,), False)[0, 0], proximal)


def test_model_features_are_window_means_of_its_maps() -> None:
    """Constant backbone weights, a ramp image, one map (stride 4, the finest chosen, so no
    resampling): each block of a pixel's feature is the mean of the map over its window."""
    model = zoomout("vgg16", feature_indices=(1,), windows=(1, 3, 7), num_classes=2).eval()
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            p.fill_(0.01 if name.endswith("weight") else 0.0)
    ramp = torch.arange(32 * 40.0).view(1, 1, 32, 40).expand(1, 3, 32, 40) / 1280
    with torch.no_grad():
        (tap,) = read_taps(model.backbone, model.taps, ramp)
        features = model.zoomout_features(ramp)
    assert tuple(tap.shape) == (1, 128, 8, 10) and tap.std() > 0
    c = 128
    row, col = 0, 2
    local, proximal, distant, scene = features[0, :, row, col].split(c)
    torch.testing.assert_close(local, tap[0, :, row, col])
    torch.testing.assert_close(proximal, tap[0, :, 0:2, 1:4].mean((1, 2)))  # rows -1..1 clipped
    torch.testing.assert_close(distant, tap[0, :, 0:4, 0:6].mean((1, 2)))   # rows -3..3, cols -1..5
    torch.testing.assert_close(scene, tap[0].mean((1, 2)))


def test_per_map_first_layer_equals_concatenated_form() -> None:
    torch.manual_seed(0)
    model = zoomout("resnet18", num_classes=3, hidden_channels=(16, 8)).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        features = model.zoomout_features(x)
        stacked = F.conv2d(features, model.stacked_weight()[:, :, None, None])
        factored = model.first_layer(x)
    assert tuple(features.shape) == (2, 4 * 1024, 32, 24)
    torch.testing.assert_close(factored, stacked, rtol=1e-4, atol=1e-4)


def test_linear_variant_first_layer_is_the_classifier() -> None:
    torch.manual_seed(0)
    model = zoomout("resnet18", num_classes=3, hidden_channels=0,
                    feature_indices=(2, 4)).eval()
    with torch.no_grad():
        model.local[0].bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
        x = torch.randn(1, 3, 64, 64)
        stacked = F.conv2d(model.zoomout_features(x), model.stacked_weight()[:, :, None, None])
        out = model(x)
    assert tuple(stacked.shape) == (1, 3, 8, 8)  # stride 8, the finer of strides 8 and 32
    expected = F.interpolate(stacked + model.local[0].bias[:, None, None], size=(64, 64),
                             mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = create("zoomout_resnet18", num_classes=3).train()
    out = model(torch.randn(2, 3, 64, 48))
    assert tuple(out.shape) == (2, 3, 64, 48)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    head = [n for n, p in model.named_parameters()
            if not n.startswith("backbone.") and not p.grad.abs().sum() > 0]
    assert not head and all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("options, match", [
    ({"windows": (1, 4)}, "odd sizes"), ({"windows": (3, 1)}, "increasing"),
    ({"hidden_channels": (0,)}, "hidden_channels"), ({"feature_indices": ()}, "feature index"),
    ({"windows": (), "global_pool": False}, "one region"), ({"feature_indices": (9,)}, "range"),
])
def test_bad_arguments(options: dict, match: str) -> None:
    with torch.device("meta"), pytest.raises(ArgumentError, match=match):
        zoomout("vgg16", **options)


def test_zoom_out_pool_needs_a_batch_of_maps() -> None:
    with pytest.raises(ArgumentError, match="N x C x h x w"):
        zoom_out_pool(torch.zeros(3, 4, 4))
