"""RoIPool: hand-made quantised bins, a slow loop reference, gradients, module and cost."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.ops import RoIPool, roi_pool

roi_pool_module = importlib.import_module("cnnkit.ops.roi_pool")

GRID = torch.tensor([[3.0, 9.0, 1.0, 7.0, 2.0, 5.0],
                     [8.0, 0.0, 6.0, 4.0, 11.0, 10.0],
                     [2.0, 14.0, 5.0, 13.0, 1.0, 0.0],
                     [12.0, 3.0, 15.0, 9.0, 6.0, 4.0]]).view(1, 1, 4, 6)


def round_half_away(v: float) -> int:
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def reference_roi_pool(x, rois, out_h, out_w, scale):
    """torchvision's RoIPool, one bin at a time."""
    _, channels, height, width = x.shape
    out = torch.zeros(len(rois), channels, out_h, out_w, dtype=x.dtype)
    for k, (b, *coords) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (round_half_away(v * scale) for v in coords)
        roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        for ph in range(out_h):
            h0 = min(max(math.floor(ph * roi_h / out_h) + y1, 0), height)
            h1 = min(max(math.ceil((ph + 1) * roi_h / out_h) + y1, 0), height)
            for pw in range(out_w):
                w0 = min(max(math.floor(pw * roi_w / out_w) + x1, 0), width)
                w1 = min(max(math.ceil((pw + 1) * roi_w / out_w) + x1, 0), width)
                if h1 > h0 and w1 > w0:
                    out[k, :, ph, pw] = x[int(b), :, h0:h1, w0:w1].amax(dim=(1, 2))
    return out


def test_hand_made_bins() -> None:
    rois = torch.tensor([
        # corners (1, 1)-(5, 3): 5 x 3 pixels; bin rows {1, 2}, {2, 3}; columns {1, 2, 3}, {3, 4, 5}
        [0, 1.4, 0.6, 4.5, 3.2],
        # partly outside: only bin (0, 0) = rows {2, 3} x columns {4, 5} is on the map
        [0, 4.0, 2.0, 8.0, 5.0],
        # inverted: forced to the single pixel (row 1, column 3)
        [0, 3.0, 1.0, 2.0, 1.0],
    ])
    out = roi_pool(GRID, rois, (2, 2), 1.0)
    assert torch.equal(out[0, 0], torch.tensor([[14.0, 13.0], [15.0, 13.0]]))
    assert torch.equal(out[1, 0], torch.tensor([[6.0, 0.0], [0.0, 0.0]]))
    assert torch.equal(out[2, 0], torch.tensor([[4.0, 4.0], [4.0, 4.0]]))
    # scale 0.5: (2, 2, 9, 5) -> (1, 1, 4.5, 2.5), halves round away from zero -> (1, 1, 5, 3)
    half = roi_pool(GRID, torch.tensor([[0, 2.0, 2.0, 9.0, 5.0]]), 2, 0.5)
    assert torch.equal(half[0, 0], out[0, 0])
    assert torch.equal(RoIPool((2, 2), 1.0)(GRID, [rois[:, 1:]]), out)


def test_gradient_goes_to_the_first_maximum() -> None:
    x = torch.ones(1, 1, 3, 3, requires_grad=True)
    roi_pool(x, torch.tensor([[0, 0.0, 0.0, 2.0, 2.0]]), 1).sum().backward()
    expected = torch.zeros(1, 1, 3, 3)
    expected[0, 0, 0, 0] = 1.0
    assert torch.equal(x.grad, expected)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.3])
def test_matches_the_loop_reference_on_random_boxes(scale, monkeypatch) -> None:
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    xy = torch.rand(30, 2, dtype=torch.float64) * 30 - 8
    wh = torch.rand(30, 2, dtype=torch.float64) * 20
    wh[:3], wh[3], wh[4, 1] = 0.2, 0.0, -3.0
    rois = torch.cat([torch.randint(0, 2, (30, 1)).double(), xy, xy + wh], dim=1)
    expected = reference_roi_pool(x, rois, 3, 4, scale)
    assert torch.equal(roi_pool(x, rois, (3, 4), scale), expected)
    monkeypatch.setattr(roi_pool_module, "CHUNK_ELEMENTS", 500)
    assert torch.equal(roi_pool(x, rois, (3, 4), scale), expected)
    assert torch.equal(roi_pool(x.float(), rois.float(), (3, 4), scale), expected.float())


def test_gradcheck() -> None:
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.0, 1.0, 5.0, 4.0], [1, 2.0, -1.0, 9.0, 3.0],
                         [1, 3.0, 3.0, 3.0, 3.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3), 1.0), (x,))


def test_bad_arguments_raise() -> None:
    with pytest.raises(CnnkitError, match="boxes"):
        roi_pool(GRID, torch.zeros(2, 3), 2)
    with pytest.raises(CnnkitError, match="output_size"):
        RoIPool((2, 0), 1.0)
    with pytest.raises(CnnkitError, match="batch index"):
        roi_pool(GRID, torch.tensor([[-1.0, 0, 0, 1, 1]]), 2)


def test_analysis_cost_counts_comparisons_per_bin() -> None:
    rois = torch.tensor([[0, 1.4, 0.6, 4.5, 3.2], [0, 4.0, 2.0, 8.0, 5.0]])
    pool = RoIPool(2, 1.0)
    out = pool(GRID, rois)
    # first box: four bins of 2 x 3 pixels -> 4 x 5 comparisons; second: one 2 x 2 bin -> 3
    assert pool.analysis_cost([GRID, rois], [out]) == (0, 23)
    wide = GRID.expand(1, 4, 4, 6)
    assert pool.analysis_cost((wide, [rois[:, 1:]]), pool(wide, rois)) == (0, 4 * 23)
