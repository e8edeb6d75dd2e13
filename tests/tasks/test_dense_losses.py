"""Dense-regression losses (depth, normals, colourisation): hand cases and finite gradients."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.tasks.functional import (angular_normal_loss, berhu_loss, cosine_normal_loss,
                                     l1_depth_loss, normalize_normals, rebalanced_cross_entropy,
                                     scale_invariant_log_loss)

LN2 = math.log(2)


def leaf(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_scale_invariant_log_loss_by_hand() -> None:
    # Valid pixels d = [ln 2, 0]; the third has target 0 and pred 0 (a log of 0 if used).
    pred, target = leaf([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    loss = scale_invariant_log_loss(pred, target)
    assert loss.item() == pytest.approx(LN2 ** 2 / 2 - 0.5 * (LN2 / 2) ** 2)   # 3 ln^2 2 / 8
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 2] == 0
    scaled = torch.rand(2, 1, 4, 4) + 0.5
    invariant = scale_invariant_log_loss(3 * scaled, scaled, lam=1.0)
    assert invariant.item() == pytest.approx(0, abs=1e-6)
    assert scale_invariant_log_loss(scaled, scaled).item() == pytest.approx(0, abs=1e-12)


def test_scale_invariant_gradient_term_by_hand() -> None:
    target = torch.tensor([[[1.0, 1.0, 1.0]]])
    pred = torch.tensor([[[1.0, 2.0, 2.0]]])               # d = [0, L, L]
    loss = scale_invariant_log_loss(pred, target, gradient_weight=1.0)
    # 2L^2/3 - (1/2)(2L/3)^2 + (1/3)(L^2 + 0) = 7 L^2 / 9
    assert loss.item() == pytest.approx(7 * LN2 ** 2 / 9)
    assert scale_invariant_log_loss(pred.log(), target, gradient_weight=1.0,
                                    log_pred=True).item() == pytest.approx(7 * LN2 ** 2 / 9)
    gap = torch.tensor([[[1.0, 0.0, 1.0]]])                 # middle invalid: no valid pair
    assert scale_invariant_log_loss(pred, gap, gradient_weight=1.0).item() == \
        pytest.approx(3 * LN2 ** 2 / 8)
    # Per image, then the mean over images with a valid pixel (the all-invalid one is skipped).
    two = scale_invariant_log_loss(torch.stack([pred[0], pred[0], pred[0]]),
                                   torch.stack([target[0], gap[0], torch.zeros(1, 3)]),
                                   gradient_weight=1.0)
    assert two.item() == pytest.approx((7 / 9 + 3 / 8) / 2 * LN2 ** 2)


def test_l1_and_berhu_by_hand() -> None:
    # Residuals 1, 0, 2 at the valid pixels; the fourth (target 0) has a huge residual.
    pred, target = leaf([[2.0, 2.0], [6.0, 100.0]]), torch.tensor([[1.0, 2.0], [4.0, 0.0]])
    assert l1_depth_loss(pred, target).item() == pytest.approx(1.0)
    loss = berhu_loss(pred, target)
    c = 0.2 * 2                                             # from the valid residuals only
    assert loss.item() == pytest.approx(((1 + c * c) / (2 * c) + 0 + (4 + c * c) / (2 * c)) / 3)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1, 1] == 0
    small = berhu_loss(torch.tensor([[1.05, 2.0]]), torch.tensor([[1.0, 1.0]]))  # c = 0.2
    assert small.item() == pytest.approx((0.05 + (1 + 0.04) / 0.4) / 2)
    perfect = leaf([[1.0, 2.0]])
    zero = berhu_loss(perfect, perfect.detach())
    zero.backward()
    assert zero.item() == 0 and torch.isfinite(perfect.grad).all()


def test_depth_losses_with_nothing_valid_and_bad_shapes() -> None:
    pred = torch.rand(2, 1, 3, 3, requires_grad=True)
    for loss_fn in (scale_invariant_log_loss, l1_depth_loss, berhu_loss):
        loss = loss_fn(pred, torch.zeros(2, 1, 3, 3))
        loss.backward()
        assert loss.item() == 0 and torch.isfinite(pred.grad).all()
    with pytest.raises(CnnkitError, match="l1_depth_loss: pred must be .*N x 1 x H x W"):
        l1_depth_loss(torch.rand(2, 2, 3, 3), torch.rand(2, 2, 3, 3))
    with pytest.raises(CnnkitError, match="berhu_loss: valid must be"):
        berhu_loss(torch.rand(2, 3, 3), torch.rand(2, 3, 3), torch.ones(2, 3))


def normal_pair(pred_rows) -> tuple[torch.Tensor, torch.Tensor]:
    pred = torch.tensor(pred_rows, dtype=torch.float64).T[None, :, None, :].requires_grad_()
    target = torch.tensor([[0.0, 0.0, 1.0]] * len(pred_rows), dtype=torch.float64)
    return pred, target.T[None, :, None, :]


def test_normal_losses_by_hand() -> None:
    # Angles 0 (unnormalised), 90 and a zero prediction (invalid, left out).
    pred, target = normal_pair([[0.0, 0.0, 5.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert cosine_normal_loss(pred, target).item() == pytest.approx((0 + 1) / 2)
    eps = 1e-6
    expected = (math.acos(1 - eps) + math.pi / 2) / 2        # the clamp at cos = 1
    assert angular_normal_loss(pred, target, eps=eps).item() == pytest.approx(expected)
    valid = torch.tensor([[[False, True, True]]])
    assert angular_normal_loss(pred, target, valid).item() == pytest.approx(math.pi / 2)
    unit = normalize_normals(torch.tensor([[[[3.0]], [[0.0]], [[4.0]]]]))
    assert unit.flatten().tolist() == pytest.approx([0.6, 0.0, 0.8])


@pytest.mark.parametrize("loss_fn", [angular_normal_loss, cosine_normal_loss])
def test_normal_loss_gradients_finite_at_0_and_180_degrees(loss_fn) -> None:
    tiny = math.radians(1e-4)
    pred, target = normal_pair([[0.0, 0.0, 1.0], [0.0, 0.0, -2.0], [math.sin(tiny), 0.0,
                                                                    math.cos(tiny)],
                                [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    loss = loss_fn(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert pred.grad[0, :, 0, 3].abs().sum() > 0            # the 90-degree pixel learns


def test_normal_loss_shape_errors() -> None:
    with pytest.raises(CnnkitError, match="cosine_normal_loss: target must be .*N x 3 x H x W"):
        cosine_normal_loss(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2))


def test_rebalanced_cross_entropy_by_hand() -> None:
    logits = torch.zeros(1, 3, 1, 3, requires_grad=True)     # log_softmax = -ln 3 everywhere
    # Per pixel (rows): bin 0; soft with arg-max bin 1; bin 2.
    target = torch.tensor([[1.0, 0.0, 0.0], [0.4, 0.6, 0.0], [0.0, 0.0, 1.0]])
    target = target.T[None, :, None, :]
    weights = torch.tensor([1.0, 2.0, 3.0])
    plain = rebalanced_cross_entropy(logits, target)
    assert plain.item() == pytest.approx(math.log(3))
    loss = rebalanced_cross_entropy(logits, target, weights)
    assert loss.item() == pytest.approx((1 + 2 + 3) / 3 * math.log(3))   # v = w[argmax Z]
    valid = torch.tensor([[[True, False, True]]])
    assert rebalanced_cross_entropy(logits, target, weights, valid).item() == \
        pytest.approx((1 + 3) / 2 * math.log(3))
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(CnnkitError, match="class_weights must be a vector of Q = 3"):
        rebalanced_cross_entropy(logits, target, torch.ones(4))
    with pytest.raises(CnnkitError, match="target_dist must be N x Q x H x W"):
        rebalanced_cross_entropy(logits, target[0])
