"""COCO instance files: reading (frames, labels, masks, crowd, keypoints), bad annotations,
results written for pycocotools' COCOeval (perfect predictions score AP 1)."""

from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.datasets import COCOInstances, DatasetError, label_space
from cnnkit.data.datasets.catalog import DatasetOptions, open_dataset, open_split
from cnnkit.data.datasets.coco import coco_mask_api
from cnnkit.data.datasets.coco_results import to_coco_json, write_coco_dataset, write_coco_results
from cnnkit.data.synthetic_instances import SyntheticInstances
from cnnkit.data.transforms import HorizontalFlip
from cnnkit.data.transforms.instances import mask_boxes
from cnnkit.errors import CnnkitError

mask_api = pytest.importorskip("pycocotools.mask")
H, W = 16, 20


def _rle(mask: np.ndarray, compressed: bool) -> dict:
    if compressed:
        rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [H, W], "counts": rle["counts"].decode()}
    flat, counts, value, run = mask.T.reshape(-1), [], 0, 0  # column-major runs from 0s
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    return {"size": [H, W], "counts": counts + [run]}


def coco_file(tmp_path, **change) -> tuple:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for name in ("a.png", "b.png", "empty.png"):
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(folder / name)
    ball = np.zeros((H, W), bool)
    ball[9:13, 4:9] = True
    crowd = np.zeros((H, W), bool)
    crowd[0:5, 12:20] = True
    anns = [
        {"id": 11, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 24,
         "bbox": [2, 1, 6, 4], "segmentation": [[2, 1, 8, 1, 8, 5, 2, 5]],
         "keypoints": [5, 2, 2, 3, 3, 1, 0, 0, 0], "num_keypoints": 2},
        {"id": 12, "image_id": 1, "category_id": 7, "iscrowd": 0, "area": 20,
         "bbox": [4, 9, 5, 4], "segmentation": _rle(ball, compressed=False)},
        {"id": 13, "image_id": 1, "category_id": 7, "iscrowd": 1, "area": 40,
         "bbox": [12, 0, 8, 5], "segmentation": _rle(crowd, compressed=False)},
        {"id": 21, "image_id": 2, "category_id": 7, "iscrowd": 0, "area": 20,
         "bbox": [4, 9, 5, 4], "segmentation": _rle(ball, compressed=True)},
        {"id": 22, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": 30,
         "bbox": [10, 3, 5, 6], "segmentation": [[10, 3, 15, 3, 15, 9, 10, 9]],
         "keypoints": [12, 4, 2, 11, 8, 2, 14, 8, 2], "num_keypoints": 3},
    ]
    data = {"images": [{"id": i, "file_name": n, "height": H, "width": W}
                       for i, n in ((1, "a.png"), (2, "b.png"), (3, "empty.png"))],
            "categories": [{"id": 7, "name": "ball", "supercategory": "thing"},
                           {"id": 3, "name": "person", "supercategory": "person",
                            "keypoints": ["nose", "left_eye", "right_eye"],
                            "skeleton": [[1, 2], [1, 3]]}],
            "annotations": anns}
    for key, value in change.items():
        index, field = key.split("__")
        anns[int(index)][field] = value
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, folder, ball, crowd


def test_reads_boxes_labels_masks_crowd_and_keypoints(tmp_path) -> None:
    path, folder, ball, crowd = coco_file(tmp_path)
    data = COCOInstances(path, folder)
    assert len(data) == 3 and len(COCOInstances(path, folder, keep_empty=False)) == 2
    assert data.category_ids == (3, 7) and data.keys == ["a.png", "b.png", "empty.png"]
    space = label_space(data)
    assert space.instances.names == ("background", "person", "ball")
    assert space.skeleton.names == ("nose", "left_eye", "right_eye")
    assert space.skeleton.flip_pairs == ((1, 2),) and data.limbs == ((0, 1), (0, 2))
    a = data[0]
    # COCO [x, y, w, h] with pixel edges at integers -> cnnkit (x - 0.5, ..., x + w - 0.5)
    assert a.boxes.tolist() == [[1.5, 0.5, 7.5, 4.5], [3.5, 8.5, 8.5, 12.5],
                                [11.5, -0.5, 19.5, 4.5]]
    assert a.box_labels.tolist() == [1, 2, 2] and a.crowd.tolist() == [False, False, True]
    assert torch.equal(a.instance_masks[1], torch.from_numpy(ball))
    assert torch.equal(a.instance_masks[2], torch.from_numpy(crowd))
    assert torch.equal(mask_boxes(a.instance_masks), a.boxes)  # the frames agree
    assert a.instance_keypoints[0].tolist() == [[5, 2], [3, 3], [0, 0]]
    assert a.instance_visible.tolist() == [[True, True, False], [False] * 3, [False] * 3]
    assert torch.equal(data[1].instance_masks[0], torch.from_numpy(ball))  # compressed RLE
    empty = data[2]
    assert empty.boxes.shape == (0, 4) and empty.instance_masks.shape == (0, H, W)
    flipped = HorizontalFlip(p=1.0)(data[1])
    assert flipped.instance_keypoints[1].tolist() == [[7, 4], [5, 8], [8, 8]]  # eyes swapped


def _evaluate(gt_path, results: list, iou_type: str, **params) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluation = COCOeval(gt, gt.loadRes(results), iou_type)
        for key, value in params.items():
            setattr(evaluation.params, key, value)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])


def _perfect(dataset) -> list[dict]:
    out = []
    for index in range(len(dataset)):
        s = dataset[index]
        keep = ~s.crowd
        pred = {"image_id": s.meta.get("image_id", index), "boxes": s.boxes[keep],
                "labels": s.box_labels[keep], "scores": torch.ones(int(keep.sum())),
                "masks": s.instance_masks[keep].float()}
        if s.instance_keypoints is not None:
            pred["keypoints"] = s.instance_keypoints[keep]
        out.append(pred)
    return out


def test_round_trip_perfect_predictions_score_ap_one(tmp_path) -> None:
    path, folder, _, _ = coco_file(tmp_path)
    data = COCOInstances(path, folder)
    results_path = tmp_path / "results.json"
    count = write_coco_results(results_path, _perfect(data), data.category_ids)
    results = json.loads(results_path.read_text())
    assert count == len(results) == 4
    assert results[0]["bbox"] == [2, 1, 6, 4] and results[0]["category_id"] == 3
    assert _evaluate(path, results, "bbox") == pytest.approx(1.0)
    assert _evaluate(path, results, "segm") == pytest.approx(1.0)
    assert _evaluate(path, results, "keypoints", catIds=[3],
                     kpt_oks_sigmas=np.full(3, 0.1)) == pytest.approx(1.0)
    wrong = to_coco_json([{**p, "labels": 3 - p["labels"]} for p in _perfect(data)],
                         data.category_ids)  # every class swapped
    assert _evaluate(path, wrong, "bbox") == pytest.approx(0.0)
    written = write_coco_dataset(data, tmp_path / "again.json")  # the same ground truth again
    assert len(written["annotations"]) == 5 and written["categories"][0]["id"] == 3
    assert _evaluate(tmp_path / "again.json", results, "segm") == pytest.approx(1.0)


def test_any_instance_dataset_evaluates_against_its_written_ground_truth(tmp_path) -> None:
    data = SyntheticInstances(4, size=48, seed=1)
    coco = write_coco_dataset(data, tmp_path / "synthetic.json")
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    results = to_coco_json(_perfect(data))
    for iou_type in ("bbox", "segm"):
        assert _evaluate(tmp_path / "synthetic.json", results, iou_type) == pytest.approx(1.0)
    assert _evaluate(tmp_path / "synthetic.json", results, "keypoints",
                     kpt_oks_sigmas=np.full(4, 0.1)) == pytest.approx(1.0)


@pytest.mark.parametrize("change, message", [
    ({"1__image_id": 9}, "annotation 12: missing image: image id 9"),
    ({"0__keypoints": [1, 2, 2]}, "annotation 11: wrong keypoint count: 3 values, expected 9"),
    ({"4__keypoints": [12, 4, 2, "11", 8, 2, 14, 8, 2]}, "annotation 22: keypoints must be numbers"),
    ({"0__segmentation": [[2, 1, 8, 1]]}, "annotation 11: a polygon needs at least 3 points"),
    ({"3__category_id": 5}, "annotation 21: unknown category 5"),
    ({"3__bbox": [1, 2, 3]}, "annotation 21: bbox must be"),
])
def test_bad_annotations_are_one_line_errors(tmp_path, change, message) -> None:
    path, folder, _, _ = coco_file(tmp_path, **change)
    with pytest.raises(DatasetError, match=message) as caught:
        COCOInstances(path, folder)
    assert "instances.json" in str(caught.value) and "\n" not in str(caught.value)


def test_missing_files_and_missing_pycocotools(tmp_path, monkeypatch) -> None:
    path, folder, _, _ = coco_file(tmp_path)
    (folder / "b.png").unlink()
    with pytest.raises(DatasetError, match="image 2: missing image .*b.png"):
        COCOInstances(path, folder)
    with pytest.raises(DatasetError, match="annotation file not found"):
        COCOInstances(tmp_path / "nope.json", folder)
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(CnnkitError, match=r"pip install 'cnnkit\[coco\]'"):
        coco_mask_api()


def test_catalog_opens_coco_and_synthetic_instances(tmp_path) -> None:
    path, folder, _, _ = coco_file(tmp_path)
    options = DatasetOptions(images=str(folder), val_fraction=1)
    whole = open_dataset("coco-instances", path, None, options)
    assert isinstance(whole, COCOInstances) and len(whole) == 3
    assert len(open_split("coco-instances", path, "val", options)) == 1
    with pytest.raises(DatasetError, match="needs images"):
        open_dataset("coco-instances", path)
    synthetic = open_split("synthetic-instances", None, "val", DatasetOptions(val_samples=3))
    assert len(synthetic) == 3 and synthetic[0].has_instances


def test_annotation_without_segmentation_gets_its_box_and_masks_can_be_skipped(tmp_path) -> None:
    path, folder, _, _ = coco_file(tmp_path, **{"4__segmentation": []})
    sample = COCOInstances(path, folder)[1]
    expected = torch.zeros(H, W, dtype=torch.bool)
    expected[3:9, 10:15] = True  # bbox [10, 3, 5, 6]: columns 10..14, rows 3..8
    assert torch.equal(sample.instance_masks[1], expected)
    plain = COCOInstances(path, folder, masks=False)[1]
    assert plain.instance_masks is None and plain.has_instances and len(plain.boxes) == 2
