"""What a trained network sees: CAM and Grad-CAM against the hand computation, saliency of a
linear model, the effective receptive field of constant 3x3 convolutions against the analyzer's
box, picture sizes, one-line refusals, and the model given back as it was."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.analysis import analyze
from cnnkit.errors import ArgumentError, CnnkitError, NotFoundError
from cnnkit.explain import (
    PICTURES,
    activation_maps,
    class_activation_map,
    effective_receptive_field,
    first_layer_filters,
    grad_cam,
    saliency_map,
    write_pictures,
)
from cnnkit.explain.see_pictures import BOX_COLOR, TILE_SIDE, display_zoom
from cnnkit.models import Classifier, FeatureSpec, create
from cnnkit.viz.tiles import grid_size

CAPTION = 16  # height of a caption band (cnnkit.viz.caption)


class TinyGap(Classifier):
    """conv 3x3 + ReLU, then global average pooling + one linear layer: CAM's network."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, classes)
        self.feature_specs = [FeatureSpec("relu", 1, 4)]
        self.classifier_names = ("fc",)
        self.group_prefixes = {"stem": ("conv",), "stages": (), "head": ("fc",)}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


def constant_stack(layers: int) -> nn.Sequential:
    convs = [nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(layers)]
    for conv in convs:
        nn.init.constant_(conv.weight, 1 / 9)
    return nn.Sequential(*convs)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return create("resnet18", num_classes=5)


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    torch.manual_seed(0)
    return create("vgg_small_s", num_classes=3)


def test_cam_is_the_weighted_sum_of_the_last_maps() -> None:
    torch.manual_seed(1)
    model, x = TinyGap(), torch.randn(3, 6, 7)
    maps = model.forward_features(x[None])[0]
    logits = model(x[None])[0]
    for target in (None, 2):
        cam = class_activation_map(model, x, target)
        t = int(logits.argmax()) if target is None else target
        expected = (model.fc.weight[t][:, None, None] * maps).sum(0)
        assert cam.target == t and cam.method == "cam"
        torch.testing.assert_close(cam.map, expected.detach(), rtol=1e-6, atol=1e-6)
        assert cam.upsampled.shape == (6, 7)


def test_grad_cam_is_cam_up_to_a_positive_scale_for_gap_and_linear() -> None:
    torch.manual_seed(2)
    model, x = TinyGap(), torch.randn(3, 5, 8)
    for target in range(3):
        cam = class_activation_map(model, x, target)
        gcam = grad_cam(model, x, target)
        assert gcam.layer == "relu"
        # alpha_k = w_k / Z for a GAP + linear head (Selvaraju et al., section 3.1)
        torch.testing.assert_close(gcam.map * (5 * 8), cam.map.relu(), rtol=1e-5, atol=1e-6)


def test_saliency_of_a_linear_model_is_abs_weight_max_over_channels() -> None:
    torch.manual_seed(3)
    model, x = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 5, 4)), torch.randn(3, 6, 5)
    for target in (None, 1):
        sal = saliency_map(model, x, target)
        t = int(model(x[None])[0].argmax()) if target is None else target
        assert sal.target == t
        assert torch.equal(sal.map, model[1].weight[t].view(3, 6, 5).abs().amax(0).detach())
        assert torch.equal(sal.upsampled, sal.map)


@pytest.mark.parametrize("layers, layer, size", [(3, None, 7), (3, "1", 5), (2, None, 5)])
def test_erf_of_constant_3x3_stack_fills_exactly_the_theoretical_field(layers, layer,
                                                                       size) -> None:
    model = constant_stack(layers)
    field = effective_receptive_field(model, (1, 15, 15), layer, samples=2)
    assert field.unit == (7, 7)
    lo, hi = 7 - size // 2, 7 + size // 2
    assert field.box == [[lo, hi], [lo, hi]]
    assert field.box == analyze(model, (1, 15, 15)).receptive_box((7, 7), layer=layer)
    inside = torch.zeros(15, 15, dtype=torch.bool)
    inside[lo:hi + 1, lo:hi + 1] = True
    assert torch.equal(field.gradient > 0, inside)
    # Gaussian-like: peaked at the unit, most of the mass in a fraction of the box
    assert field.gradient.argmax() == 7 * 15 + 7
    assert field.area95 < size * size and max(field.sigma) < size / 2
    zoom = display_zoom(15, 15)
    picture = field.picture
    assert picture.size == (15 * zoom, 15 * zoom + 2 * CAPTION)
    for x, y in [(lo * zoom, lo * zoom), ((hi + 1) * zoom - 1, (hi + 1) * zoom - 1)]:
        assert picture.getpixel((x, y)) == BOX_COLOR
    assert picture.getpixel((lo * zoom - 1, lo * zoom - 1)) != BOX_COLOR


def test_erf_of_a_zoo_classifier_uses_the_deepest_stage(vgg) -> None:
    field = effective_receptive_field(vgg, (3, 32, 32))
    assert field.layer == vgg.feature_specs[-1].module
    assert field.box == analyze(vgg, (3, 32, 32)).receptive_box(field.unit, field.layer)
    rows, cols = (field.gradient > 0).nonzero().unbind(1)
    (top, bottom), (left, right) = field.box
    assert top <= rows.min() and rows.max() <= bottom and left <= cols.min() and cols.max() <= right


def test_first_layer_filters_picture_sizes(vgg) -> None:
    grid = first_layer_filters(vgg)
    assert grid.layer == "features.0" and torch.equal(grid.weights, vgg.features[0].weight)
    zoom = TILE_SIDE // 3
    w, h = grid_size(32, (3, 3), math.ceil(math.sqrt(32)), zoom)
    assert grid.picture.size == (w, h + CAPTION)
    gray = first_layer_filters(nn.Sequential(nn.Conv2d(2, 4, 5)), scale="minmax", zoom=3)
    w, h = grid_size(8, (5, 5), 2 * 2, 3, gap=1)
    assert gray.picture.size == (w, h + CAPTION)


def test_symmetric_scale_puts_zero_at_mid_gray() -> None:
    conv = nn.Conv2d(1, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[-2.0, 0, 2], [0, 0, 0], [1, 0, -1]]).view(1, 1, 3, 3))
    picture = first_layer_filters(conv, zoom=1).picture
    assert picture.getpixel((0, 0)) == (0, 0, 0) and picture.getpixel((2, 0)) == (255,) * 3
    assert picture.getpixel((1, 0)) == (128,) * 3


def test_activation_maps_default_to_the_feature_stages(vgg) -> None:
    maps = activation_maps(vgg, torch.randn(3, 32, 32), max_channels=16)
    assert list(maps) == [s.module for s in vgg.feature_specs]
    for spec, item in zip(vgg.feature_specs, maps.values()):
        side = 32 // spec.stride
        assert item.maps.shape == (spec.channels, side, side)
        assert len(item.channels) == 16 and item.channels == sorted(item.channels)
        w, h = grid_size(16, (side, side), 4, max(1, TILE_SIDE // side))
        assert item.picture.size == (w, h + CAPTION)
    few = activation_maps(vgg, torch.randn(1, 3, 32, 32), "features.0", max_channels=100)
    assert len(few["features.0"].channels) == 32


def test_heat_pictures_have_the_picture_size(resnet) -> None:
    x = torch.randn(3, 32, 32)
    zoom = display_zoom(32, 32)
    for heat in (class_activation_map(resnet, x), grad_cam(resnet, x, layer="layer3"),
                 saliency_map(resnet, x)):
        assert heat.upsampled.shape == (32, 32)
        assert heat.picture.size == (32 * zoom, 32 * zoom)
    given = Image.new("RGB", (50, 40))
    assert grad_cam(resnet, x, 1, picture=given).picture.size == (50, 40)


def test_bad_layer_names_list_the_valid_ones(vgg) -> None:
    x = torch.randn(3, 32, 32)
    for call in (lambda: grad_cam(vgg, x, layer="nope"),
                 lambda: activation_maps(vgg, x, ["features.0", "nope"]),
                 lambda: effective_receptive_field(vgg, (3, 32, 32), "nope")):
        with pytest.raises(NotFoundError) as err:
            call()
        message = one_line(err)
        assert "'nope'" in message and "valid layers: features, features.0" in message


def test_refusals_are_one_line_cnnkit_errors(vgg) -> None:
    x = torch.randn(3, 32, 32)
    with pytest.raises(ArgumentError) as err:  # hidden layer after the pooling
        class_activation_map(vgg, x)
    assert "global average pooling + one linear layer" in one_line(err)
    with pytest.raises(ArgumentError) as err:
        class_activation_map(nn.Sequential(nn.Conv2d(3, 2, 1)), x)
    one_line(err)
    with pytest.raises(ArgumentError) as err:
        grad_cam(vgg, x, target=3)
    assert "0..2" in one_line(err)
    with pytest.raises(ArgumentError) as err:
        grad_cam(vgg, x, layer="classifier.5")
    assert "not N x C x H x W" in one_line(err)
    with pytest.raises(CnnkitError) as err:
        write_pictures(vgg, x, "unused", what=("filters", "movie"))
    assert "'movie'" in one_line(err)
    with pytest.raises(ArgumentError):
        effective_receptive_field(vgg, (32, 32))
    with pytest.raises(ArgumentError):
        saliency_map(vgg, torch.randn(2, 3, 32, 32))


def test_dense_scores_explain_a_class_summed_over_pixels() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.randn(3, 9, 9)
    heat = grad_cam(model, x, layer="1")
    votes = model(x[None])[0].argmax(0).flatten().bincount(minlength=2)
    assert heat.target == int(votes.argmax()) and heat.map.shape == (9, 9)
    with pytest.raises(ArgumentError) as err:  # no feature_specs: the layer must be named
        grad_cam(model, x)
    assert "0, 1, 2" in one_line(err)
    assert effective_receptive_field(model, (3, 9, 9), samples=1).box == [[3, 5], [3, 5]]


def test_the_model_is_given_back_as_it_was(resnet, tmp_path) -> None:
    model = resnet
    model.train()
    model.conv1.weight.requires_grad_(False)
    flags = [(m.training, m) for m in model.modules()]
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    run = SimpleNamespace(model=model, task=SimpleNamespace(class_names=list("abcde")))
    paths = write_pictures(run, torch.randn(3, 32, 32), tmp_path / "pics", what=PICTURES)
    names = [p.name for p in paths]
    assert names[0] == "filters.png" and names[-4:] == ["cam.png", "gradcam.png",
                                                        "saliency.png", "erf.png"]
    assert "activations_layer4.png" in names and all(p.is_file() for p in paths)
    assert all(m.training == mode for mode, m in flags)
    assert grads == {n: p.requires_grad for n, p in model.named_parameters()}
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    model.conv1.weight.requires_grad_(True)
    model.eval()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_follows_the_model_to_cuda() -> None:
    model = TinyGap().cuda()
    x = torch.randn(3, 6, 6)
    cam, gcam = class_activation_map(model, x, 0), grad_cam(model, x, 0)
    torch.testing.assert_close(gcam.map * 36, cam.map.relu(), rtol=1e-4, atol=1e-5)
    assert saliency_map(model, x).map.device.type == "cpu"
    assert effective_receptive_field(model, (3, 6, 6), "conv").box == [[2, 4], [2, 4]]
