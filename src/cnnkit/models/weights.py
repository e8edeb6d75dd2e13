"""Load and save model weights from local files, never executing code from them.

``.safetensors`` files are read with safetensors; ``.pth``/``.pt``/``.bin``/``.ckpt`` files with
``torch.load(weights_only=True)``, which refuses pickled code. A checkpoint may be a bare
state_dict or a dict holding one under ``state_dict``/``model``/``model_state_dict``; the prefixes
that DataParallel (``module.``) and ``torch.compile`` (``_orig_mod.``) add are removed.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnkit.errors import WeightsError

log = logging.getLogger("cnnkit")

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
MAX_LISTED = 10


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a local checkpoint file, keyed by parameter/buffer name."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file ({err})") from None
    elif path.suffix in PICKLE_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise WeightsError(f"{path}: holds objects other than tensors, which cnnkit will not "
                               f"unpickle (code could run); save a plain state_dict or a "
                               f".safetensors file ({str(err).splitlines()[0]})") from None
        except (RuntimeError, EOFError) as err:
            raise WeightsError(f"{path}: not a readable PyTorch checkpoint "
                               f"({str(err).splitlines()[0]})") from None
    else:
        raise WeightsError(f"{path}: unknown weights format {path.suffix!r}; expected "
                           f".safetensors or one of {', '.join(PICKLE_SUFFIXES)}")
    return _unwrap(state, path)


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(state, dict) and not _all_tensors(state):
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            raise WeightsError(f"{path}: no state_dict found (top-level keys: "
                               f"{', '.join(map(str, list(state)[:MAX_LISTED]))})")
        state = inner
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    out = {}
    for key, value in state.items():
        for prefix in STRIPPED_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _all_tensors(state: dict) -> bool:
    return all(isinstance(v, torch.Tensor) for v in state.values())


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys it could not use, and whether the head is new."""

    path: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    new_head: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for title, keys in (("missing in the checkpoint", self.missing),
                            ("unexpected in the checkpoint", self.unexpected)):
            if keys:
                parts.append(f"{len(keys)} {title}: {_listing(keys)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {list(c)} vs model {list(m)})"
                     for k, c, m in self.mismatched]
            parts.append(f"{len(shown)} with another shape: {_listing(shown)}")
        return "; ".join(parts) or "all keys match"


def _listing(items: list[str]) -> str:
    more = f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the model's classifier layers (``classifier_names``)."""
    names = getattr(model, "classifier_names", ())
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> LoadReport:
    """Load a local checkpoint into ``model`` and report what did not match.

    Only the classifier may differ in shape (a checkpoint trained for another number of classes):
    then the rest is loaded, the head keeps its fresh initialisation and a warning says so. Any
    other missing, unexpected or mis-shaped key raises :class:`WeightsError` listing them all
    (unless ``strict=False``, which loads what matches and returns the report). Keys under the
    model's ``ignored_checkpoint_prefixes`` (e.g. auxiliary heads it was built without) are skipped,
    and a model with a ``remap_checkpoint_keys(state)`` method (DenseNet's old key names) renames
    them first.
    """
    state = read_state_dict(path)
    if hasattr(model, "remap_checkpoint_keys"):
        state = model.remap_checkpoint_keys(state)
    own = model.state_dict()
    ignore = tuple(getattr(model, "ignored_checkpoint_prefixes", ()))
    report = LoadReport(path=str(path))
    report.ignored = [k for k in state if k not in own and ignore and k.startswith(ignore)]
    report.missing = [k for k in own if k not in state]
    report.unexpected = [k for k in state if k not in own and k not in report.ignored]
    report.mismatched = [(k, tuple(state[k].shape), tuple(own[k].shape))
                         for k in own if k in state and state[k].shape != own[k].shape]
    heads = head_keys(model)
    report.new_head = [k for k, _, _ in report.mismatched if k in heads]
    other_mismatch = [m for m in report.mismatched if m[0] not in heads]
    if strict and (report.missing or report.unexpected or other_mismatch):
        raise WeightsError(f"{path} does not fit {type(model).__name__}: "
                           f"{LoadReport(str(path), 0, report.missing, report.unexpected, other_mismatch).describe()}")
    skip = {k for k, _, _ in report.mismatched}
    usable = {k: v for k, v in state.items() if k in own and k not in skip}
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    if report.new_head:
        shapes = {k: (c, m) for k, c, m in report.mismatched if k in heads}
        first = next(iter(shapes.values()))
        log.warning("%s: classifier has %d classes in the checkpoint and %d in the model; "
                    "new head %s initialised from scratch", path, first[0][0], first[1][0],
                    ", ".join(sorted({k.rsplit('.', 1)[0] for k in shapes})))
    return report


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state_dict to ``path`` (.safetensors or .pth) atomically."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, tmp)
        elif path.suffix in PICKLE_SUFFIXES:
            torch.save(state, tmp)
        else:
            raise WeightsError(f"{path}: unknown weights format {path.suffix!r}; use "
                               f".safetensors or .pth")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
