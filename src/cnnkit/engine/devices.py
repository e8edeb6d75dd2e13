"""Where and in which precision to train: device choice and automatic mixed precision.

Mixed precision follows Micikevicius et al., "Mixed Precision Training" (ICLR 2018): float16
needs loss scaling (a GradScaler), bfloat16 has float32's exponent range and does not.
"""

from __future__ import annotations

import torch

from cnnkit.engine.distributed import dist_info
from cnnkit.errors import CnnkitError
from cnnkit.kinds import AMP_MODES



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
    """``off`` -> None; ``auto``: off on the CPU, bfloat16 on GPUs that have it, else float16."""
    if amp not in AMP_MODES:
        raise CnnkitError(f"amp must be one of {', '.join(AMP_MODES)}; got {amp!r}")
    if amp == "auto":
        if device.type != "cuda":
            return None
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
