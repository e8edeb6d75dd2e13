"""What the commands share: verbosity, sizes written ``3x224x224``, models named or imported."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from cnnkit.errors import CnnkitError

LOGGER = "cnnkit"


class _Formatter(logging.Formatter):
    """Plain messages; warnings and errors prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def setup_logging(level: int = logging.INFO) -> None:
    """Messages of the ``cnnkit`` loggers to standard error, at ``level``."""
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "_cnnkit", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        handler._cnnkit = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


def _set_level(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        logging.getLogger(LOGGER).setLevel(
            logging.WARNING if param.name == "quiet" else logging.DEBUG)
    return value


def verbosity(command):
    """``--quiet`` and ``--verbose``, on the group and on every command."""
    command = click.option("--verbose", "-v", is_flag=True, expose_value=False, is_eager=True,
                           callback=_set_level, help="Debug messages too.")(command)
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_level,
                        help="Warnings and errors only (no progress).")(command)


def quiet() -> bool:
    """Whether messages below warnings are off (``--quiet``)."""
    return logging.getLogger(LOGGER).getEffectiveLevel() > logging.INFO


def parse_size(text: str, what: str = "--input") -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); '224' -> (224,)."""
    try:
        size = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise CnnkitError(f"{what}: expected sizes like 3x224x224; got {text!r}") from None
    if not size or any(s < 1 for s in size):
        raise CnnkitError(f"{what}: sizes must be positive integers like 3x224x224; got {text!r}")
    return size


def resolve_model(spec: str, **kwargs):
    """A registered model name, or ``package.module:attr`` naming a module, class or factory."""
    from torch import nn

    if ":" not in spec:
        from cnnkit.models import create

        return create(spec, **kwargs)
    module_name, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError:
        raise CnnkitError(f"cannot import module {module_name!r} (from {spec!r})") from None
    except AttributeError:
        raise CnnkitError(f"module {module_name!r} has no attribute {attr!r}") from None
    model = obj if isinstance(obj, nn.Module) else obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise CnnkitError(f"{spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model
