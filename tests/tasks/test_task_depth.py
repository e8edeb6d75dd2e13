"""Depth task: metrics by hand through the task, dataset-wide sums, losses, spec round trip,
flip TTA, decoding to the original image, pictures and files, a short training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.data.scenes import SyntheticScenes
from cnnkit.engine import Trainer, build_optimizer, make_loader
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.inference import DihedralTTA, FlipTTA
from cnnkit.models import create
from cnnkit.runs import RunFolder
from cnnkit.tasks import DepthTask, build_task
from cnnkit.tasks.functional import (berhu_loss, depth_metrics, l1_depth_loss,
                                     scale_invariant_log_loss)

NAN = float("nan")
# The functional tests' hand case: valid pixels (2 vs 1), (2 vs 2), (6 vs 4); target 0 skipped.
PRED = torch.tensor([[2.0, 2.0], [6.0, NAN]])
TARGET = torch.tensor([[1.0, 2.0], [4.0, 0.0]])


def output_for(depth: torch.Tensor) -> torch.Tensor:
    """The log-depth output a network would give for ``depth`` (N x 1 x H x W)."""
    return depth.log().reshape(-1, 1, *depth.shape[-2:])


def test_metrics_by_hand_through_the_task() -> None:
    metric = DepthTask().new_metric()
    metric.update(output_for(PRED), {"depth": TARGET[None]})
    ln2, ln15 = math.log(2), math.log(1.5)
    assert metric.compute() == pytest.approx({
        "abs_rel": (1 + 0 + 0.5) / 3, "sq_rel": (1 + 0 + 4 / 4) / 3,
        "rmse": math.sqrt(5 / 3), "rmse_log": math.sqrt((ln2 ** 2 + ln15 ** 2) / 3),
        "delta1": 1 / 3, "delta2": 2 / 3, "delta3": 2 / 3})
    metric.reset()  # batch["valid"] drops (2 vs 1); the zero target stays out
    metric.update(output_for(PRED), {"depth": TARGET[None],
                                     "valid": torch.tensor([[[False, True], [True, True]]])})
    got = metric.compute()
    assert got["abs_rel"] == pytest.approx(0.25) and got["rmse"] == pytest.approx(math.sqrt(2))
    capped = DepthTask(max_depth=3.0).new_metric()  # (6 vs 4) beyond max_depth: left out
    capped.update(output_for(PRED), {"depth": TARGET[None]})
    assert capped.compute()["abs_rel"] == pytest.approx(0.5)


def test_dataset_wide_metric_equals_the_metric_of_the_concatenated_data() -> None:
    target = torch.rand(6, 8, 8) * 5
    target[target < 0.5] = 0
    pred = target.clamp_min(0.5) * torch.exp(torch.randn(6, 8, 8) * 0.3)
    task = DepthTask()
    whole, first, second = task.new_metric(), task.new_metric(), task.new_metric()
    whole.update(output_for(pred[:2]), {"depth": target[:2]})
    whole.update(output_for(pred[2:]), {"depth": target[2:]})
    expected = {k: float(v) for k, v in depth_metrics(pred, target).items()}
    assert whole.compute() == pytest.approx(expected)
    first.update(output_for(pred[:2]), {"depth": target[:2]})
    second.update(output_for(pred[2:]), {"depth": target[2:]})
    for mine, theirs in zip(first.state(), second.state()):  # what all_reduce does
        mine += theirs
    assert first.compute() == pytest.approx(expected)


@pytest.mark.parametrize("loss", ["silog", "l1", "berhu"])
def test_losses_match_the_functional_ones(loss: str) -> None:
    target = torch.rand(2, 6, 6) * 4 + 1
    target[0, 0, 0] = 0
    log_pred = torch.randn(2, 1, 6, 6, requires_grad=True)
    task = DepthTask(loss=loss, silog_lambda=0.7)
    value, parts = task.loss(log_pred, {"depth": target})
    depth = log_pred.exp()[:, 0]
    expected = {"silog": lambda: scale_invariant_log_loss(depth, target, lam=0.7),
                "l1": lambda: l1_depth_loss(depth, target),
                "berhu": lambda: berhu_loss(depth, target)}[loss]()
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert set(parts) == {loss}
    value.backward()
    assert torch.isfinite(log_pred.grad).all() and log_pred.grad[0, 0, 0, 0] == 0


def test_spec_round_trip_and_option_errors() -> None:
    task = DepthTask(loss="berhu", max_depth=10.0, gradient_weight=0.5)
    again = build_task(task.kind, **task.spec()["options"])
    out, batch = torch.randn(1, 1, 5, 5), {"depth": torch.rand(1, 5, 5) * 8 + 0.5}
    assert float(again.loss(out, batch)[0]) == float(task.loss(out, batch)[0])
    assert again.spec() == task.spec()
    with pytest.raises(ArgumentError, match="depth loss must be one of silog, l1, berhu"):
        DepthTask(loss="l2")
    with pytest.raises(ArgumentError, match="silog_lambda"):
        DepthTask(silog_lambda=2)
    with pytest.raises(ArgumentError, match=r"depth output must be N x 1 x H x W; got \(1, 3"):
        task.loss(torch.randn(1, 3, 5, 5), batch)
    with pytest.raises(CnnkitError, match=r"needs batch\['depth'\]"):
        task.loss(out, {"image": torch.zeros(1, 3, 5, 5)})
    assert DepthTask.options_from(None, nn.Conv2d(3, 1, 1)) == {}
    with pytest.raises(CnnkitError, match="num_classes=1"):
        DepthTask.options_from(None, create("fpn_resnet18_normals"))


def test_flip_tta_on_a_flip_equivariant_model() -> None:
    model = nn.Conv2d(3, 1, 3, padding=1)
    with torch.no_grad():  # a kernel symmetric left-right: the model commutes with a mirror
        model.weight.copy_(model.weight + model.weight.flip(-1))
    images = torch.rand(2, 3, 6, 8)
    task = DepthTask()
    assert torch.allclose(FlipTTA(model, task)(images), model(images), atol=1e-6)
    out = torch.randn(1, 1, 4, 8)
    assert torch.equal(task.flip_back(out, 8), out.flip(-1))


def test_d4_tta_turns_depth_maps_back() -> None:
    task = DepthTask()
    out = torch.randn(1, 1, 4, 6)
    assert torch.equal(task.dihedral_back(out, 1, True), torch.rot90(out, -1, (-2, -1)).flip(-1))
    images = torch.rand(2, 3, 8, 12)  # 2x2 average pooling commutes with turns and mirrors
    half = DihedralTTA(lambda x: F.avg_pool2d(x[:, :1], 2), task)(images)
    torch.testing.assert_close(half, F.avg_pool2d(images[:, :1], 2), atol=1e-6, rtol=0)


def test_decode_to_original_coordinates() -> None:
    log_depth = torch.full((1, 1, 4, 6), math.log(2.0))
    log_depth[0, 0, :, :3] = math.log(4.0)
    meta = {"original_size": (8, 12), "transforms": [("resize", {"size": (4, 6)})]}
    batch = {"image": torch.zeros(1, 3, 4, 6), "meta": [meta]}
    (record,) = DepthTask().decode(log_depth, batch)
    depth = record["depth"]
    assert depth.shape == (8, 12) and depth.dtype == torch.float32
    assert depth[:, 0].tolist() == pytest.approx([4.0] * 8)
    assert depth[:, -1].tolist() == pytest.approx([2.0] * 8)
    # column 5 samples input x = 2.25: 3/4 of log 4 and 1/4 of log 2, a geometric mean
    assert float(depth[0, 5]) == pytest.approx(2 ** 1.75, rel=1e-5)
    cropped = {"original_size": (4, 8), "transforms": [("crop", {"top": 0, "left": 2,
                                                                 "size": (4, 6)})]}
    (record,) = DepthTask().decode(log_depth, {"image": batch["image"], "meta": [cropped]})
    assert record["depth"].shape == (4, 8) and (record["depth"][:, :2] == 0).all()
    (plain,) = DepthTask().decode_in_input(log_depth, {"image": batch["image"]})
    assert plain["depth"].shape == (4, 6)


def test_draw_and_write(tmp_path) -> None:
    task = DepthTask()
    depth = torch.rand(6, 8) * 3 + 1
    valid = torch.ones(6, 8, dtype=torch.bool)
    valid[0, 0] = False
    picture = task.draw(Image.new("RGB", (8, 6)), {"depth": depth, "valid": valid},
                        {"depth": depth * 1.1}, scale=2)
    assert picture.size == (3 * 16, 12 + 16)
    record = task.write({"image": "x.png", "depth": depth}, Image.new("RGB", (8, 6)),
                        tmp_path / "x")
    assert record["depth"] == "x_depth.png" and record["image"] == "x.png"
    saved = Image.open(tmp_path / "x_depth.png")
    assert saved.mode.startswith("I") and saved.size == (8, 6)
    millimetres = np.asarray(saved).astype(np.int64)
    assert np.array_equal(millimetres, (depth * 1000).round().long().numpy())
    assert Image.open(tmp_path / "x_depth_color.png").size == (8, 6)


def test_short_training_lowers_the_loss(tmp_path) -> None:
    torch.manual_seed(0)
    data = SyntheticScenes(8, size=(32, 48), seed=1)
    train = make_loader(data, 4, train=True, seed=0)
    val = make_loader(data, 4, train=False)
    model = create("eigen_fergus_small_depth")
    trainer = Trainer(model, DepthTask(), train, val, epochs=5, device="cpu", quiet=True,
                      optimizer=build_optimizer(model, "adam", lr=2e-3), log_every=1,
                      files=RunFolder(tmp_path), tensorboard=False)
    history = trainer.fit()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[4]) for r in rows if ",train,loss," in r]
    assert len(losses) == 10 and sum(losses[-3:]) < sum(losses[:3])
    assert {"val_abs_rel", "val_delta1", "val_loss"} <= set(history[-1])
