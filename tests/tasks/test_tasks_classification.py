"""Classification and localization tasks: losses, metrics by hand, decoding, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.models.classification.googlenet import GoogLeNetOutputs
from cnnkit.models.localization.classloc import ClassesAndBoxes
from cnnkit.tasks import TASKS, build_task
from cnnkit.tasks.classification import ClassificationTask
from cnnkit.geometry import boxes_to_normalized, normalized_to_boxes

# 4 samples, 6 classes: top-1 hits on samples 0 and 3; sample 1's label ranks 2nd (top-5 hit);
# sample 2's label has the lowest score (top-5 miss) and it is predicted as class 0.
LOGITS = torch.tensor([[5.0, 4, 3, 2, 1, 0],
                       [0.0, 4, 5, 3, 2, 1],
                       [5.0, 4, -9, 3, 2, 1],
                       [0.0, 5, 1, 2, 3, 4]])
LABELS = torch.tensor([0, 1, 2, 1])


def test_topk_per_class_and_confusion_by_hand():
    metric = ClassificationTask(6).new_metric()
    metric.update(LOGITS, {"label": LABELS})
    figures = metric.compute()
    assert figures["accuracy"] == 0.5
    assert figures["top5_accuracy"] == 0.75
    per_class = metric.per_class_accuracy
    assert per_class[:3].tolist() == [1.0, 0.5, 0.0]
    assert per_class[3:].isnan().all()  # classes never in the targets: no accuracy
    assert figures["mean_class_accuracy"] == 0.5
    expected = torch.zeros(6, 6, dtype=torch.int64)
    expected[0, 0], expected[1, 2], expected[2, 0], expected[1, 1] = 1, 1, 1, 1
    assert torch.equal(metric.confusion, expected)


def test_topk_is_clipped_to_the_number_of_classes():
    metric = ClassificationTask(3).new_metric()
    metric.update(torch.tensor([[0.0, 1, 2], [2.0, 1, 0]]), {"label": torch.tensor([0, 1])})
    assert metric.compute() == {"accuracy": 0.0, "top3_accuracy": 1.0,
                                "mean_class_accuracy": 0.0}


def test_states_sum_like_distributed_all_reduce():
    task = ClassificationTask(6)
    whole, first, second = task.new_metric(), task.new_metric(), task.new_metric()
    whole.update(LOGITS, {"label": LABELS})
    first.update(LOGITS[:1], {"label": LABELS[:1]})
    second.update(LOGITS[1:], {"label": LABELS[1:]})
    for mine, theirs in zip(first.state(), second.state()):
        mine += theirs  # what all_reduce(SUM) does across processes
    assert first.compute() == whole.compute()
    assert torch.equal(first.confusion, whole.confusion)


def test_loss_label_smoothing_weights_and_googlenet_aux():
    weights = torch.tensor([1.0, 2, 3, 1, 1, 1])
    task = ClassificationTask(6, label_smoothing=0.1, class_weights=weights)
    aux2, aux1 = LOGITS.flip(1), LOGITS * 0.5
    loss, parts = task.loss(GoogLeNetOutputs(LOGITS, aux2, aux1), {"label": LABELS})
    ce = [F.cross_entropy(x, LABELS, weight=weights, label_smoothing=0.1)
          for x in (LOGITS, aux2, aux1)]
    assert torch.allclose(loss, ce[0] + 0.3 * (ce[1] + ce[2]))
    assert set(parts) == {"ce", "aux_logits2", "aux_logits1"}
    with pytest.raises(CnnkitError, match=r"\[7\]"):
        task.loss(LOGITS, {"label": torch.tensor([0, 1, 2, 7])})


def test_decode_gives_class_and_probabilities():
    out = ClassificationTask(6).decode(LOGITS)
    assert [o["class"] for o in out] == [0, 2, 0, 1]
    assert math.isclose(sum(out[0]["probabilities"]), 1.0, rel_tol=1e-6)
    assert out[0]["score"] == max(out[0]["probabilities"])


def test_box_conversions_follow_the_pixel_centre_convention():
    whole = torch.tensor([[-0.5, -0.5, 9.5, 4.5]])  # the whole 10 x 5 (W x H) image
    assert torch.equal(boxes_to_normalized(whole, 5, 10), torch.tensor([[0.5, 0.5, 1, 1]]))
    box = torch.tensor([[1.0, 2.0, 6.0, 3.5]])
    back = normalized_to_boxes(boxes_to_normalized(box, 5, 10), 5, 10)
    assert torch.allclose(back, box)


def test_localization_metric_and_loss_by_hand():
    task = build_task("localization", num_classes=3, box_loss="l2")
    # 10 x 10 images; box of sample 0 covers the image's left half, sample 1 the whole image
    gt = torch.tensor([[-0.5, -0.5, 4.5, 9.5], [-0.5, -0.5, 9.5, 9.5]])
    batch = {"image": torch.zeros(2, 3, 10, 10), "label": torch.tensor([1, 2]), "boxes": gt,
             "meta": [{}, {}]}
    logits = torch.tensor([[0.0, 3, 0], [0.0, 0, 3]])
    exact = boxes_to_normalized(gt, 10, 10)
    loss, parts = task.loss(ClassesAndBoxes(logits, exact), batch)
    assert parts["box"] == 0.0
    # sample 0's box shifted right by a quarter of the image: IoU = 0.25 / 0.75 = 1/3
    shifted = exact.clone()
    shifted[0, 0] += 0.25
    metric = task.new_metric()
    metric.update(ClassesAndBoxes(logits, shifted), batch)
    figures = metric.compute()
    assert figures["accuracy"] == 1.0
    assert math.isclose(figures["mean_iou"], (1 / 3 + 1) / 2, rel_tol=1e-6)
    assert figures["iou50"] == 0.5 and figures["localization_accuracy"] == 0.5
    decoded = task.decode(ClassesAndBoxes(logits, exact), batch)
    assert decoded[1]["class"] == 2
    assert torch.allclose(torch.tensor(decoded[0]["box"]), gt[0])


def test_registry_builds_every_kind_and_lists_them_on_error():
    options = {"classification": {"num_classes": 3}, "localization": {"num_classes": 3},
               "segmentation": {"num_classes": 3}, "keypoints-regression": {"num_keypoints": 2},
               "keypoints-heatmap": {"num_keypoints": 2}, "depth": {}, "normals": {},
               "colorization": {}, "multitask": {"tasks": {"depth": {}}}}
    assert set(options) <= set(TASKS)
    for kind, kwargs in options.items():
        task = build_task(kind, **kwargs)
        assert task.primary_metric in task.new_metric().compute()
    with pytest.raises(CnnkitError, match="classification, localization, segmentation"):
        build_task("no-such-kind")
    with pytest.raises(CnnkitError, match="segmentation"):
        build_task("segmentation", num_class=3)


def test_binary_classifier_with_one_output_by_hand():
    task = ClassificationTask(1, class_names=["no cat", "cat"])
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    labels = torch.tensor([1, 0, 0])
    loss, parts = task.loss(logits, {"label": labels})
    # -mean(log sigmoid(2), log(1 - sigmoid(-1)), log(1 - sigmoid(0.5)))
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1)))
                 + math.log(1 - 1 / (1 + math.exp(-0.5)))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6) and loss.item() > 0
    metric = task.new_metric()
    metric.update(logits, {"label": labels})
    assert metric.compute()["accuracy"] == pytest.approx(2 / 3)  # z > 0 means "cat"
    decoded = task.decode(logits)
    assert [d["class_name"] for d in decoded] == ["cat", "no cat", "cat"]
    assert decoded[0]["probabilities"][1] == pytest.approx(1 / (1 + math.exp(-2)))
    smoothed = ClassificationTask(1, label_smoothing=0.2).loss(logits[:1], {"label": labels[:1]})
    assert smoothed[0].item() == pytest.approx(
        -(0.9 * math.log(1 / (1 + math.exp(-2))) + 0.1 * math.log(1 - 1 / (1 + math.exp(-2)))))
    with pytest.raises(CnnkitError, match="outside"):
        task.loss(logits, {"label": torch.tensor([2, 0, 0])})
