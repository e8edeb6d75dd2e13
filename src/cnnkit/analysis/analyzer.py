"""``analyze(model, input_size)``: one forward pass, on the meta device by default, into a Report.

On ``device="meta"`` the model runs on tensors that have shapes but no data: nothing is
allocated or computed, so a 2048x2048 input costs what a 32x32 one does. The user's model is not
copied and not changed: its parameters and buffers are swapped for meta (or converted) tensors
only for the call (``torch.func.functional_call``), hooks are removed and every module's
training flag is restored afterwards. The forward runs in eval mode (so e.g. GoogLeNet's
auxiliary heads, which only run in training mode, give no rows; their parameters are in the
totals).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import torch
from torch import nn

from cnnkit.analysis import receptive as R
from cnnkit.analysis.report import OPTIMIZER_STATE, LayerRow, Report
from cnnkit.analysis.trace import LEAF_TYPES, AnalyzerBug, Tracer, tensors
from cnnkit.errors import ArgumentError, InputSizeError


def input_shapes(input_size) -> list[tuple[int, ...]]:
    """(3, 224, 224) -> [(3, 224, 224)]; a list of such tuples for a model with several inputs."""
    if isinstance(input_size, Sequence) and input_size and all(
            isinstance(s, Sequence) for s in input_size):
        shapes = [tuple(s) for s in input_size]
    else:
        shapes = [tuple(input_size)]
    for shape in shapes:
        if not shape or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in shape):
            raise InputSizeError(f"input_size must be positive ints without the batch, like "
                                 f"(3, 224, 224), or a list of such tuples; got {input_size!r}")
    return shapes


def _swapped(model: nn.Module, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Meta (or converted) stand-ins for the parameters and buffers that need them."""
    new: dict[int, torch.Tensor] = {}
    out = {}
    for name, t in chain(model.named_parameters(remove_duplicate=False),
                         model.named_buffers(remove_duplicate=False)):
        want = dtype if t.is_floating_point() else t.dtype
        if t.device == device and t.dtype == want:
            continue
        if t.is_meta and device.type != "meta":
            raise ArgumentError(f"parameter {name!r} is on the meta device (it has no values); "
                             "analyze this model with device='meta'")
        if id(t) not in new:
            new[id(t)] = (torch.empty_like(t, device=device, dtype=want) if device.type == "meta"
                          else t.detach().to(device, want))
        out[name] = new[id(t)]
    return out


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ArgumentError(f"device must be 'meta', 'cpu' or 'cuda[:N]'; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("device 'cuda' is not available on this machine; use 'meta' or 'cpu'")
    return dev


def _failure(tracer: Tracer, err: Exception) -> str:
    text = str(err).strip()
    message = text.splitlines()[0] if text else type(err).__name__
    if tracer.current is not None:
        op, ins = tracer.current
        scope = tracer.stack[-1].name if tracer.stack else ""
        shapes = ", ".join(str(tuple(t.shape)) for t in ins)
        return f"operation '{scope + '.' if scope else ''}{op}' failed on input {shapes}: {message}"
    frames = [f for f in tracer.stack if not f.ignored]
    if not frames:
        return f"the model failed before its first layer: {message}"
    frame = frames[-1]
    shapes = ", ".join(str(tuple(t.shape)) for t in frame.inputs)
    what = f"layer '{frame.name}'" if frame.name else "model"
    return f"{what} ({type(frame.module).__name__}) failed on input {shapes}: {message}"


def _totals(model: nn.Module, rows: list[LayerRow], inputs: list[torch.Tensor],
            dtype: torch.dtype, optimizer: str, rf: dict | None, uncounted: set[str]) -> dict:
    size = torch.empty((), dtype=dtype).element_size()
    params = list({id(p): (n, p) for n, p in model.named_parameters()}.values())
    nbytes = sum(p.numel() * (size if p.is_floating_point() else p.element_size())
                 for _, p in params)
    total = sum(p.numel() for _, p in params)
    trainable = sum(p.numel() for _, p in params if p.requires_grad)
    bias = sum(p.numel() for n, p in params if n.endswith("bias"))
    activations = sum(r.activations for r in rows)
    activation_bytes = sum(r.bytes for r in rows)
    input_bytes = sum(x.numel() * x.element_size() for x in inputs)
    trainable_bytes = trainable * size
    return {
        "params": total, "trainable_params": trainable, "frozen_params": total - trainable,
        "weight_params": total - bias, "bias_params": bias,
        "macs": sum(r.macs for r in rows), "flops": sum(r.flops for r in rows),
        "activations": activations, "activation_bytes": activation_bytes,
        "input_elements": sum(x.numel() for x in inputs), "input_bytes": input_bytes,
        "param_bytes": nbytes,
        "training_memory_bytes": nbytes + (1 + OPTIMIZER_STATE[optimizer]) * trainable_bytes
        + input_bytes + activation_bytes,
        "rf": rf, "uncounted_types": sorted(uncounted),
    }


def analyze(model: nn.Module, input_size, *, batch_size: int = 1, device: str = "meta",
            dtype: torch.dtype = torch.float32, name: str | None = None,
            optimizer: str = "sgd") -> Report:
    """Per-layer shapes, parameters, MACs/FLOPs, memory and receptive fields of ``model``.

    ``input_size`` excludes the batch: ``(3, 224, 224)``, or a list of such tuples for a model
    with several inputs (called as ``model(*inputs)``). Every dimension after the first (the
    channels) is a spatial one for receptive fields. ``device="meta"`` (default) computes
    nothing; ``"cpu"``/``"cuda"`` run real tensors and give the same numbers (a model whose cost
    depends on the values, ``analysis_needs_values = True`` such as the detectors, needs
    them: its figures are those of a random input). ``optimizer``
    ("none", "sgd" with momentum, "adam") sets the optimizer state in the training-memory
    estimate. Raises :class:`~cnnkit.errors.InputSizeError` naming the layer that failed.
    """
    shapes = input_shapes(input_size)
    if optimizer not in OPTIMIZER_STATE:
        raise ArgumentError(f"optimizer must be one of {', '.join(OPTIMIZER_STATE)}; "
                         f"got {optimizer!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive int; got {batch_size!r}")
    dev = _device(device)
    if dev.type == "meta" and getattr(model, "analysis_needs_values", False):
        raise ArgumentError(f"{name or type(model).__name__} computes with the input's values "
                            f"(e.g. a detector's proposals): analyse it with device='cpu' (or "
                            f"'cuda'), not on the meta device")
    swapped = _swapped(model, dev, dtype)
    names = {id(m): n for n, m in model.named_modules()}
    params = {id(m): list(m.named_parameters(recurse=isinstance(m, LEAF_TYPES)))
              for m in model.modules()}
    tracer = Tracer(names=names, params=params)
    if dev.type == "meta":
        inputs = [torch.empty((batch_size, *s), device=dev, dtype=dtype) for s in shapes]
    else:
        seeded = torch.Generator().manual_seed(0)  # the same figures on every call
        inputs = [torch.randn((batch_size, *s), generator=seeded, dtype=dtype).to(dev)
                  for s in shapes]
    for x, s in zip(inputs, shapes):
        tracer.fields[x] = R.input_rf(x.dim(), len(s) - 1)
    modes = [(m, m.training) for m in model.modules()]
    handles = [h for m in model.modules() for h in (
        m.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True),
        m.register_forward_hook(tracer.post_hook, with_kwargs=True))]
    try:
        model.eval()
        with torch.no_grad(), tracer:
            output = torch.func.functional_call(model, swapped, tuple(inputs), strict=False)
    except AnalyzerBug:
        raise
    except Exception as err:  # one line naming the layer, not a deep traceback
        failure = InputSizeError(_failure(tracer, err))
        failure.original = err
        raise failure from None
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    first = next(tensors(output), None)
    out_field = tracer.fields.get(first) if first is not None else None
    totals = _totals(model, tracer.rows, inputs, dtype, optimizer, R.to_json(out_field),
                     tracer.uncounted)
    return Report(model=name or type(model).__name__, inputs=[list(x.shape) for x in inputs],
                  layers=tracer.rows, totals=totals, batch_size=batch_size, device=str(dev),
                  dtype=str(dtype).removeprefix("torch."), optimizer=optimizer,
                  module_types={n: type(m).__name__ for n, m in model.named_modules()},
                  output_field=out_field)
