"""Weight initialisation schemes, named by the paper that introduced them.

- ``"kaiming"``: He et al., 2015 (ICCV), normal with std sqrt(2 / fan_out) for ReLU networks.
- ``"xavier"``: Glorot & Bengio, 2010, uniform with the tanh gain, for tanh/sigmoid networks.

Models built on the ``meta`` device (shapes only) are left as they are.
Linear layers get the same scheme, batch norms start as identity (gamma 1, beta 0), biases 0.
``zero_init_residual=True`` then calls ``zero_init_last()`` on every block that has it, so each
residual branch starts as zero and each block as the identity (Goyal et al., 2017).
"""

from __future__ import annotations

from typing import Literal

from torch import nn
from cnnkit.errors import ArgumentError

Scheme = Literal["kaiming", "xavier"]


def init_weights(model: nn.Module, scheme: Scheme = "kaiming", *,
                 zero_init_residual: bool = False) -> nn.Module:
    if scheme not in ("kaiming", "xavier"):
        raise ArgumentError(f"init scheme must be 'kaiming' or 'xavier'; got {scheme!r}")
    if any(p.is_meta for p in model.parameters()):
        return model  # shapes only: nothing to initialise (and meta init is slow to set up)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
    return model
