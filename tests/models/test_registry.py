"""Registry behaviour: lookup errors, options, listing."""

from __future__ import annotations

import pytest

from cnnkit.models import create, get_info, list_models, register
from cnnkit.models.registry import UnknownModelError


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet05'; did you mean .*resnet50"):
        get_info("resnet05")


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"does not take option\(s\) colour; valid options:"):
        create("resnet18", colour="red")


def test_list_filters_by_task_and_pattern() -> None:
    names = list_models(task="classification", pattern="resnet*")
    assert "resnet50" in names and all(n.startswith("resnet") for n in names)
    with pytest.raises(ValueError, match="unknown task kind .no-such-kind.; choose one of"):
        list_models(task="no-such-kind")


def test_duplicate_registration_is_refused() -> None:
    info = get_info("resnet18")
    with pytest.raises(ValueError, match="already registered"):
        register("resnet18", info.builder, task="classification", paper="x", year=2016,
                 input_size=(3, 224, 224), num_params=1)
