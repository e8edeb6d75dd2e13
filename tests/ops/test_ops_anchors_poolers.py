"""AnchorGenerator (cell anchors, order, count) and MultiScaleRoIAlign (levels, pooling, cost)."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.ops import AnchorGenerator, ImageList, LevelMapper, MultiScaleRoIAlign, roi_align

# size 32, ratios h / w = 0.5, 1, 2: (w, h) = (32 sqrt 2, 16 sqrt 2), (32, 32),
# (16 sqrt 2, 32 sqrt 2); halves 22.63 / 11.31 / 16 round to 23 / 11 / 16
CELL_32 = [[-23.0, -11.0, 23.0, 11.0], [-16.0, -16.0, 16.0, 16.0], [-11.0, -23.0, 11.0, 23.0]]


def test_cell_anchors_by_hand() -> None:
    gen = AnchorGenerator(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    assert gen.cell_anchors[0].tolist() == CELL_32
    assert gen.cell_anchors[1].tolist() == [[-45.0, -23.0, 45.0, 23.0], [-32.0, -32.0, 32.0, 32.0],
                                            [-23.0, -45.0, 23.0, 45.0]]
    assert gen.num_anchors_per_location() == [3, 3]
    # several sizes: ratio-major order
    two = AnchorGenerator(sizes=((32, 64),), aspect_ratios=((1.0, 2.0),))
    assert two.cell_anchors[0][:, 2].tolist() == [16.0, 32.0, 11.0, 23.0]
    flat = AnchorGenerator(sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0))
    assert flat.num_anchors_per_location() == [3, 3, 3]
    assert AnchorGenerator().num_anchors_per_location() == [9]


def test_anchor_positions_order_and_count() -> None:
    gen = AnchorGenerator(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    images = ImageList(torch.zeros(2, 3, 64, 80), [(64, 80), (60, 70)])
    maps = [torch.zeros(2, 8, 8, 10), torch.zeros(2, 8, 4, 5)]
    anchors = gen(images, maps)
    assert len(anchors) == 2 and [a.shape for a in anchors] == [(8 * 10 * 3 + 4 * 5 * 3, 4)] * 2
    level0 = anchors[0][:240]
    assert level0[:3].tolist() == CELL_32                                     # cell (0, 0)
    assert level0[3].tolist() == [-23.0 + 8, -11.0, 23.0 + 8, 11.0]          # next column, stride 8
    assert level0[30].tolist() == [-23.0, -11.0 + 8, 23.0, 11.0 + 8]         # next row
    assert anchors[0][240 + 3].tolist() == [-45.0 + 16, -23.0, 45.0 + 16, 23.0]  # stride 16
    assert torch.equal(gen(torch.zeros(2, 3, 64, 80), maps)[1], anchors[1])
    assert gen(images, [m.double() for m in maps])[0].dtype == torch.float64
    with pytest.raises(CnnkitError, match="feature_maps"):
        gen(images, maps[:1])
    with pytest.raises(CnnkitError, match="aspect_ratios"):
        AnchorGenerator(sizes=((32,), (64,)), aspect_ratios=((1.0,),) * 3)


def pyramid(channels: int = 2):
    sizes = {"p2": 64, "p3": 32, "p4": 16, "p5": 8}  # image 256 x 256: scales 1/4 ... 1/32
    return {name: torch.randn(2, channels, s, s, dtype=torch.float64) for name, s in sizes.items()}


def square(x: float, y: float, side: float) -> list[float]:
    return [x, y, x + side, y + side]


def test_level_mapper_follows_fpn_eq1() -> None:
    mapper = LevelMapper(2, 5)
    sides = [224.0, 112.0, 448.0, 56.0, 10.0, 1000.0, 223.9, 224.0 * 2 ** 0.5]
    boxes = torch.tensor([square(0, 0, s) for s in sides], dtype=torch.float64)
    # k = floor(4 + log2(side / 224)), clamped to [2, 5], minus 2
    assert mapper([boxes[:3], boxes[3:]]).tolist() == [2, 1, 3, 0, 0, 3, 1, 2]


def test_multiscale_roi_align_pools_each_box_from_its_level() -> None:
    x = pyramid()
    x["pool"] = torch.randn(2, 2, 4, 4, dtype=torch.float64)  # not named: ignored
    pooler = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 3, 2)
    boxes = [torch.tensor([square(10, 20, 224), square(0, 0, 56)], dtype=torch.float64),
             torch.tensor([square(30, 5, 112), square(3, 3, 10), square(0, 0, 250)],
                          dtype=torch.float64)]
    out = pooler(x, boxes, [(256, 256), (200, 240)])
    assert pooler.scales == [0.25, 0.125, 0.0625, 0.03125]
    assert out.shape == (5, 2, 3, 3)
    names = ["p4", "p2", "p3", "p2", "p4"]  # sqrt(250 x 250) -> floor(4.158) = 4
    for k, (image, box) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]):
        level = ["p2", "p3", "p4", "p5"].index(names[k])
        expected = roi_align(x[names[k]][image:image + 1], [boxes[image][box:box + 1]], 3,
                             0.25 / 2 ** level, 2)
        torch.testing.assert_close(out[k:k + 1], expected, rtol=0, atol=0)
    # one level: plain roi_align at its inferred scale (33 / 256 -> 1/8)
    single = MultiScaleRoIAlign(["p3"], (2, 2), -1)
    fmap = torch.randn(1, 2, 33, 33)
    box = [torch.tensor([[4.0, 4.0, 60.0, 90.0]])]
    torch.testing.assert_close(single({"p3": fmap}, box, [(256, 256)]),
                               roi_align(fmap, box, 2, 0.125, -1))
    with pytest.raises(CnnkitError, match="p4"):
        pooler({"p2": x["p2"]}, boxes, [(256, 256)])


def test_multiscale_gradient_flows_to_the_chosen_levels() -> None:
    x = {k: v.requires_grad_() for k, v in pyramid().items()}
    pooler = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 2, 2)
    boxes = [torch.tensor([square(10, 20, 224)], dtype=torch.float64), torch.zeros(0, 4).double()]
    pooler(x, boxes, [(256, 256)] * 2).sum().backward()
    assert x["p4"].grad.abs().sum() > 0 and x["p2"].grad.abs().sum() == 0
    nothing = [torch.zeros(0, 4).double()] * 2  # no boxes at all: still differentiable
    pooler(x, nothing, [(256, 256)] * 2).sum().backward()


def test_analysis_cost_sums_the_levels() -> None:
    x = pyramid(channels=1)
    pooler = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, -1)
    boxes = [torch.tensor([square(0, 0, 100), square(0, 0, 224)], dtype=torch.float64)]
    with pytest.raises(CnnkitError, match="once"):
        pooler.analysis_cost((x, boxes, [(256, 256)]), [torch.zeros(2, 1, 7, 7)])
    out = pooler(x, boxes, [(256, 256)])
    # side 100 -> level 2 (scale 1/4): 25 pixels, grid ceil(25 / 7) = 4 -> 16 samples per bin;
    # side 224 -> level 4 (scale 1/16): 14 pixels, grid 2 -> 4 samples; 9 FLOPs per sample
    expected = (0, 9 * (16 + 4) * 49)
    assert pooler.analysis_cost((x, boxes, [(256, 256)]), out) == expected
    flat = list(x.values()) + boxes  # the analyzer's flattened view of the arguments
    assert pooler.analysis_cost(flat, [out]) == expected
