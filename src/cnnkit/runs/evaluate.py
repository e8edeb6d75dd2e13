"""Evaluation of a trained model on a dataset, as validation computed it during training.

:func:`evaluate_model` runs the task's metric over a whole dataset (under the run's mixed
precision and memory format), writes ``eval.json`` (or ``eval_<tta>.json``), pictures of a few
predictions next to the truth, and the report. :func:`evaluate_run` does the same for a run
folder from its inference spec: the class names come from the spec, so the data can sit under
another root (``data_root``), or be another split, than the one the run was trained on.
Inside a process group (the end of a ``torchrun`` training) every process measures its shard
and gets the whole dataset's figures; only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import RunConfig, load_config
from cnnkit.data.batch import collate_samples, to_device
from cnnkit.engine import evaluate, make_loader
from cnnkit.engine.devices import resolve_amp, resolve_channels_last, resolve_device
from cnnkit.engine.distributed import dist_info
from cnnkit.errors import CnnkitError
from cnnkit.inference import DihedralTTA, FlipTTA
from cnnkit.runs.data import build_dataset
from cnnkit.runs.folder import RunFolder
from cnnkit.runs.report import write_report
from cnnkit.tasks import Task, build_task
from cnnkit.viz import to_pil

log = logging.getLogger(__name__)

SAMPLE_PANELS = 8
SEEN_GRADCAMS = 3
TTA_MODES = {"flip": FlipTTA, "d4": DihedralTTA}  # --tta: how the views are made


def read_config(folder: RunFolder, overrides: list[str] | tuple[str, ...] = (),
                data_root: str | Path | None = None) -> RunConfig:
    """The run's resolved configuration with ``overrides`` (and ``data.root``) applied."""
    if not folder.config.is_file():
        raise CnnkitError(f"{folder.path} is not a run folder: {folder.config} does not exist")
    extra = list(overrides) + ([f"data.root={Path(data_root)}"] if data_root else [])
    return load_config(folder.config, extra)


def evaluate_model(model: nn.Module, task: Task, dataset: Any, folder: RunFolder,
                   config: RunConfig, *, checkpoint: Path, split: str = "val",
                   tta: str | None = None) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset``; writes the evaluation record, sample pictures and
    the report into ``folder``. Evaluation uses the run's device, ``train.amp`` and
    ``train.channels_last``, so its figures are those validation gave during training."""
    if tta not in (None, *TTA_MODES):
        raise CnnkitError(f"tta must be one of {', '.join(TTA_MODES)} (or none); got {tta!r}")
    device = resolve_device(config.train.device)
    amp_dtype = resolve_amp(config.train.amp, device)
    channels_last = resolve_channels_last(config.train.channels_last, amp_dtype)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = make_loader(dataset, config.data.eval_batch_size or config.data.batch_size,
                         train=False, num_workers=config.data.workers)
    measured = model if tta is None else TTA_MODES[tta](model, task)
    metric = task.new_metric()
    figures = evaluate(measured, task, loader, device=device, metric=metric,
                       amp_dtype=amp_dtype, channels_last=channels_last)
    if not dist_info().is_main:  # the figures are summed over every process's shard
        return {"metrics": figures, "checkpoint": str(checkpoint)}
    confusion = getattr(metric, "confusion", None)
    record = {"checkpoint": str(checkpoint), "split": split, "tta": tta, "metrics": figures,
              "class_names": getattr(task, "class_names", None),
              "confusion": None if confusion is None else confusion.tolist()}
    path = folder.evaluation(tta)
    path.write_text(json.dumps(record, indent=2, allow_nan=True))
    result = {"metrics": figures, "record": str(path), "checkpoint": str(checkpoint)}
    if tta is None:
        write_samples(model, task, dataset, folder, config, device)
        write_seen(model, dataset, folder, config)
        result["report"] = str(write_report(folder, title=config.name,
                                            higher_is_better=task.higher_is_better_for,
                                            primary_metric=task.primary_metric,
                                            per_class=task.per_class))
    return result


def write_samples(model: nn.Module, task: Task, dataset: Any, folder: RunFolder,
                  config: RunConfig, device: torch.device) -> None:
    """Pictures of the first samples: the truth next to the prediction, drawn by the task."""
    folder.samples.mkdir(parents=True, exist_ok=True)
    count = min(SAMPLE_PANELS, len(dataset))
    if count == 0:
        return
    batch = to_device(collate_samples([dataset[i] for i in range(count)]), device)
    with torch.no_grad():
        output = task.forward(model, batch)
    predictions = task.decode_in_input(output, batch)
    targets = task.ground_truth(batch)
    mean, std = _normalization(config)
    scale = max(1, 192 // min(batch["image"].shape[-2:]))  # small images drawn larger
    for i in range(count):
        image = to_pil(batch["image"][i].float().cpu(), mean, std)
        task.draw(image, targets[i], predictions[i], scale=scale).save(
            folder.samples / f"sample_{i:02d}.png")


def write_seen(model: nn.Module, dataset: Any, folder: RunFolder, config: RunConfig,
               count: int = SEEN_GRADCAMS) -> None:
    """What the network sees, for the report: its first-layer filters and, for classifiers,
    Grad-CAMs of the first samples (pictures that do not apply to the model are left out)."""
    from cnnkit.explain import first_layer_filters, grad_cam

    folder.seen.mkdir(parents=True, exist_ok=True)
    mean, std = _normalization(config)
    try:
        first_layer_filters(model).picture.save(folder.seen / "filters.png")
        for i in range(min(count, len(dataset))):
            image = dataset[i].image
            heat = grad_cam(model, image, picture=to_pil(image, mean, std))
            heat.picture.save(folder.seen / f"gradcam_{i:02d}.png")
    except CnnkitError as err:  # e.g. a dense model has no class score to explain
        log.debug("report: %s", err)


def _normalization(config: RunConfig) -> tuple[Any, Any]:
    for entry in config.data.eval_transforms:
        if isinstance(entry, dict) and "Normalize" in entry:
            params = entry["Normalize"] or {}
            return params.get("mean"), params.get("std")
    return None, None


def evaluate_run(run_dir: str | Path, checkpoint: str | Path | None = None, *,
                 split: str = "val", data_root: str | Path | None = None,
                 overrides: list[str] | tuple[str, ...] = (),
                 tta: str | None = None) -> dict[str, Any]:
    """Metrics of ``checkpoint`` (default: the run's best) on ``split`` of the run's data (under
    ``data_root`` when given); writes ``eval.json`` (``eval_<tta>.json`` with TTA), samples and
    ``report.html`` into the run folder. ``overrides`` of ``task.options`` change how the
    trained task measures (e.g. a PCK threshold, COCO's ``max_detections``)."""
    from cnnkit.runs.predict import load_run

    folder = RunFolder(run_dir).require()
    config = read_config(folder, overrides, data_root)
    run = load_run(folder, checkpoint, device=config.train.device)
    trained = read_config(folder).task.options
    changed = {k: v for k, v in config.task.options.items() if trained.get(k, object()) != v}
    if changed:  # e.g. task.options.max_detections=300: the same run measured another way
        run.task = build_task(run.task.kind, **{**run.task.spec()["options"], **changed})
    dataset = build_dataset(config.data, split, train=False, seed=config.train.seed)
    dataset.keep_original = run.task.keeps_original_targets
    return evaluate_model(run.model, run.task, dataset, folder, config,
                          checkpoint=run.checkpoint, split=split, tta=tta)
