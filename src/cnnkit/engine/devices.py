"""Where and in which precision to train: device choice and automatic mixed precision.

Mixed precision follows Micikevicius et al., "Mixed Precision Training" (ICLR 2018): float16
needs loss scaling (a GradScaler), bfloat16 has float32's exponent range and does not.

``amp: auto`` decides from what the hardware has: on a GPU, bfloat16 where it is supported,
else float16; on a CPU, bfloat16 when the CPU computes it natively (the AVX-512 BF16 or AMX-BF16
instructions, which oneDNN uses for bfloat16 convolutions and matrix products), else float32.
Without those instructions bfloat16 is emulated and slower than float32. The CPU is read from
``/proc/cpuinfo`` (Linux); elsewhere ``auto`` keeps float32. :func:`precision_note` is the line
a run writes into its log and configuration.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

from cnnkit.engine.distributed import dist_info
from cnnkit.errors import CnnkitError
from cnnkit.kinds import AMP_MODES

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> set[str]:
    """The instruction-set flags of this CPU (empty where they cannot be read)."""
    return set(_cpuinfo().get("flags", "").split())


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16)."""
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def cpu_description() -> str:
    """The CPU's model name and its bfloat16 instructions, e.g. ``AMD EPYC (avx512_bf16)``."""
    name = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    native = [flag for flag in BF16_FLAGS if flag in cpu_flags()]
    return f"{name} ({', '.join(native) if native else 'no native bf16'})"


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto``: this process's GPU (``cuda:LOCAL_RANK``) when CUDA is available, else the CPU.
    A device this machine does not have is one error naming what it has."""
    if device == "auto":
        info = dist_info()
        return torch.device("cuda", info.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise CnnkitError(f"device {device!r} is not a device; use auto, cpu, cuda or "
                          "cuda:N") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CnnkitError(f"device {device!r}: this machine has no CUDA device that torch "
                              "can use; use train.device=cpu (or auto)")
        if resolved.index is not None and resolved.index >= count:
            raise CnnkitError(f"device {device!r}: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}")
    elif resolved.type not in ("cpu", "mps", "meta"):
        raise CnnkitError(f"device {device!r} is not supported here; use auto, cpu or cuda")
    return resolved


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """``off`` -> None; ``auto``: bfloat16 on GPUs that have it (else float16) and on CPUs that
    compute it natively (else float32, None); see the module docstring."""
    if amp not in AMP_MODES:
        raise CnnkitError(f"amp must be one of {', '.join(AMP_MODES)}; got {amp!r}")
    if amp == "auto":
        if device.type == "cuda":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu":
            amp = "bf16" if cpu_has_bf16() else "off"
        else:
            amp = "off"
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def resolve_channels_last(channels_last: bool | str, dtype: torch.dtype | None) -> bool:
    """``auto``: channels-last with reduced-precision autocast. Measured on this project's
    networks (BENCHMARKS.md), bfloat16 steps on a CPU with native bf16 gain most from it; in
    float32 the gain is smaller and some layers (unpooling) prefer NCHW, so it stays off."""
    if channels_last == "auto":
        return dtype is not None
    if not isinstance(channels_last, bool):
        raise CnnkitError(f"channels_last must be true, false or auto; got {channels_last!r}")
    return channels_last


def precision_note(amp: str, device: torch.device, dtype: torch.dtype | None,
                   channels_last: bool) -> str:
    """One line: the precision and memory format chosen, and the hardware (for the run's log
    and configuration)."""
    chosen = "float32" if dtype is None else f"{str(dtype).replace('torch.', '')} autocast"
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = cpu_description()
    how = f"amp={amp} -> {chosen}" + (", channels-last" if channels_last else "")
    return f"precision: {how} on {device.type}: {hardware}"
