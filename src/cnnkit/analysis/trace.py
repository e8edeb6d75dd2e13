"""Record one forward pass: a row per leaf-module call and per functional op that matters.

Forward hooks on every module keep a stack of the modules being run; a ``TorchFunctionMode``
sees every torch function. Ops inside a leaf module (one without children) belong to that
module's row and are passed straight through; ops called by the forward of a container become
rows when they are in ``ops.RECORDED``. Every tensor produced outside leaf modules gets a
receptive field (kept per tensor in a weak, identity-keyed table), so branches that are added
or concatenated combine the fields of their inputs.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from cnnkit.analysis import ops, receptive as R, rules
from cnnkit.analysis.costs import ZERO_COST, function_cost, is_known, module_cost
from cnnkit.analysis.report import LayerRow

LEAF_TYPES = (nn.MultiheadAttention,)  # containers whose children are used functionally


class AnalyzerBug(RuntimeError):
    """The analyzer's own bookkeeping failed (not the model): kept with its traceback."""


@contextmanager
def _bookkeeping(tracer: Tracer, where: str) -> Iterator[None]:
    tracer.busy = True
    try:
        yield
    except Exception as err:
        raise AnalyzerBug(f"cnnkit analyzer failed at {where}: {err!r}") from err
    finally:
        tracer.busy = False


def tensors(obj) -> Iterator[torch.Tensor]:
    """Tensors in nested tuples, lists and dicts, in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors(item)


def is_leaf(module: nn.Module) -> bool:
    return isinstance(module, LEAF_TYPES) or next(module.children(), None) is None


def _same_memory(out: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
    """``out`` is one of the inputs (in place) or a view of one."""
    base = out._base if out._base is not None else out
    return any(out is t or base is t or base is t._base for t in inputs)


@dataclass
class Frame:
    """A module being run. ``opaque``: a leaf without a known rule, traced through its ops."""

    name: str
    module: nn.Module
    inputs: list[torch.Tensor]
    leaf: bool
    ignored: bool = False  # called inside another leaf: part of that leaf's row
    opaque: bool = False
    macs: int = 0
    flops: int = 0
    uncosted: bool = False


@dataclass(eq=False)
class Tracer(TorchFunctionMode):
    """Collects :class:`LayerRow` objects; ``names`` maps id(module) to its dotted name."""

    names: dict[int, str]  # the model itself is "": a leaf only when of a known type
    params: dict[int, list[tuple[str, nn.Parameter]]]  # id(module) -> its own named parameters
    rows: list[LayerRow] = field(default_factory=list)
    fields: WeakIdKeyDictionary = field(default_factory=WeakIdKeyDictionary)
    stack: list[Frame] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    seen: set[int] = field(default_factory=set)
    uncounted: set[str] = field(default_factory=set)
    leaf: Frame | None = None  # the leaf module being run, if any
    busy: bool = False  # our own bookkeeping is running: pass torch functions through
    current: tuple[str, list[torch.Tensor]] | None = None  # a functional op being run

    def __post_init__(self) -> None:
        super().__init__()

    # ----------------------------------------------------------------- hooks
    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        with _bookkeeping(self, f"the start of {self.names.get(id(module))!r}"):
            name = self.names[id(module)]
            leaf = is_leaf(module) and (name != "" or is_known(module)
                                        or isinstance(module, LEAF_TYPES))
            frame = Frame(name, module, list(tensors((args, kwargs))), leaf,
                          ignored=self.leaf is not None, opaque=leaf and not is_known(module))
            self.stack.append(frame)
            if leaf and not frame.ignored:
                self.leaf = frame

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        with _bookkeeping(self, f"the end of {self.names.get(id(module))!r}"):
            frame = self.stack.pop()
            if frame.ignored or not frame.leaf:
                return
            self.leaf = None
            outs = list(tensors(output))
            if frame.opaque:
                traced = self.fields.get(outs[0]) if outs else None
                in_rfs = [self.fields.get(t) for t in frame.inputs]
                rf = traced if traced is not None or not outs else rules.module_rf(
                    module, frame.inputs, in_rfs, outs[0])
                cost = (frame.macs, frame.flops)
                if frame.uncosted:
                    self.uncounted.add(type(module).__name__)
            else:
                in_rfs = [self.fields.get(t) for t in frame.inputs]
                rf = rules.module_rf(module, frame.inputs, in_rfs, outs[0]) if outs else None
                cost = module_cost(module, frame.inputs, outs) or (0, 0)
            for t in outs:
                if rf is not None:
                    self.fields[t] = rf
            self._add_row(frame.name, type(module).__name__, "module", frame.name, outs,
                          frame.inputs, cost, rf, self.params.get(id(module), []))

    # ----------------------------------------------------------------- functions
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.busy or (self.leaf is not None and not self.leaf.opaque):
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in ops.IGNORED:
            return func(*args, **kwargs)
        if self.leaf is None:
            self.current = (name, list(tensors(args)))
        result = func(*args, **kwargs)
        self.current = None
        with _bookkeeping(self, f"function {name!r}"):
            self._function(ops.canonical(name), args, kwargs, result)
        return result

    def _function(self, op: str, args: tuple, kwargs: dict, result) -> None:
        """Propagate fields through one op; make it a row, or add its cost to the opaque leaf
        module that called it."""
        if op in ops.CONSTRUCTORS:
            for out in tensors(result):
                self.fields.pop(out, None)  # (zero_ empties a tensor in place)
            return
        inputs = list(tensors((args, kwargs)))
        pairs = [(t, self.fields[t]) for t in inputs if t in self.fields]
        if op == "__setitem__" and len(args) == 3 and args[2] in self.fields:
            target, key, value = args
            rf = ops.setitem_rf(target, key, value, self.fields[value], self.fields.get(target))
            if rf is not None:
                self.fields[target] = rf
            return
        outs = list(tensors(result))
        if not pairs or not outs:
            return
        rfs = [ops.function_rf(op, args, kwargs, pairs, out) for out in outs]
        for out, rf in zip(outs, rfs):
            self.fields[out] = rf
        leaf = self.leaf
        if leaf is not None:
            if op in ops.RECORDED:
                macs, flops = function_cost(op, args, kwargs, tuple(outs[0].shape))
                leaf.macs += macs
                leaf.flops += flops
            elif op not in ZERO_COST:
                leaf.uncosted = True
        elif ops.is_recorded(op, len(pairs)):
            scope = self.stack[-1].name if self.stack else ""
            self._add_row(f"{scope}.{op}" if scope else op, op, "function", scope, outs,
                          inputs, function_cost(op, args, kwargs, tuple(outs[0].shape)), rfs[0], [])

    # ----------------------------------------------------------------- rows
    def _add_row(self, base: str, type_name: str, kind: str, scope: str, outs: list,
                 inputs: list, cost: tuple[int, int], rf: R.TensorRF | None,
                 params: list[tuple[str, nn.Parameter]]) -> None:
        base = base or type_name  # a model that is itself a leaf module
        self.calls[base] += 1
        count = self.calls[base]
        new = [(n, p) for n, p in params if id(p) not in self.seen]  # shared weights count once
        self.seen.update(id(p) for _, p in new)
        total = sum(p.numel() for _, p in new)
        bias = sum(p.numel() for n, p in new if n.endswith("bias"))
        trainable = sum(p.numel() for _, p in new if p.requires_grad)
        counted = [o for o in outs if not _same_memory(o, inputs)]
        depth = (len(scope.split(".")) if scope else 0) + (kind == "function")
        shapes = [list(o.shape) for o in outs]
        self.rows.append(LayerRow(
            name=base if count == 1 else f"{base}#{count}", type=type_name, kind=kind,
            depth=depth, output_shape=shapes[0] if len(shapes) == 1 else shapes,
            params=total, weight_params=total - bias, bias_params=bias,
            trainable_params=trainable, frozen_params=total - trainable,
            macs=cost[0], flops=cost[1],
            activations=sum(o.numel() for o in counted),
            bytes=sum(o.numel() * o.element_size() for o in counted),
            rf=R.to_json(rf), rf_note=rf.note if rf is not None else None, field=rf))
