"""The ``cnnkit`` command line: argument parsing only; the work is done by the packages below.

One error policy: cnnkit's own errors (:class:`~cnnkit.errors.CnnkitError` and its subclasses,
which describe a user's mistake) print as one line ``error: ...`` with exit status 2; a wrong
option is click's usage message, also status 2; anything else is a bug and keeps its traceback
(exit status 1). Messages go through Python's ``logging`` (``--quiet``: warnings and errors
only; ``--verbose``: debug messages too); results go to standard output.
"""

from __future__ import annotations

import sys

import click

from cnnkit import __version__
from cnnkit.cli.options import setup_logging, verbosity
from cnnkit.errors import CnnkitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cnnkit")
@verbosity
def cli() -> None:
    """cnnkit: analyse, build, train and evaluate convolutional networks."""


def _register() -> None:
    from cnnkit.cli import analyze, data, runs

    for module in (analyze, data, runs):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with cnnkit's error policy (see the module docstring)."""
    setup_logging()
    try:
        cli.main(args=argv, prog_name="cnnkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as err:  # one line too, with where to find the usage
        where = f" (see: {err.ctx.command_path} --help)" if err.ctx is not None else ""
        click.echo(f"error: {err.format_message()}{where}", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except CnnkitError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        click.echo(f"error: {message}", err=True)
        sys.exit(getattr(err, "exit_code", 2))


if __name__ == "__main__":
    main()
