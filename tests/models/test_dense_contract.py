"""The contract of every registered dense model (segmentation, keypoints, localization):
counts, output shapes at the documented sizes, size errors, a CPU training step, the analyzer."""

from __future__ import annotations

import pytest
import torch

from cnnkit.analysis import analyze
from cnnkit.errors import InputSizeError
from cnnkit.models import create, get_info, list_models
from cnnkit.models.dense import DenseModel

SEGMENTERS = list_models(task="segmentation")
DENSE = SEGMENTERS + list_models(task="keypoints-heatmap") + list_models(task="keypoints-regression")
ALL = DENSE + list_models(task="localization")
REAL_RUN_LIMIT = 30_000_000


def meta_model(name: str, **kwargs):
    with torch.device("meta"):
        return create(name, **kwargs)


@pytest.mark.parametrize("name", ALL)
def test_param_count_on_meta(name: str) -> None:
    model = meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == get_info(name).num_params


@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmenter_logits_at_documented_size(name: str) -> None:
    info = get_info(name)
    model = meta_model(name).eval()
    c, h, w = info.input_size
    out = model(torch.empty(2, c, h, w, device="meta"))
    if hasattr(model, "output_size"):  # the valid-convolution U-Net: 572 -> 388
        expected = (model.output_size(h), model.output_size(w))
    else:
        expected = (h, w)
    assert tuple(out.shape) == (2, info.num_classes, *expected)
    assert expected == (h, w) or name == "unet"


@pytest.mark.parametrize("name", DENSE)
def test_too_small_input_names_valid_sizes(name: str) -> None:
    model = meta_model(name).eval()
    assert isinstance(model, DenseModel)
    sizes = model.input_sizes
    if sizes.minimum <= 1 and sizes.step == 1:
        pytest.skip("takes every size")
    bad = sizes.minimum - 1 if sizes.minimum > 1 else sizes.minimum + 1
    c = get_info(name).input_size[0]
    with pytest.raises(InputSizeError, match=r"needs input sizes .*; got"):
        model(torch.empty(1, c, bad, bad, device="meta"))


def small_valid_size(model: DenseModel, at_least: int = 32) -> int:
    sizes = model.input_sizes
    k = max(0, -(-(at_least - sizes.minimum) // sizes.step))
    return sizes.minimum + k * sizes.step


@pytest.mark.parametrize("name", ALL)
def test_training_step_on_cpu(name: str) -> None:
    info = get_info(name)
    if info.num_params > REAL_RUN_LIMIT:
        pytest.skip("large model: checked on meta")
    model = create(name).train()
    side = small_valid_size(model) if isinstance(model, DenseModel) else 64
    out = model(torch.randn(2, info.input_size[0], side, side))
    outputs = out if isinstance(out, tuple) else (out,)  # aux logits, boxes: train them all
    assert all(torch.isfinite(o).all() for o in outputs)
    sum(o.float().square().mean() for o in outputs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ALL)
def test_analyzer_runs(name: str) -> None:
    info = get_info(name)
    report = analyze(meta_model(name), info.input_size)
    assert report.totals["params"] == info.num_params
    assert report.layers and report.totals["macs"] > 0


def test_unet_receptive_field_through_its_skips() -> None:
    """U-Net's bottleneck sees 140 pixels (4 levels of two 3x3 convs and a 2x2 pool, then two
    convs); the output adds the decoder's convolutions across the crop-and-copy skips. The
    transposed 2x2 convolutions make the field depend on the output position (period 16): the
    analyzer reports the largest and smallest, and back-propagation measures both over one
    period of output units (width does not change them)."""
    from cnnkit import empirical_receptive_field

    full = analyze(meta_model("unet"), (1, 572, 572))
    rows = {row.name: row for row in full.layers}
    assert rows["bottleneck.3"].rf["size"] == 140
    assert full.layers[-1].rf["size"] == 204
    thin = create("unet", base_width=2)
    rf = analyze(thin, (1, 220, 220)).layers[-1].rf
    assert (rf["size"], rf["min_size"], rf["period"]) == (204, 188, 16)
    measured = {empirical_receptive_field(thin, (1, 220, 220), output=(u, u))["size"]
                for u in range(8, 24)}
    assert measured == {188, 204}
