"""The new options (plain shortcuts, norm, VGG/FCN output stride, ZFNet in the AlexNet table)
leave every default model as it was: the fingerprints below were taken from models built by the
code *before* those options existed (seed 0 for the weights, seed 1 for one input): the hash of
the state_dict key list and the output's sum and first values.

Weights come from torch's CPU generator; its vectorised normal sampler may round differently
on other CPUs, so outputs compare to 1e-5 (they were bit-identical on the machine that made
them); the keys compare exactly."""

from __future__ import annotations

import hashlib

import pytest
import torch

from cnnkit.models import create, get_info

# name, options, input side, number of keys, sha256 of the key list (16 hex), output sum,
# first three outputs
BEFORE = [
    ("resnet18", {}, 64, 122, "779447cf0a59dec8", 2.8361565489321947,
     [-0.0255696699, 0.6950024366, 0.5071367025]),
    ("resnet20_cifar", {}, 32, 116, "865d6479afd09370", 0.6051014289259911,
     [-0.2465374917, 0.2303324342, 0.098925963]),
    ("resnet20_cifar", {"shortcut": "B"}, 32, 128, "8b63b6f92921e186", 1.1550004053860903,
     [0.1374281049, 0.4703046679, 0.0264409482]),
    ("vgg_small_s", {}, 32, 34, "2f338d6fe1491faa", -1.7569830417633057,
     [0.4766902924, 1.9900186062, -1.6390455961]),
    ("alexnet_paper", {}, 227, 16, "c413dc7143be78eb", -24.86212107911706,
     [-0.0738680959, -0.2899565101, -0.5784034729]),
    ("vgg11_bn", {}, 64, 62, "0ffb5b2ee44375ad", 1.2277257503010333,
     [0.0526687689, -0.0223689154, 0.1334925592]),
]
KEYS_ONLY = [("fcn32s_vgg16", {}, 33, "a2ff6d11ed6ca528"),
             ("resnet50", {"output_stride": 16}, 320, "8f960d1d00758a98")]


def key_hash(model: torch.nn.Module) -> tuple[int, str]:
    keys = list(model.state_dict())
    return len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name, options, side, n_keys, sha, total, first", BEFORE,
                         ids=[f"{b[0]}{b[1] or ''}" for b in BEFORE])
def test_default_models_match_the_code_before_the_options(name, options, side, n_keys, sha,
                                                          total, first) -> None:
    torch.manual_seed(0)
    model = create(name, **options).eval()
    assert key_hash(model) == (n_keys, sha)
    torch.manual_seed(1)
    x = torch.randn(1, get_info(name).input_size[0], side, side)
    with torch.no_grad():
        out = model(x).double()
    assert out.sum().item() == pytest.approx(total, rel=1e-5, abs=1e-5)
    # absolute 1e-5: one output near zero carries the rounding of the whole sum (on an Intel CPU
    # with AMX, alexnet_paper's first output differed from the AMD figure by 1.2e-6)
    assert out.flatten()[:3].tolist() == pytest.approx(first, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name, options, n_keys, sha", KEYS_ONLY)
def test_default_keys_match_the_code_before_the_options(name, options, n_keys, sha) -> None:
    with torch.device("meta"):
        assert key_hash(create(name, **options)) == (n_keys, sha)


@pytest.mark.parametrize("name, explicit", [
    ("resnet18", {"shortcut": "B", "norm": "batch"}),
    ("resnet20_cifar", {"shortcut": "A", "norm": "batch"}),
    ("vgg_small_s", {"norm": "batch"}),
    ("vgg11_bn", {"norm": "batch", "output_stride": 32}),
    ("fcn32s_vgg16", {"output_stride": 32}),
])
def test_explicit_defaults_build_the_same_model(name: str, explicit: dict) -> None:
    with torch.device("meta"):
        default, spelled = create(name), create(name, **explicit)
    assert {k: v.shape for k, v in default.state_dict().items()} == \
        {k: v.shape for k, v in spelled.state_dict().items()}
    assert str(default) == str(spelled)
