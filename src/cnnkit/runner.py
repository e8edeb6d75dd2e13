"""Runs described by a :class:`~cnnkit.config.RunConfig`: train, evaluate, predict, sanity.

A run folder holds ``config.yaml`` (resolved), ``split.json`` (when the data has no official
split), ``metrics.csv`` and TensorBoard events, ``last.pt`` / ``best.pt``, ``eval.json``,
``samples/*.png``, ``curves.png``, ``confusion.png`` and ``report.html``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import RunConfig, load_config
from cnnkit.config.build import (base_dataset, build_batch_transforms, build_dataset, build_model,
                                 class_names, dataset_split)
from cnnkit.config.loader import config_to_dict, save_config
from cnnkit.data.batch import collate_samples, to_device
from cnnkit.engine import (Trainer, build_optimizer, build_schedule, evaluate, freeze,
                           load_checkpoint)
from cnnkit.engine.devices import resolve_device
from cnnkit.engine.distributed import (cleanup_distributed, dist_info, init_distributed,
                                       make_loader)
from cnnkit.errors import CnnkitError
from cnnkit.tasks import build_task
from cnnkit.tasks.base import Task

SAMPLE_PANELS = 8


@dataclass
class Parts:
    """What a run is made of, built from its configuration."""

    config: RunConfig
    model: nn.Module
    task: Task
    names: list[str] | None
    skeleton: Any = None


def viz_kind(task_kind: str) -> str:
    return "keypoints" if task_kind.startswith("keypoints") else task_kind


def build_task_for(config: RunConfig, model: nn.Module, names: list[str] | None,
                   skeleton: Any = None) -> Task:
    """The configured task, with its size (classes or keypoints) taken from the model."""
    kind, options = config.task.kind, dict(config.task.options)
    if kind.startswith("keypoints"):
        options.setdefault("num_keypoints", getattr(model, "num_keypoints", None)
                           or model.num_classes)
        if names:
            options.setdefault("keypoint_names", names)
        if skeleton is not None and skeleton.flip_pairs:
            options.setdefault("flip_pairs", list(skeleton.flip_pairs))
    else:
        options.setdefault("num_classes", model.num_classes)
        if kind == "classification" and names and len(names) != options["num_classes"]:
            raise CnnkitError(f"the model predicts {options['num_classes']} classes but the data "
                              f"has {len(names)} ({', '.join(names)}); set "
                              f"model.num_classes={len(names)}")
        if kind == "segmentation" and names and len(names) == options["num_classes"]:
            options.setdefault("class_names", names)
    return build_task(kind, **options)


def build_parts(config: RunConfig, *, reference_split: str = "val") -> Parts:
    model = build_model(config.model)
    reference = build_dataset(config.data, reference_split, train=False, seed=config.train.seed)
    names = class_names(reference, config.task.kind)
    skeleton = getattr(base_dataset(reference), "skeleton", None)
    return Parts(config, model, build_task_for(config, model, names, skeleton), names, skeleton)


def _optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer; ``optim.freeze`` groups or prefixes are frozen first (their
    batch-norm layers keep the running statistics they came with)."""
    optim = config.optim
    if optim.freeze:
        freeze(model, optim.freeze)
    return build_optimizer(model, optim.name, optim.lr, momentum=optim.momentum,
                           weight_decay=optim.weight_decay, nesterov=optim.nesterov,
                           betas=tuple(optim.betas), lr_multipliers=optim.lr_mult or None)


def _schedule(config: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
              higher_is_better: bool):
    schedule = config.schedule
    options = dict(schedule.params)
    if schedule.warmup_epochs:
        if schedule.name != "cosine":
            raise CnnkitError(f"schedule.warmup_epochs works with the cosine schedule; "
                              f"got schedule.name={schedule.name!r}")
        options.update(warmup_epochs=schedule.warmup_epochs,
                       warmup_start_factor=schedule.warmup_factor)
    return build_schedule(schedule.name, optimizer, epochs=config.train.epochs,
                          steps_per_epoch=steps_per_epoch, higher_is_better=higher_is_better,
                          **options)


def train(config: RunConfig, *, resume: str | Path | None = None, quiet: bool = False,
          max_steps: int | None = None) -> dict[str, Any]:
    """Train as configured, then evaluate the best checkpoint and write the report.

    Under ``torchrun`` every process trains its shard (DDP); the process group is left after
    training and rank 0 alone evaluates and writes the report.
    """
    info = init_distributed()
    run_dir = Path(config.train.run_dir)
    parts = build_parts(config)
    if resume is None and (run_dir / "last.pt").exists():
        raise CnnkitError(f"run folder {run_dir} already holds a run (last.pt); resume it with "
                          f"--resume {run_dir / 'last.pt'} or choose train.run_dir=...")
    data, seed = config.data, config.train.seed
    train_set = build_dataset(data, "train", seed=seed)
    val_set = build_dataset(data, "val", seed=seed) if data.val_split else None
    train_loader = make_loader(train_set, data.batch_size, train=True, seed=seed,
                               num_workers=data.workers, persistent_workers=True)
    val_loader = None if val_set is None else make_loader(
        val_set, data.eval_batch_size or data.batch_size, train=False,
        num_workers=data.workers, persistent_workers=True)
    if dist_info().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        split = dataset_split(data)
        if split is not None:
            split.save(run_dir / "split.json")
    optimizer = _optimizer(config, parts.model)
    scheduler = _schedule(config, optimizer, len(train_loader), parts.task.higher_is_better)
    t = config.train
    trainer = Trainer(parts.model, parts.task, train_loader, val_loader, optimizer=optimizer,
                      scheduler=scheduler, epochs=t.epochs, run_dir=run_dir, device=t.device,
                      amp=t.amp, channels_last=t.channels_last, grad_clip=t.grad_clip,
                      early_stopping=t.early_stopping, seed=seed, deterministic=t.deterministic,
                      max_steps=max_steps, resume=resume, quiet=quiet,
                      config=config_to_dict(config),
                      batch_transform=build_batch_transforms(data.batch_transforms))
    history = trainer.fit()
    cleanup_distributed()
    result: dict[str, Any] = {"run_dir": str(run_dir), "history": history,
                              "stop_reason": trainer.stop_reason}
    if val_loader is not None and info.is_main:
        best = run_dir / "best.pt"
        result.update(evaluate_run(run_dir, best if best.exists() else run_dir / "last.pt",
                                   config=config, parts=parts))
    return result


def load_run(run_dir: str | Path, overrides: list[str] = ()) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CnnkitError(f"{run_dir} is not a run folder: {path} does not exist")
    return load_config(path, overrides)


def load_model_state(model: nn.Module, checkpoint: str | Path) -> None:
    state = load_checkpoint(checkpoint)
    weights = state.get("model", state)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CnnkitError(f"{checkpoint} does not fit {type(model).__name__}: "
                          f"{str(err).splitlines()[0]}") from None


def evaluate_run(run_dir: str | Path, checkpoint: str | Path | None = None, *,
                 split: str = "val", config: RunConfig | None = None,
                 parts: Parts | None = None, tta: str | None = None) -> dict[str, Any]:
    """Metrics of ``checkpoint`` (default: the run's best) on ``split``; writes ``eval.json``,
    sample pictures and ``report.html`` into the run folder. With ``tta="flip"`` the model's
    outputs on the images and their mirrors are averaged (:class:`cnnkit.inference.FlipTTA`)
    and the figures go to ``eval_flip.json`` alone."""
    from cnnkit.inference import FlipTTA
    from cnnkit.report import write_report

    run_dir = Path(run_dir)
    config = config or load_run(run_dir)
    checkpoint = Path(checkpoint) if checkpoint else run_dir / "best.pt"
    parts = parts or build_parts(config, reference_split=split)
    load_model_state(parts.model, checkpoint)
    dataset = build_dataset(config.data, split, train=False, seed=config.train.seed)
    loader = make_loader(dataset, config.data.eval_batch_size or config.data.batch_size,
                         train=False, num_workers=config.data.workers)
    device = resolve_device(config.train.device)
    parts.model.to(device)
    if tta not in (None, "flip"):
        raise CnnkitError(f"tta must be 'flip' (or none); got {tta!r}")
    model = parts.model if tta is None else FlipTTA(parts.model, config.task.kind,
                                                    parts.skeleton)
    metric = parts.task.new_metric()
    figures = evaluate(model, parts.task, loader, device=device, metric=metric)
    confusion = getattr(metric, "confusion", None)
    record = {"checkpoint": str(checkpoint), "split": split, "tta": tta, "metrics": figures,
              "class_names": parts.names,
              "confusion": None if confusion is None else confusion.tolist()}
    name = "eval.json" if tta is None else f"eval_{tta}.json"
    (run_dir / name).write_text(json.dumps(record, indent=2, allow_nan=True))
    if tta is not None:
        return {"metrics": figures, "record": str(run_dir / name), "checkpoint": str(checkpoint)}
    _sample_pictures(parts, dataset, run_dir / "samples", device)
    report = write_report(run_dir, title=config.name)
    return {"metrics": figures, "record": str(run_dir / name), "report": str(report),
            "checkpoint": str(checkpoint)}


def _normalization(config: RunConfig) -> tuple[Any, Any]:
    for entry in config.data.eval_transforms:
        if isinstance(entry, dict) and "Normalize" in entry:
            params = entry["Normalize"] or {}
            return params.get("mean"), params.get("std")
    return None, None


def _sample_pictures(parts: Parts, dataset, folder: Path, device: torch.device) -> None:
    from cnnkit.viz import sample_panel

    folder.mkdir(parents=True, exist_ok=True)
    count = min(SAMPLE_PANELS, len(dataset))
    if count == 0:
        return
    batch = to_device(collate_samples([dataset[i] for i in range(count)]), device)
    parts.model.eval()
    with torch.no_grad():
        output = parts.model(batch["image"])
    predictions = parts.task.decode(output, batch)
    if hasattr(parts.task, "points"):  # keypoints: draw them where the network saw them
        points, _ = parts.task.points(output, batch)
        for prediction, xy in zip(predictions, points.detach().cpu()):
            prediction["keypoints"] = xy
    targets = _targets(batch, count)
    mean, std = _normalization(parts.config)
    kind = viz_kind(parts.config.task.kind)
    scale = max(1, 192 // min(batch["image"].shape[-2:]))  # small images drawn larger
    for i in range(count):
        panel = sample_panel(batch["image"][i].cpu(), kind, targets[i], predictions[i],
                             class_names=parts.names, skeleton=parts.skeleton, mean=mean, std=std,
                             scale=scale)
        panel.save(folder / f"sample_{i:02d}.png")


def _targets(batch: dict[str, Any], count: int) -> list[dict[str, Any]]:
    keys = [k for k in ("label", "mask", "keypoints", "visible", "boxes") if k in batch]
    return [{k: batch[k][i].cpu() for k in keys} for i in range(count)]


def sanity(config: RunConfig, *, steps: int = 300, lr: float = 1e-3) -> dict[str, Any]:
    """The decks' first check: can the model drive the loss on one batch to (near) zero?"""
    from cnnkit.engine import overfit_one_batch

    parts = build_parts(config)
    train_set = build_dataset(config.data, "train", seed=config.train.seed)
    count = min(config.data.batch_size, len(train_set))
    batch = collate_samples([train_set[i] for i in range(count)])
    return overfit_one_batch(parts.model, parts.task, batch, steps=steps, lr=lr,
                             device=resolve_device(config.train.device))


def predict(run_dir: str | Path, images: list[str | Path], out_dir: str | Path, *,
            checkpoint: str | Path | None = None) -> list[dict[str, Any]]:
    """Predict on image files with a trained run; writes per image a JSON record and a picture
    (segmentation: the mask as an index PNG and a coloured overlay; keypoints: the points drawn;
    classification: the class scores), plus ``predictions.json`` with every record."""
    from PIL import Image

    from cnnkit.data.datasets import read_image
    from cnnkit.data.sample import Sample
    from cnnkit.config.build import build_transforms
    from cnnkit.viz import colorize_mask, draw_keypoints, overlay_mask, to_pil

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = load_run(run_dir)
    parts = build_parts(config)
    load_model_state(parts.model, checkpoint or run_dir / "best.pt")
    device = resolve_device(config.train.device)
    model = parts.model.to(device).eval()
    transform = build_transforms(config.data.eval_transforms, "data.eval_transforms")
    channels = config.model.in_channels or 3
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path in map(Path, images):
        original = read_image(path, "L" if channels == 1 else "RGB")
        sample = Sample(original, meta={"path": str(path), "original_size":
                                        tuple(original.shape[-2:])})
        if transform is not None:
            sample = transform(sample, torch.Generator().manual_seed(0))
        batch = to_device(collate_samples([sample]), device)
        with torch.no_grad():
            output = model(batch["image"])
        record = {"image": str(path), **_jsonable(parts.task.decode(output, batch)[0])}
        stem = out_dir / path.stem
        picture = to_pil(original)
        if "mask" in record:
            mask = torch.as_tensor(record.pop("mask"), dtype=torch.uint8)
            mask = _to_size(mask, original.shape[-2:])
            colorize_mask(mask).save(f"{stem}_mask_color.png")
            Image.fromarray(mask.numpy()).save(f"{stem}_mask.png")
            overlay_mask(picture, mask).save(f"{stem}_overlay.png")
            record["mask"] = f"{stem.name}_mask.png"
        elif "keypoints" in record:
            draw_keypoints(picture, torch.tensor(record["keypoints"]),
                           skeleton=parts.skeleton).save(f"{stem}_keypoints.png")
        if "class" in record and parts.names:
            record["class_name"] = parts.names[record["class"]]
        (out_dir / f"{path.stem}.json").write_text(json.dumps(record, indent=2))
        records.append(record)
    (out_dir / "predictions.json").write_text(json.dumps(records, indent=2))
    return records


def _to_size(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A predicted mask brought to the original image size (nearest neighbour)."""
    if tuple(mask.shape) == tuple(size):
        return mask
    resized = torch.nn.functional.interpolate(mask[None, None].float(), size=tuple(size),
                                              mode="nearest")
    return resized[0, 0].to(torch.uint8)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in record.items()}
