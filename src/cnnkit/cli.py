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
        raise CnnkitError(f"cannot import module {module_name!r} (from {spec!r})") from None
    except AttributeError:
        raise CnnkitError(f"module {module_name!r} has no attribute {attr!r}") from None
    model = obj if isinstance(obj, nn.Module) else obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise CnnkitError(f"{spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
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
@click.option("--optimizer", default="sgd", show_default=True,
              type=click.Choice(["none", "sgd", "adam"]),
              help="Optimizer state counted in the training-memory estimate.")
def summary(model: str, input_size: str | None, batch: int, depth: int | None, fmt: str,
            num_classes: int | None, device: str, optimizer: str) -> None:
    """Per-layer shapes, parameters, MACs/FLOPs, memory and receptive fields of MODEL.

    MODEL is a registered name (see `cnnkit models`) or a `package.module:attr` path to a
    module, a class or a factory function. The forward runs in eval mode; the conventions are
    in docs/analyzer.md.
    """
    from cnnkit.analysis import analyze
    from cnnkit.errors import InputSizeError

    kwargs = {"num_classes": num_classes} if num_classes else {}
    if input_size is not None:
        try:
            size = parse_size(input_size)
        except click.BadParameter as err:
            raise InputSizeError(f"--input: {err.message}") from None
    if ":" in model:
        if input_size is None:
            raise InputSizeError("--input is required for a module:attr model, e.g. 3x224x224")
    else:
        from cnnkit.models import get_info

        default = get_info(model).input_size
        size = default if input_size is None else size
        if len(size) != len(default):
            raise InputSizeError(f"--input: {model} takes {len(default)} sizes like "
                                 f"{'x'.join(map(str, default))}; got {input_size!r}")
    net = _build_for(model, device, kwargs)
    report = analyze(net, size, batch_size=batch, device=device, name=model, optimizer=optimizer)
    click.echo(report.format(fmt, depth=depth))


def _build_for(model: str, device: str, kwargs: dict):
    """Build on the meta device when analysing there (no memory, no init time); fall back to
    an ordinary build for a builder that cannot run on meta."""
    import torch

    if device == "meta":
        try:
            with torch.device("meta"):
                return resolve_model(model, **kwargs)
        except (click.ClickException, *USER_ERRORS):
            raise
        except Exception:  # noqa: BLE001  (e.g. an init that reads values); build normally
            pass
    return resolve_model(model, **kwargs)


@cli.command("models")
@click.option("--task", default=None,
              type=click.Choice(["classification", "localization", "segmentation", "keypoints"]),
              help="Only the models of one task.")
@click.option("--pattern", default=None, help="Glob on names, e.g. 'resnet*'.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "markdown", "csv"]), help="Output format.")
@click.option("--features", is_flag=True,
              help="Add the feature maps each model exposes as a backbone (stride:channels).")
def models_cmd(task: str | None, pattern: str | None, fmt: str, features: bool) -> None:
    """List the registered models with their paper, input size and parameter count."""
    from cnnkit.models import feature_info, get_info, list_models
    from cnnkit.textfmt import csv_table, markdown_table, text_table

    headers = ["name", "task", "params", "input", "year", "paper"]
    rows = []
    for name in list_models(task=task, pattern=pattern):
        info = get_info(name)
        rows.append([name, info.task, f"{info.num_params:,}",
                     "x".join(map(str, info.input_size)), info.year, info.paper])
        if features:
            rows[-1].insert(4, " ".join(f"{s.stride}:{s.channels}" for s in feature_info(name)))
    if features:
        headers.insert(4, "features (stride:channels)")
    right = [False, False, True, False, False, True, False][: len(headers)]
    if not features:
        right = [False, False, True, False, True, False]
    table = {"table": lambda: text_table(headers, rows, right),
             "markdown": lambda: markdown_table(headers, rows, right),
             "csv": lambda: csv_table(headers, rows)}[fmt]()
    click.echo(table)


@cli.group()
def data() -> None:
    """Inspect datasets read from local files."""


@data.command("stats")
@click.argument("kind", type=click.Choice(["idx", "folders", "segmentation", "camvid", "dlc",
                                           "coco-keypoints", "synthetic"]))
@click.argument("root", required=False)
@click.option("--split", default=None, help="train/test (idx), train/val/test (camvid), or a "
              "sub-folder of ROOT (folders, segmentation).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--num-classes", default=None, type=click.IntRange(min=1),
              help="segmentation: number of classes of the index masks.")
@click.option("--mask-values", default=None, help="segmentation: stored mask values in class "
              "order, e.g. 0,255 for black/white masks.")
@click.option("--images", default=None, help="coco-keypoints: the image folder.")
@click.option("--num-samples", default=64, show_default=True, type=click.IntRange(min=1),
              help="synthetic: number of samples.")
@click.option("--seed", default=0, show_default=True, help="synthetic: the seed.")
@click.option("--no-mean-std", is_flag=True, help="Skip the per-channel mean/std (reads no images).")
def data_stats(kind: str, root: str | None, split: str | None, as_json: bool,
               num_classes: int | None, mask_values: str | None, images: str | None,
               num_samples: int, seed: int, no_mean_std: bool) -> None:
    """Class (or pixel) counts, image sizes, mean/std and class weights of a dataset.

    KIND is the file layout; ROOT its folder or file (not needed for synthetic).
    """
    import json

    from cnnkit.data.datasets.by_kind import open_dataset
    from cnnkit.data.stats import dataset_stats

    values = None
    if mask_values is not None:
        try:
            values = [int(v) for v in mask_values.split(",")]
        except ValueError:
            raise CnnkitError(f"--mask-values: expected integers like 0,255; got {mask_values!r}") from None
    dataset = open_dataset(kind, root, split, num_classes=num_classes, mask_values=values,
                           images=images, num_samples=num_samples, seed=seed)
    stats = dataset_stats(dataset, with_mean_std=not no_mean_std)
    if as_json:
        click.echo(json.dumps(stats, indent=1))
        return
    for key, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        click.echo(f"{key}: {value}")


def _add_run_commands() -> None:
    from cnnkit.cli_run import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_run_commands()


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
