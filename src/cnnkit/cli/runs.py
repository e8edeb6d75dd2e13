"""The run commands of ``cnnkit``: train, eval, predict, sanity, export, and the demo.

Each parses its arguments and calls :mod:`cnnkit.runs`; what a run is, and where its files go,
is decided there.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from cnnkit.cli.options import parse_size, quiet, verbosity

overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


@click.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@overrides_argument
@click.option("--resume", default=None, type=click.Path(dir_okay=False),
              help="Continue a run from its checkpoint (e.g. runs/x/last.pt).")
@verbosity
def train(config_path: str, overrides: tuple[str, ...], resume: str | None) -> None:
    """Train as CONFIG.yaml says (KEY=VALUE overrides, e.g. train.epochs=3 data.root=/data),
    then evaluate the best checkpoint and write the run's report."""
    from cnnkit.config import load_config
    from cnnkit.engine.signals import TrainingInterrupted
    from cnnkit.runs import train as run_train

    try:
        result = run_train(load_config(config_path, overrides), resume=resume, quiet=quiet())
    except TrainingInterrupted as stop:
        if stop.checkpoint is not None:  # say the whole command that resumes it
            again = " ".join(["cnnkit train", config_path, *overrides, "--resume",
                              str(stop.checkpoint)])
            stop.args = (f"training stopped by {stop.signal_name} after step {stop.step}; "
                         f"saved {stop.checkpoint}; resume with: {again}",)
        raise
    click.echo(f"run folder: {result['run_dir']}")
    if "report" in result:
        click.echo(f"report: {result['report']}")
        click.echo(figures(result["metrics"]))


@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@overrides_argument
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Default: the run's best checkpoint.")
@click.option("--split", default="val", show_default=True,
              type=click.Choice(["train", "val", "test"]))
@click.option("--data-root", default=None, type=click.Path(exists=True),
              help="Evaluate on the data under this root instead of the run's data.root.")
@click.option("--tta", default=None, type=click.Choice(["flip", "d4"]),
              help="Average the outputs on the images and their mirrors (flip), or on the eight "
              "mirrors and quarter turns (d4: segmentation and depth); writes eval_<tta>.json.")
@verbosity
def evaluate(run_dir: str, overrides: tuple[str, ...], checkpoint: str | None, split: str,
             data_root: str | None, tta: str | None) -> None:
    """Evaluate a trained run on a split; writes eval.json, samples and report.html."""
    from cnnkit.runs import evaluate_run

    result = evaluate_run(run_dir, checkpoint, split=split, data_root=data_root,
                          overrides=list(overrides), tta=tta)
    click.echo(f"figures: {result['record']}" if tta else f"report: {result['report']}")
    click.echo(figures(result["metrics"]))


@click.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Folder for masks, overlays, drawn keypoints and JSON records.")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Default: the run's best checkpoint.")
@verbosity
def predict(run_dir: str, images: tuple[str, ...], out_dir: str, checkpoint: str | None) -> None:
    """Predict IMAGES with a trained run (a run folder or a checkpoint file); needs no
    training data."""
    from cnnkit.runs import load_run

    records = load_run(run_dir, checkpoint).predict_files(images, out_dir)
    click.echo(f"{len(records)} predictions in {out_dir} (predictions.json)")


@click.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@overrides_argument
@click.option("--steps", default=300, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@verbosity
def sanity(config_path: str, overrides: tuple[str, ...], steps: int, lr: float) -> None:
    """The decks' first check: overfit one batch; does the loss reach (near) zero?"""
    from cnnkit.config import load_config
    from cnnkit.runs import sanity as run_sanity

    result = run_sanity(load_config(config_path, overrides), steps=steps, lr=lr)
    verdict = "reached near zero" if result["reached"] else "did NOT reach near zero"
    click.echo(f"loss {result['initial_loss']:.4g} -> {result['final_loss']:.4g} in "
               f"{result['steps']} steps: {verdict}")
    if not result["reached"]:
        raise SystemExit(1)


@click.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the ONNX file.")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False, exists=True))
@click.option("--input", "input_size", default=None, metavar="CxHxW",
              help="Example input size (default: the size the run was evaluated at).")
@verbosity
def export(run_dir: str, onnx_path: str, checkpoint: str | None, input_size: str | None) -> None:
    """Export a trained run's model to ONNX, with its class names, normalisation and input
    size in the file's metadata; ONNX Runtime is checked to give the same outputs."""
    from cnnkit.runs import export_run

    size = parse_size(input_size) if input_size else None
    result = export_run(run_dir, onnx_path, checkpoint=checkpoint, input_size=size)
    worst = max(result.max_abs_diff.values(), default=0.0)
    click.echo(f"wrote {result.path}; ONNX Runtime max |difference| {worst:.3g}")


@click.command()
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the demo's epochs (default: the config's).")
@click.option("--run-dir", default="runs/demo", show_default=True,
              help="The demo's run folder; a previous demo run there is replaced (a folder "
                   "holding other files is refused).")
@verbosity
def demo(epochs: int | None, run_dir: str) -> None:
    """Train a small U-Net on synthetic shapes (about two minutes on a CPU), evaluate it and
    write the report."""
    from cnnkit.config import load_config
    from cnnkit.runs import RunFolder
    from cnnkit.runs import train as run_train

    config_path = Path(__file__).resolve().parent.parent / "demo.yaml"
    overrides = [f"train.run_dir={run_dir}"] + ([f"train.epochs={epochs}"] if epochs else [])
    config = load_config(config_path, overrides)
    RunFolder(run_dir).clear()  # the demo starts afresh, deleting only what a run wrote
    result = run_train(config, quiet=quiet())
    click.echo(f"\nreport: {Path(result['report']).resolve()}")
    click.echo(f"validation mIoU: {100 * result['metrics']['miou']:.1f}% "
               f"(pixel accuracy {100 * result['metrics']['pixel_accuracy']:.1f}%)")


@click.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.option("--what", "what", multiple=True, default=("filters", "activations", "gradcam",
                                                         "saliency", "erf"), show_default=True,
              type=click.Choice(["filters", "activations", "cam", "gradcam", "saliency", "erf"]),
              help="Which pictures (repeat the option for several).")
@click.option("--out", "out_dir", default=None, type=click.Path(),
              help="Folder for the pictures (default: RUN_DIR/seen/<image name>).")
@click.option("--layer", default=None, help="The layer of the activation maps, Grad-CAM and "
              "the effective receptive field (a dotted module name; default: the feature "
              "stages, the deepest for Grad-CAM).")
@click.option("--target", default=None, type=click.IntRange(min=0),
              help="The class to explain (default: the predicted one).")
@verbosity
def viz(run_dir: str, image: str, what: tuple[str, ...], out_dir: str | None,
        layer: str | None, target: int | None) -> None:
    """What a trained network sees: its first-layer filters, activation maps, class
    activation maps and Grad-CAM, saliency, and the effective receptive field of a unit."""
    from cnnkit.explain import write_pictures
    from cnnkit.runs import load_run

    run = load_run(run_dir)
    tensor, picture = run.prepare(image)
    folder = Path(out_dir) if out_dir else Path(run_dir) / "seen" / Path(image).stem
    paths = write_pictures(run, tensor, folder, what, picture=picture, layer=layer,
                           layers=[layer] if layer else None, target=target)
    click.echo("\n".join(str(p) for p in paths))


def figures(metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if "/" not in k}
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) and not math.isnan(v) else f"{k} {v}"
                     for k, v in shown.items())


COMMANDS = [train, evaluate, predict, sanity, export, demo, viz]
