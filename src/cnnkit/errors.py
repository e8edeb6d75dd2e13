"""Errors for user mistakes. The command line prints them as one line, without a traceback.

Anything else that escapes a command is a bug in cnnkit (or in code it runs) and keeps its
traceback. The subclasses also derive from the matching built-in exception, so code that catches
``ValueError``, ``TypeError`` or ``KeyError`` around a cnnkit call keeps working.
"""


class CnnkitError(Exception):
    """Base of the errors that describe a user mistake (bad argument, file, size or config)."""


class ArgumentError(CnnkitError, ValueError):
    """An argument value a function, model, layer or transform cannot take; the message names
    the argument and what would be valid."""


class OptionError(CnnkitError, TypeError):
    """An option (keyword argument) a builder does not take; the message lists the valid ones."""


class NotFoundError(CnnkitError, KeyError):
    """A name (model, submodule, key) that is not there; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0]) if self.args else ""


class InputSizeError(ArgumentError):
    """An input size a model or layer cannot take; the message lists valid sizes."""


class WeightsError(ArgumentError):
    """A checkpoint that cannot be loaded into a model; the message lists the mismatches."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ArgumentError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ArgumentError(message)


def require_positive(**values: int) -> None:
    """Raise :class:`ArgumentError` naming the first of ``values`` that is not an integer >= 1
    (e.g. ``require_positive(num_classes=num_classes, in_channels=in_channels)``)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(f"{name} must be an integer >= 1; got {value!r}")
