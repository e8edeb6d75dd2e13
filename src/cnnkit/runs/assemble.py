"""``assemble(config)``: the data, model, task and inference spec of a run, each built once.

The order is fixed so that a seed makes a run reproducible: the global generators are seeded
with ``train.seed`` first, then the model is built (its initial weights come from that seed),
then the task, from what the data's labels and the model say (:meth:`Task.options_from`) with
the configuration's ``task.options`` on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from cnnkit.config import RunConfig
from cnnkit.config.schema import ModelConfig
from cnnkit.data.datasets import LabelSpace, TransformedDataset, label_space
from cnnkit.engine.checkpoint import seed_everything
from cnnkit.errors import CnnkitError, OptionError
from cnnkit.models.base import input_channels
from cnnkit.runs.data import build_dataset
from cnnkit.runs.spec import InferenceSpec
from cnnkit.tasks import Task, build_task, task_class


@dataclass
class Assembly:
    """What a run is made of: ``datasets`` holds the splits asked for (train with the training
    transforms, the others with the evaluation transforms)."""

    config: RunConfig
    model: nn.Module
    task: Task
    labels: LabelSpace
    spec: InferenceSpec
    datasets: dict[str, TransformedDataset] = field(default_factory=dict)


def build_model(section: ModelConfig) -> nn.Module:
    """``cnnkit.models.create`` with the section's name, counts, weights and options; with
    ``probe_stage``, a :class:`~cnnkit.models.LinearProbe` on that stage of the model."""
    from cnnkit.models import LinearProbe, create

    net = create(section.name, num_classes=section.num_classes,
                 in_channels=section.in_channels, weights=section.weights, **section.options)
    if section.probe_stage is None:
        return net
    if not getattr(net, "feature_specs", None):
        raise CnnkitError(f"model.probe_stage: {section.name} declares no feature maps; a "
                          "linear probe needs a zoo classifier (see cnnkit models --features)")
    return LinearProbe(net, net.num_classes, stage=section.probe_stage)


def build_task_for(config: RunConfig, labels: LabelSpace, model: nn.Module,
                   train: TransformedDataset | None = None) -> Task:
    """The configured task, sized by the model, named by the data's labels, with the options
    it computes from the training samples (``train``) where the configuration asks."""
    kind = task_class(config.task.kind)
    options = kind.options_from(labels, model)
    options.update(config.task.options)
    options.update(kind.options_from_data(options, train))
    try:
        return build_task(config.task.kind, **options)
    except OptionError as err:
        raise OptionError(f"task.options: {err}") from None


def assemble(config: RunConfig, splits: tuple[str, ...] = ("train", "val")) -> Assembly:
    """Build the run described by ``config``: the datasets of ``splits`` that the configuration
    names (a split set to null is left out), the seeded model, the task and the spec."""
    data, seed = config.data, config.train.seed
    datasets = {split: build_dataset(data, split, seed=seed) for split in splits
                if getattr(data, f"{split}_split") is not None
                or (split == "val" and data.holdout is not None)}
    if not datasets:
        raise CnnkitError(f"none of the splits {', '.join(splits)} is configured "
                          f"(data.train_split, data.val_split, data.test_split)")
    labels = label_space(next(iter(datasets.values())))
    seed_everything(seed)
    model = build_model(config.model)
    task = build_task_for(config, labels, model, datasets.get("train"))
    for split, dataset in datasets.items():  # what the task's metric compares with
        dataset.keep_original = split != "train" and task.keeps_original_targets
    reference = next((datasets[s] for s in ("val", "test") if s in datasets), None)
    if reference is None:
        reference = build_dataset(data, next(iter(datasets)), train=False, seed=seed)
    if len(reference) == 0:
        raise CnnkitError(f"the {data.kind} data at {data.root} has no samples")
    shape = tuple(reference[0].image.shape)
    takes = input_channels(model)
    if takes is not None and takes != shape[0]:
        raise CnnkitError(f"model {config.model.name} takes {takes}-channel images but the "
                          f"data's images have {shape[0]} channel(s); set "
                          f"model.in_channels={shape[0]}")
    raw = getattr(reference, "dataset", None)
    image_channels = raw[0].image.shape[0] if raw is not None and len(raw) else None
    spec = InferenceSpec.for_run(config, model, task, shape, image_channels)
    return Assembly(config, model, task, labels, spec, datasets)
