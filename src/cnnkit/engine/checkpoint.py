"""Training checkpoints: atomic writes, random-number-generator states, safe loading.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). It holds everything an exact resume
needs: model, optimizer, schedule and gradient-scaler states, the epoch, the global step, the
number of batches of the current epoch already done, the best value of the primary metric, the
RNG states of Python, NumPy and torch (CPU and CUDA) of every process, the state the data
loader's generators had at the start of the epoch, the history and the run's configuration.

Files are written to a temporary file in the same folder and then renamed over the target with
:func:`os.replace`, which is atomic on POSIX and Windows: a crash during the write leaves the
previous checkpoint intact, never a half-written one.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError

FORMAT = "cnnkit.checkpoint/1"


class CheckpointError(CnnkitError):
    """A checkpoint file that is missing, unreadable, unwritable or not a cnnkit checkpoint."""


class NonFiniteStateError(CnnkitError):
    """Parameters or buffers of the model became NaN or infinite; nothing was saved."""


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)``, then rename the result over ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:  # the data must be on disk before the rename
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save(state)`` to ``path`` atomically; a failed write (full disk, permissions)
    is one :class:`CheckpointError` naming the file and saying that the previous one, if
    any, is intact."""
    path = Path(path)
    try:
        return atomic_write(path, lambda tmp: torch.save(state, tmp))
    except OSError as err:
        kept = (f"the previous {path.name} is intact" if path.is_file()
                else f"no {path.name} was written")
        raise CheckpointError(f"could not write {path} ({err.strerror or err}); {kept}") from None


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint file atomically (the latest to the best)."""
    target = Path(target)
    try:
        return atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
    except OSError as err:
        raise CheckpointError(f"could not write {target} ({err.strerror or err}); {source} "
                              f"holds the same checkpoint") from None


def orphans(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Temporary files :func:`atomic_write` left in ``folder`` for ``names`` (a process killed
    in the middle of a write leaves one behind)."""
    folder = Path(folder)
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp"))


def nonfinite_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers holding a NaN or an infinity (one
    synchronisation with the device for all of them)."""
    named = [(name, tensor) for name, tensor in (*model.named_parameters(),
                                                 *model.named_buffers())
             if tensor.is_floating_point()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t.detach()).all() for _, t in named]).tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def repair_best(last: str | Path, best: str | Path) -> bool:
    """Make ``best`` the copy of ``last`` that an interrupted copy failed to finish: when
    ``last`` is the end-of-epoch checkpoint of its run's best epoch and ``best`` is missing,
    unreadable or older. Returns whether it copied."""
    last, best = Path(last), Path(best)
    if not last.is_file():
        return False
    state = load_checkpoint(last)
    if state.get("batches_done") or state.get("best_epoch") != state.get("epoch"):
        return False  # last.pt is not the best epoch's end
    try:
        current = load_checkpoint(best) if best.is_file() else None
    except CheckpointError:
        current = None
    if current is not None and current.get("step") == state.get("step"):
        return False
    copy_checkpoint(last, best)
    return True


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint` (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read it ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001  a foreign file fails torch's unpickler in any way
        reason = "not a file torch.save wrote"
        if isinstance(err, pickle.UnpicklingError):
            reason = "it is not a weights-only torch file: cnnkit runs no pickled code"
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cnnkit training checkpoint (no format "
                              f"{FORMAT!r}); to load weights only use "
                              f"cnnkit.models.weights.load_weights")
    return state


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CUDA ones too)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_as_tuples(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], np.asarray(numpy_state["keys"], dtype=np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples; a round trip through some formats gives lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plain_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` reduced to JSON values (others become strings), safe for weights-only loading."""
    return json.loads(json.dumps(config or {}, default=str))


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel / ``torch.compile`` wrappers."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        else:
            return model
