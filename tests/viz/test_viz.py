"""Pillow pictures: sizes and modes, lines where the data is, exact palette colours, keypoints
and boxes on the right pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data.sample import IGNORE_INDEX
from cnnkit.geometry import Skeleton
from cnnkit.tasks import build_task
from cnnkit.viz import (
    Series,
    cell_origin,
    colorize_mask,
    confusion_matrix_image,
    curve_names,
    draw_boxes,
    draw_keypoints,
    epoch_curves,
    label_palette,
    line_plot,
    nice_ticks,
    overlay_mask,
    plot_training_curves,
    to_pil,
)
from cnnkit.viz.plots import MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP
from cnnkit.viz.style import LEFT_COLOR, RIGHT_COLOR, sequential_color

RED = (255, 0, 0)


def test_nice_ticks():
    assert nice_ticks(1, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-3, 250) == [-100, 0, 100, 200, 300]


def test_line_plot_draws_the_line_where_the_data_is():
    # x 0..10 and y 0..10 are exactly the tick ranges, so data maps linearly onto the plot box
    size = (400, 300)
    image = line_plot([Series("diag", [0, 10], [0, 10], color=RED)], size=size, markers=False)
    assert image.size == size and image.mode == "RGB"
    pixels = np.asarray(image)
    left, right = MARGIN_LEFT, size[0] - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, size[1] - MARGIN_BOTTOM
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    for f in (0.2, 0.5, 0.8):  # points on the diagonal, away from the legend
        x, y = round(left + f * (right - left)), round(bottom - f * (bottom - top))
        assert red[y - 2:y + 3, x - 2:x + 3].any(), f
    assert not red[top + 5: (top + bottom) // 2, left + 5: (left + right) // 2 - 10].any()


def test_training_curves_from_long_rows():
    rows = [{"epoch": e, "step": e * 2 + s, "split": "train", "name": "loss",
             "value": 1.0 / (e + 1)} for e in range(3) for s in range(2)]
    rows += [{"epoch": e + 1, "step": e * 2 + 2, "split": "val", "name": name, "value": v}
             for e in range(3) for name, v in (("loss", 2.0), ("accuracy", 0.5), ("iou/cat", 0.1))]
    curves = epoch_curves(rows)
    assert curves["loss"]["train"] == ([1.0, 2.0, 3.0], [1.0, 0.5, 1 / 3])  # drawn at epoch ends
    assert curves["loss"]["val"] == ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    image = plot_training_curves(rows, panel_size=(300, 200))
    assert image.size == (600, 200)  # loss and accuracy panels; the per-class figure is left out
    with pytest.raises(ValueError, match="no figures named miou"):
        plot_training_curves(rows, ["miou"])


def test_curve_names_put_the_primary_metric_after_the_loss() -> None:
    curves = {name: {} for name in ("loss", "lr", "bbox_AP50", "bbox_AP", "segm_AP", "ce",
                                    "iou/road")}
    assert curve_names(curves) == ["loss", "bbox_AP", "bbox_AP50", "ce", "lr", "segm_AP"]
    assert curve_names(curves, limit=3, first=["segm_AP", "absent"]) == [
        "loss", "segm_AP", "bbox_AP"]
    assert curve_names({"lr": {}, "b": {}}, first=["b"]) == ["b", "lr"]


def test_palette_colours_are_exact_on_a_mask():
    mask = torch.tensor([[0, 1, 2], [3, IGNORE_INDEX, 1]])
    pixels = np.asarray(colorize_mask(mask))
    palette = label_palette(4)
    assert palette == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]  # Pascal VOC's first
    assert tuple(pixels[0, 1]) == (128, 0, 0) and tuple(pixels[1, 0]) == (128, 128, 0)
    assert tuple(pixels[1, 1]) == (224, 224, 192)  # ignore
    custom = np.asarray(colorize_mask(mask, [(1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12)]))
    assert tuple(custom[0, 2]) == (7, 8, 9)
    image = to_pil(torch.zeros(1, 2, 3))
    blended = np.asarray(overlay_mask(image, mask, alpha=1.0))
    assert np.array_equal(blended, pixels)
    with pytest.raises(ValueError, match="mask has class 3 but the palette has 2 colours"):
        colorize_mask(mask, [(0, 0, 0), (1, 1, 1)])


def test_keypoints_drawn_at_their_pixels_with_side_colours():
    image = to_pil(torch.zeros(3, 40, 40))
    skeleton = Skeleton.from_names(["nose", "leftear", "rightear"], [("leftear", "rightear")])
    points = torch.tensor([[5.0, 30.0], [10.0, 7.0], [31.0, 20.0]])
    drawn = np.asarray(draw_keypoints(image, points, torch.tensor([False, True, True]), skeleton,
                                      radius=1, names=False))
    assert tuple(drawn[7, 10]) == LEFT_COLOR and tuple(drawn[20, 31]) == RIGHT_COLOR
    assert tuple(drawn[30, 5]) == (0, 0, 0)  # invisible: not drawn
    big = np.asarray(draw_keypoints(image, points, None, skeleton, radius=1, names=False, scale=3))
    assert big.shape == (120, 120, 3) and tuple(big[22, 31]) == LEFT_COLOR  # (x + .5) * 3 - .5


def test_box_outline_covers_its_pixels():
    image = to_pil(torch.zeros(3, 20, 20))
    drawn = np.asarray(draw_boxes(image, torch.tensor([[1.5, 2.5, 9.5, 12.5]]), colors=[RED],
                                  width=1))  # pixels 2..9 x 3..12, no label text
    assert tuple(drawn[12, 5]) == RED and tuple(drawn[8, 9]) == RED  # bottom edge, right edge
    assert tuple(drawn[3, 2]) == RED and tuple(drawn[2, 2]) == (0, 0, 0)  # top-left corner
    assert tuple(drawn[8, 5]) == (0, 0, 0)  # inside


def test_confusion_matrix_cells_and_size():
    matrix = torch.tensor([[8, 2], [0, 10]])
    image = confusion_matrix_image(matrix, ["cat", "dog"], show_values=False, cell=20)
    assert image.mode == "RGB"
    x, y = cell_origin(["cat", "dog"], 0, 1, cell=20)
    pixels = np.asarray(image)
    assert tuple(pixels[y + 10, x + 10]) == sequential_color(0.2)
    x, y = cell_origin(["cat", "dog"], 1, 1, cell=20)
    assert tuple(pixels[y + 10, x + 10]) == sequential_color(1.0)
    with pytest.raises(ValueError, match="2 x 2 confusion matrix but 3 class names"):
        confusion_matrix_image(matrix, ["a", "b", "c"])


def test_each_task_draws_its_predictions():
    image = to_pil(torch.rand(3, 16, 24))
    mask = torch.zeros(16, 24, dtype=torch.long)
    seg = build_task("segmentation", num_classes=2).draw(image, {"mask": mask}, {"mask": mask})
    assert seg.size == (72, 32)  # three tiles of 24 x (16 + 16 caption)
    classes = build_task("classification", num_classes=2, class_names=["a", "b"])
    assert classes.draw(image, {"label": 1}, {"class": 0, "score": 0.9}, scale=2).size == (48, 48)
    points = build_task("keypoints-heatmap", num_keypoints=1)
    kp = points.draw(image, {"keypoints": [[3.0, 4.0]]}, {"keypoints": [[5.0, 6.0]]})
    assert kp.size == (48, 32)
    boxes = build_task("localization", num_classes=2).draw(
        image, {"label": 1, "boxes": [[1.0, 1.0, 8.0, 8.0]]}, {"class": 0, "box": [2, 2, 9, 9]})
    assert boxes.size == (48, 32)
