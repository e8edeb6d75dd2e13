"""Errors for user mistakes. The command line prints them as one line, without a traceback."""


class CnnkitError(Exception):
    """Base of the errors that describe a user mistake (bad argument, file, size or config)."""


class InputSizeError(CnnkitError, ValueError):
    """An input size a model or layer cannot take; the message lists valid sizes."""


class WeightsError(CnnkitError, ValueError):
    """A checkpoint that cannot be loaded into a model; the message lists the mismatches."""
