"""ONNX export checked with ONNX Runtime (skipped when the optional packages are missing)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.export import ExportError, compare_onnx, export_onnx
from cnnkit.models import create

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_classifier_export_matches_with_dynamic_batch(tmp_path):
    model = create("resnet20_cifar", in_channels=1)
    model.train()
    result = export_onnx(model, tmp_path / "net.onnx", (1, 32, 32), batch_size=2)
    assert result.checked and result.output_names == ["output"]
    assert set(result.max_abs_diff) == {"output@batch2", "output@batch3"}
    assert max(result.max_abs_diff.values()) < 1e-4
    assert model.training  # the mode is restored
    import onnx

    graph = onnx.load(str(tmp_path / "net.onnx")).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 1, 32, 32]


def test_dense_model_and_tuple_outputs(tmp_path):
    unet = create("unet_padded", depth=2, base_width=4)
    result = export_onnx(unet, tmp_path / "unet.onnx", (1, 32, 32), dynamic_batch=False)
    assert list(result.max_abs_diff) == ["output@batch1"]

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return y.mean((2, 3)), y.amax((2, 3))

    result = export_onnx(TwoHeads(), tmp_path / "two.onnx", (3, 8, 8))
    assert result.output_names == ["output_0", "output_1"]


def test_mismatch_and_bad_arguments_raise(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 2, 1))
    export_onnx(model, tmp_path / "a.onnx", (3, 4, 4))
    with torch.no_grad():
        model[0].bias += 1.0  # PyTorch now disagrees with the file
    with pytest.raises(ExportError, match="output output differs from PyTorch by up to 1"):
        compare_onnx(model, tmp_path / "a.onnx", torch.rand(1, 3, 4, 4))
    with pytest.raises(ExportError, match=r"input_size must be \(channels, height, width\)"):
        export_onnx(model, tmp_path / "b.onnx", (4, 4))
    with torch.device("meta"):
        meta = nn.Conv2d(3, 2, 1)
    with pytest.raises(ExportError, match="meta device"):
        export_onnx(meta, tmp_path / "c.onnx", (3, 4, 4))


def test_a_detector_is_refused_in_one_line(tmp_path):
    with pytest.raises(ExportError, match="FasterRCNN cannot be exported to ONNX: its proposals"):
        export_onnx(create("fasterrcnn_resnet18_fpn", num_classes=3), tmp_path / "d.onnx",
                    (3, 64, 64))
    assert not (tmp_path / "d.onnx").exists()
