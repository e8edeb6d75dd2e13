"""Multi-task: sub-tasks by kind, fixed and uncertainty-weighted losses, prefixed metrics,
directions, spec round trip, options from the data and the model, delegation, a short
training of a multi-head network with learned log-variances."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from cnnkit.data.batch import collate_samples
from cnnkit.data.scenes import SCENE_CLASSES, SyntheticScenes
from cnnkit.engine import Trainer, build_optimizer, make_loader
from cnnkit.errors import ArgumentError, CnnkitError, OptionError
from cnnkit.models import create
from cnnkit.runs import RunFolder
from cnnkit.tasks import MultiTask, build_task

TASKS = {"depth": {"loss": "l1"}, "normals": {}, "segmentation": {"num_classes": 4}}


def scene_batch(count: int = 2) -> dict:
    data = SyntheticScenes(count, size=(16, 16), seed=4)
    return collate_samples([data[i] for i in range(count)])


def outputs(batch: dict, **extra) -> dict:
    n, _, h, w = batch["image"].shape
    return {"depth": torch.randn(n, 1, h, w), "normals": torch.randn(n, 3, h, w),
            "segmentation": torch.randn(n, 4, h, w), **extra}


def test_fixed_weights_sum_the_sub_losses() -> None:
    task = MultiTask(TASKS, weights={"normals": 2.0, "segmentation": 0.5})
    batch = scene_batch()
    out = outputs(batch)
    total, parts = task.loss(out, batch)
    subs = {kind: float(task.tasks[kind].loss(out[kind], batch)[0]) for kind in TASKS}
    assert float(total) == pytest.approx(subs["depth"] + 2 * subs["normals"]
                                         + 0.5 * subs["segmentation"], rel=1e-5)
    assert {k: float(v) for k, v in parts.items()} == pytest.approx(
        {f"loss_{k}": v for k, v in subs.items()})


def test_uncertainty_weighting_uses_the_models_log_variances() -> None:
    task = MultiTask(TASKS, weighting="uncertainty")
    batch = scene_batch()
    s = torch.tensor([0.5, -0.2, 1.0], requires_grad=True)
    out = outputs(batch, log_variances=dict(zip(TASKS, s.unbind(0))))
    total, parts = task.loss(out, batch)
    subs = [float(task.tasks[kind].loss(out[kind], batch)[0]) for kind in TASKS]
    expected = sum(math.exp(-si) * li + si for si, li in zip(s.tolist(), subs))
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(parts["log_var_normals"]) == pytest.approx(-0.2)
    total.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    with pytest.raises(CnnkitError, match="needs the model's learned log-variances"):
        task.loss(outputs(batch), batch)


def test_metrics_prefixed_and_exact_over_batches() -> None:
    task = MultiTask(TASKS)
    batch = scene_batch(4)
    out = outputs(batch)
    whole, first, second = task.new_metric(), task.new_metric(), task.new_metric()
    whole.update(out, batch)
    halves = [{k: v[s] for k, v in batch.items()} for s in (slice(0, 1), slice(1, 4))]
    first.update({k: v[:1] for k, v in out.items()}, halves[0])
    second.update({k: v[1:] for k, v in out.items()}, halves[1])
    for mine, theirs in zip(first.state(), second.state()):  # what all_reduce does
        mine += theirs
    figures = whole.compute()
    assert {"depth/abs_rel", "normals/mean_angle", "segmentation/miou",
            "segmentation/iou/3"} <= set(figures)
    assert first.compute() == pytest.approx(figures, abs=0.02, nan_ok=True)  # median: bins


def test_primary_metric_and_directions() -> None:
    task = MultiTask(TASKS)
    assert task.primary_metric == "depth/abs_rel" and task.higher_is_better is False
    seg = MultiTask(TASKS, primary_metric="segmentation/miou")
    assert seg.higher_is_better is True
    assert not seg.higher_is_better_for("normals/mean_angle")
    assert seg.higher_is_better_for("normals/within_22_5")
    assert not seg.higher_is_better_for("loss_depth") and not seg.higher_is_better_for("loss")
    assert seg.higher_is_better_for("segmentation/iou/floor")


def test_spec_round_trip_and_errors() -> None:
    task = MultiTask(TASKS, weighting="fixed", weights={"depth": 3.0},
                     primary_metric="normals/within_22_5")
    again = build_task(task.kind, **task.spec()["options"])
    batch = scene_batch()
    out = outputs(batch)
    assert float(again.loss(out, batch)[0]) == float(task.loss(out, batch)[0])
    assert again.primary_metric == "normals/within_22_5" and again.spec() == task.spec()
    with pytest.raises(ArgumentError, match="'multitask' cannot be a sub-task"):
        MultiTask({"multitask": {}})
    with pytest.raises(ArgumentError, match="unknown task kind 'height'"):
        MultiTask({"height": {}})
    with pytest.raises(OptionError, match=r"tasks\['segmentation'\]"):
        MultiTask({"segmentation": {}})
    with pytest.raises(ArgumentError, match="primary_metric must be '<kind>/<figure>'"):
        MultiTask(TASKS, primary_metric="miou")
    with pytest.raises(ArgumentError, match=r"weights: \['mask'\] are not sub-tasks"):
        MultiTask(TASKS, weights={"mask": 1.0})
    with pytest.raises(ArgumentError, match="returns a dict of outputs"):
        task.loss(torch.zeros(2, 8, 16, 16), batch)


def test_options_from_the_data_and_the_model() -> None:
    model = create("fpn_mobilenet_v1_025_multitask")
    options = MultiTask.options_from(SyntheticScenes(1).label_space, model)
    assert options["tasks"]["depth"] == {} and options["tasks"]["normals"] == {}
    assert options["tasks"]["segmentation"]["num_classes"] == 4
    assert options["tasks"]["segmentation"]["class_names"] == list(SCENE_CLASSES.names)
    task = MultiTask(**options)
    assert set(task.tasks) == {"depth", "normals", "segmentation"}
    with pytest.raises(CnnkitError, match="names its outputs in task_kinds"):
        MultiTask.options_from(SyntheticScenes(1).label_space, create("fpn_resnet18_depth"))


def test_decode_flip_draw_and_write_delegate(tmp_path) -> None:
    task = MultiTask(TASKS)
    batch = scene_batch(1)
    out = outputs(batch)
    (record,) = task.decode(out, batch)
    assert set(record) == set(TASKS)
    assert record["depth"]["depth"].shape == (16, 16)
    assert record["segmentation"]["mask"].shape == (16, 16)
    flipped = task.flip_back(out, 16)
    assert torch.equal(flipped["normals"][:, 0], -out["normals"].flip(-1)[:, 0])
    assert torch.equal(flipped["depth"], out["depth"].flip(-1))
    (shown,) = task.decode_in_input(out, batch)
    (truth,) = task.ground_truth(batch)
    picture = task.draw(Image.new("RGB", (16, 16)), truth, shown)
    assert picture.size == (3 * 16, 3 * (16 + 16))
    written = task.write({"image": "x.png", **record}, Image.new("RGB", (16, 16)), tmp_path / "x")
    assert written["image"] == "x.png" and written["depth"]["depth"] == "x_depth.png"
    assert written["normals"]["normals"] == "x_normals.png"
    assert {p.name for p in tmp_path.iterdir()} >= {"x_depth.png", "x_normals.png", "x_mask.png"}


def test_short_training_with_learned_weights(tmp_path) -> None:
    data = SyntheticScenes(8, size=(32, 48), seed=5)
    model = create("fpn_mobilenet_v1_025_multitask")
    options = MultiTask.options_from(data.label_space, model)
    task = MultiTask(**options, weighting="uncertainty", primary_metric="segmentation/miou")
    trainer = Trainer(model, task, make_loader(data, 4, train=True, seed=0),
                      make_loader(data, 4, train=False), epochs=4, device="cpu", quiet=True,
                      optimizer=build_optimizer(model, "adam", lr=3e-3), log_every=1,
                      files=RunFolder(tmp_path), tensorboard=False)
    history = trainer.fit()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[4]) for r in rows if ",train,loss," in r]
    parts = [float(r.split(",")[4]) for r in rows if ",train,loss_segmentation," in r]
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2])
    assert sum(parts[-2:]) < sum(parts[:2])
    assert model.log_variances.values.abs().sum() > 0   # learned by the model's optimizer
    assert {"val_segmentation/miou", "val_depth/abs_rel", "val_normals/mean_angle"} <= \
        set(history[-1])


def test_every_new_kind_builds_and_names_its_primary_metric() -> None:
    options = {"depth": {}, "normals": {}, "colorization": {"mode": "regression"},
               "multitask": {"tasks": TASKS}}
    for kind, kwargs in options.items():
        task = build_task(kind, **kwargs)
        assert task.kind == kind and task.primary_metric in task.new_metric().compute()
