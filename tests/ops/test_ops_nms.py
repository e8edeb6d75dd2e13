"""Greedy NMS and per-category NMS: hand cases (ties, the threshold boundary) and a reference."""

from __future__ import annotations

import importlib

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.ops import batched_nms, box_iou, nms

nms_module = importlib.import_module("cnnkit.ops.nms")

BOXES = torch.tensor([[0.0, 0.0, 10.0, 10.0],    # 0
                      [1.0, 1.0, 11.0, 11.0],    # 1: IoU with 0 = 81 / 119
                      [20.0, 20.0, 30.0, 30.0],  # 2: alone
                      [0.0, 0.0, 10.0, 5.0]])    # 3: IoU 50 / 100 with 0 exactly, 36 / 114 with 1
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.95])


def reference_nms(boxes, scores, threshold):
    """The sequential greedy loop, one box at a time."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # Python's sort is stable
    iou = box_iou(boxes, boxes).tolist()
    kept = []
    for i in order:
        if all(iou[j][i] <= threshold for j in kept):
            kept.append(i)
    return kept


def test_hand_cases_and_the_threshold_boundary() -> None:
    # 3 first; 0 has IoU exactly 0.5 with 3: kept (only IoU > threshold suppresses); 1 goes.
    assert nms(BOXES, SCORES, 0.5).tolist() == [3, 0, 2]
    # below 0.5, 3 suppresses 0, so 1 (IoU 0.32 with 3) survives: a chain effect
    assert nms(BOXES, SCORES, 0.49).tolist() == [3, 1, 2]
    assert nms(BOXES, SCORES, 0.7).tolist() == [3, 0, 1, 2]
    assert nms(BOXES, SCORES, 0.0).tolist() == [3, 2]
    assert nms(BOXES[:0], SCORES[:0], 0.5).tolist() == []


def test_ties_keep_the_input_order() -> None:
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0],
                          [10.0, 10.0, 12.0, 12.0]])
    scores = torch.tensor([0.6, 0.8, 0.8, 0.8])
    assert nms(boxes, scores, 0.5).tolist() == [1, 3]


def test_batched_nms_separates_categories() -> None:
    idxs = torch.tensor([0, 1, 0, 0])
    # 1 is alone in its category; in category 0: 3, then 0 (IoU exactly 0.5), then 2
    assert batched_nms(BOXES, SCORES, idxs, 0.5).tolist() == [3, 0, 1, 2]
    assert batched_nms(BOXES, SCORES, idxs, 0.49).tolist() == [3, 1, 2]
    same = torch.zeros(4, dtype=torch.long)
    assert batched_nms(BOXES, SCORES, same, 0.5).tolist() == nms(BOXES, SCORES, 0.5).tolist()


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.7])
def test_random_boxes_match_the_sequential_loop(threshold, monkeypatch) -> None:
    xy = torch.rand(300, 2, dtype=torch.float64) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(300, 2, dtype=torch.float64) * 40], dim=1)
    scores = (torch.rand(300, dtype=torch.float64) * 20).round() / 20  # many ties
    expected = reference_nms(boxes, scores, threshold)
    assert nms(boxes, scores, threshold).tolist() == expected
    monkeypatch.setattr(nms_module, "BLOCK", 16)  # several blocks
    assert nms(boxes, scores, threshold).tolist() == expected
    idxs = torch.randint(0, 4, (300,))
    kept = []
    for cat in range(4):
        members = torch.where(idxs == cat)[0]
        kept += [int(members[i]) for i in reference_nms(boxes[members], scores[members], threshold)]
    kept.sort(key=lambda i: (-float(scores[i]), i))
    assert batched_nms(boxes, scores, idxs, threshold).tolist() == kept


def test_bad_arguments_raise() -> None:
    with pytest.raises(CnnkitError, match="boxes"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(CnnkitError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(CnnkitError, match="idxs"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(4), 0.5)
