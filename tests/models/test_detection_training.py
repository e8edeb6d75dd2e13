"""A training step of each light detector on two tiny synthetic images: named, finite losses and
a gradient for every trainable parameter; targets are checked with one-line errors."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ArgumentError
from cnnkit.models import create

FAST = {"min_size": 128, "max_size": 128, "rpn_pre_nms_top_n_train": 300,
        "rpn_post_nms_top_n_train": 200, "box_batch_size_per_image": 64}
LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
VARIANTS = {"fasterrcnn_resnet18_fpn": set(), "maskrcnn_resnet18_fpn": {"loss_mask"},
            "keypointrcnn_resnet18_fpn": {"loss_keypoint"}}


def synthetic(num_keypoints: int = 17):
    """Two 128x128 images, each with two boxes (cnnkit frame), masks and keypoints."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 128, 128, generator=g)
    targets = []
    for shift in (0, 8):
        pixels = torch.tensor([[10, 12, 60, 70], [50 + shift, 40, 120, 110]])  # first/last pixel
        boxes = pixels.float() + torch.tensor([-0.5, -0.5, 0.5, 0.5])  # cnnkit frame
        masks = torch.zeros(2, 128, 128, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(pixels.tolist()):
            masks[i, y1:y2 + 1, x1:x2 + 1] = 1
        kp = torch.rand(2, num_keypoints, 3, generator=g)
        kp[..., 0] = pixels[:, None, 0] + kp[..., 0] * (pixels[:, None, 2] - pixels[:, None, 0])
        kp[..., 1] = pixels[:, None, 1] + kp[..., 1] * (pixels[:, None, 3] - pixels[:, None, 1])
        kp[..., 2] = (kp[..., 2] > 0.2).float() * 2
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "masks": masks,
                        "keypoints": kp})
    return images, targets


@pytest.mark.parametrize("name", list(VARIANTS))
def test_training_step_gives_finite_losses_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=3, **FAST).train()
    images, targets = synthetic()
    losses = model(list(images), targets)
    assert set(losses) == LOSSES | VARIANTS[name]
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # a background-only image trains too
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 128, 128, dtype=torch.uint8),
             "keypoints": torch.zeros(0, 17, 3)}
    losses = model(images[:1], [empty])
    assert all(torch.isfinite(v) for v in losses.values()), losses


@pytest.mark.parametrize("name", list(VARIANTS))
def test_bf16_autocast_keeps_the_box_geometry_and_the_losses_in_float32(name: str) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=3, **FAST).train()
    images, targets = synthetic()
    with torch.autocast("cpu", torch.bfloat16):
        maps = list(model.backbone(images).values())
        anchors = model.rpn.anchor_generator(images, maps)
        losses = model(list(images), targets)
    assert maps[0].dtype == torch.bfloat16 and anchors[0].dtype == torch.float32
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values()), losses


def test_targets_are_checked() -> None:
    model = create("maskrcnn_resnet18_fpn", num_classes=3, **FAST).train()
    images, targets = synthetic()
    with pytest.raises(ArgumentError, match="targets must be a list of 2"):
        model(images)
    bad = [dict(t) for t in targets]
    bad[1]["labels"] = torch.tensor([1, 3])
    with pytest.raises(ArgumentError, match=r"targets\[1\]\['labels'\] must lie in 1..2"):
        model(images, bad)
    bad = [dict(t) for t in targets]
    bad[0]["boxes"] = torch.tensor([[10.0, 10.0, 5.0, 20.0], [1.0, 1.0, 9.0, 9.0]])
    with pytest.raises(ArgumentError, match="x2 > x1 and y2 > y1; box 0"):
        model(images, bad)
    bad = [dict(t) for t in targets]
    bad[0]["masks"] = bad[0]["masks"][:, :64]
    with pytest.raises(ArgumentError, match=r"targets\[0\]\['masks'\] must be"):
        model(images, bad)
    with pytest.raises(ArgumentError, match="images must be"):
        model([torch.zeros(128, 128)], targets[:1])
    with pytest.raises(ArgumentError, match="images must have 3 channels"):
        model([torch.zeros(1, 128, 128)], targets[:1])
