"""Classification + localization: one backbone, a class head and a box head."""

from __future__ import annotations

import torch

from cnnkit.models import FeatureExtractor, create, get_info
from cnnkit.geometry import cxcywh_to_xyxy
from cnnkit.models.localization.classloc import ClassesAndBoxes

# ResNet-18 without fc (11,176,512) + class head 512*1000+1000 + box head 512*4+4
CLASSLOC_RESNET18 = 11_691_564


def test_parameter_count_and_shapes_on_meta() -> None:
    info = get_info("classloc_resnet18")
    assert info.task == "localization" and info.num_params == CLASSLOC_RESNET18
    with torch.device("meta"):
        model = create("classloc_resnet18").eval()
    assert sum(p.numel() for p in model.parameters()) == CLASSLOC_RESNET18
    out = model(torch.empty(2, *info.input_size, device="meta"))
    assert isinstance(out, ClassesAndBoxes)
    assert out.logits.shape == (2, 1000) and out.boxes.shape == (2, 4)


def test_both_heads_and_the_backbone_get_gradients() -> None:
    model = create("classloc_resnet18", num_classes=5).train()
    logits, boxes = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5) and boxes.shape == (2, 4)
    target_boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.5, 0.5]])
    loss = (torch.nn.functional.cross_entropy(logits, torch.tensor([1, 3]))
            + (boxes - target_boxes).square().sum(dim=1).mean())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.class_head.weight.grad.abs().sum() > 0
    assert model.box_head.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_class_specific_boxes_and_reset_classifier() -> None:
    with torch.device("meta"):
        model = create("classloc_resnet18", num_classes=5, class_specific_boxes=True).eval()
        x = torch.empty(2, 3, 64, 64)
        assert model(x).boxes.shape == (2, 5, 4)
        model.reset_classifier(3)
        out = model(x)
    assert model.num_classes == 3
    assert out.logits.shape == (2, 3) and out.boxes.shape == (2, 3, 4)


def test_param_groups_split_backbone_and_heads() -> None:
    with torch.device("meta"):
        model = create("classloc_resnet18")
    groups = model.param_groups()
    assert [len(groups[g]) for g in ("stem", "stages", "head")] == [3, 57, 4]
    head = {id(p) for p in groups["head"]}
    assert head == {id(p) for m in (model.class_head, model.box_head) for p in m.parameters()}


def test_feature_maps_of_the_backbone() -> None:
    with torch.device("meta"):
        features = FeatureExtractor(create("classloc_resnet18").eval())
        maps = features(torch.empty(1, 3, 64, 64))
    assert features.strides == [2, 4, 8, 16, 32]
    assert [tuple(m.shape[1:]) for m in maps] == [(64, 32, 32), (64, 16, 16), (128, 8, 8),
                                                  (256, 4, 4), (512, 2, 2)]


def test_cxcywh_to_xyxy() -> None:
    corners = cxcywh_to_xyxy(torch.tensor([[0.5, 0.4, 0.2, 0.6]]))
    assert torch.allclose(corners, torch.tensor([[0.4, 0.1, 0.6, 0.7]]))
