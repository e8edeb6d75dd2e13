"""The task registry: ``register_task`` on each Task class, ``build_task(kind, **options)``.

A task's kind must be a name of :data:`cnnkit.kinds.TASK_KINDS` (the one vocabulary the model
registry, the configuration and the command line share); ``build_task`` builds it from the
options its :meth:`~cnnkit.tasks.base.Task.spec` recorded, e.g. ``{"num_classes": 11}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnkit.errors import CnnkitError, OptionError
from cnnkit.kinds import TASK_KINDS, check_task_kind

if TYPE_CHECKING:
    from cnnkit.tasks.base import Task

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` the task of its ``kind`` (a TASK_KINDS name)."""
    kind = check_task_kind(cls.kind, f"task class {cls.__name__}")
    if kind in TASKS and TASKS[kind] is not cls:
        raise CnnkitError(f"task kind {kind!r} is already registered by {TASKS[kind].__name__}")
    TASKS[kind] = cls
    return cls


def task_class(kind: str) -> type[Task]:
    """The Task class of ``kind``."""
    check_task_kind(kind)
    _ensure_loaded()
    if kind not in TASKS:
        raise CnnkitError(f"task kind {kind!r} has no registered task (a kind of "
                          f"{', '.join(TASK_KINDS)})")
    return TASKS[kind]


def build_task(kind: str, **options: Any) -> Task:
    """A new task of ``kind`` built with ``options``."""
    cls = task_class(kind)
    try:
        return cls(**options)
    except OptionError as error:
        raise OptionError(f"task {kind!r}: {str(error).split(': ', 1)[-1]}") from None
    except TypeError as error:  # an unknown option passed on through **options
        if "keyword argument" not in str(error):
            raise
        raise OptionError(f"task {kind!r}: {error}") from None


def _ensure_loaded() -> None:
    """Import the task modules (``cnnkit.tasks`` imports every one; they register themselves)."""
    import cnnkit.tasks  # noqa: F401
