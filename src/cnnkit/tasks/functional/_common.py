"""Shape checks and masked reductions shared by the dense-regression functions."""

import torch

from cnnkit.errors import CnnkitError


def shape_of(x) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def depth_maps(x, name: str, fn: str) -> torch.Tensor:
    """``H x W``, ``N x H x W`` or ``N x 1 x H x W`` -> ``N x H x W``."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        if x.dim() == 2:
            return x[None]
        if x.dim() == 3:
            return x
        if x.dim() == 4 and x.shape[1] == 1:
            return x[:, 0]
    raise CnnkitError(f"{fn}: {name} must be a floating-point depth map H x W, N x H x W or "
                      f"N x 1 x H x W; got {shape_of(x)}"
                      + (f" {x.dtype}" if isinstance(x, torch.Tensor) else ""))


def same_shape(pred: torch.Tensor, target: torch.Tensor, fn: str) -> None:
    if pred.shape != target.shape:
        raise CnnkitError(f"{fn}: pred and target must have the same shape; got "
                          f"{tuple(pred.shape)} and {tuple(target.shape)}")


def valid_mask(valid, shape: torch.Size, fn: str, what: str = "N x H x W") -> torch.Tensor | None:
    """``valid`` as a bool tensor of ``shape`` (a missing batch dim or a singleton channel
    dim is accepted); None stays None."""
    if valid is None:
        return None
    if isinstance(valid, torch.Tensor):
        if valid.dim() == len(shape) - 1 and len(shape) == 3:
            valid = valid[None]
        elif valid.dim() == len(shape) + 1 and valid.shape[1] == 1:
            valid = valid[:, 0]
        if valid.shape == shape:
            return valid.bool()
    raise CnnkitError(f"{fn}: valid must be a bool mask {what} = {tuple(shape)} (like the "
                      f"target without its channel dim); got {shape_of(valid)}")


def vector_maps(x, name: str, fn: str, channels: int) -> torch.Tensor:
    """``N x C x H x W`` (or ``C x H x W``, given a batch dim) floating-point maps."""
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() in (3, 4) \
            and x.shape[-3] == channels:
        return x if x.dim() == 4 else x[None]
    raise CnnkitError(f"{fn}: {name} must be a floating-point tensor N x {channels} x H x W "
                      f"(or {channels} x H x W); got {shape_of(x)}")


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``valid``; 0 (keeping the graph) when nothing is valid."""
    count = valid.sum()
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / count.clamp_min(1)
