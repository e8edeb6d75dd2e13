"""Transfer learning: freeze parameter groups, smaller backbone rates, linear probes.

Recipes for the four cases of the transfer-learning table (after Donahue et al., "DeCAF", ICML
2014, and Razavian et al., "CNN Features off-the-shelf", CVPR Workshops 2014), for a zoo
classifier ``model`` with pretrained weights and a new dataset of ``C`` classes:

===================  =============================================  ==========================================
amount of data       very similar dataset                           very different dataset
===================  =============================================  ==========================================
very little          linear classifier on the top layer:            linear classifiers on features of different
                     ``probe = LinearProbe(model, C)`` (:mod:`cnnkit.models.probe`), train it    stages: ``LinearProbe(model, C, stage=i)`` for
                     (only its head learns)                         each ``i``; keep the best on validation
quite a lot          fine-tune a few layers: ``model.reset_         fine-tune a larger number of layers: reset the
                     classifier(C)``, ``freeze(model, ["stem",      classifier, train every group with the
                     "layer1", "layer2"])``, backbone at 1/10 of    backbone at 1/10 of the rate:
                     the rate: ``build_optimizer(model, lr=lr,      ``build_optimizer(model, lr=lr,
                     lr_multipliers={"stages": 0.1})``              lr_multipliers=BACKBONE_TENTH)``
===================  =============================================  ==========================================

"Lower learning rate when fine-tuning; 1/10 of the original learning rate is a good starting
point": :data:`BACKBONE_TENTH` gives stem and stages 0.1 x the rate of the new head.
:func:`freeze` accepts group names (``stem``, ``stages``, ``head``) or parameter-name prefixes
(``layer1``), and keeps frozen batch-norm layers in evaluation mode so their running statistics
stay those of the pretrained model.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.engine.optim import model_groups

BACKBONE_TENTH = {"stem": 0.1, "stages": 0.1}


def _keep_eval(module: nn.Module, _inputs: tuple) -> None:
    """Forward pre-hook: a frozen batch-norm layer always uses its running statistics."""
    module.training = False


def _selected(model: nn.Module, names: Iterable[str]) -> tuple[set[str], list[str]]:
    """Parameter names picked by group names or name prefixes, and the prefixes that matched."""
    names = list(names)
    groups = getattr(model, "group_prefixes", {}) or {}
    prefixes: list[str] = []
    for name in names:
        if name in groups:
            prefixes.extend(groups[name])
        else:
            prefixes.append(name)
    picked = {pname for pname, _ in model.named_parameters()
              if any(pname == p or pname.startswith(p + ".") for p in prefixes)}
    unmatched = [n for n in names if n not in groups and not any(
        pname == n or pname.startswith(n + ".") for pname in picked)]
    if unmatched:
        top = sorted({pname.split(".")[0] for pname, _ in model.named_parameters()})
        raise CnnkitError(f"{', '.join(map(repr, unmatched))} names no parameter group "
                          f"({', '.join(sorted(groups)) or 'it has none'}) and no parameter "
                          f"prefix (such as {', '.join(top[:4])}) of {type(model).__name__}")
    return picked, prefixes


def freeze(model: nn.Module, names: Iterable[str], *, bn_eval: bool = True) -> int:
    """Stop training the parameters under ``names`` (groups or prefixes); return how many.

    With ``bn_eval``, batch-norm layers under them keep using their running statistics even in
    training mode.
    """
    picked, prefixes = _selected(model, names)
    for pname, param in model.named_parameters():
        if pname in picked:
            param.requires_grad_(False)
    if bn_eval:
        for mname, module in model.named_modules():
            inside = any(mname == p or mname.startswith(p + ".") for p in prefixes)
            if inside and isinstance(module, nn.modules.batchnorm._BatchNorm):
                if _keep_eval not in module._forward_pre_hooks.values():
                    module.register_forward_pre_hook(_keep_eval)
    return len(picked)


def unfreeze(model: nn.Module, names: Iterable[str] | None = None) -> int:
    """Train again the parameters under ``names`` (all when None); return how many were frozen."""
    if names is None:
        picked, prefixes = {n for n, _ in model.named_parameters()}, [""]
    else:
        picked, prefixes = _selected(model, names)
    thawed = 0
    for pname, param in model.named_parameters():
        if pname in picked and not param.requires_grad:
            param.requires_grad_(True)
            thawed += 1
    for mname, module in model.named_modules():
        if prefixes == [""] or any(mname == p or mname.startswith(p + ".") for p in prefixes):
            for key, hook in list(module._forward_pre_hooks.items()):
                if hook is _keep_eval:
                    del module._forward_pre_hooks[key]
                    module.train(model.training)
    return thawed


def trainable_groups(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{group: (trainable parameter tensors, all parameter tensors)}``."""
    return {g: (sum(p.requires_grad for p in ps), len(ps)) for g, ps in model_groups(model).items()}
