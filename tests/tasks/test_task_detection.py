"""Detection tasks: COCO AP on hand-made predictions (perfect, shifted, crowd, false positives),
decoding back through a resize and a flip, loss summation with a fake detector, options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnkit.data.batch import collate_samples
from cnnkit.data.datasets.labels import ClassList, LabelSpace
from cnnkit.data.sample import Sample
from cnnkit.data.transforms import Compose, HorizontalFlip, Resize
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.geometry import Skeleton
from cnnkit.tasks import TASKS, build_task
from cnnkit.tasks.coco_metric import COCO_PERSON_SIGMAS, oks_sigmas

pytest.importorskip("pycocotools")

H, W = 40, 40
NAMES = ["background", "cat", "dog"]


def box_mask(x1: int, y1: int, x2: int, y2: int, size=(H, W)) -> torch.Tensor:
    """The mask of pixels x1..x2, y1..y2 (inclusive)."""
    mask = torch.zeros(size, dtype=torch.bool)
    mask[y1:y2 + 1, x1:x2 + 1] = True
    return mask


def instances(pixels, labels, crowd=None, keypoints=None) -> dict[str, torch.Tensor]:
    """Instances whose boxes and masks cover the pixel ranges ``pixels`` (x1, y1, x2, y2)."""
    px = torch.tensor(pixels, dtype=torch.float32).reshape(-1, 4)
    out = {"boxes": px + torch.tensor([-0.5, -0.5, 0.5, 0.5]),
           "labels": torch.tensor(labels, dtype=torch.int64),
           "masks": torch.stack([box_mask(*p) for p in px.long().tolist()]) if len(px)
           else torch.zeros(0, H, W, dtype=torch.bool),
           "crowd": torch.tensor(crowd or [False] * len(px))}
    if keypoints is not None:
        out["keypoints"] = keypoints
    return out


def detections(truth: dict[str, torch.Tensor], scores) -> dict[str, torch.Tensor]:
    """What a detector in evaluation mode returns for predictions equal to ``truth``."""
    out = {"boxes": truth["boxes"], "labels": truth["labels"],
           "scores": torch.tensor(scores, dtype=torch.float32),
           "masks": truth["masks"][:, None].float()}
    if "keypoints" in truth:
        out["keypoints"] = torch.cat([truth["keypoints"][..., :2],
                                      torch.ones_like(truth["keypoints"][..., :1])], -1)
        out["keypoints_scores"] = torch.ones(truth["keypoints"].shape[:2])
    return out


def batch_of(*truths) -> dict:
    return {"image": torch.zeros(len(truths), 3, H, W), "instances": list(truths),
            "meta": [{} for _ in truths]}


def figures(task, outputs, batch) -> dict[str, float]:
    metric = task.new_metric()
    metric.update(outputs, batch)
    return metric.compute()


def test_perfect_predictions_give_ap_one_for_boxes_masks_and_keypoints():
    points = torch.tensor([[[4.0, 5.0, 2.0], [8.0, 6.0, 2.0], [6.0, 9.0, 0.0]],
                           [[22.0, 21.0, 2.0], [30.0, 25.0, 2.0], [26.0, 28.0, 2.0]]])
    truth = instances([[2, 3, 11, 12], [20, 20, 35, 30]], [1, 2], keypoints=points)
    batch = batch_of(truth)
    segm = figures(build_task("instance-segmentation", num_classes=3, class_names=NAMES),
                   [detections(truth, [0.9, 0.8])], batch)
    keypoints = figures(build_task("instance-keypoints", num_classes=3, class_names=NAMES,
                                   num_keypoints=3), [detections(truth, [0.9, 0.8])], batch)
    for name in ("bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_AR100", "segm_AP", "segm_AR100"):
        assert segm[name] == pytest.approx(1.0), name
    for name in ("bbox_AP", "keypoints_AP", "keypoints_AP50", "keypoints_AR20"):
        assert keypoints[name] == pytest.approx(1.0), name
    assert math.isnan(segm["bbox_APl"])  # no object over 96² pixels: nothing to evaluate
    assert "keypoints_APs" not in keypoints  # COCO leaves small objects out of keypoints


def test_a_shifted_box_scores_the_ap_of_its_iou_by_hand():
    # a 10 x 10 box shifted 2 pixels right: IoU = 8 * 10 / (100 + 100 - 80) = 2/3, a match at
    # the thresholds 0.50, 0.55, 0.60 and 0.65 (4 of the 10), with precision 1 there
    truth = instances([[5, 5, 14, 14]], [1])
    shifted = {"boxes": truth["boxes"] + torch.tensor([2.0, 0.0, 2.0, 0.0]),
               "labels": truth["labels"], "scores": torch.tensor([0.9])}
    result = figures(build_task("detection", num_classes=3), [shifted], batch_of(truth))
    assert result["bbox_AP"] == pytest.approx(0.4)
    assert result["bbox_AP50"] == pytest.approx(1.0) and result["bbox_AP75"] == 0.0
    assert result["bbox_AR100"] == pytest.approx(0.4)


def test_crowd_regions_are_neither_found_nor_missed():
    # a crowd region with a higher-scoring detection inside it, and one object found exactly
    pixels, labels = [[2, 2, 11, 11], [16, 16, 39, 39]], [1, 1]
    found = {"boxes": torch.tensor([[1.5, 1.5, 11.5, 11.5], [20.5, 20.5, 30.5, 30.5]]),
             "labels": torch.tensor([1, 1]), "scores": torch.tensor([0.5, 0.9])}
    task = build_task("detection", num_classes=3, class_names=NAMES)
    crowd = figures(task, [found], batch_of(instances(pixels, labels, [False, True])))
    assert crowd["bbox_AP"] == pytest.approx(1.0)
    plain = figures(task, [found], batch_of(instances(pixels, labels)))
    # as an object, the region is missed and the detection in it a false positive ranked first:
    # precision 1/2 up to recall 1/2, on 51 of COCO's 101 recall points
    assert plain["bbox_AP"] == pytest.approx(0.5 * 51 / 101)


@pytest.mark.parametrize("score, expected", [(0.95, 0.5), (0.5, 1.0)])
def test_a_false_positive_on_an_image_without_objects_lowers_precision(score, expected):
    # image 1: one object found (score 0.9); image 2: no object, one false positive. Ranked
    # above the true positive it halves the precision at every recall (AP 0.5); ranked below
    # it, the recall is already complete and COCO's interpolated precision stays 1.
    truth = instances([[5, 5, 14, 14]], [2])
    empty = instances([], [])
    found = {"boxes": truth["boxes"], "labels": truth["labels"], "scores": torch.tensor([0.9])}
    false = {"boxes": torch.tensor([[20.5, 20.5, 30.5, 30.5]]), "labels": torch.tensor([2]),
             "scores": torch.tensor([score])}
    result = figures(build_task("detection", num_classes=3), [found, false],
                     batch_of(truth, empty))
    assert result["bbox_AP"] == pytest.approx(expected)


def test_nothing_to_evaluate_is_nan_and_nothing_found_is_zero():
    task = build_task("detection", num_classes=3, class_names=NAMES)
    assert all(math.isnan(v) for v in task.new_metric().compute().values())
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
            "scores": torch.zeros(0)}
    assert figures(task, [none], batch_of(instances([[5, 5, 14, 14]], [1])))["bbox_AP"] == 0.0
    only_crowd = instances([[5, 5, 14, 14]], [1], [True])
    assert math.isnan(figures(task, [none], batch_of(only_crowd))["bbox_AP"])


def flipped_batch():
    """One 20 x 40 (H x W) image resized to 10 x 20 and mirrored, with one instance covering
    input pixels x 3..6, y 2..4 and three keypoints (1 and 2 a left/right pair)."""
    skeleton = Skeleton(("top", "left", "right"), ((1, 2),))
    points = torch.tensor([[[32.5, 4.5], [30.5, 8.5], [28.5, 6.5]]])  # at (3, 2), (5, 3), (4, 4)
    sample = Sample(torch.rand(3, 20, 40), boxes=torch.tensor([[25.5, 3.5, 33.5, 9.5]]),
                    box_labels=torch.tensor([1]),
                    instance_masks=box_mask(26, 4, 33, 9, (20, 40))[None],
                    instance_keypoints=points, skeleton=skeleton,
                    meta={"original_size": (20, 40)})
    sample = Compose([Resize((10, 20)), HorizontalFlip(p=1.0)])(sample, torch.Generator())
    return collate_samples([sample])


def test_decoding_maps_boxes_masks_and_keypoints_back_through_a_resize_and_a_flip():
    batch = flipped_batch()
    assert torch.equal(batch["instances"][0]["boxes"], torch.tensor([[2.5, 1.5, 6.5, 4.5]]))
    assert batch["instances"][0]["keypoints"][0, :, :2].tolist() == [[3, 2], [5, 3], [4, 4]]
    mask = box_mask(3, 2, 6, 4, (10, 20))
    output = [{"boxes": torch.tensor([[2.5, 1.5, 6.5, 4.5]]), "labels": torch.tensor([1]),
               "scores": torch.tensor([0.8]), "masks": mask[None, None].float(),
               "keypoints": torch.tensor([[[3.0, 2.0, 1.0], [5.0, 3.0, 1.0], [4.0, 4.0, 1.0]]]),
               "keypoints_scores": torch.tensor([[0.1, 0.2, 0.3]])}]
    segm = build_task("instance-segmentation", num_classes=3, class_names=NAMES)
    (decoded,) = segm.decode(output, batch)
    # unflip x -> 19 - x, then undo the resize: x -> (x + 0.5) * 2 - 0.5
    assert decoded["boxes"].tolist() == [[25.5, 3.5, 33.5, 9.5]]
    assert decoded["masks"].shape == (1, 20, 40)
    assert torch.equal(decoded["masks"][0], box_mask(26, 4, 33, 9, (20, 40)))
    assert decoded["class_names"] == ["cat"] and decoded["scores"].tolist() == pytest.approx([0.8])
    assert segm.decode_in_input(output, batch)[0]["masks"].shape == (1, 10, 20)
    keypoints = build_task("instance-keypoints", num_classes=3, num_keypoints=3,
                           flip_pairs=[[1, 2]])
    (decoded,) = keypoints.decode(output, batch)
    # points (3, 2), (5, 3), (4, 4) -> (32.5, 4.5), (28.5, 6.5), (30.5, 8.5), left/right swapped
    assert decoded["keypoints"].tolist() == [[[32.5, 4.5, 1.0], [30.5, 8.5, 1.0],
                                              [28.5, 6.5, 1.0]]]
    assert decoded["keypoints_scores"][0].tolist() == pytest.approx([0.1, 0.3, 0.2])
    # the ground truth goes back the same way: the predictions are perfect on the original
    assert figures(segm, output, batch)["segm_AP"] == pytest.approx(1.0)
    assert figures(keypoints, output, batch)["keypoints_AP"] == pytest.approx(1.0)


class FakeDetector(nn.Module):
    """Two named losses while training (keeping the targets it was given), fixed detections in
    evaluation."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(1.0))
        self.targets = None

    def forward(self, images, targets=None):
        if self.training:
            self.targets = targets
            return {"loss_classifier": 2 * self.weight, "loss_box_reg": 3 * self.weight ** 2}
        return [{"boxes": torch.tensor([[0.5, 0.5, 9.5, 9.5]]), "labels": torch.tensor([1]),
                 "scores": torch.tensor([0.7]), "masks": torch.ones(1, 1, H, W)}
                for _ in images]


def test_training_sums_the_named_losses_and_leaves_crowd_regions_out():
    model = FakeDetector().train()
    task = build_task("instance-segmentation", num_classes=3, class_names=NAMES)
    batch = batch_of(instances([[2, 2, 9, 9], [12, 12, 30, 30]], [1, 2], [False, True]))
    total, parts = task.loss(task.forward(model, batch), batch)
    assert total.item() == 5.0 and set(parts) == {"loss_classifier", "loss_box_reg"}
    assert parts["loss_box_reg"].item() == 3.0 and not parts["loss_box_reg"].requires_grad
    total.backward()
    assert model.weight.grad.item() == 2 + 6
    (target,) = model.targets
    assert set(target) == {"boxes", "labels", "masks"}  # a detection task adds no masks
    assert target["labels"].tolist() == [1] and target["masks"].shape == (1, H, W)
    assert set(build_task("detection", num_classes=3).targets(batch)[0]) == {"boxes", "labels"}
    model.eval()
    output = task.forward(model, batch)
    assert task.loss(output, batch) == (None, {})
    assert output[0]["masks"].shape == (1, 1, H, W)


def test_each_task_is_rebuilt_from_its_spec():
    tasks = [build_task("detection", num_classes=3, class_names=NAMES, draw_threshold=0.3),
             build_task("instance-segmentation", num_classes=3, mask_threshold=0.4),
             build_task("instance-keypoints", num_classes=2, class_names=["background", "person"],
                        num_keypoints=4, keypoint_names=["a", "b", "c", "d"],
                        flip_pairs=[(1, 2)], kpt_oks_sigmas=[0.1] * 4, limbs=[(0, 3)])]
    for task in tasks:
        spec = task.spec()
        rebuilt = build_task(spec["kind"], **spec["options"])
        assert type(rebuilt) is type(task) and rebuilt.spec() == spec
        assert math.isnan(task.new_metric().compute()[task.primary_metric])  # nothing seen
    assert {TASKS[k].primary_metric for k in ("detection", "instance-segmentation",
                                              "instance-keypoints")} == {
        "bbox_AP", "segm_AP", "keypoints_AP"}
    assert tasks[2].kpt_oks_sigmas == [0.1] * 4 and tasks[2].higher_is_better_for("bbox_AP75")


def test_options_come_from_the_model_and_the_labels():
    labels = LabelSpace(instances=ClassList(tuple(NAMES)),
                        skeleton=Skeleton(("top", "left", "right"), ((1, 2),)))
    model = FakeDetector()
    assert TASKS["detection"].options_from(labels, model) == {"num_classes": 3,
                                                              "class_names": NAMES}
    model.num_keypoints = 3
    options = TASKS["instance-keypoints"].options_from(labels, model)
    assert options["keypoint_names"] == ["top", "left", "right"]
    assert options["flip_pairs"] == [[1, 2]] and options["num_keypoints"] == 3
    model.num_classes = 5
    with pytest.raises(CnnkitError, match=r"predicts 5 classes .* set model.num_classes=3$"):
        TASKS["instance-segmentation"].options_from(labels, model)


def test_default_oks_sigmas_and_bad_arguments_are_one_line_errors():
    assert oks_sigmas(17) == list(COCO_PERSON_SIGMAS) and oks_sigmas(4) == [0.05] * 4
    for call, message in [
            (lambda: build_task("detection", num_classes=1), "num_classes counts the background"),
            (lambda: build_task("detection", num_classes=3, class_names=["a"]),
             "class_names has 1 names for 3"),
            (lambda: build_task("instance-keypoints", num_classes=2, num_keypoints=3,
                                kpt_oks_sigmas=[0.1]), "one positive value per keypoint"),
            (lambda: build_task("instance-segmentation", num_classes=3, mask_threshold=2),
             r"mask_threshold must lie in \[0, 1\]"),
            (lambda: build_task("instance-keypoints", num_classes=2, num_keypoints=2,
                                limbs=[(0, 5)]), "limbs")]:
        with pytest.raises(ArgumentError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    task = build_task("detection", num_classes=3)
    with pytest.raises(CnnkitError, match="flip test-time augmentation is not defined"):
        task.flip_back([], 10)
    with pytest.raises(CnnkitError, match="evaluation mode"):
        task.new_metric().update({"loss_classifier": torch.tensor(1.0)}, batch_of())
    with pytest.raises(CnnkitError, match="samples with instances"):
        task.forward(FakeDetector().train(), {"image": torch.zeros(1, 3, H, W)})
    with pytest.raises(CnnkitError, match="instance-segmentation trains on instances with masks"):
        build_task("instance-segmentation", num_classes=3).targets(
            {"instances": [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long(),
                            "crowd": torch.zeros(0, dtype=torch.bool)}]})


def test_more_objects_than_cocos_100_detections_need_max_detections():
    # 150 one-pixel-apart 2x2 objects found exactly: COCO counts only the 100 best detections
    pixels = [[x, y, x + 1, y + 1] for y in range(0, 30, 3) for x in range(0, 45, 3)]
    size = (H, 48)
    truth = instances([[0, 0, 1, 1]], [1])
    truth.update(boxes=torch.tensor(pixels, dtype=torch.float32) + torch.tensor(
        [-0.5, -0.5, 0.5, 0.5]), labels=torch.ones(150, dtype=torch.int64),
                 masks=torch.stack([box_mask(*p, size=size) for p in pixels]),
                 crowd=torch.zeros(150, dtype=torch.bool))
    found = detections(truth, torch.linspace(1.0, 0.5, 150).tolist())
    batch = {"image": torch.zeros(1, 3, *size), "instances": [truth], "meta": [{}]}
    capped = figures(build_task("detection", num_classes=3), [found], batch)
    assert capped["bbox_AR100"] == pytest.approx(100 / 150)
    assert capped["bbox_AP"] == pytest.approx(100 / 150, abs=0.01)  # precision 1 up to recall 2/3
    counted = figures(build_task("detection", num_classes=3, max_detections=300), [found], batch)
    assert counted["bbox_AP"] == pytest.approx(1.0) and counted["bbox_AR300"] == pytest.approx(1.0)
    assert "bbox_AR100" not in counted
    with pytest.raises(ArgumentError, match="max_detections must be an integer >= 1"):
        build_task("detection", num_classes=3, max_detections=0).new_metric()


def test_the_figures_are_those_of_pycocotools_summarize():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = instances([[2, 3, 11, 12], [20, 20, 35, 30], [5, 25, 9, 33]], [1, 2, 1])
    shifted = {"boxes": truth["boxes"] + torch.tensor([[2.0, 0, 2, 0], [0, 1, 0, 1], [9, 9, 9, 9]]),
               "labels": truth["labels"], "scores": torch.tensor([0.9, 0.6, 0.8])}
    task = build_task("detection", num_classes=3)
    metric = task.new_metric()
    metric.update([shifted], batch_of(truth))
    ours = metric.compute()
    coco = COCO()
    coco.dataset = {"images": [dict(i) for i in metric.images],
                    "annotations": [dict(a) for a in metric.truths],
                    "categories": [dict(c) for c in metric.categories]}
    coco.createIndex()
    evaluation = COCOeval(coco, coco.loadRes([dict(r) for r in metric.results["bbox"]]), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    stats = [v if v >= 0 else float("nan") for v in evaluation.stats]
    expected = dict(zip(["AP", "AP50", "AP75", "APs", "APm", "APl"], stats[:6]), AR100=stats[8])
    assert ours == pytest.approx({f"bbox_{k}": v for k, v in expected.items()}, nan_ok=True)
