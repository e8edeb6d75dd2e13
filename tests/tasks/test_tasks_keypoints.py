"""Keypoint tasks: heatmap losses, PCK and pixel error by hand, mapping back to the original
image through real cnnkit transforms."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.data.batch import collate_samples
from cnnkit.data.heatmaps import HeatmapTarget, keypoint_heatmaps
from cnnkit.data.sample import Sample
from cnnkit.geometry import Skeleton
from cnnkit.data.transforms import (Affine, CenterCrop, Compose, HorizontalFlip, LensDistortion,
                                    Pad, Resize)
from cnnkit.errors import CnnkitError
from cnnkit.tasks import build_task, to_original
from cnnkit.geometry import pixels_to_normalized
from cnnkit.tasks.losses import heatmap_mse, heatmap_pixel_ce, heatmap_spatial_ce

POINTS = torch.tensor([[3.0, 4.0], [50.25, 10.5], [20.0, 33.75]])
SKELETON = Skeleton(("left", "right", "tail"), ((0, 1),))


def synthetic(points: torch.Tensor = POINTS, height: int = 40, width: int = 60) -> Sample:
    return Sample(torch.rand(3, height, width), keypoints=points.clone(), skeleton=SKELETON,
                  meta={"original_size": (height, width)})


@pytest.mark.parametrize("pipeline", [
    Compose([Resize((30, 45)), CenterCrop(28)]),
    Compose([Pad((3, 1, 2, 5)), Resize(24), CenterCrop((20, 26)), HorizontalFlip(p=1.0)]),
    Compose([Resize((20, 30)), Affine(degrees=(10, 10), scale=(1.1, 1.1))]),
])
def test_to_original_inverts_the_recorded_transforms(pipeline):
    out = pipeline(synthetic(), torch.Generator().manual_seed(0))
    back = to_original(out.keypoints, out.meta, out.size, SKELETON.flip_permutation())
    torch.testing.assert_close(back, POINTS, atol=1e-4, rtol=0)


def test_to_original_refuses_what_it_cannot_invert():
    sample = synthetic()
    distorted = LensDistortion(k1=(0.05, 0.05))(sample)
    with pytest.raises(CnnkitError, match="lens_distortion"):
        to_original(distorted.keypoints, distorted.meta, distorted.size)
    resized = Resize(20)(sample.replace(meta={}))
    with pytest.raises(CnnkitError, match="original_size"):
        to_original(resized.keypoints, resized.meta, resized.size)


def _batch(points: torch.Tensor, visible: torch.Tensor, size: int = 10, meta=None):
    return {"image": torch.zeros(1, 3, size, size), "keypoints": points[None],
            "visible": visible[None], "meta": [meta or {}]}


def test_pck_and_mean_error_by_hand_with_invisible_point():
    gt = torch.tensor([[2.0, 2.0], [5.0, 5.0], [7.0, 7.0]])
    visible = torch.tensor([True, True, False])
    pred = torch.tensor([[5.0, 2.0], [9.0, 8.0], [0.0, 0.0]])  # errors 3, 5 and (invisible) 9.9
    task = build_task("keypoints-regression", num_keypoints=3, pck_threshold=4.0,
                      keypoint_names=("a", "b", "c"))
    metric = task.new_metric()
    metric.update(pixels_to_normalized(pred, 10, 10)[None], _batch(gt, visible))
    figures = metric.compute()
    assert figures["pck"] == 0.5 and figures["pck/a"] == 1.0 and figures["pck/b"] == 0.0
    assert figures["mean_error"] == pytest.approx(4.0)
    assert figures["error/b"] == pytest.approx(5.0)
    assert math.isnan(figures["pck/c"]) and math.isnan(figures["error/c"])
    # the same sample shown to the network at half size: errors are measured at full size
    half = _batch((gt + 0.5) / 2 - 0.5, visible, 5, {"original_size": (10, 10),
                                                     "transforms": [("resize", {"size": (5, 5)})]})
    metric = task.new_metric()
    metric.update(pixels_to_normalized((pred + 0.5) / 2 - 0.5, 5, 5)[None], half)
    assert metric.compute()["mean_error"] == pytest.approx(4.0)
    # PCK relative to the ground-truth distance between keypoints 0 and 1 (3 * sqrt(2))
    relative = build_task("keypoints-regression", num_keypoints=3, pck_threshold=1.0,
                          pck_reference=(0, 1)).new_metric()
    relative.update(pixels_to_normalized(pred, 10, 10)[None], _batch(gt, visible))
    assert relative.compute()["pck"] == 0.5  # 3 <= 4.24 < 5
    # PCK relative to the longer side of the sample's box (the whole image: 10 px) -> 4 px
    boxed = build_task("keypoints-regression", num_keypoints=3, pck_threshold=0.4,
                       pck_reference="box").new_metric()
    batch = {**_batch(gt, visible), "boxes": torch.tensor([[-0.5, -0.5, 9.5, 9.5]])}
    boxed.update(pixels_to_normalized(pred, 10, 10)[None], batch)
    assert boxed.compute()["pck"] == 0.5


def test_regression_loss_is_visibility_masked():
    task = build_task("keypoints-regression", num_keypoints=2)
    gt = torch.tensor([[2.0, 2.0], [float("nan"), float("nan")]])
    batch = _batch(gt, torch.tensor([True, False]))
    target = pixels_to_normalized(gt, 10, 10)[None]
    output = target.clone()
    output[0, 0, 0] += 0.1
    output[0, 1] = 0.3
    loss, _ = task.loss(output.requires_grad_(), batch)
    assert loss.item() == pytest.approx(0.01)
    loss.backward()


def test_heatmap_losses_go_to_zero_for_perfect_predictions():
    keypoints = torch.tensor([[3.0, 4.0], [9.0, 2.0]])
    visible = torch.tensor([True, True])
    peak, weights = (t[None] for t in keypoint_heatmaps(keypoints, visible, (16, 16), 2, 1.0))
    noise = torch.rand_like(peak)
    mse = [heatmap_mse(noise + t * (peak - noise), peak, weights)[None] for t in (0, .5, .9, 1)]
    assert torch.all(torch.cat(mse).diff() < 0) and heatmap_mse(peak, peak, weights) == 0
    dist, weights = keypoint_heatmaps(keypoints, visible, (16, 16), 2, 1.0, normalize="sum")
    logits = dist.clamp(min=1e-30).log()
    ce = [heatmap_spatial_ce((t * logits)[None], dist[None], weights[None]) for t in (0.0, .5, 1)]
    assert ce[0] > ce[1] > ce[2] and ce[2].abs() < 1e-5
    maps, _ = keypoint_heatmaps(keypoints, visible, (16, 16), 2, 1.0, background=True)
    logits = maps.clamp(min=1e-30).log()[None]
    assert heatmap_pixel_ce(logits, maps[None]).abs() < 1e-5
    assert heatmap_pixel_ce(0.5 * logits, maps[None]) > 1e-3


def test_heatmap_task_weights_stages_and_targets():
    skeleton = Skeleton(("a", "b"))
    sample = Sample(torch.rand(3, 16, 16), keypoints=torch.tensor([[4.5, 6.5], [12.5, 2.5]]),
                    visible=torch.tensor([True, False]), skeleton=skeleton)
    task = build_task("keypoints-heatmap", num_keypoints=2, sigma=1.0)
    batch = collate_samples([HeatmapTarget(stride=2, sigma=1.0)(sample)])
    rendered = task.targets(torch.zeros(1, 1, 2, 8, 8), {k: v for k, v in batch.items()
                                                          if not k.startswith("heatmap")})
    assert torch.equal(rendered[0], batch["heatmaps"]) and rendered[1].tolist() == [[1.0, 0.0]]
    perfect = batch["heatmaps"].clone()
    perfect[0, 1] = 5.0  # the invisible keypoint's map does not count
    assert task.loss(perfect, batch)[0] == 0.0
    two_stages = torch.stack([torch.zeros_like(perfect), perfect], 1)  # CPM: N x T x K x h x w
    loss, parts = task.loss(two_stages, batch)
    assert loss == parts["stage1"] > 0 and parts["stage2"] == 0.0
    figures = task.new_metric()
    figures.update(perfect, batch)
    assert figures.compute()["mean_error"] == 0.0  # cell centres decode exactly
    decoded = task.decode(perfect, batch)[0]
    assert decoded["keypoints"][0] == [4.5, 6.5] and decoded["confidence"][0] == 1.0
    with pytest.raises(ValueError, match="N x 2 x h x w"):
        task.loss(torch.zeros(1, 3, 8, 8), batch)
