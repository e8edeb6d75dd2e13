"""Learning-rate schedules by hand, parameter groups, freezing and linear probes."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.models import LinearProbe
from cnnkit.engine import (BACKBONE_TENTH, MultiStepLR, PlateauLR, StepLR,
                           WarmupCosineLR, build_optimizer, build_schedule, freeze, unfreeze)
from cnnkit.errors import CnnkitError
from helpers.engine import TinyNet

# these tests step schedules without optimizer steps, which torch's schedulers warn about
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")


def sgd(lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def test_warmup_then_cosine_per_iteration() -> None:
    opt = sgd(0.1)
    schedule = WarmupCosineLR(opt, total_steps=10, warmup_steps=2)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(11):
        schedule.step_iteration()
        lrs.append(opt.param_groups[0]["lr"])
    expected = [0.0, 0.05, 0.1] + [0.05 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)] + [0.0]
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert lrs[6] == pytest.approx(0.05) and lrs[4] == pytest.approx(0.0853553390593)
    schedule.step_epoch(0.3)  # epoch ends do not move a per-iteration schedule
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_step_and_multistep_divide_by_ten() -> None:
    opt = sgd(0.1)
    schedule = StepLR(opt, step_size=2)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        schedule.step_iteration()  # iterations do not move an epoch schedule
        schedule.step_epoch()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    opt = sgd(0.1)
    schedule = MultiStepLR(opt, milestones=[1, 3])
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(4):
        schedule.step_epoch()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.01, 0.01, 0.001, 0.001])


def test_plateau_divides_by_ten_after_patience_and_resumes() -> None:
    opt = sgd(0.1)
    schedule = PlateauLR(opt, mode="max", patience=2)
    lrs = []
    for accuracy in (0.5, 0.6, 0.6, 0.59, 0.6, 0.6, 0.6, 0.7):
        schedule.step_epoch(accuracy)
        lrs.append(opt.param_groups[0]["lr"])
    # three evaluations without improvement (> patience 2) after the best 0.6 -> /10
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])
    other = PlateauLR(sgd(0.1), mode="max", patience=2)
    other.load_state_dict(schedule.state_dict())
    assert other.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert other.best == 0.7 and other.bad_epochs == 0
    assert isinstance(other.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    loss_mode = PlateauLR(sgd(1.0), mode="min", patience=0)
    loss_mode.step_epoch(1.0)
    loss_mode.step_epoch(1.5)
    assert loss_mode.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_schedules_scale_each_group_and_build_by_name() -> None:
    model = TinyNet()
    opt = build_optimizer(model, lr=0.1, lr_multipliers=BACKBONE_TENTH)
    schedule = build_schedule("step", opt, epochs=3, steps_per_epoch=5, step_size=1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.01, 0.1])
    schedule.step_epoch()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.001, 0.01])
    plateau = build_schedule("plateau", build_optimizer(model), epochs=3, steps_per_epoch=5,
                             higher_is_better=False)
    assert plateau.mode == "min"
    cosine = build_schedule("cosine", build_optimizer(model), epochs=3, steps_per_epoch=5,
                            warmup_epochs=1)
    assert (cosine.total_steps, cosine.warmup_steps) == (15, 5)
    with pytest.raises(CnnkitError, match="unknown schedule 'linear'"):
        build_schedule("linear", opt, epochs=1, steps_per_epoch=1)


def test_optimizer_groups_multipliers_and_no_decay() -> None:
    model = TinyNet()
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4, decay_norm_and_bias=False,
                          lr_multipliers={"stem": 0.0, "stages": 0.1})
    groups = {g["name"]: g for g in opt.param_groups}
    assert sorted(groups) == ["head", "head/no_decay", "stages", "stages/no_decay"]
    assert not any(p.requires_grad for p in model.stem.parameters())
    stages_ids = {id(p) for p in groups["stages"]["params"] + groups["stages/no_decay"]["params"]}
    assert stages_ids == {id(p) for p in model.layer1.parameters()}
    assert groups["stages"]["lr"] == pytest.approx(0.01) and groups["head"]["lr"] == 0.1
    assert groups["stages/no_decay"]["weight_decay"] == 0.0 and groups["stages"]["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in groups["head/no_decay"]["params"])
    assert groups["head"]["params"] == [model.fc.weight]
    assert opt.defaults["momentum"] == 0.9
    assert isinstance(build_optimizer(TinyNet(), "adamw", lr=1e-3), torch.optim.AdamW)
    with pytest.raises(CnnkitError, match="'backbone'"):
        build_optimizer(TinyNet(), lr_multipliers={"backbone": 0.1})


def test_freeze_by_group_and_prefix_keeps_frozen_batchnorm_in_eval() -> None:
    model = TinyNet()
    assert freeze(model, ["stem"]) == 4  # conv weight, bias, BN weight, bias
    model.train()
    stem_mean = model.stem[1].running_mean.clone()
    stage_mean = model.layer1[1].running_mean.clone()
    model(torch.randn(4, 3, 8, 8) + 3)
    assert torch.equal(model.stem[1].running_mean, stem_mean)
    assert not torch.equal(model.layer1[1].running_mean, stage_mean)
    freeze(model, ["layer1.0"])
    assert not model.layer1[0].weight.requires_grad and model.layer1[1].weight.requires_grad
    with pytest.raises(CnnkitError, match="layer9"):
        freeze(model, ["layer9"])
    assert unfreeze(model) == 6  # the 4 of the stem and layer1.0's 2
    model(torch.randn(4, 3, 8, 8) + 3)
    assert not torch.equal(model.stem[1].running_mean, stem_mean)


def test_linear_probe_trains_only_its_head() -> None:
    model = TinyNet()
    probe = LinearProbe(model, num_classes=3, stage=0)
    assert probe.fc.in_features == 4 and model.fc is None  # head of the backbone dropped
    before = {k: v.clone() for k, v in probe.features.state_dict().items()}
    opt = build_optimizer(probe, "sgd", lr=0.5)
    assert [g["name"] for g in opt.param_groups] == ["head"]
    probe.train()
    for _ in range(3):
        loss = probe(torch.randn(4, 3, 8, 8)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = probe.features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    assert probe(torch.randn(2, 3, 8, 8)).shape == (2, 3)
