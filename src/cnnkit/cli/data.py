"""``cnnkit data kinds``: the file layouts cnnkit reads; ``cnnkit data stats``: what a dataset
holds, for any kind of the catalog."""

from __future__ import annotations

import json

import click

from cnnkit.cli.options import verbosity
from cnnkit.data.datasets.catalog import CATALOG, DATASET_KINDS, DatasetOptions
from cnnkit.errors import CnnkitError


@click.group()
def data() -> None:
    """Inspect datasets read from local files."""


@data.command("kinds")
@verbosity
def data_kinds() -> None:
    """The dataset kinds (data.kind): layout, how splits are made, the options each reads."""
    width = max(len(name) for name in CATALOG)
    for entry in CATALOG.values():
        options = f"; options: {', '.join(entry.options)}" if entry.options else ""
        click.echo(f"{entry.name:<{width}}  {entry.splits:<10}  {entry.summary}{options}")


@data.command("stats")
@click.argument("kind", type=click.Choice(list(DATASET_KINDS)))
@click.argument("root", required=False)
@click.option("--split", default=None, help="A split of the kind (idx: train/test; camvid: "
              "train/val/test; folders, segmentation: a sub-folder of ROOT; synthetic: "
              "train/val/test). Kinds without splits are read whole.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--num-classes", default=None, type=click.IntRange(min=1),
              help="segmentation: number of classes of the index masks.")
@click.option("--mask-values", default=None, help="segmentation: stored mask values in class "
              "order, e.g. 0,255 for black/white masks.")
@click.option("--images", default=None, help="coco-keypoints: the image folder.")
@click.option("--num-samples", default=64, show_default=True, type=click.IntRange(min=1),
              help="synthetic: number of samples.")
@click.option("--seed", default=0, show_default=True,
              help="synthetic: the seed; --holdout: the seed of its draw (data.split_seed).")
@click.option("--no-mean-std", is_flag=True, help="Skip the per-channel mean/std (reads no images).")
@click.option("--holdout", default=None, help="Only the samples a run's data.holdout trains on: "
              "comma-separated key prefixes (camvid: 0001TP for a sequence), or a count "
              "(digits only) or fraction (with a point) drawn with --seed; end a digits-only "
              "prefix with a comma (12,).")
@verbosity
def data_stats(kind: str, root: str | None, split: str | None, as_json: bool,
               num_classes: int | None, mask_values: str | None, images: str | None,
               num_samples: int, seed: int, no_mean_std: bool, holdout: str | None) -> None:
    """Class (or pixel) counts, image sizes, mean/std and class weights of a dataset.

    KIND is the file layout (the dataset catalog); ROOT its folder or file (not needed for
    synthetic).
    """
    from cnnkit.data.datasets.catalog import open_dataset
    from cnnkit.data.stats import dataset_stats

    values = None
    if mask_values is not None:
        try:
            values = [int(v) for v in mask_values.split(",")]
        except ValueError:
            raise CnnkitError(f"--mask-values: expected integers like 0,255; got "
                              f"{mask_values!r}") from None
    options = DatasetOptions(num_classes=num_classes, mask_values=values, images=images,
                             num_samples=num_samples, val_samples=num_samples, seed=seed,
                             void_to_ignore=False)  # the data as stored: void pixels counted
    dataset = open_dataset(kind, root, split, options)
    if holdout is not None:
        dataset = _holdout_train_part(dataset, kind, holdout, seed)
    stats = dataset_stats(dataset, with_mean_std=not no_mean_std)
    if as_json:
        click.echo(json.dumps(stats, indent=1))
        return
    for key, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        click.echo(f"{key}: {value}")


def _holdout_train_part(dataset, kind: str, holdout: str, seed: int):
    """The samples a run with ``data.holdout`` = ``holdout`` trains on (its train part)."""
    from cnnkit.data.datasets import holdout_split

    if not hasattr(dataset, "subset"):
        raise CnnkitError(f"--holdout: the {kind} data cannot be restricted to some keys here; "
                          "image/mask pair kinds can (camvid, segmentation, membrane)")
    value: float | int | list[str]
    try:
        value = float(holdout) if "." in holdout else int(holdout)
    except ValueError:
        value = [p for p in holdout.split(",") if p]
    try:
        return dataset.subset(holdout_split(dataset.keys, value, seed=seed).parts["train"])
    except CnnkitError as err:
        raise CnnkitError(f"--holdout: {err}") from None


COMMANDS = [data]
