"""Evaluation mode of the detectors, cnnkit's frame, mask pasting, keypoint decoding, analysis."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnkit.analysis import analyze
from cnnkit.errors import ArgumentError
from cnnkit.geometry import normalized_to_boxes
from cnnkit.models import create
from cnnkit.models.detection import (
    from_reference_frame,
    heatmaps_to_keypoints,
    keypoints_to_heatmap,
    paste_masks_in_image,
    to_reference_frame,
)
from cnnkit.models.detection.keypoints import _cubic_weights
from cnnkit.models.detection.transform import scale_points

FAST = {"min_size": 96, "max_size": 160, "rpn_pre_nms_top_n_test": 200,
        "rpn_post_nms_top_n_test": 100, "box_detections_per_img": 10}


@pytest.mark.parametrize("name, extra", [
    ("fasterrcnn_resnet18_fpn", {}),
    ("maskrcnn_resnet18_fpn", {"masks": 1}),
    ("keypointrcnn_resnet18_fpn", {"keypoints": 17, "keypoints_scores": 17})])
def test_eval_returns_documented_dicts_at_the_original_size(name: str, extra: dict) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=3, **FAST).eval()
    images = [torch.rand(3, 120, 90), torch.rand(3, 64, 100)]
    with torch.no_grad():
        out = model(images)
        as_list = model([images[0], images[0]])
        as_batch = model(torch.stack([images[0], images[0]]))  # a batch tensor works too
    assert len(out) == 2 and set(out[0]) == {"boxes", "labels", "scores", *extra}
    for result, image in zip(out, images):
        h, w = image.shape[-2:]
        n = len(result["boxes"])
        assert 0 < n <= 10 and result["boxes"].shape == (n, 4)
        assert result["labels"].dtype == torch.int64 and result["scores"].shape == (n,)
        assert bool(((result["labels"] >= 1) & (result["labels"] <= 2)).all())
        boxes = result["boxes"]  # cnnkit frame: the image spans [-0.5, W - 0.5]
        assert bool((boxes[:, 0::2] >= -0.5).all() and (boxes[:, 0::2] <= w - 0.5).all())
        assert bool((boxes[:, 1::2] >= -0.5).all() and (boxes[:, 1::2] <= h - 0.5).all())
        if "masks" in extra:
            masks = result["masks"]
            assert masks.shape == (n, 1, h, w) and 0 <= masks.min() and masks.max() <= 1
        if "keypoints" in extra:
            kp = result["keypoints"]
            assert kp.shape == (n, 17, 3) and result["keypoints_scores"].shape == (n, 17)
            inside = ((kp[..., 0] >= boxes[:, None, 0] - 1e-4)
                      & (kp[..., 0] <= boxes[:, None, 2] + 1e-4))
            assert bool(inside.all()) and bool((kp[..., 2] == 1).all())
    for a, b in zip(as_list, as_batch):
        torch.testing.assert_close(a["boxes"], b["boxes"])


def test_frame_conversion_round_trips_and_agrees_with_cnnkit_resizing() -> None:
    target = {"boxes": torch.tensor([[-0.5, -0.5, 99.5, 49.5], [10.0, 3.0, 20.5, 7.25]]),
              "keypoints": torch.tensor([[[0.0, 0.0, 2.0], [99.0, 49.0, 1.0]]] * 2)}
    moved = to_reference_frame(target)
    assert torch.equal(moved["boxes"][0], torch.tensor([0.0, 0.0, 100.0, 50.0]))
    assert torch.equal(moved["keypoints"][..., 2], target["keypoints"][..., 2])
    back = from_reference_frame(moved)
    for key, value in target.items():
        torch.testing.assert_close(back[key], value)
    # resizing in the reference frame is cnnkit's x -> (x + 0.5) s - 0.5
    scaled = from_reference_frame({"boxes": scale_points(moved["boxes"], (50, 100), (75, 250))})
    expected = (target["boxes"] + 0.5) * torch.tensor([2.5, 1.5, 2.5, 1.5]) - 0.5
    torch.testing.assert_close(scaled["boxes"], expected)
    # the whole image is the box (0, 0, 1, 1) in normalised coordinates in both views
    whole = normalized_to_boxes(torch.tensor([[0.5, 0.5, 1.0, 1.0]]), 50, 100)
    torch.testing.assert_close(to_reference_frame({"boxes": whole})["boxes"],
                               torch.tensor([[0.0, 0.0, 100.0, 50.0]]))


def test_mask_of_ones_covers_exactly_its_box() -> None:
    boxes = torch.tensor([[10.0, 20.0, 40.0, 30.0],     # pixel edges (reference frame)
                          [3.3, 4.6, 17.2, 9.9],        # fractional edges
                          [-5.0, 50.0, 12.0, 80.0],     # partly outside the image
                          [30.0, 30.0, 30.4, 31.0]])    # thinner than a pixel: no centre inside
    pasted = paste_masks_in_image(torch.ones(4, 1, 28, 28), boxes, (60, 50))
    assert pasted.shape == (4, 1, 60, 50)
    centres_x = torch.arange(50) + 0.5
    centres_y = torch.arange(60) + 0.5
    for mask, (x1, y1, x2, y2) in zip(pasted[:, 0], boxes.tolist()):
        inside = (((centres_y >= y1) & (centres_y < y2))[:, None]
                  & ((centres_x >= x1) & (centres_x < x2))[None, :])
        assert torch.equal(mask >= 0.5, inside)
        torch.testing.assert_close(mask, inside.float())
    # the reference's method (one-pixel padding, box grown by 30/28) leaks past the box edges
    reference = paste_masks_in_image(torch.ones(1, 1, 28, 28), boxes[:1], (60, 50), "reference")
    assert reference[0, 0, 25, 25] == 1 and (reference[0, 0] >= 0.5).sum() > 30 * 10
    with pytest.raises(ArgumentError, match="mask_paste"):
        paste_masks_in_image(torch.ones(1, 1, 28, 28), boxes[:1], (60, 50), "nearest")


def test_mask_paste_follows_the_mask_inside_the_box() -> None:
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :, :14] = 1.0  # left half
    pasted = paste_masks_in_image(mask, torch.tensor([[0.0, 0.0, 56.0, 28.0]]), (28, 56))[0, 0]
    assert torch.equal(pasted >= 0.5, torch.arange(56)[None, :].expand(28, 56) < 28)


def test_bicubic_weights_match_interpolate_and_keypoints_decode_to_their_cell() -> None:
    torch.manual_seed(0)
    maps = torch.randn(3, 56, 56)
    for size in (1, 20, 56, 57, 130):
        along = _cubic_weights(torch.tensor([float(size)]), 56, size)[0]
        expected = F.interpolate(maps[:, None], size=(size, size), mode="bicubic",
                                 align_corners=False)[:, 0]
        torch.testing.assert_close(along @ maps @ along.T, expected, atol=1e-4, rtol=1e-5)
    rois = torch.tensor([[10.0, 20.0, 122.0, 76.0], [0.0, 0.0, 30.5, 200.0]])
    keypoints = torch.tensor([[[50.0, 40.0, 1.0], [121.0, 75.0, 2.0], [5.0, 5.0, 1.0]],
                              [[15.0, 100.0, 1.0], [30.5, 200.0, 1.0], [3.0, 3.0, 0.0]]])
    cells, valid = keypoints_to_heatmap(keypoints, rois, 56)
    assert valid.tolist() == [[1, 1, 0], [1, 1, 0]]
    assert cells[0, 1] == 55 * 56 + 55 and cells[1, 1] == 55 * 56 + 55  # on the far edge
    logits = F.one_hot(cells, 56 * 56).float().view(2, 3, 56, 56) * 10
    points, scores = heatmaps_to_keypoints(logits, rois)
    assert points.shape == (2, 3, 3) and scores.shape == (2, 3)
    cell_w = (rois[:, 2] - rois[:, 0]) / 56
    cell_h = (rois[:, 3] - rois[:, 1]) / 56
    for r in range(2):
        for k in range(2):
            assert abs(points[r, k, 0] - keypoints[r, k, 0]) <= cell_w[r] + 1e-4
            assert abs(points[r, k, 1] - keypoints[r, k, 1]) <= cell_h[r] + 1e-4
    empty_points, empty_scores = heatmaps_to_keypoints(torch.zeros(0, 3, 56, 56),
                                                       torch.zeros(0, 4))
    assert empty_points.shape == (0, 3, 3) and empty_scores.shape == (0, 3)
    with torch.autocast("cpu", torch.bfloat16):  # an evaluation under bf16 autocast
        in_autocast = heatmaps_to_keypoints(logits, rois)
    assert torch.equal(in_autocast[0], points) and torch.equal(in_autocast[1], scores)


def test_analyzer_reports_the_model_on_cpu_and_refuses_meta() -> None:
    model = create("fasterrcnn_resnet18_fpn", num_classes=3, **FAST)
    with pytest.raises(ArgumentError, match="device='cpu'"):
        analyze(model, (3, 96, 96))  # meta: NMS and thresholds need values
    report = analyze(model, (3, 96, 96), device="cpu")
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    assert report.totals["macs"] > 0
    assert "roi_heads.box_roi_pool" in {row.name for row in report.layers}
    with torch.no_grad():  # the meta attempt did not break the model
        assert len(model.eval()([torch.rand(3, 96, 96)])) == 1


@pytest.mark.parametrize("name, extra", [
    ("fasterrcnn_resnet18_fpn", set()),
    ("maskrcnn_resnet18_fpn", {"masks"}),
    ("keypointrcnn_resnet18_fpn", {"keypoints", "keypoints_scores"})])
def test_no_proposals_gives_empty_detections(name: str, extra: set) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=3, **FAST).eval()
    images = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        features = model.backbone(images)
        nothing = [torch.zeros(0, 4), torch.zeros(0, 4)]
        results, losses = model.roi_heads(features, nothing, [(96, 96), (96, 96)])
    assert losses == {} and len(results) == 2
    for result in results:
        assert set(result) == {"boxes", "labels", "scores"} | extra
        assert result["boxes"].shape == (0, 4) and result["scores"].shape == (0,)


def test_gray_detectors_take_one_channel_with_imagenets_mean_normalisation() -> None:
    torch.manual_seed(0)
    model = create("maskrcnn_resnet18_fpn", num_classes=2, in_channels=1, **FAST).eval()
    assert model.backbone.body.conv1.in_channels == 1
    assert model.transform.image_mean == pytest.approx((0.449,))
    assert model.transform.image_std == pytest.approx((0.226,))
    with torch.no_grad():
        (out,) = model([torch.rand(1, 80, 64)])
    assert out["masks"].shape[1:] == (1, 80, 64)
    with pytest.raises(ArgumentError, match="images must have 1 channels"):
        model([torch.rand(3, 80, 64)])
