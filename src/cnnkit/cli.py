"""The ``cnnkit`` command line.

User mistakes end in one line ``error: ...`` and exit status 2; set ``CNNKIT_DEBUG=1`` to see the
traceback instead.
"""

from __future__ import annotations

import os
import sys

import click

from cnnkit import __version__
from cnnkit.errors import CnnkitError

USER_ERRORS = (CnnkitError, ValueError, KeyError, TypeError, FileNotFoundError, ImportError)


def parse_size(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); '224' -> (224,)."""
    try:
        size = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise click.BadParameter(f"expected sizes like 3x224x224; got {text!r}") from None
    if not size or any(s < 1 for s in size):
        raise click.BadParameter(f"sizes must be positive integers like 3x224x224; got {text!r}")
    return size


def resolve_model(spec: str, **kwargs):
    """A registered model name, or ``package.module:attr`` naming a module, class or factory."""
    from torch import nn

    if ":" not in spec:
        from cnnkit.models import create

        return create(spec, **kwargs)
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError:
        raise click.BadParameter(f"cannot import module {module_name!r} (from {spec!r})") from None
    except AttributeError:
        raise click.BadParameter(f"module {module_name!r} has no attribute {attr!r}") from None
    model = obj if isinstance(obj, nn.Module) else obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise click.BadParameter(f"{spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cnnkit")
def cli() -> None:
    """cnnkit: analyse, build, train and evaluate convolutional networks."""


@cli.command()
@click.argument("model")
@click.option("--input", "input_size", default=None, metavar="CxHxW",
              help="Input size without the batch, e.g. 3x224x224 (default: the model's own).")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batch size used for activation memory.")
@click.option("--depth", default=None, type=click.IntRange(min=0),
              help="Show layers down to this nesting depth (deeper rows are folded into them).")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "markdown", "csv", "json"]), help="Output format.")
@click.option("--num-classes", default=None, type=click.IntRange(min=1),
              help="Number of classes for a registered model.")
@click.option("--device", default="meta", show_default=True,
              help="meta: shapes only, nothing computed; cpu/cuda: run on real tensors.")
def summary(model: str, input_size: str | None, batch: int, depth: int | None, fmt: str,
            num_classes: int | None, device: str) -> None:
    """Per-layer shapes, parameters, MACs/FLOPs, memory and receptive fields of MODEL.

    MODEL is a registered name (see `cnnkit models`) or a `package.module:attr` path to a
    module, a class or a factory function.
    """
    from cnnkit.analysis import analyze

    kwargs = {"num_classes": num_classes} if num_classes else {}
    net = resolve_model(model, **kwargs)
    if input_size is None:
        if ":" in model:
            raise click.UsageError("--input is required for a module:attr model")
        from cnnkit.models import get_info

        size = get_info(model).input_size
    else:
        size = parse_size(input_size)
    report = analyze(net, size, batch_size=batch, device=device, name=model)
    click.echo(report.format(fmt, depth=depth))


@cli.command("models")
@click.option("--task", default=None,
              type=click.Choice(["classification", "localization", "segmentation", "keypoints"]),
              help="Only the models of one task.")
@click.option("--pattern", default=None, help="Glob on names, e.g. 'resnet*'.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "markdown", "csv"]), help="Output format.")
def models_cmd(task: str | None, pattern: str | None, fmt: str) -> None:
    """List the registered models with their paper, input size and parameter count."""
    from cnnkit.models import get_info, list_models
    from cnnkit.textfmt import csv_table, markdown_table, text_table

    headers = ["name", "task", "params", "input", "year", "paper"]
    rows = []
    for name in list_models(task=task, pattern=pattern):
        info = get_info(name)
        rows.append([name, info.task, f"{info.num_params:,}",
                     "x".join(map(str, info.input_size)), info.year, info.paper])
    right = [False, False, True, False, True, False]
    table = {"table": lambda: text_table(headers, rows, right),
             "markdown": lambda: markdown_table(headers, rows, right),
             "csv": lambda: csv_table(headers, rows)}[fmt]()
    click.echo(table)


@cli.command()
def demo() -> None:
    """Analyse a few classic networks of the lecture decks (AlexNet, VGG16, a U-Net)."""
    from cnnkit.demo import run_demo

    run_demo()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user mistakes into one-line errors."""
    try:
        cli.main(args=argv, prog_name="cnnkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except USER_ERRORS as err:
        if os.environ.get("CNNKIT_DEBUG"):
            raise
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        click.echo(f"error: {message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
