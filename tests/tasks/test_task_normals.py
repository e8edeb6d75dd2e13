"""Normals task: angle metrics by hand through the task, dataset-wide sums, losses, spec round
trip, flip TTA (x negated), decoding to the original image, pictures and files, a short
training."""

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
from cnnkit.inference import FlipTTA
from cnnkit.models import create
from cnnkit.runs import RunFolder
from cnnkit.tasks import NormalsTask, build_task
from cnnkit.tasks.functional import angular_normal_loss, cosine_normal_loss, normal_metrics


def normals_case() -> tuple[torch.Tensor, torch.Tensor]:
    """The functional tests' case: angles 0, 90, 180, 10, 25 degrees, then a zero prediction
    and a zero target (both invalid); predictions of any length."""
    def tilt(deg: float, length: float = 1.0) -> list[float]:
        r = math.radians(deg)
        return [length * math.sin(r), 0.0, length * math.cos(r)]
    pred = [tilt(0, 2.0), [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], tilt(10, 3.0), tilt(25),
            [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    target = [[0.0, 0.0, 1.0]] * 6 + [[0.0, 0.0, 0.0]]
    return tuple(torch.tensor(rows).T[None, :, None, :] for rows in (pred, target))


def test_metrics_by_hand_through_the_task() -> None:
    pred, target = normals_case()
    metric = NormalsTask().new_metric()
    metric.update(pred, {"normals": target})
    assert metric.compute() == pytest.approx({
        "mean_angle": (0 + 90 + 180 + 10 + 25) / 5, "median_angle": 25, "within_11_25": 2 / 5,
        "within_22_5": 2 / 5, "within_30": 3 / 5}, abs=0.01)
    metric.reset()  # batch["valid"] drops the 180-degree pixel
    valid = torch.tensor([[[True, True, False, True, True, True, True]]])
    metric.update(pred, {"normals": target, "valid": valid})
    got = metric.compute()
    assert got["mean_angle"] == pytest.approx(125 / 4)
    assert got["median_angle"] == pytest.approx((10 + 25) / 2, abs=0.01)


def test_dataset_wide_metric_equals_the_metric_of_the_concatenated_data() -> None:
    pred, target = torch.randn(5, 3, 6, 6), F.normalize(torch.randn(5, 3, 6, 6), dim=1)
    task = NormalsTask(median_bin_width=0.001)
    first, second = task.new_metric(), task.new_metric()
    first.update(pred[:2], {"normals": target[:2]})
    second.update(pred[2:], {"normals": target[2:]})
    for mine, theirs in zip(first.state(), second.state()):  # what all_reduce does
        mine += theirs
    expected = {k: float(v) for k, v in normal_metrics(pred, target).items()}
    got = first.compute()
    assert abs(got.pop("median_angle") - expected.pop("median_angle")) <= 0.001
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("loss, function", [("cosine", cosine_normal_loss),
                                            ("angular", angular_normal_loss)])
def test_losses_match_the_functional_ones(loss, function) -> None:
    pred = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = F.normalize(torch.randn(2, 3, 4, 4), dim=1)
    valid = torch.rand(2, 4, 4) > 0.3
    value, parts = NormalsTask(loss=loss).loss(pred, {"normals": target, "valid": valid})
    assert float(value.detach()) == pytest.approx(float(function(pred, target, valid).detach()))
    assert set(parts) == {loss}
    value.backward()
    assert torch.isfinite(pred.grad).all()


def test_unit_outputs_and_smaller_outputs_are_resized() -> None:
    task = NormalsTask()
    unit = task.unit_normals(torch.randn(1, 3, 2, 2) * 5, (4, 4))
    assert unit.shape == (1, 3, 4, 4)
    assert torch.allclose(unit.norm(dim=1), torch.ones(1, 4, 4), atol=1e-6)


def test_spec_round_trip_and_option_errors() -> None:
    task = NormalsTask(loss="angular", median_bin_width=0.1)
    again = build_task(task.kind, **task.spec()["options"])
    out, target = torch.randn(1, 3, 3, 3), F.normalize(torch.randn(1, 3, 3, 3), dim=1)
    assert float(again.loss(out, {"normals": target})[0]) == \
        float(task.loss(out, {"normals": target})[0])
    assert again.spec() == task.spec()
    with pytest.raises(ArgumentError, match="normals loss must be one of cosine, angular"):
        NormalsTask(loss="l2")
    with pytest.raises(ArgumentError, match=r"normals output must be N x 3 x H x W"):
        task.loss(torch.randn(1, 1, 3, 3), {"normals": target})
    with pytest.raises(CnnkitError, match="num_classes=3"):
        NormalsTask.options_from(None, _with_classes(1))
    assert NormalsTask.options_from(None, _with_classes(3)) == {}


def _with_classes(count: int) -> nn.Module:
    module = nn.Identity()
    module.num_classes = count
    return module


class GradientNormals(nn.Module):
    """Normals (-dI/dx, -dI/dy, 1) from an image's central differences: mirroring the image
    mirrors the map and negates its x component, exactly."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        gray = F.pad(images.mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate")
        dx = (gray[..., 1:-1, 2:] - gray[..., 1:-1, :-2]) / 2
        dy = (gray[..., 2:, 1:-1] - gray[..., :-2, 1:-1]) / 2
        return torch.cat([-dx, -dy, torch.ones_like(dx)], 1)


def test_flip_tta_negates_x_on_a_flip_equivariant_model() -> None:
    model, task = GradientNormals(), NormalsTask()
    images = torch.rand(2, 3, 5, 7)
    plain = model(images)
    assert torch.allclose(task.flip_back(model(images.flip(-1)), 7), plain, atol=1e-6)
    assert torch.allclose(FlipTTA(model, task)(images), plain, atol=1e-6)
    out = torch.randn(1, 3, 2, 4)
    back = task.flip_back(out, 4)
    assert torch.equal(back[:, 0], -out.flip(-1)[:, 0])
    assert torch.equal(back[:, 1:], out.flip(-1)[:, 1:])


def test_decode_to_original_coordinates_renormalises_and_unflips() -> None:
    out = torch.zeros(1, 3, 4, 4)
    out[0, 0, :, :2], out[0, 2, :, 2:] = 1.0, 1.0   # x on the left half, z on the right
    meta = {"original_size": (8, 8), "transforms": [("resize", {"size": (4, 4)})]}
    (record,) = NormalsTask().decode(out, {"image": torch.zeros(1, 3, 4, 4), "meta": [meta]})
    normals = record["normals"]
    assert normals.shape == (3, 8, 8)
    assert torch.allclose(normals.norm(dim=0), torch.ones(8, 8), atol=1e-5)  # blended: unit
    assert torch.allclose(normals[:, 0, 0], torch.tensor([1.0, 0, 0]))
    flipped = {"original_size": (4, 4), "transforms": [("horizontal_flip", {})]}
    (record,) = NormalsTask().decode(out, {"image": torch.zeros(1, 3, 4, 4), "meta": [flipped]})
    assert torch.allclose(record["normals"][:, 0, 3], torch.tensor([-1.0, 0, 0]))


def test_draw_and_write(tmp_path) -> None:
    task = NormalsTask()
    normals = F.normalize(torch.randn(3, 6, 8), dim=0)
    picture = task.draw(Image.new("RGB", (8, 6)), {"normals": normals}, {"normals": normals})
    assert picture.size == (3 * 8, 6 + 16)
    record = task.write({"image": "x.png", "normals": normals}, Image.new("RGB", (8, 6)),
                        tmp_path / "x")
    assert record["normals"] == "x_normals.png"
    saved = np.asarray(Image.open(tmp_path / "x_normals.png").convert("RGB")).astype(np.float64)
    assert saved.shape == (6, 8, 3)
    assert np.allclose(saved / 127.5 - 1, normals.permute(1, 2, 0).numpy(), atol=0.005)


def test_short_training_lowers_the_loss(tmp_path) -> None:
    data = SyntheticScenes(8, size=(32, 48), seed=2)
    train = make_loader(data, 4, train=True, seed=0)
    model = create("eigen_fergus_small_normals")
    trainer = Trainer(model, NormalsTask(), train, make_loader(data, 4, train=False), epochs=5,
                      device="cpu", quiet=True, optimizer=build_optimizer(model, "adam", lr=2e-3),
                      log_every=1, files=RunFolder(tmp_path), tensorboard=False)
    history = trainer.fit()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[4]) for r in rows if ",train,loss," in r]
    assert len(losses) == 10 and sum(losses[-3:]) < sum(losses[:3])
    assert {"val_mean_angle", "val_within_22_5"} <= set(history[-1])
