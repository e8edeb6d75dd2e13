"""Box utilities and the box coder: hand cases and round trips."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.ops import (BoxCoder, box_area, box_convert, box_iou, clip_boxes_to_image,
                        remove_small_boxes)


def test_box_iou_hand_cases() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 4.0, 4.0], [0.0, 0.0, 2.0, 2.0],
                      [1.0, 1.0, 2.0, 2.0]])
    expected = torch.tensor([[1 / 7, 0.0, 1.0, 1 / 4], [4 / 16, 4 / 16, 4 / 16, 1 / 16]])
    torch.testing.assert_close(box_iou(a, b), expected)
    assert box_area(b).tolist() == [4.0, 4.0, 4.0, 1.0]
    assert box_iou(a, b[:0]).shape == (2, 0)


def test_box_convert_hand_case_and_round_trips() -> None:
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 8.0]])
    assert box_convert(xyxy, "xyxy", "xywh").tolist() == [[1.0, 2.0, 4.0, 6.0]]
    assert box_convert(xyxy, "xyxy", "cxcywh").tolist() == [[3.0, 5.0, 4.0, 6.0]]
    assert box_convert(torch.tensor([[3.0, 5.0, 4.0, 6.0]]), "cxcywh", "xywh").tolist() == [
        [1.0, 2.0, 4.0, 6.0]]
    boxes = torch.rand(10, 3, 4, dtype=torch.float64)
    for a in ("xyxy", "xywh", "cxcywh"):
        for b in ("xyxy", "xywh", "cxcywh"):
            back = box_convert(box_convert(boxes, a, b), b, a)
            torch.testing.assert_close(back, boxes, rtol=0, atol=1e-15)
    same = box_convert(boxes, "xywh", "xywh")
    assert torch.equal(same, boxes) and same.data_ptr() != boxes.data_ptr()
    with pytest.raises(CnnkitError, match="out_fmt"):
        box_convert(boxes, "xyxy", "yxyx")


def test_clip_and_remove_small_boxes() -> None:
    boxes = torch.tensor([[-5.0, 3.0, 20.0, 40.0], [1.0, 1.0, 2.5, 9.0], [0.0, 0.0, 3.0, 3.0]])
    clipped = clip_boxes_to_image(boxes, (30, 10))
    assert clipped.tolist() == [[0.0, 3.0, 10.0, 30.0], [1.0, 1.0, 2.5, 9.0], [0.0, 0.0, 3.0, 3.0]]
    assert remove_small_boxes(boxes, 2.0).tolist() == [0, 2]
    assert remove_small_boxes(boxes, 1.5).tolist() == [0, 1, 2]
    with pytest.raises(CnnkitError, match="size"):
        clip_boxes_to_image(boxes, 30)


def test_box_coder_hand_case_round_trip_and_clip() -> None:
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    proposal = torch.tensor([[0.0, 0.0, 10.0, 20.0]], dtype=torch.float64)
    target = torch.tensor([[5.0, 10.0, 25.0, 50.0]], dtype=torch.float64)
    codes = coder.encode_single(target, proposal)
    # centres (5, 10) -> (15, 30), sizes (10, 20) -> (20, 40)
    torch.testing.assert_close(codes, torch.tensor([[10.0, 10.0, 5 * math.log(2), 5 * math.log(2)]],
                                                   dtype=torch.float64))
    torch.testing.assert_close(coder.decode_single(codes, proposal), target)
    xy = torch.rand(50, 2, dtype=torch.float64) * 100
    props = torch.cat([xy, xy + 1 + torch.rand(50, 2, dtype=torch.float64) * 50], dim=1)
    gts = props + torch.randn(50, 4, dtype=torch.float64) * 3
    gts[:, 2:] = torch.max(gts[:, 2:], gts[:, :2] + 0.5)
    torch.testing.assert_close(coder.decode_single(coder.encode_single(gts, props), props), gts)
    # batched over images, and several boxes (classes) per reference
    targets = coder.encode([gts[:20], gts[20:]], [props[:20], props[20:]])
    assert [t.shape for t in targets] == [(20, 4), (30, 4)]
    decoded = coder.decode(torch.cat(targets).repeat(1, 3), [props[:20], props[20:]])
    assert decoded.shape == (50, 3, 4)
    torch.testing.assert_close(decoded[:, 2], gts)
    # dw, dh above log(1000 / 16) are clamped: at most 62.5 times the reference size
    huge = torch.tensor([[0.0, 0.0, 5 * 20.0, 5 * 20.0]], dtype=torch.float64)
    box = coder.decode_single(huge, proposal)[0]
    assert box.tolist() == pytest.approx([5 - 312.5, 10 - 625.0, 5 + 312.5, 10 + 625.0])
    with pytest.raises(CnnkitError, match="weights"):
        BoxCoder((1.0, 1.0, 1.0))


def test_ops_import_only_torch_math_and_cnnkit_errors() -> None:
    folder = Path(__file__).resolve().parents[2] / "src" / "cnnkit" / "ops"
    allowed = ("torch", "math", "__future__", "cnnkit.errors", "cnnkit.ops")
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                names = [f"{base}.{alias.name}" if base == "cnnkit" else base
                         for alias in node.names]
            else:
                continue
            for name in names:
                assert any(name == a or name.startswith(a + ".") for a in allowed), (path, name)
