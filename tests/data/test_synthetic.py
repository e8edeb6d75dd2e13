"""The synthetic shapes dataset: deterministic, labels consistent with each other."""

from __future__ import annotations

import pytest
import torch

from cnnkit.data.synthetic import SHAPES, SyntheticShapes, shape_region


def test_deterministic_from_seed() -> None:
    a, b = SyntheticShapes(8, 48, seed=5), SyntheticShapes(8, 48, seed=5)
    for i in (0, 7, 3):
        x, y = a[i], b[i]
        assert torch.equal(x.image, y.image) and torch.equal(x.mask, y.mask)
        assert torch.equal(x.keypoints, y.keypoints) and torch.equal(x.boxes, y.boxes)
    assert not torch.equal(a[0].image, SyntheticShapes(8, 48, seed=6)[0].image)


def test_masks_boxes_keypoints_consistent() -> None:
    data = SyntheticShapes(16, 64, seed=0)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    for i in range(len(data)):
        s = data[i]
        shapes = data.shapes(i)
        assert s.image.shape == (3, 64, 64) and 0 <= float(s.image.min()) <= float(s.image.max()) <= 1
        assert s.label == shapes[-1].kind == int(s.box_labels[-1])
        assert set(torch.unique(s.mask).tolist()) <= {0} | {k.kind + 1 for k in shapes}
        main = shape_region(shapes[-1], xs, ys)
        assert bool((s.mask[main] == s.label + 1).all())  # the main shape is never occluded
        for x, y in s.keypoints.round().long().tolist():
            assert bool(main[y, x]) and int(s.mask[y, x]) == s.label + 1
        x1, y1, x2, y2 = s.boxes[-1].tolist()
        rows, cols = main.any(1).nonzero().view(-1), main.any(0).nonzero().view(-1)
        assert (x1, y1, x2, y2) == (cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5,
                                    rows.max() + 0.5)
        assert s.skeleton.names == ("top", "left", "right", "centre")
        assert s.skeleton.flip_pairs == ((1, 2),)
    assert data.labels == [data[i].label for i in range(len(data))]
    assert len(SHAPES) == 3 and data.num_classes == 4


def test_rejects_tiny_images() -> None:
    with pytest.raises(ValueError, match="at least 24 x 24"):
        SyntheticShapes(4, 16)
