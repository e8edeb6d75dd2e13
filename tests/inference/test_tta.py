"""Test-time augmentation (ten crops, scales, flips) and sliding-window inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.models.localization.classloc import ClassesAndBoxes
from cnnkit.errors import CnnkitError
from cnnkit.inference import (DECK_SCALES, DihedralTTA, FlipTTA, classify_tta, five_crop_positions,
                              multi_scale_views, reflect_pad, resize_short_side,
                              sliding_window_inference, ten_crop)
from cnnkit.tasks import build_task
from cnnkit.data.heatmaps import gaussian_heatmaps
from cnnkit.tasks.keypoint_decode import decode_heatmaps


def test_ten_crop_positions_by_hand() -> None:
    # 5 x 7 image whose value is its pixel index: the crops' top-left values give their positions
    image = torch.arange(35.0).reshape(1, 1, 5, 7)
    assert five_crop_positions(5, 7, 3) == [(0, 0), (0, 4), (2, 0), (2, 4), (1, 2)]
    crops = ten_crop(image, 3)
    assert len(crops) == 10 and all(c.shape == (1, 1, 3, 3) for c in crops)
    assert [float(c[0, 0, 0, 0]) for c in crops[:5]] == [0.0, 4.0, 14.0, 18.0, 9.0]
    assert crops[3][0, 0].tolist() == [[18.0, 19.0, 20.0], [25.0, 26.0, 27.0], [32.0, 33.0, 34.0]]
    for plain, mirrored in zip(crops[:5], crops[5:]):
        assert torch.equal(mirrored, plain.flip(-1))
    assert float(crops[5][0, 0, 0, 0]) == 2.0  # mirror of the top-left crop starts at its right
    with pytest.raises(ValueError, match="crop size"):
        ten_crop(image, 6)


def test_multi_scale_views_count_and_sizes() -> None:
    assert DECK_SCALES == (224, 256, 384, 480, 640)
    image = torch.rand(1, 3, 20, 30)
    views = list(multi_scale_views(image, scales=(8, 10, 12, 16, 20), crop=8))
    assert len(views) == 5 * 10
    assert all(v.shape == (1, 3, 8, 8) for v in views)
    assert resize_short_side(image, 10).shape == (1, 3, 10, 15)
    assert resize_short_side(torch.rand(1, 3, 30, 20), 12).shape == (1, 3, 18, 12)


def test_multi_scale_views_at_the_deck_scales() -> None:
    views = list(multi_scale_views(torch.rand(1, 3, 300, 400)))
    assert len(views) == 50 and {tuple(v.shape) for v in views} == {(1, 3, 224, 224)}


class MeanColourClassifier(nn.Module):
    """Scores = per-channel means: invariant to crops of a flat image, known by hand otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return x.mean(dim=(2, 3))


def test_classify_tta_averages_probabilities_or_logits() -> None:
    images = torch.rand(2, 3, 1, 1).expand(2, 3, 12, 16).contiguous()  # flat colours
    model = MeanColourClassifier()
    logits = images[:, :, 0, 0]
    torch.testing.assert_close(classify_tta(model, images, crop=8, average="logits"), logits)
    torch.testing.assert_close(classify_tta(model, images, crop=8), logits.softmax(dim=1))
    assert model.calls == [20, 20]  # ten views of 2 images in one call
    model.calls.clear()
    out = classify_tta(model, images, crop=8, scales=(8, 10, 12, 16, 20), views_per_call=4)
    torch.testing.assert_close(out, logits.softmax(dim=1))
    assert sum(model.calls) == 2 * 50 and max(model.calls) == 8


def test_classify_tta_probability_average_by_hand() -> None:
    # left half 0, right half 1 in channel 0: corner crops see one half each, centre both
    image = torch.zeros(1, 2, 4, 4)
    image[0, 0, :, 2:] = 1.0
    out = classify_tta(MeanColourClassifier(), image, crop=2)
    expected = sum(torch.tensor([v, 0.0]).softmax(0) for v in (0, 1, 0, 1, 0.5)) / 5
    torch.testing.assert_close(out[0], expected)


def test_segmentation_flip_tta_with_flip_equivariant_model() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
    with torch.no_grad():  # a horizontally symmetric kernel is exactly flip-equivariant
        conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    images = torch.rand(2, 3, 9, 11)
    plain = conv(images).detach()
    task = build_task("segmentation", num_classes=4)
    torch.testing.assert_close(FlipTTA(conv, task)(images), plain, atol=1e-6, rtol=0)
    identity = nn.Identity()
    assert torch.equal(FlipTTA(identity, task)(images), images)


def test_d4_tta_brings_each_turned_view_back_exactly() -> None:
    task = build_task("segmentation", num_classes=3)
    images = torch.rand(2, 3, 6, 10)  # not square: the odd turns go through as 10 x 6
    torch.testing.assert_close(DihedralTTA(nn.Identity(), task)(images), images, atol=1e-6, rtol=0)
    square = torch.zeros(1, 1, 5, 5)

    def column_ramp(x: torch.Tensor) -> torch.Tensor:  # not turn-equivariant: adds the column
        return x + torch.arange(x.shape[-1], dtype=x.dtype)

    # brought back, the ramp j is seen as j, 4 - j, i and 4 - i, twice each: the mean is 2
    assert torch.equal(DihedralTTA(column_ramp, task)(square), torch.full_like(square, 2.0))


def test_d4_tta_with_a_d4_symmetric_kernel_changes_nothing() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        kernels = [torch.rot90(w, t, dims=(-2, -1)) for t in range(4)
                   for w in (conv.weight, conv.weight.flip(-1))]
        conv.weight.copy_(torch.stack(kernels).mean(dim=0))
    images = torch.rand(2, 3, 8, 12)
    task = build_task("segmentation", num_classes=4)
    torch.testing.assert_close(DihedralTTA(conv, task)(images), conv(images).detach(),
                               atol=1e-6, rtol=0)


def test_d4_tta_refuses_turning_outputs_and_misaligned_maps() -> None:
    images = torch.rand(1, 1, 8, 10)
    with pytest.raises(CnnkitError, match="d4 test-time augmentation is not defined for "
                                          "classification: its outputs do not stay the same"):
        DihedralTTA(lambda x: x.mean(dim=(-2, -1)), build_task("classification",
                                                               num_classes=1))(images)
    with pytest.raises(CnnkitError, match="maps whose height and width divide the input's "
                                          "8x10; the model gives 3x4"):
        DihedralTTA(lambda x: F.avg_pool2d(x, 3, ceil_mode=True),
                    build_task("segmentation", num_classes=1))(images)


class DotHeatmapModel(nn.Module):
    """Finds the two bright dots of a 1-channel image at output stride ``stride`` and renders a
    Gaussian for the one further left in channel 0 ("left") and the other in channel 1,
    as a network that knows left from right by appearance would on a mirrored person."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, self.stride)
        n, _, h, w = pooled.shape
        flat = pooled.flatten(1)
        top2 = flat.topk(2, dim=1).indices
        xy = torch.stack([top2 % w, top2 // w], dim=-1).float()  # N x 2 x (x, y)
        order = xy[..., 0].argsort(dim=1)
        xy = torch.gather(xy, 1, order[..., None].expand(n, 2, 2))
        return gaussian_heatmaps(xy, h, w, sigma=1.5)


@pytest.mark.parametrize("stride", [1, 4])
def test_heatmap_flip_tta_unflips_and_swaps_left_right(stride: int) -> None:
    image = torch.zeros(1, 1, 32, 48)
    # dots filling whole stride cells: cell (x=2, y=3) and cell (x=9, y=5) at this stride
    for cx, cy in ((2, 3), (9, 5)):
        image[..., cy * stride:(cy + 1) * stride, cx * stride:(cx + 1) * stride] = 1.0
    model = DotHeatmapModel(stride)
    task = build_task("keypoints-heatmap", num_keypoints=2, flip_pairs=[(0, 1)],
                      keypoint_names=["left_wrist", "right_wrist"])
    plain = model(image)
    averaged = FlipTTA(model, task)(image)
    torch.testing.assert_close(averaged, plain, atol=1e-6, rtol=0)
    # without the channel swap the averaged maps would be wrong: check the swap matters
    mirrored = model(image.flip(-1)).flip(-1)
    assert not torch.allclose(mirrored, plain)
    keypoints = decode_heatmaps(averaged, stride=stride, refinement=None)
    expected = torch.tensor([[2.0, 3.0], [9.0, 5.0]]) * stride + (stride - 1) / 2
    assert torch.equal(keypoints.xy[0], expected)


def test_heatmap_flip_tta_keeps_background_and_refuses_misaligned_strides() -> None:
    def left(x: torch.Tensor) -> torch.Tensor:  # any map that is not mirror-symmetric
        return x[:, :1] * torch.arange(x.shape[-1], dtype=x.dtype)

    def with_background(x: torch.Tensor) -> torch.Tensor:  # right = mirror of left's response
        return torch.cat([left(x), left(x.flip(-1)).flip(-1), torch.ones_like(x[:, :1])], dim=1)

    images = torch.rand(2, 1, 6, 8)
    task = build_task("keypoints-heatmap", num_keypoints=2, flip_pairs=[(0, 1)], background=True)
    out = FlipTTA(with_background, task)(images)
    torch.testing.assert_close(out, with_background(images))
    single = build_task("keypoints-heatmap", num_keypoints=1, flip_pairs=[])
    with pytest.raises(CnnkitError, match="not a multiple of the heatmap width"):
        FlipTTA(lambda x: F.avg_pool2d(x, 4, ceil_mode=True), single)(torch.rand(1, 1, 8, 10))
    with pytest.raises(CnnkitError, match="N x 1 x h x w"):
        FlipTTA(with_background, single)(images)


class TileOnly(nn.Module):
    """A per-pixel model (2 * x + 1 per channel, plus a channel of ones) that refuses any input
    larger than its tile and records its batch sizes."""

    def __init__(self, tile: tuple[int, int]) -> None:
        super().__init__()
        self.tile = tile
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.tile:
            raise RuntimeError(f"input {tuple(x.shape[-2:])} is not the tile {self.tile}")
        self.batches.append(x.shape[0])
        return torch.cat([2 * x + 1, torch.ones_like(x[:, :1])], dim=1)


@pytest.mark.parametrize("blend", ["uniform", "gaussian"])
@pytest.mark.parametrize("tile,overlap", [(16, 0), (16, 5), ((12, 20), (4, 7))])
def test_sliding_window_reproduces_a_per_pixel_model_across_seams(tile, overlap, blend) -> None:
    images = torch.rand(2, 3, 37, 53)  # sizes that no tile or step divides
    tile_hw = (tile, tile) if isinstance(tile, int) else tile
    model = TileOnly(tile_hw)
    with pytest.raises(RuntimeError):
        model(images)
    out = sliding_window_inference(model, images, tile, overlap, blend=blend, batch_size=3)
    expected = torch.cat([2 * images + 1, torch.ones_like(images[:, :1])], dim=1)
    assert out.shape == (2, 4, 37, 53)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert max(model.batches) <= 3 * 2 and len(model.batches) > 1


def test_sliding_window_on_an_image_smaller_than_the_tile_and_bad_arguments() -> None:
    images = torch.rand(1, 1, 5, 7)
    out = sliding_window_inference(TileOnly((16, 16)), images, 16, 4)
    torch.testing.assert_close(out[:, :1], 2 * images + 1)
    with pytest.raises(ValueError, match="overlap must be in"):
        sliding_window_inference(TileOnly((8, 8)), images, 8, 8)
    with pytest.raises(ValueError, match="logits"):
        sliding_window_inference(lambda x: x[..., ::2, ::2], images, 4)


def test_reflect_pad_mirrors_without_repeating_the_edge_and_beyond_the_size() -> None:
    row = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    assert reflect_pad(row, 2, 1, 0, 0).tolist() == [[[[2.0, 1.0, 0.0, 1.0, 2.0, 1.0]]]]
    wide = reflect_pad(row, 5, 0, 0, 0)  # more than one reflection
    assert wide.tolist() == [[[[1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0]]]]


def test_flip_tta_module_averages_class_scores_of_both_views() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 5))  # not mirror-symmetric
    images = torch.randn(3, 2, 3, 4)
    expected = (model(images) + model(images.flip(-1))) / 2
    task = build_task("classification", num_classes=5)
    assert torch.allclose(FlipTTA(model, task)(images), expected, atol=1e-6)


def test_flip_tta_of_regressed_keypoints_and_boxes_mirrors_coordinates() -> None:
    images = torch.rand(2, 3, 8, 10)
    points = torch.tensor([[[0.25, 0.5], [0.75, 0.5]]]).repeat(2, 1, 1)  # left, right

    def mirrored_half(x: torch.Tensor) -> torch.Tensor:  # FlipTTA puts the mirrors second
        return torch.arange(len(x)) >= len(x) // 2

    def regressor(x: torch.Tensor) -> torch.Tensor:  # sees a mirrored image as mirrored points
        mirrored = torch.stack([1 - points[..., 0], points[..., 1]], -1)[:, [1, 0]]
        both = torch.cat([points, points])
        return torch.where(mirrored_half(x)[:, None, None], torch.cat([mirrored, mirrored]), both)

    task = build_task("keypoints-regression", num_keypoints=2, flip_pairs=[(0, 1)])
    assert torch.equal(FlipTTA(regressor, task)(images), points)
    boxes = torch.tensor([[0.3, 0.4, 0.2, 0.2]]).repeat(2, 1)
    logits = torch.randn(2, 3)

    def localizer(x: torch.Tensor) -> ClassesAndBoxes:
        mirrored = torch.cat([1 - boxes[:, :1], boxes[:, 1:]], 1)
        return ClassesAndBoxes(torch.cat([logits, logits]),
                               torch.where(mirrored_half(x)[:, None], torch.cat([mirrored] * 2),
                                           torch.cat([boxes, boxes])))

    out = FlipTTA(localizer, build_task("localization", num_classes=3))(images)
    assert isinstance(out, ClassesAndBoxes) and torch.allclose(out.boxes, boxes)
    with pytest.raises(CnnkitError, match="flip_pairs"):
        FlipTTA(regressor, build_task("keypoints-regression", num_keypoints=2))(images)
