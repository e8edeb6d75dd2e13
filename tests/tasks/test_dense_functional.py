"""Dense-regression metrics (depth, normals, colourisation) on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.tasks.functional import (DEPTH_METRIC_KEYS, NORMAL_METRIC_KEYS,
                                     DepthMetricAccumulator, NormalMetricAccumulator, ab_auc,
                                     bin_accuracy, depth_metrics, normal_metrics)

NAN = float("nan")
# Valid pixels: (2 vs 1), (2 vs 2), (6 vs 4); the fourth has target 0 and is skipped.
PRED = torch.tensor([[2.0, 2.0], [6.0, NAN]])
TARGET = torch.tensor([[1.0, 2.0], [4.0, 0.0]])


def figures(result: dict) -> dict:
    return {key: float(value) for key, value in result.items()}


def test_depth_metrics_by_hand() -> None:
    got = figures(depth_metrics(PRED, TARGET))
    assert tuple(got) == DEPTH_METRIC_KEYS
    ln2, ln15 = math.log(2), math.log(1.5)
    expected = {"abs_rel": (1 + 0 + 0.5) / 3, "sq_rel": (1 + 0 + 4 / 4) / 3,
                "rmse": math.sqrt((1 + 0 + 4) / 3),
                "rmse_log": math.sqrt((ln2 ** 2 + ln15 ** 2) / 3),
                "delta1": 1 / 3, "delta2": 2 / 3, "delta3": 2 / 3}   # ratios 2, 1, 1.5
    assert got == pytest.approx(expected)


def test_depth_valid_mask_and_layouts() -> None:
    valid = torch.tensor([[False, True], [True, True]])   # drops (2 vs 1); target 0 stays out
    got = figures(depth_metrics(PRED[None, None], TARGET[None, None], valid[None, None]))
    assert got["abs_rel"] == pytest.approx(0.25) and got["rmse"] == pytest.approx(math.sqrt(2))
    assert got["delta1"] == pytest.approx(0.5) and got["delta2"] == pytest.approx(1.0)
    assert figures(depth_metrics(PRED[None], TARGET[None], valid)) == pytest.approx(got)
    empty = figures(depth_metrics(PRED, TARGET, torch.zeros(2, 2, dtype=torch.bool)))
    assert all(math.isnan(v) for v in empty.values())


def test_depth_pixel_and_image_reductions() -> None:
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]],
                           [[0.0, 0.0], [0.0, 0.0]]])        # 1, 3 and 0 valid pixels
    pred = target + torch.tensor([2.0, 1.0, 5.0])[:, None, None]
    by_pixel = figures(depth_metrics(pred, target))
    by_image = figures(depth_metrics(pred, target, reduction="images"))
    assert by_pixel["rmse"] == pytest.approx(math.sqrt((4 + 3) / 4))
    assert by_image["rmse"] == pytest.approx((2 + 1) / 2)
    assert by_pixel["abs_rel"] == pytest.approx((2 + 3) / 4)
    assert by_image["abs_rel"] == pytest.approx((2 + 1) / 2)


def test_depth_accumulator_is_exact_over_batches() -> None:
    target = torch.rand(6, 1, 8, 8) * 10
    target[target < 1] = 0                                   # some invalid pixels
    pred = target.clamp_min(0.5) * torch.exp(torch.randn(6, 1, 8, 8) * 0.3)
    acc = DepthMetricAccumulator()
    for part in (slice(0, 2), slice(2, 6)):
        acc.update(pred[part], target[part])
    for reduction in ("pixels", "images"):
        whole = figures(depth_metrics(pred, target, reduction=reduction))
        assert acc.compute(reduction) == pytest.approx(whole)
    assert [t.shape for t in acc.state()] == [(8,), (8,)]


def test_depth_errors() -> None:
    with pytest.raises(CnnkitError, match=r"depth_metrics: pred must be .*N x 1 x H x W"):
        depth_metrics(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4))
    with pytest.raises(CnnkitError, match="same shape"):
        depth_metrics(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
    with pytest.raises(CnnkitError, match="valid must be a bool mask N x H x W"):
        depth_metrics(PRED, TARGET, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(CnnkitError, match="pred must be finite and > 0 at the valid pixels; 1"):
        depth_metrics(torch.tensor([[2.0, 0.0], [6.0, 1.0]]), TARGET)
    with pytest.raises(CnnkitError, match="reduction must be one of"):
        depth_metrics(PRED, TARGET, reduction="mean")


def normals_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Angles 0, 90, 180, 10, 25 degrees, then a zero prediction (invalid) and a zero target."""
    def tilt(deg: float, length: float = 1.0) -> list[float]:
        r = math.radians(deg)
        return [length * math.sin(r), 0.0, length * math.cos(r)]
    pred = [tilt(0, 2.0), [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], tilt(10, 3.0), tilt(25),
            [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    target = [[0.0, 0.0, 1.0]] * 6 + [[0.0, 0.0, 0.0]]
    def to_map(rows: list) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float64).T[None, :, None, :]
    return to_map(pred), to_map(target)


def test_normal_metrics_by_hand() -> None:
    pred, target = normals_case()
    got = figures(normal_metrics(pred, target))
    assert tuple(got) == NORMAL_METRIC_KEYS
    assert got == pytest.approx({"mean_angle": (0 + 90 + 180 + 10 + 25) / 5, "median_angle": 25,
                                 "within_11_25": 2 / 5, "within_22_5": 2 / 5,
                                 "within_30": 3 / 5})
    valid = torch.tensor([[[True, True, False, True, True, True, True]]])   # drop 180
    got = figures(normal_metrics(pred, target, valid))
    assert got["mean_angle"] == pytest.approx(125 / 4)
    assert got["median_angle"] == pytest.approx((10 + 25) / 2)   # even count: middle pair


def test_normal_accumulator_median() -> None:
    pred, target = torch.randn(4, 3, 10, 10), torch.randn(4, 3, 10, 10)
    whole = figures(normal_metrics(pred, target))
    coarse = NormalMetricAccumulator(bin_width=0.5)
    exact, fine = NormalMetricAccumulator(keep_angles=True), NormalMetricAccumulator()
    for acc in (coarse, exact, fine):
        acc.update(pred[:1], target[:1])
        acc.update(pred[1:], target[1:])
    assert exact.compute() == pytest.approx(whole)
    assert abs(coarse.compute()["median_angle"] - whole["median_angle"]) <= 0.5
    assert abs(fine.compute()["median_angle"] - whole["median_angle"]) <= 0.01
    others = {k: v for k, v in whole.items() if k != "median_angle"}
    assert {k: fine.compute()[k] for k in others} == pytest.approx(others)


def test_normal_errors() -> None:
    with pytest.raises(CnnkitError, match=r"normal_metrics: pred must be .*N x 3 x H x W"):
        normal_metrics(torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(CnnkitError, match="valid must be"):
        normal_metrics(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.ones(1, 4, 5))


def ab_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Errors 0, 5 (a 3-4-5 triangle), 200 and a NaN target (invalid) at four pixels."""
    pred = torch.tensor([[10.0, 3.0, 100.0, 0.0], [20.0, 4.0, 0.0, 0.0]])[None, :, None, :]
    target = torch.tensor([[10.0, 0.0, -100.0, NAN], [20.0, 0.0, 0.0, 0.0]])[None, :, None, :]
    return pred, target


def test_ab_auc_by_hand() -> None:
    pred, target = ab_pair()
    # Mean over thresholds 0..150 (151): error 0 -> 151/151, 5 -> 146/151, 200 -> 0.
    assert float(ab_auc(pred, target)) == pytest.approx((1 + 146 / 151 + 0) / 3)
    assert float(ab_auc(pred, target, step=10)) == pytest.approx((1 + 15 / 16 + 0) / 3)
    valid = torch.tensor([[True, True, False, True]])
    assert float(ab_auc(pred[0], target[0], valid)) == pytest.approx((1 + 146 / 151) / 2)
    weights = torch.tensor([[[1.0, 2.0, 1.0, 1.0]]])
    assert float(ab_auc(pred, target, pixel_weights=weights)) == \
        pytest.approx((1 + 2 * 146 / 151) / 4)
    same = torch.rand(2, 2, 5, 5) * 100
    assert float(ab_auc(same, same)) == 1.0
    with pytest.raises(CnnkitError, match="pred_ab must be .*N x 2 x H x W"):
        ab_auc(torch.rand(1, 3, 2, 2), torch.rand(1, 2, 2, 2))


def test_bin_accuracy_by_hand() -> None:
    logits = torch.zeros(1, 4, 2, 2)
    logits[0, 1, 0, 0] = logits[0, 2, 0, 1] = logits[0, 3, 1, 0] = logits[0, 0, 1, 1] = 1.0
    target = torch.tensor([[[1, 0], [3, -1]]])                  # -1: no target
    assert float(bin_accuracy(logits, target)) == pytest.approx(2 / 3)
    valid = torch.tensor([[[True, True], [False, True]]])
    assert float(bin_accuracy(logits, target, valid)) == pytest.approx(1 / 2)
    with pytest.raises(CnnkitError, match="target_bins must be an integer tensor N x H x W"):
        bin_accuracy(logits, target.float())
