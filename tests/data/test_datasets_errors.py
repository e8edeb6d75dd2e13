"""Each bad input gives one DatasetError naming the file and the problem (tiny files)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.datasets import (ClassFolders, ClassList, COCOKeypoints, DatasetError,
                                  DLCKeypoints, IdxDataset, read_image, read_mask,
                                  segmentation_folders)

CLASSES = ClassList(("a", "b", "c"), colors=((0, 0, 0), (255, 0, 0), (0, 255, 0)))


def save(path, array, mode=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)


def test_not_an_image(tmp_path) -> None:
    (tmp_path / "x.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match=r"x\.png: corrupt or truncated image"):
        read_image(tmp_path / "x.png")


def test_truncated_image(tmp_path) -> None:
    save(tmp_path / "full.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3)))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.png: corrupt or truncated image"):
        read_image(tmp_path / "cut.png")


def test_image_mask_size_mismatch(tmp_path) -> None:
    save(tmp_path / "img" / "a.png", np.zeros((6, 8, 3)))
    save(tmp_path / "lbl" / "a.png", np.zeros((5, 8)))
    data = segmentation_folders(tmp_path / "img", tmp_path / "lbl", CLASSES)
    with pytest.raises(DatasetError, match=r"lbl/a\.png: mask is 8 x 5 \(W x H\) but its image "
                                           r"a\.png is 8 x 6"):
        data[0]


def test_label_out_of_range_but_ignore_allowed(tmp_path) -> None:
    save(tmp_path / "m.png", [[0, 1, 2, 255]])
    assert read_mask(tmp_path / "m.png", 3).tolist() == [[0, 1, 2, 255]]
    save(tmp_path / "bad.png", [[0, 7, 2, 9]])
    with pytest.raises(DatasetError, match=r"bad\.png: label values \[7, 9\] are outside the "
                                           r"classes 0\.\.2"):
        read_mask(tmp_path / "bad.png", 3)


def test_palette_and_rgb_masks(tmp_path) -> None:
    palette = Image.fromarray(np.array([[0, 2], [1, 1]], dtype=np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.save(tmp_path / "p.png")
    assert read_mask(tmp_path / "p.png", 3).tolist() == [[0, 2], [1, 1]]
    save(tmp_path / "rgb.png", [[[0, 255, 0], [255, 0, 0]]])
    assert read_mask(tmp_path / "rgb.png", 3, colors=CLASSES.colors).tolist() == [[2, 1]]
    save(tmp_path / "odd.png", [[[0, 255, 0], [1, 2, 3]]])
    with pytest.raises(DatasetError, match=r"odd\.png: colour \(1, 2, 3\) at \(x=1, y=0\) is not "
                                           r"in the colour table"):
        read_mask(tmp_path / "odd.png", 3, colors=CLASSES.colors)
    with pytest.raises(DatasetError, match=r"rgb\.png: an RGB colour mask needs a colour table"):
        read_mask(tmp_path / "rgb.png", 3)


def test_missing_pair(tmp_path) -> None:
    for name in ("a", "b"):
        save(tmp_path / "img" / f"{name}.jpg", np.zeros((4, 4, 3)))
    save(tmp_path / "lbl" / "a.png", np.zeros((4, 4)))
    with pytest.raises(DatasetError, match=r"img/b\.jpg: missing pair: no mask named b\.\*"):
        segmentation_folders(tmp_path / "img", tmp_path / "lbl", CLASSES)


def test_empty_folders(tmp_path) -> None:
    (tmp_path / "img").mkdir()
    with pytest.raises(DatasetError, match=r"img: empty folder"):
        segmentation_folders(tmp_path / "img", tmp_path / "img", CLASSES)
    (tmp_path / "classes" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"classes/cat: empty folder"):
        ClassFolders(tmp_path / "classes")


def test_skip_bad_reports_what_it_skipped(tmp_path, caplog) -> None:
    for i in range(3):
        save(tmp_path / "cls" / "dog" / f"{i}.png", np.full((4, 4, 3), i))
    (tmp_path / "cls" / "dog" / "1.png").write_bytes(b"broken")
    strict = ClassFolders(tmp_path / "cls")
    assert len(strict) == 3
    with pytest.raises(DatasetError, match=r"1\.png: corrupt"):
        strict[1]
    with caplog.at_level("WARNING", logger="cnnkit"):
        lenient = ClassFolders(tmp_path / "cls", skip_bad=True)
    assert "skipped 1 bad sample(s) of 3" in caplog.text
    assert len(lenient) == 2 and len(lenient.skipped) == 1
    assert lenient.skipped[0][0].endswith("1.png")


def _dlc_csv(path, rows) -> None:
    header = ["scorer,me,me,me,me", "bodyparts,leftear,leftear,rightear,rightear",
              "coords,x,y,x,y"]
    path.write_text("\n".join(header + rows) + "\n")


def test_dlc_wrong_count_missing_points_and_flip_pairs(tmp_path, caplog) -> None:
    save(tmp_path / "f0.png", np.zeros((10, 12, 3)))
    _dlc_csv(tmp_path / "c.csv", ["f0.png,1.5,2.5,,", "f0.png,1,2,3"])
    with pytest.raises(DatasetError, match=r"c\.csv:5: wrong keypoint count: 3 values, expected 4"):
        DLCKeypoints(tmp_path / "c.csv")
    with caplog.at_level("WARNING", logger="cnnkit"):
        data = DLCKeypoints(tmp_path / "c.csv", skip_bad=True)
    assert "skipped 1" in caplog.text
    sample = data[0]
    assert sample.visible.tolist() == [True, False]  # empty cells = not labelled
    assert sample.keypoints.tolist() == [[1.5, 2.5], [0.0, 0.0]]
    with pytest.raises(ValueError, match="flip pair names"):
        DLCKeypoints(tmp_path / "c.csv", flip_pairs=[("leftear", "nose")], skip_bad=True)
    with pytest.raises(ValueError, match="pair distinct keypoints"):
        DLCKeypoints(tmp_path / "c.csv", flip_pairs=[("leftear", "leftear")], skip_bad=True)


def test_coco_keypoints_boxes_and_wrong_count(tmp_path) -> None:
    save(tmp_path / "im.png", np.zeros((20, 30, 3)))
    data = {"images": [{"id": 1, "file_name": "im.png"}],
            "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"]}],
            "annotations": [
                {"id": 5, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 8],
                 "keypoints": [4, 5, 2, 0, 0, 0, 7, 5, 1]},
                {"id": 6, "image_id": 1, "category_id": 1, "keypoints": [0] * 9}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    ds = COCOKeypoints(tmp_path / "a.json", tmp_path)
    assert len(ds) == 1 and ds.num_unlabelled == 1
    sample = ds[0]
    assert sample.visible.tolist() == [True, False, True]
    assert sample.keypoints.tolist() == [[4, 5], [0, 0], [7, 5]]
    assert sample.boxes.tolist() == [[1.5, 2.5, 11.5, 10.5]]
    assert sample.skeleton.flip_pairs == ((1, 2),)
    data["annotations"][0]["keypoints"] = [1, 2, 2]
    (tmp_path / "b.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"b\.json: annotation 5: wrong keypoint count: 3 values, "
                                           r"expected 9"):
        COCOKeypoints(tmp_path / "b.json", tmp_path)


def test_idx_truncated(tmp_path) -> None:
    labels = bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 0])
    images = bytes([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(12)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    data = IdxDataset(tmp_path)
    assert data.labels.tolist() == [1, 2, 0] and data[1].image.shape == (1, 2, 2)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels[:-1])
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte: truncated or padded idx "
                                           r"file: header says shape \(3,\) \(11 bytes\), the "
                                           r"file has 10 bytes"):
        IdxDataset(tmp_path)
    assert torch.is_tensor(data.labels)
