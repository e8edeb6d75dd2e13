"""``cnnkit summary`` and ``cnnkit models``: the analyzer and the zoo on the command line."""

from __future__ import annotations

import logging

import click

from cnnkit.cli.options import parse_size, resolve_model, verbosity
from cnnkit.errors import CnnkitError, InputSizeError
from cnnkit.kinds import TASK_KINDS

log = logging.getLogger("cnnkit.summary")


@click.command()
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
@click.option("--device", default=None,
              help="meta: shapes only, nothing computed; cpu/cuda: run on real tensors. Default: "
                   "meta, or cpu for a model whose cost depends on the values (detectors).")
@click.option("--optimizer", default="sgd", show_default=True,
              type=click.Choice(["none", "sgd", "adam"]),
              help="Optimizer state counted in the training-memory estimate.")
@verbosity
def summary(model: str, input_size: str | None, batch: int, depth: int | None, fmt: str,
            num_classes: int | None, device: str | None, optimizer: str) -> None:
    """Per-layer shapes, parameters, MACs/FLOPs, memory and receptive fields of MODEL.

    MODEL is a registered name (see `cnnkit models`) or a `package.module:attr` path to a
    module, a class or a factory function. The forward runs in eval mode; the conventions are
    in docs/analyzer.md.
    """
    from cnnkit.analysis import analyze

    kwargs = {"num_classes": num_classes} if num_classes else {}
    size = parse_size(input_size) if input_size is not None else None
    if ":" in model:
        if size is None:
            raise InputSizeError("--input is required for a module:attr model, e.g. 3x224x224")
    else:
        from cnnkit.models import get_info

        default = get_info(model).input_size
        size = default if size is None else size
        if len(size) != len(default):
            raise InputSizeError(f"--input: {model} takes {len(default)} sizes like "
                                 f"{'x'.join(map(str, default))}; got {input_size!r}")
    net = _build_for(model, device or "meta", kwargs)
    if device is None:
        device = "meta"
        if getattr(net, "analysis_needs_values", False):  # e.g. a detector's proposals
            device = "cpu"
            net = _build_for(model, device, kwargs) if _on_meta(net) else net
            log.info("%s: analysed on the cpu with a random input (its cost depends on the "
                     "values)", model)
    report = analyze(net, size, batch_size=batch, device=device, name=model, optimizer=optimizer)
    click.echo(report.format(fmt, depth=depth))


def _on_meta(net) -> bool:
    return any(p.is_meta for p in net.parameters())


def _build_for(model: str, device: str, kwargs: dict):
    """Build on the meta device when analysing there (no memory, no init time); fall back to
    an ordinary build for a builder that cannot run on meta."""
    import torch

    if device == "meta":
        try:
            with torch.device("meta"):
                return resolve_model(model, **kwargs)
        except CnnkitError:
            raise
        except Exception:  # noqa: BLE001  (e.g. an init that reads values); build normally
            pass
    return resolve_model(model, **kwargs)


@click.command("models")
@click.option("--task", default=None, type=click.Choice(list(TASK_KINDS)),
              help="Only the models of one task kind.")
@click.option("--pattern", default=None, help="Glob on names, e.g. 'resnet*'.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "markdown", "csv"]), help="Output format.")
@click.option("--features", is_flag=True,
              help="Add the feature maps each model exposes as a backbone (stride:channels).")
@verbosity
def models_cmd(task: str | None, pattern: str | None, fmt: str, features: bool) -> None:
    """List the registered models with their paper, input size and parameter count."""
    from cnnkit.models import feature_info, get_info, list_models
    from cnnkit.textfmt import csv_table, markdown_table, text_table

    headers = ["name", "task", "params", "input", "year", "paper"]
    right = [False, False, True, False, True, False]
    rows = []
    for name in list_models(task=task, pattern=pattern):
        info = get_info(name)
        rows.append([name, info.task, f"{info.num_params:,}",
                     "x".join(map(str, info.input_size)), info.year, info.paper])
        if features:
            rows[-1].insert(4, " ".join(f"{s.stride}:{s.channels}" for s in feature_info(name)))
    if features:
        headers.insert(4, "features (stride:channels)")
        right.insert(4, False)
    table = {"table": lambda: text_table(headers, rows, right),
             "markdown": lambda: markdown_table(headers, rows, right),
             "csv": lambda: csv_table(headers, rows)}[fmt]()
    click.echo(table)


LAYER_WORDS = ("conv", "convt", "maxpool", "avgpool")


@click.command()
@click.argument("what", nargs=-1, required=True)
@click.option("--input", "input_size", default=None, metavar="CxHxW",
              help="For a model: the input size (default: the model's own).")
@verbosity
def explain(what: tuple[str, ...], input_size: str | None) -> None:
    """Explain a layer or a model the way the lecture decks do.

    A layer is written like `conv k3 s2 p1 on 7x7` or `convT k3 s2 p1 on 3x3` (also `d2`
    dilation, `c3->8` channels, maxpool/avgpool): the output-size arithmetic (and what PyTorch
    does where the decks say "fractions are illegal"), the receptive field, the im2col shapes
    and, for small sizes, the convolution matrix M. A zoo model name gives where its memory,
    parameters and multiply-adds are.
    """
    from cnnkit.explain import explain_layer, explain_model

    text = " ".join(what)
    if text.split()[0].lower() in LAYER_WORDS:
        click.echo(explain_layer(text))
        return
    if len(what) != 1:
        raise CnnkitError(f"expected a layer like 'conv k3 s2 p1 on 7x7' or one model name; "
                          f"got {text!r}")
    size = parse_size(input_size) if input_size else None
    click.echo(explain_model(text, size))


COMMANDS = [summary, models_cmd, explain]
