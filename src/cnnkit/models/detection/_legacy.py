"""Older checkpoint key names, renamed when a state_dict is loaded (not public).

torchvision's published COCO checkpoints predate a change of some module layouts (a plain
convolution became ``Sequential(Conv2d, ...)``), so a few of their keys have older names:
``rpn.head.conv.weight`` for ``rpn.head.conv.0.0.weight``, ``backbone.fpn.inner_blocks.0.weight``
for ``backbone.fpn.inner_blocks.0.0.weight``, ``roi_heads.mask_head.mask_fcn1.weight`` for
``roi_heads.mask_head.0.0.weight``; frozen batch norms ignore a ``num_batches_tracked`` entry.
Each module that had another layout lists its renames (:meth:`LegacyKeys.legacy_keys`); they
are applied by ``load_state_dict`` (``_load_from_state_dict``) and, for cnnkit's
:func:`~cnnkit.models.weights.load_weights`, by :func:`remap_legacy_keys` over a whole model.
Renaming goes by key, not by the checkpoint's version metadata, so a state_dict rebuilt by hand
(a plain dict, which has no metadata) loads too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class LegacyKeys:
    """Mixin for an ``nn.Module`` whose older checkpoints name some entries differently."""

    def legacy_keys(self) -> dict[str, str]:
        """``{old local key: new local key}`` (relative to the module)."""
        return {}

    def rename_legacy(self, state: dict, prefix: str) -> None:
        """Rename, in place, the old keys of this module (at ``prefix``) found in ``state``."""
        for old, new in self.legacy_keys().items():
            if prefix + old in state and prefix + new not in state:
                state[prefix + new] = state.pop(prefix + old)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self.rename_legacy(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]


def remap_legacy_keys(model: nn.Module,
                      state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with every old key of ``model``'s modules renamed."""
    out = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, LegacyKeys):
            module.rename_legacy(out, f"{name}." if name else "")
    return out
