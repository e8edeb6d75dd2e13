"""Report: JSON schema, the four formats, --depth folding, totals, errors, and that analyze()
leaves the model as it found it."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from torch import nn

from cnnkit.analysis import Report, analyze
from cnnkit.errors import InputSizeError

ROW_KEYS = {"name", "type", "kind", "depth", "output_shape", "params", "weight_params",
            "bias_params", "trainable_params", "frozen_params", "macs", "flops", "activations",
            "bytes", "rf", "rf_note"}
TOTAL_KEYS = {"params", "trainable_params", "frozen_params", "weight_params", "bias_params",
              "macs", "flops", "activations", "activation_bytes", "input_elements",
              "input_bytes", "param_bytes", "training_memory_bytes", "rf", "uncounted_types"}


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x)) + x


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Sequential(Block(4), Block(4)),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


@pytest.fixture(scope="module")
def report() -> Report:
    return analyze(net(), (3, 16, 16), name="net")


def test_json_schema(report: Report) -> None:
    data = json.loads(report.format("json"))
    assert {"model", "input", "batch_size", "device", "dtype", "optimizer", "layers",
            "totals"} <= set(data)
    assert data["model"] == "net" and data["input"] == [[1, 3, 16, 16]]
    assert all(set(row) == ROW_KEYS for row in data["layers"])
    assert set(data["totals"]) == TOTAL_KEYS
    assert set(data["layers"][0]["rf"]) == {"size", "jump", "start"}
    assert data["totals"]["params"] == sum(p.numel() for p in net().parameters()) == 458


def test_totals_and_training_memory(report: Report) -> None:
    t = report.totals
    assert t["macs"] == sum(r.macs for r in report.layers)
    assert t["param_bytes"] == 4 * 458 and t["input_bytes"] == 4 * 768
    # params + gradients + SGD momentum + input + activations
    assert t["training_memory_bytes"] == 3 * 4 * 458 + 4 * 768 + t["activation_bytes"]
    adam = analyze(net(), (3, 16, 16), optimizer="adam").totals
    assert adam["training_memory_bytes"] == t["training_memory_bytes"] + 4 * 458
    double = analyze(net(), (3, 16, 16), batch_size=2).totals
    assert (double["macs"], double["activations"]) == (2 * t["macs"], 2 * t["activations"])


def test_depth_folds_rows(report: Report) -> None:
    names = [r.name for r in report.layers]
    assert names[:5] == ["0", "1.0.conv", "1.0.relu", "1.0.add", "1.1.conv"]
    folded = report.fold(1)
    assert [r.name for r in folded] == ["0", "1", "2", "3", "4"]
    block = folded[1]
    inner = [r for r in report.layers if r.name.startswith("1.")]
    assert block.type == "Sequential"
    assert block.params == sum(r.params for r in inner) == 2 * 148
    assert block.macs == sum(r.macs for r in inner)
    assert block.output_shape == inner[-1].output_shape and block.rf == inner[-1].rf
    assert [r.name for r in report.fold(2)][1:3] == ["1.0", "1.1"]
    (whole,) = report.fold(0)
    assert (whole.name, whole.params) == ("net", 458)


def test_formats(report: Report) -> None:
    table = report.format("table")
    assert table == str(report)
    assert table.splitlines()[0].split()[:4] == ["name", "type", "output", "params"]
    assert "1.0.add" in table and "training memory (sgd)" in table
    markdown = report.format("markdown", depth=1)
    assert markdown.startswith("| name | type |") and "| 1 | Sequential |" in markdown
    rows = list(csv.DictReader(io.StringIO(report.format("csv"))))
    assert len(rows) == len(report.layers) and rows[0]["params"] == "112"
    assert rows[0]["RF"] == "3" and rows[0]["jump"] == "2"
    with pytest.raises(ValueError, match="format must be one of"):
        report.format("yaml")


def test_failing_layer_is_named() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.Conv2d(8, 8, 11)))
    with pytest.raises(InputSizeError) as err:
        analyze(model, (3, 8, 8))
    message = str(err.value)
    assert message.startswith("layer '1.0' (Conv2d) failed on input (1, 8, 6, 6): ")
    assert "\n" not in message and err.value.__cause__ is None


@pytest.mark.parametrize("size", [(), (3, 0, 8), (3, 8.5), "3x8"])
def test_bad_input_size(size) -> None:
    with pytest.raises(InputSizeError, match="input_size must be positive ints"):
        analyze(nn.Identity(), size)


def test_model_is_left_unchanged() -> None:
    model = net()
    model.train()
    model[1][0].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    analyze(model, (3, 16, 16))
    analyze(model, (3, 16, 16), device="cpu", dtype=torch.float64)
    assert model.training and not model[1][0].training and model[1][1].training
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_multi_input_model() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(1, 4, 5, padding=2)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    report = analyze(Pair(), [(3, 8, 8), (1, 8, 8)])
    assert report.inputs == [[1, 3, 8, 8], [1, 1, 8, 8]]
    assert report.totals["input_elements"] == 256
    assert report.layers[-1].type == "add" and report.totals["rf"]["size"] == 5


def test_eval_mode_and_shared_modules() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.aux = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:  # like GoogLeNet's auxiliary heads
                x = x + self.aux(x.mean((2, 3)))[:, :, None, None]
            return self.conv(self.conv(x))

    report = analyze(Twice(), (2, 8, 8))
    assert [r.name for r in report.layers] == ["conv", "conv#2"]
    assert [r.params for r in report.layers] == [38, 0]  # shared weights count once
    assert report.totals["params"] == 44  # the unused head's parameters too
