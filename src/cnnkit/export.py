"""Export a model to ONNX and check that ONNX Runtime reproduces its outputs.

Uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), which
needs only the ``onnx`` package; the newer torch.export-based exporter also needs
``onnxscript``. The model is traced in eval mode on a random input, so Python control flow
that depends on values is frozen at that input (sizes are checked by the models themselves
and traced as constants). Max unpooling (SegNet, DeconvNet) has no ONNX conversion in this
exporter. With ``dynamic_batch`` the batch dimension stays symbolic and the
check runs at two batch sizes. Install the optional packages with ``pip install
'cnnkit[export]'`` (onnx, onnxruntime).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnkit.errors import CnnkitError

DEFAULT_OPSET = 17


class ExportError(CnnkitError):
    """The export failed, or ONNX Runtime disagrees with PyTorch."""


@dataclass
class ExportResult:
    """Where the model went, its tensor names and how close ONNX Runtime came to PyTorch."""

    path: Path
    input_name: str
    output_names: list[str]
    opset: int
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per output, at each batch
    checked: bool = False


def onnx_available() -> bool:
    """Whether both ``onnx`` and ``onnxruntime`` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def _require_onnx() -> None:
    if not onnx_available():
        raise CnnkitError("ONNX export needs the optional packages onnx and onnxruntime; "
                          "install them with: pip install 'cnnkit[export]'")


def _flatten(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flatten(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _flatten(item)]
    raise ExportError(f"model outputs must be tensors (or tuples/lists/dicts of them); got "
                      f"{type(output).__name__}")


def export_onnx(model: nn.Module, path: str | Path, input_size: Sequence[int], *,
                batch_size: int = 1, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
                check: bool = True, rtol: float = 1e-3, atol: float = 1e-4,
                seed: int = 0, metadata: dict[str, str] | None = None) -> ExportResult:
    """Write ``model`` as ONNX to ``path`` for inputs ``batch_size x input_size`` (C, H, W).

    The input is named "input"; outputs "output" (or "output_0", "output_1", ... for a model
    returning several tensors, flattened in order). With ``check`` the file is validated by
    ``onnx.checker`` and run with ONNX Runtime (CPU) on random inputs of ``batch_size`` (and
    ``batch_size + 1`` when ``dynamic_batch``); an output differing from PyTorch anywhere by
    more than ``atol + rtol * max|expected|`` (its largest magnitude) raises :class:`ExportError`.
    ``metadata`` (string keys and values) goes into the file's ``metadata_props``, where ONNX
    Runtime shows it as ``session.get_modelmeta().custom_metadata_map``. A model that cannot be
    traced faithfully says why in its ``onnx_refusal`` attribute, and is refused with it.
    """
    refusal = getattr(model, "onnx_refusal", None)
    if refusal:
        raise ExportError(f"{type(model).__name__} cannot be exported to ONNX: {refusal}")
    _require_onnx()
    if len(input_size) != 3 or any(int(s) < 1 for s in input_size):
        raise ExportError(f"input_size must be (channels, height, width); got {tuple(input_size)}")
    if any(p.device.type == "meta" for p in model.parameters()):
        raise ExportError("the model is on the meta device (no weights); build it on the CPU")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu()
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(batch_size, *map(int, input_size), generator=generator)
    try:
        with torch.no_grad():
            names = _output_names(len(_flatten(model(example))))
        axes = None
        if dynamic_batch:
            axes = {"input": {0: "batch"}, **{n: {0: "batch"} for n in names}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
            torch.onnx.export(model, (example,), str(path), input_names=["input"],
                              output_names=names, dynamic_axes=axes, opset_version=opset,
                              dynamo=False)
        if metadata:
            _add_metadata(path, metadata)
        result = ExportResult(path, "input", names, opset)
        if check:
            sizes = [batch_size, batch_size + 1] if dynamic_batch else [batch_size]
            for size in sizes:
                inputs = torch.rand(size, *map(int, input_size), generator=generator)
                for name, diff in compare_onnx(model, path, inputs, rtol=rtol, atol=atol).items():
                    result.max_abs_diff[f"{name}@batch{size}"] = diff
            result.checked = True
        return result
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001  (exporter errors come in many types)
        raise ExportError(f"ONNX export of {type(model).__name__} failed: "
                          f"{type(err).__name__}: {err}") from err
    finally:
        model.train(was_training)


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as ONNX Runtime reads them."""
    _require_onnx()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def _output_names(count: int) -> list[str]:
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def compare_onnx(model: nn.Module, path: str | Path, inputs: torch.Tensor, *,
                 rtol: float = 1e-3, atol: float = 1e-4) -> dict[str, float]:
    """Run the ONNX file with ONNX Runtime and ``model`` (eval mode) on ``inputs``; returns the
    largest absolute difference per output, raising :class:`ExportError` beyond tolerance."""
    _require_onnx()
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    with torch.no_grad():
        expected = _flatten(model.eval()(inputs))
    if len(got) != len(expected):
        raise ExportError(f"{path}: ONNX Runtime gave {len(got)} outputs, PyTorch {len(expected)}")
    diffs = {}
    for output, ours, theirs in zip(session.get_outputs(), expected, got):
        theirs = torch.from_numpy(theirs)
        if tuple(theirs.shape) != tuple(ours.shape):
            raise ExportError(f"{path}: output {output.name} has shape {tuple(theirs.shape)} in "
                              f"ONNX Runtime but {tuple(ours.shape)} in PyTorch")
        ours = ours.float()
        diff = (theirs.float() - ours).abs()
        diffs[output.name] = float(diff.max()) if diff.numel() else 0.0
        scale = float(ours.abs().max()) if ours.numel() else 0.0
        if diffs[output.name] > atol + rtol * scale:
            raise ExportError(f"{path}: output {output.name} differs from PyTorch by up to "
                              f"{diffs[output.name]:.3g} (batch {len(inputs)}; tolerance "
                              f"atol={atol} + rtol={rtol} x {scale:.3g}, the largest |value|)")
    return diffs
