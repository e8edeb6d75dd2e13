"""Export a trained run to ONNX with its inference facts in the file.

The ONNX file's ``metadata_props`` carry what an ONNX Runtime user needs besides the weights
(:meth:`cnnkit.runs.spec.InferenceSpec.metadata`): the task, the class names, the
normalisation, the input size, the keypoints and the whole spec as JSON.
"""

from __future__ import annotations

from pathlib import Path

from cnnkit.export import ExportResult, export_onnx
from cnnkit.runs.predict import load_run


def export_run(run_dir: str | Path, onnx_path: str | Path, *,
               checkpoint: str | Path | None = None,
               input_size: tuple[int, ...] | None = None) -> ExportResult:
    """Write the run's model (best checkpoint by default) to ``onnx_path``, checked against
    ONNX Runtime, for inputs of ``input_size`` (C, H, W; default: the size it was evaluated
    at)."""
    run = load_run(run_dir, checkpoint)
    size = input_size or (run.spec.input["channels"], *run.spec.input["size"])
    return export_onnx(run.model, onnx_path, size, metadata=run.spec.metadata())
