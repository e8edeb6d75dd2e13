"""`cnnkit summary`: JSON output, module:attr models, --depth, and one-line errors."""

from __future__ import annotations

import json

import pytest
from torch import nn

from cnnkit.cli import main


def tiny_net() -> nn.Module:
    """Imported by path as ``test_cli_analyze:tiny_net`` below."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_json(capsys) -> None:
    code, out, _ = _run(capsys, "summary", "vgg16", "--input", "3x224x224", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "vgg16" and data["input"] == [[1, 3, 224, 224]]
    assert data["totals"]["params"] == 138_357_544
    assert {"name", "type", "output_shape", "params", "macs", "flops", "activations",
            "rf"} <= set(data["layers"][0])
    assert data["layers"][0]["rf"] == {"size": 3, "jump": 1, "start": 0}


def test_summary_of_a_module_path(capsys) -> None:
    code, out, _ = _run(capsys, "summary", "test_cli_analyze:tiny_net", "--input", "3x16x16",
                        "--batch", "2", "--optimizer", "adam")
    assert code == 0
    lines = out.splitlines()
    assert lines[2].split()[:4] == ["0", "Conv2d", "2x4x16x16", "112"]
    assert "training memory (adam)" in out


def test_summary_depth(capsys) -> None:
    code, out, _ = _run(capsys, "summary", "vgg16", "--depth", "1", "--format", "csv")
    assert code == 0
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == [
        "features", "avgpool", "flatten", "classifier"]


def test_a_detector_is_analysed_on_the_cpu_with_the_same_figures_each_time(capsys) -> None:
    runs = [_run(capsys, "summary", "fasterrcnn_resnet18_fpn", "--input", "3x128x128",
                 "--format", "json") for _ in range(2)]
    assert all(code == 0 for code, _, _ in runs)
    first, second = (json.loads(out) for _, out, _ in runs)
    assert first["totals"]["params"] == 13_828_374
    assert first["totals"]["macs"] == second["totals"]["macs"] > 0
    names = [row["name"] for row in first["layers"]]
    assert any(name.startswith("rpn") for name in names)
    assert any(name.startswith("roi_heads") for name in names)


@pytest.mark.parametrize("argv, message", [
    (["vggg16"], "error: unknown model 'vggg16'; did you mean vgg16"),
    (["vgg16", "--input", "3x224"], "error: --input: vgg16 takes 3 sizes like 3x224x224"),
    (["vgg16", "--input", "3xab"], "error: --input: expected sizes like 3x224x224"),
    (["test_cli_analyze:tiny_net", "--input", "3x1x1"],
     "error: layer '2' (MaxPool2d) failed on input (1, 4, 1, 1): "),
    (["test_cli_analyze:tiny_net"], "error: --input is required for a module:attr model"),
    (["no_such_module:net", "--input", "3x8x8"], "cannot import module 'no_such_module'"),
    (["lenet5", "--device", "gpu0"], "error: device must be 'meta', 'cpu' or 'cuda[:N]'"),
    (["fasterrcnn_resnet18_fpn", "--device", "meta"],
     "error: fasterrcnn_resnet18_fpn computes with the input's values (e.g. a detector's "
     "proposals): analyse it with device='cpu'"),
])
def test_summary_errors_are_one_line(capsys, argv: list[str], message: str) -> None:
    code, out, err = _run(capsys, "summary", *argv)
    assert code == 2 and out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
