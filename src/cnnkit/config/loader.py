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
from cnnkit.kinds import AMP_MODES, TASK_KINDS


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
    raise ConfigError(f"{source}: {key} must be {_type_name(hint)}; got {value!r}"
                      f"{_number_hint(value, hint)}")


def _number_hint(value: Any, hint: Any) -> str:
    """Where a list of strings was wanted and YAML read an entry as a number (``[0001]`` is
    ``[1]``): say how to keep it a string."""
    wanted = "a list of str" in _type_name(hint)
    numbers = isinstance(value, list) and any(isinstance(v, (int, float)) for v in value)
    return " (YAML reads unquoted digits as a number: quote them, e.g. ['0001'])" \
        if wanted and numbers else ""


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


# (key, test, what would be valid): every number a run takes, checked before anything runs
RANGES: tuple[tuple[str, typing.Callable[[Any], bool], str], ...] = (
    ("data.batch_size", lambda v: v >= 1, ">= 1"),
    ("data.eval_batch_size", lambda v: v is None or v >= 1, ">= 1 (or null: batch_size)"),
    ("data.workers", lambda v: v >= 0, ">= 0"),
    ("data.num_samples", lambda v: v >= 1, ">= 1"),
    ("data.val_samples", lambda v: v >= 1, ">= 1"),
    ("data.val_fraction", lambda v: (0 < v < 1) if isinstance(v, float) else v >= 1,
     "a fraction in (0, 1) or a count >= 1"),
    ("data.num_classes", lambda v: v is None or v >= 1, ">= 1 (or null)"),
    ("data.min_area", lambda v: v >= 1, ">= 1 (pixels)"),
    ("data.box_margin", lambda v: v >= 0, ">= 0 (a share of the box per side)"),
    ("data.depth_scale", lambda v: v > 0, "> 0 (stored units per metre)"),
    ("data.size", lambda v: all(s >= 1 for s in ([v] if isinstance(v, int) else v))
     and (isinstance(v, int) or len(v) == 2), "an int >= 1 or [height, width]"),
    ("model.num_classes", lambda v: v is None or v >= 1, ">= 1 (or null: the model's own)"),
    ("model.in_channels", lambda v: v is None or v >= 1, ">= 1 (or null: the model's own)"),
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
     "two numbers in [0, 1)"),
    ("schedule.warmup_epochs", lambda v: v >= 0, ">= 0"),
    ("schedule.warmup_factor", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("train.epochs", lambda v: v >= 1, ">= 1"),
    ("train.amp", lambda v: v in AMP_MODES, f"one of {', '.join(AMP_MODES)}"),
    ("train.channels_last", lambda v: v in (True, False, "auto"), "true, false or auto"),
    ("train.grad_clip", lambda v: v is None or v > 0, "> 0 (or null: no clipping)"),
    ("train.ema", lambda v: v is None or 0 < v < 1, "in (0, 1) (or null: no average)"),
    ("train.early_stopping", lambda v: v is None or v >= 1, ">= 1 (or null: never)"),
    ("train.checkpoint_every", lambda v: v is None or v >= 1, ">= 1 step (or null)"),
    ("train.log_every", lambda v: v >= 1, ">= 1 step"),
    ("train.eval_every", lambda v: v >= 1, ">= 1 epoch"),
)


def _value(config: RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _check_choices(config: RunConfig, source: str) -> None:
    if config.train.amp is False:  # YAML 1.1 reads a bare `off` as false
        config.train.amp = "off"
    if config.data.kind not in DATASET_KINDS:
        raise ConfigError(f"{source}: data.kind must be one of {', '.join(DATASET_KINDS)}; "
                          f"got {config.data.kind!r}")
    if config.task.kind not in TASK_KINDS:
        raise ConfigError(f"{source}: task.kind must be one of {', '.join(TASK_KINDS)}; "
                          f"got {config.task.kind!r}")
    for key, valid, what in RANGES:
        value = _value(config, key)
        if not valid(value):
            raise ConfigError(f"{source}: {key} must be {what}; got {value!r}")


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


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML itself keeps the
    last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{self.name}:{line}: key {key!r} is written twice (also "
                                  f"on line {seen[key]}); keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; expected a configuration file (YAML)") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the configuration") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML configuration is UTF-8 text)") \
            from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a text file (it holds NUL bytes)")
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip()
                               for line in text.splitlines()):
        raise ConfigError(f"{path}: the configuration is empty; it names at least the data, "
                          "the model and the task (see configs/*.yaml)")
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> RunConfig:
    """Read ``path`` (YAML; None: the defaults) and apply ``overrides`` in order."""
    if path is None:
        config = RunConfig()
    else:
        path = Path(path)
        config = config_from_dict(_read_yaml(path), str(path))
    for text in overrides:
        config = apply_override(config, text)
    return config


def save_config(config: RunConfig, path: str | Path, notes: Iterable[str] = ()) -> None:
    """Write the resolved configuration as YAML, in section order; ``notes`` become comment
    lines at the top (e.g. the precision a run chose and on which hardware)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {note}\n" for note in notes)
    Path(path).write_text(header + yaml.safe_dump(config_to_dict(config), sort_keys=False))
