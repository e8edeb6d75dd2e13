"""The analyzer's result: rows, totals, ``--depth`` folding and the four output formats.

JSON schema (``Report.to_dict()``; stable, extra keys may be added but none removed)::

    {"model": str, "input": [[N, C, H, W], ...] (one shape per model input, batch included),
     "batch_size": int, "device": str, "dtype": str, "optimizer": "none"|"sgd"|"adam",
     "layers": [{"name", "type", "kind": "module"|"function", "depth",
                 "output_shape": [..] (or a list of shapes for several outputs),
                 "params", "weight_params", "bias_params", "trainable_params", "frozen_params",
                 "macs", "flops", "activations", "bytes",
                 "rf": {"size", "jump", "start"[, "period", "min_size"]} | null,
                 "rf_note": str | null}, ...],
     "totals": {"params", "trainable_params", "frozen_params", "weight_params", "bias_params",
                "macs", "flops", "activations", "activation_bytes", "input_elements",
                "input_bytes", "param_bytes", "training_memory_bytes", "rf", "uncounted_types"}}

``rf`` values are one number when all spatial dimensions agree, else a list ``[h, w]``; ints
when whole, floats otherwise; ``period``/``min_size`` appear after upsampling, when units differ
(see :mod:`cnnkit.analysis.receptive`). Activations exclude the input and count 0 for in-place
ops and views. Conventions for every field: docs/analyzer.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace

from cnnkit.analysis.receptive import TensorRF, unit_box
from cnnkit.textfmt import csv_table, human, markdown_table, text_table
from cnnkit.errors import ArgumentError, NotFoundError

OPTIMIZER_STATE = {"none": 0, "sgd": 1, "adam": 2}  # state tensors per parameter
TRAINING_RULE = ("params + gradients + optimizer state (sgd momentum 1x, adam 2x the "
                 "trainable params) + input + all activations kept for backward")
FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class LayerRow:
    """One leaf-module call or one recorded functional op."""

    name: str
    type: str
    kind: str
    depth: int
    output_shape: list
    params: int
    weight_params: int
    bias_params: int
    trainable_params: int
    frozen_params: int
    macs: int
    flops: int
    activations: int
    bytes: int
    rf: dict | None
    rf_note: str | None = None
    field: TensorRF | None = field(default=None, repr=False, compare=False)  # not in JSON


SUMMED = ("params", "weight_params", "bias_params", "trainable_params", "frozen_params", "macs",
          "flops", "activations", "bytes")


@dataclass
class Report:
    model: str
    inputs: list[list[int]]
    layers: list[LayerRow]
    totals: dict
    batch_size: int = 1
    device: str = "meta"
    dtype: str = "float32"
    optimizer: str = "sgd"
    module_types: dict[str, str] = field(default_factory=dict)  # dotted name -> class name
    output_field: TensorRF | None = None  # receptive field of the model's (first) output

    def field_of(self, layer: str | None = None) -> TensorRF:
        """Receptive field of the model output, or of the output of ``layer`` (a row name or
        a container module: its last row)."""
        if layer is None:
            found = self.output_field
        else:
            rows = [r for r in self.layers if r.name == layer or r.name.startswith(layer + ".")]
            if not rows:
                raise NotFoundError(f"no layer {layer!r} in the report of {self.model}")
            found = rows[-1].field
        if found is None or found.dims is None:
            raise ArgumentError(f"receptive field of {layer or 'the output'} is unknown"
                             + (f": {found.note}" if found is not None and found.note else ""))
        return found

    def receptive_box(self, unit, layer: str | None = None, clip: bool = True) -> list[list]:
        """Input-pixel bounds ``[[lo, hi], ...]`` (inclusive) seen by output unit ``unit`` (one
        index per spatial dimension), exact for any unit; ``clip`` cuts off the padding."""
        spatial = self.inputs[0][2:]
        return unit_box(self.field_of(layer), unit, spatial if clip else None)

    def fold(self, depth: int | None) -> list[LayerRow]:
        """Rows deeper than ``depth`` merged into their ancestor at that depth: sums of the
        counts, output shape and receptive field of the last merged row."""
        if depth is None:
            return list(self.layers)
        folded: list[LayerRow] = []
        key_of_last = None
        for row in self.layers:
            if row.depth <= depth:
                folded.append(row)
                key_of_last = None
                continue
            key = ".".join(row.name.split(".")[:depth])  # "" (the model) at depth 0
            if key == key_of_last:
                last = folded[-1]
                sums = {k: getattr(last, k) + getattr(row, k) for k in SUMMED}
                folded[-1] = replace(last, **sums, output_shape=row.output_shape, rf=row.rf,
                                     rf_note=row.rf_note)
            else:
                folded.append(replace(row, name=key or self.model, kind="module", depth=depth,
                                      type=self.module_types.get(key, "Module")))
                key_of_last = key
        return folded

    def to_dict(self, depth: int | None = None) -> dict:
        return {"model": self.model, "input": self.inputs, "batch_size": self.batch_size,
                "device": self.device, "dtype": self.dtype, "optimizer": self.optimizer,
                "layers": [row_dict(r) for r in self.fold(depth)], "totals": dict(self.totals)}

    def format(self, fmt: str = "table", depth: int | None = None) -> str:
        if fmt not in FORMATS:
            raise ArgumentError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        if fmt == "json":
            return json.dumps(self.to_dict(depth), indent=2)
        rows = self.fold(depth)
        headers = ["name", "type", "output", "params", "MACs", "FLOPs", "activations",
                   "RF", "jump"]
        if fmt == "csv":
            return csv_table(headers + ["start", "rf_note"],
                             [self._cells(r, False) + [_rf(r, "start"), r.rf_note or ""]
                              for r in rows]).rstrip("\n")
        right = [False, False, False, True, True, True, True, True, True]
        cells = [self._cells(r, True) for r in rows]
        table = (text_table if fmt == "table" else markdown_table)(headers, cells, right)
        footer = self.footer()
        if fmt == "markdown":
            footer = [f"- {line}" for line in footer]
        return "\n".join([table, "", *footer])

    @staticmethod
    def _cells(r: LayerRow, pretty: bool) -> list:
        num = (lambda v: f"{v:,}") if pretty else (lambda v: v)
        shape = r.output_shape
        shown = ("x".join(map(str, shape)) if shape and isinstance(shape[0], int)
                 else " ".join("x".join(map(str, s)) for s in shape))
        return [r.name, r.type, shown, num(r.params), num(r.macs), num(r.flops),
                num(r.activations), _rf(r, "size"), _rf(r, "jump")]

    def footer(self) -> list[str]:
        t = self.totals
        shapes = ", ".join("x".join(map(str, s)) for s in self.inputs)
        notes = [f"rf note {r.name}: {r.rf_note}" for r in self.layers if r.rf_note]
        lines = [
            f"model {self.model}; input {shapes} ({t['input_elements']:,} elements); "
            f"{self.dtype} on {self.device}, eval mode",
            f"params {t['params']:,} (trainable {t['trainable_params']:,}, frozen "
            f"{t['frozen_params']:,}; weights {t['weight_params']:,}, biases "
            f"{t['bias_params']:,}) = {human(t['param_bytes'], 'B')}",
            f"MACs {human(t['macs'])} (multiply-adds of conv/linear layers); "
            f"FLOPs {human(t['flops'])} (2 x MACs + norms, pooling, activations, adds)",
            f"activations {t['activations']:,} elements = {human(t['activation_bytes'], 'B')} "
            "(outputs of every row; in-place ops and views add 0; input not included)",
            f"training memory ({self.optimizer}) {human(t['training_memory_bytes'], 'B')} = "
            + TRAINING_RULE,
        ]
        if t.get("uncounted_types"):
            lines.append("no MAC/FLOP convention for: " + ", ".join(t["uncounted_types"]))
        return lines + notes

    def __str__(self) -> str:
        return self.format("table")


def row_dict(row: LayerRow) -> dict:
    return {f.name: getattr(row, f.name) for f in fields(row) if f.name != "field"}


def _rf(row: LayerRow, key: str) -> str:
    if row.rf is None:
        return "-"
    value = row.rf[key]
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)
