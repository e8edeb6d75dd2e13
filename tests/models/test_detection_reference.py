"""The reference detectors equal torchvision's: parameter counts (its published figures),
``state_dict`` keys and shapes, and the older key names of its COCO checkpoint files.

The keys below were read from torchvision 0.28's models built as for its COCO checkpoints
(``resnet50(norm_layer=FrozenBatchNorm2d)`` + ``_resnet_fpn_extractor(backbone, 3)``); the hash
is of the whole list ``key:[shape]``, one per line, in state_dict order. Everything is built on
the meta device (shapes only)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from cnnkit.errors import ArgumentError, OptionError
from cnnkit.models import create, get_info, list_models
from cnnkit.models.detection import (
    FrozenBatchNorm2d,
    fasterrcnn,
    load_reference_checkpoint,
)

# name: (published parameter count, number of state_dict entries, sha256[:16] of key:shape list)
REFERENCE = {
    "fasterrcnn_resnet50_fpn": (41_755_286, 295, "3ea2a8dc14fdf173"),
    "maskrcnn_resnet50_fpn": (44_401_393, 307, "bd824d0334dff683"),
    "keypointrcnn_resnet50_fpn": (59_137_258, 313, "5b7d34d29db1507b"),
}
COMMON_KEYS = [
    ("backbone.body.conv1.weight", (64, 3, 7, 7)),
    ("backbone.body.bn1.weight", (64,)),
    ("backbone.body.bn1.bias", (64,)),
    ("backbone.body.bn1.running_mean", (64,)),
    ("backbone.body.bn1.running_var", (64,)),
    ("backbone.body.layer1.0.conv1.weight", (64, 64, 1, 1)),
    ("backbone.body.layer1.0.bn1.running_var", (64,)),
    ("backbone.body.layer1.0.downsample.0.weight", (256, 64, 1, 1)),
    ("backbone.body.layer1.0.downsample.1.running_mean", (256,)),
    ("backbone.body.layer3.5.bn3.running_var", (1024,)),
    ("backbone.body.layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("backbone.fpn.inner_blocks.0.0.weight", (256, 256, 1, 1)),
    ("backbone.fpn.inner_blocks.0.0.bias", (256,)),
    ("backbone.fpn.inner_blocks.3.0.weight", (256, 2048, 1, 1)),
    ("backbone.fpn.layer_blocks.3.0.weight", (256, 256, 3, 3)),
    ("rpn.head.conv.0.0.weight", (256, 256, 3, 3)),
    ("rpn.head.conv.0.0.bias", (256,)),
    ("rpn.head.cls_logits.weight", (3, 256, 1, 1)),
    ("rpn.head.bbox_pred.weight", (12, 256, 1, 1)),
    ("roi_heads.box_head.fc6.weight", (1024, 12544)),
    ("roi_heads.box_head.fc7.weight", (1024, 1024)),
]
EXTRA_KEYS = {
    "fasterrcnn_resnet50_fpn": [
        ("roi_heads.box_predictor.cls_score.weight", (91, 1024)),
        ("roi_heads.box_predictor.bbox_pred.weight", (364, 1024)),
        ("roi_heads.box_predictor.bbox_pred.bias", (364,))],
    "maskrcnn_resnet50_fpn": [
        ("roi_heads.box_predictor.cls_score.bias", (91,)),
        ("roi_heads.mask_head.0.0.weight", (256, 256, 3, 3)),
        ("roi_heads.mask_head.3.0.bias", (256,)),
        ("roi_heads.mask_predictor.conv5_mask.weight", (256, 256, 2, 2)),
        ("roi_heads.mask_predictor.mask_fcn_logits.weight", (91, 256, 1, 1)),
        ("roi_heads.mask_predictor.mask_fcn_logits.bias", (91,))],
    "keypointrcnn_resnet50_fpn": [
        ("roi_heads.box_predictor.cls_score.weight", (2, 1024)),
        ("roi_heads.keypoint_head.0.weight", (512, 256, 3, 3)),
        ("roi_heads.keypoint_head.14.weight", (512, 512, 3, 3)),
        ("roi_heads.keypoint_predictor.kps_score_lowres.weight", (512, 17, 4, 4)),
        ("roi_heads.keypoint_predictor.kps_score_lowres.bias", (17,))],
}
# the older names in torchvision's published COCO checkpoint files -> the current ones
LEGACY = {"rpn.head.conv.0.0.weight": "rpn.head.conv.weight",
          "rpn.head.conv.0.0.bias": "rpn.head.conv.bias",
          **{f"backbone.fpn.{b}.{i}.0.{k}": f"backbone.fpn.{b}.{i}.{k}"
             for b in ("inner_blocks", "layer_blocks") for i in range(4)
             for k in ("weight", "bias")},
          **{f"roi_heads.mask_head.{i}.0.{k}": f"roi_heads.mask_head.mask_fcn{i + 1}.{k}"
             for i in range(4) for k in ("weight", "bias")}}


def meta(name: str, **options):
    with torch.device("meta"):
        return create(name, **options)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_counts_keys_and_shapes_equal_the_reference(name: str) -> None:
    count, entries, digest = REFERENCE[name]
    model = meta(name)
    assert get_info(name).num_params == count
    assert sum(p.numel() for p in model.parameters()) == count
    state = model.state_dict()
    assert len(state) == entries
    text = "\n".join(f"{k}:{list(v.shape)}" for k, v in state.items())
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest
    for key, shape in COMMON_KEYS + EXTRA_KEYS[name]:
        assert tuple(state[key].shape) == shape, key
    assert not any(k.endswith("num_batches_tracked") for k in state)
    # frozen batch norm: buffers, so not parameters; conv1 and layer1 frozen (3 trainable stages)
    assert isinstance(model.backbone.body.bn1, FrozenBatchNorm2d)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters()
                      if n.startswith(("backbone.body.conv1", "backbone.body.layer1."))}


def test_registry_metadata() -> None:
    assert set(list_models(task="detection")) == {"fasterrcnn_resnet50_fpn",
                                                  "fasterrcnn_resnet18_fpn"}
    assert set(list_models(task="instance-segmentation")) == {"maskrcnn_resnet50_fpn",
                                                              "maskrcnn_resnet18_fpn"}
    assert set(list_models(task="instance-keypoints")) == {"keypointrcnn_resnet50_fpn",
                                                           "keypointrcnn_resnet18_fpn"}
    for name in list_models(pattern="*rcnn_resnet*_fpn"):
        info = get_info(name)
        assert info.paper and info.notes and info.builder.__doc__
        assert sum(p.numel() for p in meta(name).parameters()) == info.num_params, name
        assert (info.reference == "torchvision") == name.endswith("resnet50_fpn")


@pytest.mark.parametrize("name", ["maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn"])
def test_old_checkpoint_names_load_strict(name: str) -> None:
    model = meta(name)
    state = {LEGACY.get(k, k): v for k, v in model.state_dict().items()}
    bn = "backbone.body.layer2.0.bn1.num_batches_tracked"  # from a trainable batch norm
    state[bn] = torch.zeros((), dtype=torch.long, device="meta")
    assert "rpn.head.conv.weight" in state and "rpn.head.conv.0.0.weight" not in state
    assert model.load_state_dict(state, strict=True) is not None  # raises on any mismatch
    remapped = model.remap_checkpoint_keys(state)
    assert list(remapped) != list(state) and set(remapped) == set(model.state_dict())


def test_old_checkpoint_file_loads_with_create(tmp_path) -> None:
    torch.manual_seed(0)
    small = {"backbone": "resnet18", "fpn_channels": 8, "representation_size": 8,
             "mask_layers": (8, 8), "mask_dim_reduced": 8, "num_classes": 3}
    source = create("maskrcnn_resnet50_fpn", **small)
    state = {LEGACY.get(k, k): v for k, v in source.state_dict().items()}
    path = tmp_path / "coco_style.pth"
    torch.save(state, path)
    model = create("maskrcnn_resnet50_fpn", weights=path, **small)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    report = load_reference_checkpoint(model, path)
    assert not report.missing and not report.unexpected
    assert model.backbone.body.bn1.eps == 0.0  # as torchvision after its COCO_V1 files
    # another number of classes: the class-dependent layers start afresh, the rest loads
    other = create("maskrcnn_resnet50_fpn", weights=path, **{**small, "num_classes": 5})
    assert other.roi_heads.box_predictor.cls_score.weight.shape == (5, 8)
    assert other.roi_heads.mask_predictor.mask_fcn_logits.weight.shape == (5, 8, 1, 1)
    assert torch.equal(other.roi_heads.box_head.fc6.weight, source.roi_heads.box_head.fc6.weight)


def test_bad_arguments_raise_one_line_errors() -> None:
    with torch.device("meta"):
        with pytest.raises(ArgumentError, match="trainable_layers"):
            fasterrcnn(trainable_layers=6)
        with pytest.raises(ArgumentError, match="norm must be one of"):
            fasterrcnn(norm="frozenish")
        with pytest.raises(ArgumentError, match="backbone must be a zoo ResNet"):
            fasterrcnn("vgg11")
        with pytest.raises(ArgumentError, match="num_classes"):
            fasterrcnn(num_classes=1)
        with pytest.raises(ArgumentError, match="mask_paste"):
            fasterrcnn(mask_paste="nearest")
        with pytest.raises(OptionError, match="does not take option.*colour"):
            create("fasterrcnn_resnet50_fpn", colour="red")


@pytest.mark.parametrize("backbone", ["resnet34", "resnext50_32x4d", "seresnet18",
                                      "wide_resnet50_2"])
def test_any_zoo_resnet_is_a_backbone(backbone: str) -> None:
    channels = [s.channels for s in meta(backbone).feature_specs[-4:]]
    model = meta("keypointrcnn_resnet18_fpn", backbone=backbone, norm="group")
    assert [b[0].in_channels for b in model.backbone.fpn.inner_blocks] == channels
    assert all(p.requires_grad for p in model.parameters())  # light variants: 5 stages
