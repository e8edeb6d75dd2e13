"""Convolutional Pose Machines: all stages returned, intermediate supervision reaches stage 1."""

from __future__ import annotations

import pytest
import torch

from cnnkit.models import create, get_info


def test_default_cpm_is_six_stages_of_fifteen_maps_at_stride_eight() -> None:
    info = get_info("cpm")
    assert info.input_size == (3, 368, 368) and info.num_classes == 14
    with torch.device("meta"):
        model = create("cpm").eval()
    assert (model.num_stages, model.num_keypoints, model.num_classes) == (6, 14, 15)
    assert model.output_stride == 8
    assert tuple(model(torch.empty(1, 3, 368, 368, device="meta")).shape) == (1, 6, 15, 46, 46)


@pytest.mark.parametrize(("stages", "count"), [(1, 4_386_095), (2, 11_885_918), (6, 31_142_426)])
def test_parameter_count_per_number_of_stages(stages: int, count: int) -> None:
    # stage 1: 4,386,095; shared image features: 2,685,696; each further stage 4,814,127
    with torch.device("meta"):
        model = create("cpm", stages=stages)
    assert sum(p.numel() for p in model.parameters()) == count


def test_every_stage_is_returned_and_all_stages_train_stage_one() -> None:
    model = create("cpm", num_classes=3, stages=3).train()
    out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 3, 4, 4, 4)  # N x T x (K+1) x H/8 x W/8
    target = torch.rand_like(out[:, 0])
    # intermediate supervision: one L2 loss per stage, summed
    loss = sum((out[:, t] - target).square().mean() for t in range(out.shape[1]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert model.stage1[0].weight.grad.abs().sum() > 0


def test_last_stage_loss_alone_reaches_stage_one_through_the_beliefs() -> None:
    model = create("cpm", num_classes=2, stages=2).train()
    out = model(torch.randn(1, 3, 16, 16))
    out[:, -1].square().mean().backward()
    assert model.stage1[0].weight.grad.abs().sum() > 0


def test_stages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stages"):
        create("cpm", stages=0)
