"""The API contract every registered classifier keeps: counts, shapes, features, groups, heads."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.errors import InputSizeError
from cnnkit.models import FeatureExtractor, create, get_info, list_models

CLASSIFIERS = list_models(task="classification")
REAL_RUN_LIMIT = 30_000_000  # parameters; bigger models are checked on the meta device only
MODULE_LIMIT = 2_000  # resnet1202_cifar has more modules than that


def meta_model(name: str, **kwargs):
    with torch.device("meta"):
        return create(name, **kwargs)


def small_size(name: str) -> tuple[int, int, int]:
    """64x64 (or the default if smaller) where the model takes it, else its default size."""
    c, h, w = get_info(name).input_size
    side = min(64, h, w)
    model = meta_model(name).eval()
    try:
        model(torch.empty(1, c, side, side, device="meta"))
        return c, side, side
    except (RuntimeError, ValueError):
        return c, h, w


def test_zoo_is_populated() -> None:
    assert len(CLASSIFIERS) >= 40


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_param_count_and_output_shape_on_meta(name: str) -> None:
    info = get_info(name)
    model = meta_model(name).eval()
    assert sum(p.numel() for p in model.parameters()) == info.num_params
    out = model(torch.empty(2, *info.input_size, device="meta"))
    assert tuple(out.shape) == (2, info.num_classes)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_in_channels_and_num_classes(name: str) -> None:
    _, h, w = get_info(name).input_size
    model = meta_model(name, in_channels=1, num_classes=7).eval()
    assert tuple(model(torch.empty(1, 1, h, w, device="meta")).shape) == (1, 7)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_on_cpu(name: str) -> None:
    if get_info(name).num_params > REAL_RUN_LIMIT:
        pytest.skip("large model: checked on meta")
    if sum(1 for _ in meta_model(name).modules()) > MODULE_LIMIT:
        pytest.skip("very deep model (time goes per layer, not per pixel): checked on meta")
    size = small_size(name)
    model = create(name, num_classes=5).train()
    x = torch.randn(2, *size)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    assert tuple(logits.shape) == (2, 5)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "some parameters got no gradient"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_features_match_declared_strides_and_channels(name: str) -> None:
    """Channels as declared; strides measured exactly: growing the input by 64 pixels grows a
    map of stride s by 64/s (valid convolutions only shave a constant). Models with one fixed
    input size (LeNet-5) are checked by the ratio of the sizes instead."""
    c, h, w = get_info(name).input_size
    backbone = FeatureExtractor(meta_model(name).eval())
    feats = backbone(torch.empty(1, c, h, w, device="meta"))
    assert len(feats) == len(backbone.feature_specs) >= 2
    assert backbone.strides == sorted(backbone.strides)
    try:
        bigger = backbone(torch.empty(1, c, h + 64, w + 64, device="meta"))
    except InputSizeError:
        bigger = None
    for i, (spec, f) in enumerate(zip(backbone.feature_specs, feats)):
        assert f.shape[1] == spec.channels, spec
        if bigger is not None:
            assert (bigger[i].shape[2] - f.shape[2]) * spec.stride == 64, (spec, tuple(f.shape))
        else:
            assert h / (2 * spec.stride) < f.shape[2] <= math.ceil(h / spec.stride), spec


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_features_only_via_create(name: str) -> None:
    with torch.device("meta"):
        backbone = create(name, features_only=True, out_indices=[-1])
    assert isinstance(backbone, FeatureExtractor) and len(backbone.feature_specs) == 1


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_param_groups_partition_the_model(name: str) -> None:
    model = meta_model(name)
    groups = model.param_groups()
    assert set(groups) == {"stem", "stages", "head"}
    assert all(groups.values()), {k: len(v) for k, v in groups.items()}
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    assert head_ids <= {id(p) for p in groups["head"]}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reset_classifier(name: str) -> None:
    info = get_info(name)
    model = meta_model(name).eval()
    model.reset_classifier(3)
    assert model.num_classes == 3
    assert tuple(model(torch.empty(1, *info.input_size, device="meta")).shape) == (1, 3)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_metadata_is_complete(name: str) -> None:
    info = get_info(name)
    assert info.paper and 1989 <= info.year <= 2026
    assert len(info.input_size) == 3 and info.num_params > 0
    assert info.builder.__doc__, f"builder of {name} has no docstring"
