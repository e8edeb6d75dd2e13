"""Depth, normals, colourisation and multi-task networks: exact counts, output shapes at the
documented sizes, options, reference keys, input-size errors and a CPU training step."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import ArgumentError, InputSizeError
from cnnkit.models import create, get_info, list_models

COUNTS = {
    "unet_padded_depth": 31_031_745, "unet_padded_normals": 31_031_875,
    "unet_padded_colorization": 31_030_658, "unet_resnet34_depth": 24_349_441,
    "unet_resnet34_normals": 24_349_475, "fpn_resnet18_depth": 15_407_553,
    "fpn_resnet18_normals": 15_407_811, "fpn_resnet18_colorization": 15_401_410,
    "fpn_resnet50_depth": 28_476_353, "fpn_resnet50_normals": 28_476_611,
    "deeplabv3plus_resnet50_depth": 40_347_041, "deeplabv3plus_resnet50_normals": 40_347_555,
    "eigen_fergus_vgg16": 242_512_147, "eigen_fergus_vgg16_depth": 240_950_594,
    "eigen_fergus_vgg16_normals": 240_960_198, "eigen_fergus_small": 4_326_659,
    "eigen_fergus_small_depth": 4_204_898, "eigen_fergus_small_normals": 4_207_302,
    "zhang_colorization": 32_235_385, "zhang_colorization_small": 514_241,
    "zhang_colorization_small_regression": 503_978,
    "fpn_resnet18_multitask": 12_408_139, "fpn_mobilenet_v1_025_multitask": 521_691,
}
KINDS = ("depth", "normals", "colorization", "multitask")
CHANNELS = {"depth": 1, "normals": 3}
# the reference ECCV generator's parameters: ours plus the fixed 313 -> 2 bin-centre conv
ZHANG_REFERENCE = 32_236_011


def meta_model(name: str, **options):
    with torch.device("meta"):
        return create(name, **options)


def test_every_variant_is_listed_with_its_count() -> None:
    names = [n for kind in KINDS for n in list_models(task=kind)]
    assert sorted(names) == sorted(COUNTS)
    assert all(get_info(n).num_params == c for n, c in COUNTS.items())
    assert COUNTS["zhang_colorization"] + 313 * 2 == ZHANG_REFERENCE


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_count_and_output_shape_on_meta(name: str) -> None:
    info = get_info(name)
    model = meta_model(name).eval()
    assert sum(p.numel() for p in model.parameters()) == COUNTS[name]
    c, h, w = info.input_size
    out = model(torch.empty(2, c, h, w, device="meta"))
    if info.task == "multitask":
        assert set(out) == {"depth", "normals", "segmentation", "log_variances"}
        assert tuple(out["segmentation"].shape) == (2, info.num_classes, h, w)
        assert tuple(out["normals"].shape) == (2, 3, h, w)
        assert model.task_kinds == ("depth", "normals", "segmentation")
    elif name.startswith("zhang"):
        assert tuple(out.shape) == (2, info.num_classes, h // 4, w // 4)
    else:
        assert tuple(out.shape) == (2, CHANNELS.get(info.task, 2), h, w)
        assert model.num_classes == CHANNELS.get(info.task, 2)


def test_segmentation_bases_are_unchanged() -> None:
    for name, count in (("unet_padded", 31_030_658), ("fpn_resnet18", 15_410_133),
                        ("deeplabv3plus_resnet50", 40_352_181)):
        assert get_info(name).task == "segmentation" and get_info(name).num_params == count
        assert sum(p.numel() for p in meta_model(name).parameters()) == count


def test_zhang_keys_follow_the_reference_layout() -> None:
    keys = list(meta_model("zhang_colorization").state_dict())
    assert len(keys) == 2 * 9 + 5 * 11 + 8
    assert keys[:9] == ["model1.0.weight", "model1.0.bias", "model1.2.weight", "model1.2.bias",
                        "model1.4.weight", "model1.4.bias", "model1.4.running_mean",
                        "model1.4.running_var", "model1.4.num_batches_tracked"]
    assert keys[-8:] == [f"model8.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    model = meta_model("zhang_colorization")
    assert model.model5[0].dilation == (2, 2) and model.model7[0].dilation == (1, 1)
    assert model.model3[4].stride == (2, 2) and model.model4[4].stride == (1, 1)
    assert tuple(model.model8[6].weight.shape) == (313, 256, 1, 1)
    with pytest.raises(InputSizeError, match=r"needs input sizes 8, 16, 24"):
        model(torch.empty(1, 1, 36, 36, device="meta"))


def test_eigen_fergus_options() -> None:
    model = meta_model("eigen_fergus_vgg16")
    assert tuple(model.scale1.fc[1].weight.shape) == (4096, 512 * 7 * 10)
    assert tuple(model.scale1.fc[4].weight.shape) == (64 * 15 * 20, 4096)
    assert tuple(model.scale2["depth"].image[0].weight.shape) == (96, 3, 9, 9)
    assert tuple(model.scale3["normals"].stack[-1].weight.shape) == (3, 64, 5, 5)
    narrow = meta_model("eigen_fergus_vgg16_depth", width=0.5, pool_size=(2, 2))
    assert tuple(narrow.scale1.fc[1].weight.shape) == (2048, 512 * 4)
    single = meta_model("eigen_fergus_small_depth").eval()
    assert isinstance(single(torch.empty(1, 3, 40, 56, device="meta")), torch.Tensor)
    with pytest.raises(ArgumentError, match="tasks: unknown dense task 'height'"):
        meta_model("eigen_fergus_small", tasks=("depth", "height"))
    with pytest.raises(InputSizeError, match="at least 32"):
        single(torch.empty(1, 3, 16, 16, device="meta"))


def test_multitask_fpn_options() -> None:
    full = sum(p.numel() for p in meta_model("fpn_mobilenet_v1_025_multitask").parameters())
    plain = meta_model("fpn_mobilenet_v1_025_multitask", log_variances=False)
    assert sum(p.numel() for p in plain.parameters()) == full - 3
    two = meta_model("fpn_mobilenet_v1_025_multitask", tasks=("depth", "segmentation"),
                     num_classes=7).eval()
    out = two(torch.empty(1, 3, 64, 64, device="meta"))
    assert set(out) == {"depth", "segmentation", "log_variances"}
    assert tuple(out["segmentation"].shape) == (1, 7, 64, 64)
    with pytest.raises(ArgumentError, match="distinct task kinds"):
        meta_model("fpn_mobilenet_v1_025_multitask", tasks=("depth", "depth"))


@pytest.mark.parametrize("name, channels, size", [
    ("eigen_fergus_small", 3, (48, 64)), ("zhang_colorization_small", 1, (32, 48)),
    ("fpn_mobilenet_v1_025_multitask", 3, (48, 64))])
def test_training_step_on_cpu(name: str, channels: int, size: tuple[int, int]) -> None:
    model = create(name).train()
    out = model(torch.randn(2, channels, *size))
    maps = out if isinstance(out, dict) else {"out": out}
    loss = sum(v.square().mean() for k, v in maps.items() if k != "log_variances")
    if "log_variances" in maps:
        loss = loss + sum(maps["log_variances"].values())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
