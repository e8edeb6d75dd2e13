"""Segmentation task: confusion-matrix metrics by hand, ignore rules, soft IoU and Dice losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.errors import CnnkitError
from cnnkit.models.segmentation.headless import SegmentationOutputs
from cnnkit.tasks import build_task
from cnnkit.tasks.losses import dice_loss, soft_iou_loss
from cnnkit.tasks.segmentation import SegmentationTask

# 4 classes; class 3 is in neither target nor (counted) prediction. 255 = ignore_index,
# 4 = declared ignore value outside the class range (like CamVid's void).
TARGET = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 255, 4],
                       [2, 2, 255, 4]])
PRED = torch.tensor([[0, 1, 1, 1],
                     [0, 0, 1, 1],
                     [2, 0, 3, 3],   # class 3 only on skipped pixels
                     [2, 2, 3, 3]])


def logits_for(pred: torch.Tensor, num_classes: int = 4) -> torch.Tensor:
    return 10.0 * F.one_hot(pred, num_classes).permute(2, 0, 1)[None].float()


def test_metrics_by_hand_with_absent_class_and_ignored_pixels():
    task = SegmentationTask(4, ignore_values=(4,), class_names=("a", "b", "c", "d"))
    metric = task.new_metric()
    metric.update(logits_for(PRED), {"mask": TARGET[None]})
    # confusion (true, pred): 0->0: 3, 0->1: 1, 1->1: 4, 2->2: 3, 2->0: 1; 12 counted pixels
    expected = torch.tensor([[3, 1, 0, 0], [0, 4, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]])
    assert torch.equal(metric.confusion, expected)
    figures = metric.compute()
    assert figures["pixel_accuracy"] == 10 / 12
    # IoU: class 0: 3 / (3 + 1 + 1); class 1: 4 / (4 + 1); class 2: 3 / (3 + 1); class 3: none
    assert figures["iou/a"] == 3 / 5 and figures["iou/b"] == 4 / 5 and figures["iou/c"] == 3 / 4
    assert math.isnan(figures["iou/d"])
    assert math.isclose(figures["miou"], (3 / 5 + 4 / 5 + 3 / 4) / 3)  # absent class excluded
    assert math.isclose(figures["mean_class_accuracy"], (3 / 4 + 1 + 3 / 4) / 3)


def test_class_only_predicted_counts_as_zero_iou():
    metric = SegmentationTask(2).new_metric()
    metric.update(logits_for(torch.tensor([[0, 1]]), 2), {"mask": torch.tensor([[[0, 0]]])})
    assert metric.per_class_iou.tolist() == [0.5, 0.0]
    assert metric.compute()["miou"] == 0.25
    assert metric.compute()["mean_class_accuracy"] == 0.5  # class 1 absent from the target


def test_undeclared_out_of_range_value_is_an_error():
    metric = SegmentationTask(4).new_metric()
    with pytest.raises(CnnkitError, match=r"\[4\].*ignore_values"):
        metric.update(logits_for(PRED), {"mask": TARGET[None]})


def test_states_sum_like_distributed_all_reduce():
    task = SegmentationTask(4, ignore_values=(4,))
    whole, top, bottom = task.new_metric(), task.new_metric(), task.new_metric()
    whole.update(logits_for(PRED), {"mask": TARGET[None]})
    top.update(logits_for(PRED[:2]), {"mask": TARGET[None, :2]})
    bottom.update(logits_for(PRED[2:]), {"mask": TARGET[None, 2:]})
    for mine, theirs in zip(top.state(), bottom.state()):
        mine += theirs
    assert torch.equal(top.confusion, whole.confusion)
    assert top.compute()["miou"] == whole.compute()["miou"]


def test_valid_unet_output_is_scored_on_the_centre_crop():
    mask = torch.full((1, 4, 4), 1)
    mask[0, 1:3, 1:3] = 0  # centre 2 x 2 is class 0, the border class 1
    metric = SegmentationTask(2).new_metric()
    metric.update(logits_for(torch.zeros(2, 2, dtype=torch.int64), 2), {"mask": mask})
    assert metric.confusion.tolist() == [[4, 0], [0, 0]]
    with pytest.raises(CnnkitError, match="larger than the mask"):
        metric.update(torch.zeros(1, 2, 5, 5), {"mask": mask})


def test_soft_iou_and_dice_by_hand():
    # one image of 3 pixels; the third is ignored
    probs = torch.tensor([[0.8, 0.4, 0.5], [0.2, 0.6, 0.5]])[None, :, None, :]
    target = torch.tensor([[[0, 1, 1]]])
    valid = torch.tensor([[[True, True, False]]])
    # class 0: I = 0.8, U = 1.0 + 0.4; class 1: I = 0.6, U = 0.2 + 1.0
    assert torch.isclose(soft_iou_loss(probs, target, valid), torch.tensor(13 / 28))
    # class 0: 2 * 0.8 / (1.2 + 1); class 1: 2 * 0.6 / (0.8 + 1)
    assert torch.isclose(dice_loss(probs, target, valid), torch.tensor(10 / 33))
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).float()
    assert soft_iou_loss(perfect, target) == 0.0
    assert dice_loss(perfect, target) == 0.0


def test_loss_combination_class_weights_and_aux_head():
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    mask = TARGET.expand(2, 4, 4)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0])
    task = build_task("segmentation", num_classes=4, ignore_values=(4,), class_weights=weights,
                      dice_weight=0.5)
    valid = (mask < 4)
    labels = torch.where(valid, mask, 0)
    ce = F.cross_entropy(logits, torch.where(valid, mask, -100), weight=weights)
    dice = dice_loss(logits.softmax(1), labels, valid)
    loss, parts = task.loss(logits, {"mask": mask})
    assert torch.isclose(loss, ce + 0.5 * dice)
    assert parts == pytest.approx({"ce": float(ce), "dice": float(dice)})
    with_aux, parts = task.loss(SegmentationOutputs(logits, aux), {"mask": mask})
    aux_loss, _ = task.loss(aux, {"mask": mask})
    assert torch.isclose(with_aux, loss + 0.5 * aux_loss)
    assert "aux" in parts


def test_decode_gives_argmax_masks_over_the_input():
    out = SegmentationTask(4).decode(logits_for(PRED), {"image": torch.zeros(1, 3, 6, 6)})
    mask = out[0]["mask"]
    assert mask.dtype == torch.uint8 and mask.shape == (6, 6)
    assert torch.equal(mask[1:5, 1:5], PRED.to(torch.uint8))  # a valid U-Net's centre
    border = torch.ones(6, 6, dtype=torch.bool)
    border[1:5, 1:5] = False
    assert (mask[border] == IGNORE_INDEX).all()


def test_decode_brings_masks_back_to_the_original_image():
    # a 4 x 4 prediction of an image first resized from 8 x 8, then padded by one pixel
    meta = {"original_size": (8, 8), "transforms": [("resize", {"size": (4, 4)}),
                                                    ("crop", {"top": -1, "left": -1,
                                                              "size": (6, 6)})]}
    logits = torch.zeros(1, 4, 6, 6)
    logits[0, :, 1:5, 1:5] = logits_for(PRED)[0]
    out = SegmentationTask(4).decode(logits, {"image": torch.zeros(1, 3, 6, 6), "meta": [meta]})
    # logits resized back before the argmax: each cell of PRED covers 2 x 2 original pixels,
    # and at each of them its own cell weighs >= 0.75 x 0.75 of the bilinear mix: it wins
    expected = PRED.repeat_interleave(2, 0).repeat_interleave(2, 1).to(torch.uint8)
    assert torch.equal(out[0]["mask"], expected)


def test_metric_at_the_labels_original_resolution():
    # the network saw a 4 x 4 resize of an 8 x 8 image; the original mask is PRED at 2 x 2 per
    # cell except one pixel: at the original resolution exactly that pixel is wrong
    original = PRED.repeat_interleave(2, 0).repeat_interleave(2, 1).clone()
    original[0, 0] = 3
    meta = {"original_size": (8, 8), "transforms": [("resize", {"size": (4, 4)})],
            "original_mask": original}
    task = SegmentationTask(4, eval_resolution="original")
    assert task.keeps_original_targets and task.spec()["options"]["eval_resolution"] == "original"
    metric = task.new_metric()
    metric.update(logits_for(PRED), {"image": torch.zeros(1, 3, 4, 4), "meta": [meta],
                                     "mask": PRED[None]})
    assert int(metric.confusion.sum()) == 64 and int(metric.confusion.diagonal().sum()) == 63
    assert metric.confusion[3, 0] == 1  # the true 3 predicted as PRED[0, 0] = 0
    at_input = SegmentationTask(4).new_metric()
    at_input.update(logits_for(PRED), {"mask": PRED[None]})
    assert int(at_input.confusion.sum()) == 16
    with pytest.raises(CnnkitError, match="original masks"):
        metric.update(logits_for(PRED), {"image": torch.zeros(1, 3, 4, 4),
                                         "meta": [{"original_size": (8, 8)}]})
