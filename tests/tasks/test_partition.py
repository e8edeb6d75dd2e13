"""The ISBI 2012 challenge's foreground-restricted Rand scores and information scores
(Arganda-Carreras et al., Frontiers in Neuroanatomy 2015) on hand-computed partitions, and the
label images made from a semantic map and from instance masks."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.errors import ArgumentError
from cnnkit.tasks.functional import (information_scores, partition_from_instances,
                                     partition_from_semantic, rand_error, rand_scores,
                                     variation_of_information)

LN2 = math.log(2)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64)


def scores(pred, true, **kw) -> dict[str, float]:
    return {k: float(v) for k, v in rand_scores(t(pred), t(true), **kw).items()}


def test_identical_partitions_score_perfectly() -> None:
    cells = [[1, 1, 0, 2], [1, 1, 0, 2], [3, 3, 0, 2]]
    assert scores(cells, cells) == {"split": 1.0, "merge": 1.0, "fscore": 1.0, "error": 0.0}
    info = information_scores(t(cells), t(cells))
    assert float(info["vi"]) == pytest.approx(0.0, abs=1e-12)
    assert float(info["fscore"]) == pytest.approx(1.0)


def test_one_cell_split_into_two() -> None:
    # n_ij = 2, 2; true sizes 4; predicted 2, 2: sum n^2 = 8, sum t^2 = 16, sum s^2 = 8
    got = scores([[1, 1, 2, 2]], [[1, 1, 1, 1]])
    assert got == pytest.approx({"split": 0.5, "merge": 1.0, "fscore": 2 / 3, "error": 1 / 3})
    info = information_scores(t([[1, 1, 2, 2]]), t([[1, 1, 1, 1]]))
    info = {k: float(v) for k, v in info.items()}
    # H(S) = ln 2, H(T) = 0, H(S, T) = ln 2, I = 0; the merge score's entropy is 0: 1
    assert info == pytest.approx({"split": 0.0, "merge": 1.0, "fscore": 0.0, "vi": LN2,
                                  "vi_split": LN2, "vi_merge": 0.0}, abs=1e-12)


def test_two_cells_merged() -> None:
    got = scores([[5, 5, 5, 5]], [[1, 1, 2, 2]])  # sum n^2 = 8, sum t^2 = 8, sum s^2 = 16
    assert got == pytest.approx({"split": 1.0, "merge": 0.5, "fscore": 2 / 3, "error": 1 / 3})
    vi = variation_of_information(t([[5, 5, 5, 5]]), t([[1, 1, 2, 2]]))
    assert float(vi) == pytest.approx(LN2)
    assert float(information_scores(t([[5, 5, 5, 5]]), t([[1, 1, 2, 2]]))["vi_merge"]) == \
        pytest.approx(LN2)


def test_mixed_errors_by_hand_and_label_permutation() -> None:
    true = [[1, 1, 1, 2, 2, 2]]
    pred = [[1, 1, 2, 2, 2, 3]]
    # n_ij: 2, 1, 2, 1 -> 10; true sizes 3, 3 -> 18; predicted sizes 2, 3, 1 -> 14
    expected = {"split": 10 / 18, "merge": 10 / 14, "fscore": 10 / 16, "error": 6 / 16}
    assert scores(pred, true) == pytest.approx(expected)
    permuted = {"pred": [[9, 9, 4, 4, 4, 7]], "true": [[3, 3, 3, 8, 8, 8]]}
    assert scores(permuted["pred"], permuted["true"]) == pytest.approx(expected)
    # information: n = 6; H(T) = ln 2; H(S) over 2, 3, 1; H(S, T) over 2, 1, 2, 1
    h_t = LN2
    h_s = -(2 / 6 * math.log(2 / 6) + 3 / 6 * math.log(3 / 6) + 1 / 6 * math.log(1 / 6))
    h_st = -(2 * 2 / 6 * math.log(2 / 6) + 2 * 1 / 6 * math.log(1 / 6))
    mutual = h_s + h_t - h_st
    for p, q in ((pred, true), (permuted["pred"], permuted["true"])):
        info = {k: float(v) for k, v in information_scores(t(p), t(q)).items()}
        assert info == pytest.approx({"split": mutual / h_s, "merge": mutual / h_t,
                                      "fscore": mutual / (0.5 * h_s + 0.5 * h_t),
                                      "vi": 2 * h_st - h_s - h_t, "vi_split": h_st - h_t,
                                      "vi_merge": h_st - h_s})


def test_alpha_weighs_the_merge_score() -> None:
    pred, true = t([[1, 1, 2, 2, 2, 3]]), t([[1, 1, 1, 2, 2, 2]])
    assert float(rand_error(pred, true, alpha=1.0)) == pytest.approx(1 - 10 / 14)  # merge
    assert float(rand_error(pred, true, alpha=0.0)) == pytest.approx(1 - 10 / 18)  # split


def test_true_background_pixels_are_left_out() -> None:
    true = [[1, 1, 0, 0], [2, 2, 0, 0]]
    for pred in ([[1, 1, 1, 1], [2, 2, 2, 2]], [[1, 1, 3, 4], [2, 2, 0, 0]],
                 [[4, 4, 4, 4], [7, 7, 4, 4]]):
        assert scores(pred, true)["error"] == 0.0


def test_predicted_background_in_a_true_cell_is_singletons() -> None:
    # joint: 2^2 + 2 singletons = 6; true 4^2 = 16; predicted 2^2 + 1 + 1 = 6
    got = scores([[1, 1, 0, 0]], [[1, 1, 1, 1]])
    assert got == pytest.approx({"split": 6 / 16, "merge": 1.0, "fscore": 6 / 11,
                                 "error": 5 / 11})
    # another background value; or none: then 0 is a label like the others
    assert scores([[1, 1, 9, 9]], [[1, 1, 1, 1]], background=9)["error"] == pytest.approx(5 / 11)
    assert scores([[1, 1, 0, 0]], [[1, 1, 1, 1]], background=None)["error"] == \
        pytest.approx(1 / 3)
    assert scores([[1, 1, 1, 1]], [[1, 1, 0, 0]], background=None)["merge"] == 0.5


def test_image_without_true_foreground_is_nan() -> None:
    assert math.isnan(float(rand_error(t([[1, 2]]), t([[0, 0]]))))
    assert math.isnan(float(variation_of_information(t([[1, 2]]), t([[0, 0]]))))


def test_batches_give_one_figure_per_image() -> None:
    pred = t([[[1, 1, 2, 2]], [[5, 5, 5, 5]], [[3, 3, 3, 3]]])
    true = t([[[1, 1, 1, 1]], [[1, 1, 2, 2]], [[0, 0, 0, 0]]])
    errors = rand_error(pred, true)
    assert errors.shape == (3,) and errors.dtype == torch.float64
    assert errors[:2].tolist() == pytest.approx([1 / 3, 1 / 3]) and math.isnan(errors[2])
    vi = variation_of_information(pred, true)
    assert vi[:2].tolist() == pytest.approx([LN2, LN2])
    assert rand_error(pred[0].to(torch.uint8), true[0].to(torch.int32)).item() == \
        pytest.approx(1 / 3)


CLASS_MAP = [[1, 1, 0, 1],
             [0, 0, 0, 1],
             [2, 1, 1, 1]]


def test_partition_from_semantic() -> None:
    cells = partition_from_semantic(t(CLASS_MAP), cell_class=1)
    assert cells.tolist() == [[1, 1, 0, 2],
                              [0, 0, 0, 2],
                              [0, 2, 2, 2]]   # 4-connected regions of class 1, raster order
    assert partition_from_semantic(t(CLASS_MAP), 1, min_area=3).tolist() == \
        [[0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 1, 1]]
    both = partition_from_semantic(t(CLASS_MAP), [1, 2])
    assert both[2, 0] == 3 and both[2, 1] == 2  # the class-2 pixel is a cell of its own
    batch = partition_from_semantic(t([CLASS_MAP, CLASS_MAP]), 1)
    assert batch.shape == (2, 3, 4) and torch.equal(batch[1], cells)


def test_partition_from_instances_highest_score_on_top() -> None:
    masks = torch.tensor([[[1, 1, 1, 0]] * 2,
                          [[0, 1, 1, 0]] * 2,
                          [[0, 0, 1, 1]] * 2], dtype=torch.bool)
    labels = partition_from_instances(masks, torch.tensor([0.5, 0.9, 0.7]))
    assert labels.tolist() == [[1, 2, 2, 3]] * 2
    probs = masks.float()[:, None] * 0.8  # B x 1 x H x W probabilities
    assert partition_from_instances(probs, torch.tensor([0.9, 0.5, 0.7])).tolist() == \
        [[1, 1, 1, 3]] * 2
    dropped = partition_from_instances(masks, torch.tensor([0.5, 0.9, 0.7]), min_score=0.8)
    assert dropped.tolist() == [[0, 2, 2, 0]] * 2
    ties = partition_from_instances(masks, torch.tensor([0.5, 0.5, 0.5]))
    assert ties.tolist() == [[1, 1, 1, 3]] * 2   # the earlier mask wins a tie
    empty = partition_from_instances(torch.zeros(0, 2, 3, dtype=torch.bool), torch.zeros(0))
    assert empty.tolist() == [[0, 0, 0]] * 2


def test_semantic_and_instance_predictions_scored_alike() -> None:
    true = partition_from_semantic(t(CLASS_MAP), 1)
    masks = torch.stack([true == k for k in (1, 2)])
    from_instances = partition_from_instances(masks, torch.tensor([0.3, 0.8]))
    assert float(rand_error(from_instances, true)) == 0.0
    merged = partition_from_instances(true[None] > 0, torch.tensor([1.0]))
    # 2 + 5 pixels in one segment: 2^2 + 5^2 = 29 = sum t^2; sum s^2 = 49
    assert float(rand_error(merged, true)) == pytest.approx(1 - 29 / (0.5 * 49 + 0.5 * 29))


@pytest.mark.parametrize("call, match", [
    (lambda: rand_error(torch.zeros(2, 2), t([[1, 1], [1, 1]])), "integer label image"),
    (lambda: rand_error(t([[1, 1]]), t([[1, 1, 1]])), "same shape"),
    (lambda: rand_error(t([[1]]), t([[1]]), alpha=2), "alpha"),
    (lambda: rand_error(t([[1]]), t([[1]]), background=0.5), "background"),
    (lambda: partition_from_semantic(t(CLASS_MAP), 1, min_area=0), "min_area"),
    (lambda: partition_from_semantic(t(CLASS_MAP), "cell"), "cell_class"),
    (lambda: partition_from_instances(torch.zeros(2, 3), torch.zeros(2)), "B x H x W"),
    (lambda: partition_from_instances(torch.zeros(2, 2, 3), torch.zeros(3)), "scores"),
])
def test_bad_arguments_are_one_line_errors(call, match: str) -> None:
    with pytest.raises(ArgumentError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
