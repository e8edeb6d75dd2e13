"""RoIAlign: exact on linear ramps, equal to a slow loop reference, gradients, module and cost."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.ops import RoIAlign, roi_align

roi_align_module = importlib.import_module("cnnkit.ops.roi_align")  # the name is the function


def reference_roi_align(x, rois, out_h, out_w, scale, ratio, aligned):
    """torchvision's RoIAlign, one sample at a time with Python floats."""
    _, channels, height, width = x.shape
    data = x.tolist()
    out = torch.zeros(len(rois), channels, out_h, out_w, dtype=x.dtype)
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = ratio if ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = ratio if ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        img = data[int(b)]
        for ph in range(out_h):
            for pw in range(out_w):
                acc = [0.0] * channels
                for iy in range(max(grid_h, 0)):
                    y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(max(grid_w, 0)):
                        xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        if y < -1 or y > height or xx < -1 or xx > width:
                            continue
                        yy, xc = max(y, 0.0), max(xx, 0.0)
                        y_lo, x_lo = int(yy), int(xc)
                        if y_lo >= height - 1:
                            y_lo = y_hi = height - 1
                            yy = float(y_lo)
                        else:
                            y_hi = y_lo + 1
                        if x_lo >= width - 1:
                            x_lo = x_hi = width - 1
                            xc = float(x_lo)
                        else:
                            x_hi = x_lo + 1
                        ly, lx = yy - y_lo, xc - x_lo
                        for c in range(channels):
                            m = img[c]
                            acc[c] += ((1 - ly) * (1 - lx) * m[y_lo][x_lo]
                                       + (1 - ly) * lx * m[y_lo][x_hi]
                                       + ly * (1 - lx) * m[y_hi][x_lo] + ly * lx * m[y_hi][x_hi])
                out[k, :, ph, pw] = torch.tensor(acc, dtype=x.dtype) / count
    return out


def random_rois(count: int, batch: int, extent: float) -> torch.Tensor:
    """Boxes of every kind: inside, partly outside, tiny, zero-size and inverted."""
    xy = torch.rand(count, 2, dtype=torch.float64) * (extent + 8) - 4
    wh = torch.rand(count, 2, dtype=torch.float64) * extent * 0.8
    wh[:3] = torch.rand(3, 2, dtype=torch.float64) * 0.3   # tiny
    wh[3] = 0.0                                           # degenerate
    wh[4, 0] = -2.0                                        # inverted x
    index = torch.randint(0, batch, (count, 1)).double()
    return torch.cat([index, xy, xy + wh], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [2, 3, -1])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_linear_ramp_gives_the_ramp_at_the_bin_centres(aligned, ratio, scale) -> None:
    height, width, a, b, c = 9, 11, 0.75, -1.25, 3.0
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    x = (a * xs + b * ys + c).expand(2, 3, height, width)
    off = 0.5 if aligned else 0.0
    # boxes (image frame) whose samples stay in [0, W - 1] x [0, H - 1] on the map
    feat = torch.tensor([[0.0, 0.0, 10.0, 8.0], [1.3, 2.2, 7.9, 6.1], [4.0, 0.5, 9.5, 7.75]],
                        dtype=torch.float64)
    boxes = (feat + off) / scale
    out = roi_align(x, [boxes, boxes[:1]], (3, 4), scale, ratio, aligned)
    rois = torch.cat([boxes, boxes[:1]])
    for k, (x1, y1, x2, y2) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (v * scale - off for v in (x1, y1, x2, y2))
        cy = y1 + (torch.arange(3, dtype=torch.float64) + 0.5) * (y2 - y1) / 3
        cx = x1 + (torch.arange(4, dtype=torch.float64) + 0.5) * (x2 - x1) / 4
        expected = a * cx[None, :] + b * cy[:, None] + c
        for ch in range(3):
            torch.testing.assert_close(out[k, ch], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio,scale", [(-1, 1.0), (0, 0.5), (1, 0.5), (2, 1.0), (3, 0.25)])
def test_matches_the_loop_reference_on_random_boxes(aligned, ratio, scale) -> None:
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    rois = random_rois(16, 2, 12 / scale)
    out = roi_align(x, rois, (3, 2), scale, ratio, aligned)
    expected = reference_roi_align(x, rois, 3, 2, scale, ratio, aligned)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_chunked_float32_and_list_boxes_agree(monkeypatch) -> None:
    x = torch.randn(2, 4, 10, 12)
    rois = random_rois(20, 2, 12).float()
    whole = roi_align(x, rois, 3, 1.0, -1, True)
    monkeypatch.setattr(roi_align_module, "CHUNK_ELEMENTS", 1000)
    torch.testing.assert_close(roi_align(x, rois, 3, 1.0, -1, True), whole)
    ref = reference_roi_align(x.double(), rois.double(), 3, 3, 1.0, -1, True)
    torch.testing.assert_close(whole, ref.float(), rtol=1e-5, atol=1e-5)
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.where(rois[:, 0] == i)[0] for i in range(2)])
    torch.testing.assert_close(roi_align(x, per_image, 3, 1.0, -1, True), whole[order])
    module = RoIAlign(3, 1.0, -1, aligned=True)
    torch.testing.assert_close(module(x, rois), whole)
    assert "sampling_ratio=-1" in repr(module)
    assert roi_align(x, torch.zeros(0, 5), (2, 5)).shape == (0, 4, 2, 5)


@pytest.mark.parametrize("ratio,aligned", [(2, False), (-1, True)])
def test_gradcheck(ratio, aligned) -> None:
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 0.7, 4.2, 3.9], [1, -1.5, 1.0, 3.0, 6.5],
                         [1, 2.0, 2.0, 2.4, 2.2]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (2, 3), 1.0, ratio, aligned), (x,))


def test_bad_arguments_raise_one_line_errors() -> None:
    x = torch.randn(1, 2, 5, 5)
    cases = [
        (lambda: roi_align(x, torch.zeros(3, 4), 2), "boxes"),
        (lambda: roi_align(x, [torch.zeros(3, 5)], 2), r"boxes\[0\]"),
        (lambda: roi_align(x, [], 2), "boxes"),
        (lambda: roi_align(x, torch.zeros(1, 5), 0), "output_size"),
        (lambda: roi_align(x, torch.zeros(1, 5), (2, -1)), "output_size"),
        (lambda: roi_align(x, torch.zeros(1, 5), 2, spatial_scale=0), "spatial_scale"),
        (lambda: roi_align(x, torch.zeros(1, 5), 2, sampling_ratio=1.5), "sampling_ratio"),
        (lambda: roi_align(x, torch.tensor([[1.0, 0, 0, 2, 2]]), 2), "batch index"),
        (lambda: roi_align(x[0], torch.zeros(1, 5), 2), "input"),
        (lambda: RoIAlign(0, 1.0, 2), "output_size"),
    ]
    for call, name in cases:
        with pytest.raises(CnnkitError, match=name) as info:
            call()
        assert "\n" not in str(info.value)


def test_analysis_cost_counts_nine_flops_per_sample() -> None:
    x = torch.randn(1, 3, 8, 8)
    rois = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0], [0, 1.0, 1.0, 7.0, 5.0]])
    fixed = RoIAlign(2, 1.0, 2)
    out = fixed(x, rois)
    # 2 boxes x 3 channels x 2 x 2 outputs, each 4 samples x (8 bilinear + 1 average)
    assert fixed.analysis_cost([x, rois], [out]) == (0, 2 * 3 * 4 * 4 * 9)
    adaptive = RoIAlign(2, 1.0, -1)
    one = torch.randn(1, 1, 8, 8)
    boxes = [torch.tensor([[0.0, 0.0, 6.0, 3.0], [0.0, 0.0, 0.5, 0.5]])]
    out = adaptive(one, boxes)
    # 6 x 3 box: grid ceil(6 / 2) x ceil(3 / 2) = 3 x 2; 0.5 x 0.5 box -> 1 x 1 (1 x 1 minimum)
    assert adaptive.analysis_cost((one, boxes), out) == (0, 4 * 9 * 6 + 4 * 9 * 1)


def test_cnnkit_frame_boxes_shifted_by_half_with_aligned() -> None:
    """Boxes in cnnkit's frame (pixel centres at integers) + 0.5, ``aligned=True``: the bins
    sample the image at the right places on a map downsampled by 2 (2 x 2 average pooling)."""
    a, b, c = 0.5, 2.0, -1.0
    ys, xs = torch.meshgrid(torch.arange(16, dtype=torch.float64),
                            torch.arange(20, dtype=torch.float64), indexing="ij")
    image = (a * xs + b * ys + c)[None, None]
    fmap = torch.nn.functional.avg_pool2d(image, 2)
    box = torch.tensor([[1.0, 2.0, 17.0, 13.5]], dtype=torch.float64)   # cnnkit frame
    out = roi_align(fmap, [box + 0.5], (2, 4), 0.5, 2, aligned=True)[0, 0]
    cx = 1.0 + (torch.arange(4, dtype=torch.float64) + 0.5) * 16.0 / 4
    cy = 2.0 + (torch.arange(2, dtype=torch.float64) + 0.5) * 11.5 / 2
    torch.testing.assert_close(out, a * cx[None, :] + b * cy[:, None] + c, rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    from cnnkit.ops import nms, roi_pool

    x = torch.randn(2, 3, 10, 12)
    rois = random_rois(20, 2, 12).float()
    for op in (lambda t, r: roi_align(t, r, 3, 1.0, -1, True), lambda t, r: roi_pool(t, r, 3)):
        torch.testing.assert_close(op(x.cuda(), rois.cuda()).cpu(), op(x, rois))
    boxes = torch.cat([rois[:, 1:3], rois[:, 1:3] + 3], dim=1)
    assert torch.equal(nms(boxes.cuda(), rois[:, 0].cuda(), 0.3).cpu(), nms(boxes, rois[:, 0], 0.3))
