"""Read a run configuration from YAML plus ``a.b=value`` overrides, with typed checking.

Every value is checked against the field's type hint; an unknown key or a wrong type stops with
one message naming the file (or the override), the dotted key and what would be valid.
Overrides are parsed as YAML scalars/flow values (``train.epochs=3``, ``train.amp=true``,
``data.size=[48,64]``, ``model.options.output_stride=8``); keys below a ``dict`` field
(``model.options``, ``task.options``, ``schedule.params``) are free-form.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from cnnkit.config.schema import RunConfig
from cnnkit.data.datasets.catalog import DATASET_KINDS
from cnnkit.errors import CnnkitError
from cnnkit.kinds import TASK_KINDS


class ConfigError(CnnkitError):
    """A configuration file or override that cannot be used."""


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "any value"
    if hint is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """``value`` checked (and converted where lossless: int -> float) against ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(value, option, key, source)
            except ConfigError:
                continue
    elif hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            return {_coerce(k, args[0], key, source): _coerce(v, args[1], f"{key}.{k}", source)
                    for k, v in value.items()}
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return _build(hint, value, key, source)
    raise ConfigError(f"{source}: {key} must be {_type_name(hint)}; got {value!r}")


def _build(cls: type, values: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            where = f"in {prefix}" if prefix else "at the top level"
            full = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{source}: unknown key {full!r}; valid keys {where}: "
                              f"{', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k, source)
              for k, v in values.items()}
    return cls(**kwargs)


def _check_choices(config: RunConfig, source: str) -> None:
    if config.data.kind not in DATASET_KINDS:
        raise ConfigError(f"{source}: data.kind must be one of {', '.join(DATASET_KINDS)}; "
                          f"got {config.data.kind!r}")
    if config.task.kind not in TASK_KINDS:
        raise ConfigError(f"{source}: task.kind must be one of {', '.join(TASK_KINDS)}; "
                          f"got {config.task.kind!r}")
    positive = {"data.batch_size": config.data.batch_size, "train.epochs": config.train.epochs,
                "data.num_samples": config.data.num_samples}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{source}: {key} must be >= 1; got {value}")
    if config.data.workers < 0:
        raise ConfigError(f"{source}: data.workers must be >= 0; got {config.data.workers}")


def config_from_dict(values: dict | None, source: str = "config") -> RunConfig:
    """A :class:`RunConfig` from nested plain values (as read from YAML)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (data, model, task, optim, "
                          f"schedule, train); got {type(values).__name__}")
    config = _build(RunConfig, values, "", source)
    _check_choices(config, source)
    return config


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain nested values (YAML-ready) of a configuration."""
    return dataclasses.asdict(config)


def apply_override(config: RunConfig, text: str) -> RunConfig:
    """``config`` with one ``a.b=value`` override applied (value parsed as YAML)."""
    source = f"override {text!r}"
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{source}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: the value is not valid YAML ({err})") from None
    values = config_to_dict(config)
    parts = key.split(".")
    node, cls, prefix = values, RunConfig, ""
    for i, part in enumerate(parts[:-1]):
        prefix = ".".join(parts[:i + 1])
        if cls is not None:
            hints = typing.get_type_hints(cls)
            if part not in hints:
                where = f"in {'.'.join(parts[:i])}" if i else "at the top level"
                raise ConfigError(f"{source}: unknown key {prefix!r}; valid keys {where}: "
                                  f"{', '.join(hints)}")
            cls = hints[part] if dataclasses.is_dataclass(hints[part]) else None
        if not isinstance(node.get(part), dict):
            if cls is None and node.get(part) is None:
                node[part] = {}
            else:
                raise ConfigError(f"{source}: {prefix} is not a section (it holds "
                                  f"{node.get(part)!r})")
        node = node[part]
    node[parts[-1]] = value
    return config_from_dict(values, source)


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> RunConfig:
    """Read ``path`` (YAML; None: the defaults) and apply ``overrides`` in order."""
    if path is None:
        config = RunConfig()
    else:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        config = config_from_dict(values, str(path))
    for text in overrides:
        config = apply_override(config, text)
    return config


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved configuration as YAML, in section order."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
