"""Keypoint networks: DeepPose-style regression, simple-baseline and U-Net heatmaps."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import InputSizeError
from cnnkit.models import create, get_info, list_models
from cnnkit.tasks.keypoint_decode import decode_heatmaps

# exact counts at the default options, from building the models; the paper's simple baseline
# (ResNet-50, 256x192) is reported as 34.0M parameters
COUNTS = {"keypoint_regression_resnet18": 11_193_954, "heatmap_resnet50": 33_999_697,
          "heatmap_unet": 1_933_652, "cpm": 31_142_426}
# output shapes at the default input size, batch 2
META_SHAPES = {"keypoint_regression_resnet18": (2, 17, 2), "heatmap_resnet50": (2, 17, 64, 48),
               "heatmap_unet": (2, 4, 120, 160), "cpm": (2, 6, 15, 46, 46)}
# (model, a wrong size, the nearest valid sizes the message names)
WRONG_SIZES = [("heatmap_resnet50", 250, "224, 256"), ("heatmap_unet", 100, "96, 112"),
               ("cpm", 370, "368, 376"), ("keypoint_regression_resnet18", 16, "32")]


def meta(name: str, **options):
    with torch.device("meta"):
        return create(name, **options)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_all_keypoint_models_are_registered() -> None:
    assert set(COUNTS) <= set(list_models(task="keypoints-heatmap") + list_models(task="keypoints-regression"))
    assert get_info("classloc_resnet18").task == "localization"


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_count_matches_metadata(name: str) -> None:
    assert get_info(name).num_params == COUNTS[name]
    assert n_params(meta(name)) == COUNTS[name]


@pytest.mark.parametrize("name", sorted(META_SHAPES))
def test_output_shape_at_default_size_on_meta(name: str) -> None:
    info = get_info(name)
    model = meta(name).eval()
    assert model.num_keypoints == info.num_classes
    out = model(torch.empty(2, *info.input_size, device="meta"))
    assert tuple(out.shape) == META_SHAPES[name]


@pytest.mark.parametrize(("name", "size", "nearest"), WRONG_SIZES)
def test_wrong_input_size_names_the_nearest_valid_sizes(name: str, size: int,
                                                        nearest: str) -> None:
    model = meta(name).eval()
    with pytest.raises(InputSizeError, match=nearest):
        model(torch.empty(1, 3, size, size, device="meta"))


def test_backbone_classifier_is_removed() -> None:
    model = meta("heatmap_resnet50")
    assert not any(k.startswith("backbone.fc.") for k in model.state_dict())
    assert "backbone.layer4.2.conv3.weight" in model.state_dict()


@pytest.mark.parametrize(("backbone", "count"), [("vgg11", 9_237_922),
                                                 ("mobilenet_v2", 2_267_426)])
def test_regression_on_other_zoo_backbones(backbone: str, count: int) -> None:
    model = meta("keypoint_regression_resnet18", backbone=backbone).eval()
    assert n_params(model) == count
    assert tuple(model(torch.empty(1, 3, 224, 224, device="meta")).shape) == (1, 17, 2)


def _backward_reaches_every_parameter(model: torch.nn.Module, out: torch.Tensor) -> None:
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]


def test_regression_forward_backward_on_cpu() -> None:
    model = create("keypoint_regression_resnet18", num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5, 2) and torch.isfinite(out).all()
    assert model.output_stride is None and model.num_keypoints == 5
    _backward_reaches_every_parameter(model, out)


@pytest.mark.parametrize(("output_stride", "background", "shape"),
                         [(4, False, (2, 5, 16, 16)), (2, True, (2, 6, 32, 32)),
                          (1, False, (2, 5, 64, 64)), (32, False, (2, 5, 2, 2))])
def test_simple_baseline_output_strides(output_stride: int, background: bool,
                                        shape: tuple[int, ...]) -> None:
    model = create("heatmap_resnet50", backbone="resnet18", num_classes=5,
                   output_stride=output_stride, background=background)
    assert model.output_stride == output_stride and model.num_keypoints == 5
    assert model.num_classes == 5 + background
    with torch.device("meta"):
        out = model.to("meta")(torch.empty(2, 3, 64, 64, device="meta"))
    assert tuple(out.shape) == shape


def test_simple_baseline_on_a_dilated_backbone_needs_fewer_deconvolutions() -> None:
    model = meta("heatmap_resnet50", backbone_options={"output_stride": 16}).eval()
    assert len(model.deconv_layers) == 2 * 3  # two (deconv, batch norm, ReLU) triples
    assert model.input_sizes.step == 16
    assert n_params(model) == 32_950_609  # 33,999,697 minus one 256 -> 256 deconv + BN
    assert model(torch.empty(1, 3, 256, 192, device="meta")).shape == (1, 17, 64, 48)


def test_simple_baseline_forward_backward_on_cpu() -> None:
    model = create("heatmap_resnet50", backbone="resnet18", num_classes=3).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3, 16, 16)
    # decoded points lie inside the 64 x 64 image (pixel centres 0 .. 63)
    xy = decode_heatmaps(out.detach(), stride=model.output_stride).xy
    assert (xy >= 0).all() and (xy <= 63).all()
    _backward_reaches_every_parameter(model, out)


@pytest.mark.parametrize(("output_stride", "shape"), [(2, (2, 4, 16, 24)), (1, (2, 4, 32, 48))])
def test_unet_heatmap_forward_backward_on_cpu(output_stride: int,
                                              shape: tuple[int, ...]) -> None:
    model = create("heatmap_unet", output_stride=output_stride).train()
    assert model.output_stride == output_stride and model.num_keypoints == 4
    out = model(torch.randn(2, 3, 32, 48))
    assert out.shape == shape
    _backward_reaches_every_parameter(model, out)


def test_unet_heatmap_background_channel() -> None:
    model = meta("heatmap_unet", background=True).eval()
    assert model.num_classes == 5 and model.num_keypoints == 4
    assert model(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 5, 16, 16)


def test_bad_options_get_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"output_stride must be one of \[1, 2, 4, 8, 16, 32\]"):
        meta("heatmap_resnet50", output_stride=3)
    with pytest.raises(ValueError, match="output_stride must be 1 or 2"):
        meta("heatmap_unet", output_stride=4)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1; got 0"):
        meta("keypoint_regression_resnet18", num_classes=0)
