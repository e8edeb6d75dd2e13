"""A trained run as a portable artifact: ``load_run(path)`` and ``run.predict(images)``.

``load_run`` reads a run folder (or a single checkpoint file) and rebuilds the model, the task
and the evaluation transforms from the inference spec (:mod:`cnnkit.runs.spec`), without the
training data. ``run.predict`` takes file paths, PIL images, numpy arrays (H x W or H x W x C,
uint8 or float in [0, 1]) or tensors (C x H x W in [0, 1]) and returns the task's decoded
predictions in original image coordinates: class scores, masks, keypoints, boxes.
``run.predict_files`` also writes each prediction's files (:meth:`cnnkit.tasks.Task.write`)
and ``predictions.json``, which is what ``cnnkit predict`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.data.batch import collate_samples, to_device
from cnnkit.data.datasets import read_image
from cnnkit.data.sample import Sample
from cnnkit.data.transforms import Compose
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.engine.devices import resolve_device
from cnnkit.errors import CnnkitError
from cnnkit.runs.data import build_transforms
from cnnkit.runs.folder import RunFolder
from cnnkit.runs.spec import InferenceSpec, SpecError
from cnnkit.tasks import Task
from cnnkit.tasks.base import jsonable
from cnnkit.viz import to_pil

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor


@dataclass
class Run:
    """A trained model ready to use: ``model`` (evaluation mode, on ``device``), ``task``,
    ``transforms`` (the evaluation transforms), ``spec`` and ``checkpoint``."""

    spec: InferenceSpec
    model: nn.Module
    task: Task
    transforms: Compose | None
    checkpoint: Path
    device: torch.device

    @property
    def meta(self) -> dict[str, Any]:
        """The spec's facts: task kind, class names, keypoints, input size, versions..."""
        facts = {"task": self.spec.kind, "class_names": self.spec.class_names,
                 "model": self.spec.model["name"], "input": self.spec.input,
                 "normalization": self.spec.normalization, "versions": self.spec.versions}
        skeleton = self.spec.skeleton
        if skeleton is not None:
            facts["keypoint_names"] = list(skeleton.names)
            facts["flip_pairs"] = [list(p) for p in skeleton.flip_pairs]
        return facts

    def _sample(self, image: ImageInput, index: int) -> Sample:
        tensor, where = as_image_tensor(image, self.spec.image_channels, index)
        sample = Sample(tensor, meta={"path": where, "original_size": tuple(tensor.shape[-2:])})
        if self.transforms is not None:
            sample = self.transforms(sample, torch.Generator().manual_seed(0))
        return sample

    def prepare(self, image: ImageInput) -> tuple[torch.Tensor, Image.Image]:
        """``image`` as the network takes it (C x H x W, on the run's device) and as a picture
        of that input (normalisation undone), for drawing over."""
        sample = self._sample(image, 0)
        normalization = self.spec.normalization
        mean, std = normalization if normalization else (None, None)
        return sample.image.to(self.device), to_pil(sample.image, mean, std)

    @torch.no_grad()
    def predict(self, images: ImageInput | Sequence[ImageInput],
                batch_size: int = 8) -> list[dict[str, Any]]:
        """The task's decoded predictions, one dict per image, in original image coordinates."""
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), batch_size):
            samples = [self._sample(image, start + i)
                       for i, image in enumerate(items[start:start + batch_size])]
            batch = to_device(collate_samples(samples), self.device)
            results.extend(self.task.decode(self.task.forward(self.model, batch), batch))
        return results

    def predict_files(self, paths: Iterable[str | Path], out_dir: str | Path
                      ) -> list[dict[str, Any]]:
        """Predict image files and write, per image, its JSON record and the task's pictures
        (e.g. mask PNGs, drawn keypoints), plus ``predictions.json`` with every record."""
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise CnnkitError(f"--out {out_dir}: a file is there, not a folder")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CnnkitError(f"--out {out_dir}: cannot create the folder "
                              f"({err.strerror or err})") from None
        records = []
        for path in map(Path, paths):
            prediction = self.predict([path])[0]
            original = to_pil(as_image_tensor(path, self.spec.image_channels)[0])
            record = self.task.write({"image": str(path), **prediction}, original,
                                     out_dir / path.stem)
            (out_dir / f"{path.stem}.json").write_text(json.dumps(jsonable(record), indent=2))
            records.append(jsonable(record))
        (out_dir / "predictions.json").write_text(json.dumps(records, indent=2))
        return records


def as_image_tensor(image: ImageInput, channels: int, index: int = 0
                    ) -> tuple[torch.Tensor, str]:
    """``image`` as a C x H x W float tensor in [0, 1] with ``channels`` channels, and a name."""
    mode = "L" if channels == 1 else "RGB"
    if isinstance(image, (str, Path)):
        return read_image(Path(image), mode), str(image)
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array)
        tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
        return tensor.contiguous(), f"image {index}"
    if isinstance(image, np.ndarray):
        array = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
        return _channels(tensor, channels, index), f"array {index}"
    if isinstance(image, torch.Tensor):
        tensor = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        if tensor.dim() == 2:
            tensor = tensor[None]
        if tensor.dim() != 3:
            raise CnnkitError(f"image {index}: a tensor image must be C x H x W; got "
                              f"{tuple(image.shape)}")
        return _channels(tensor.cpu(), channels, index), f"tensor {index}"
    raise CnnkitError(f"image {index}: expected a path, PIL image, numpy array or tensor; got "
                      f"{type(image).__name__}")


def _channels(tensor: torch.Tensor, channels: int, index: int) -> torch.Tensor:
    if tensor.shape[0] == channels:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(channels, -1, -1).contiguous()
    raise CnnkitError(f"image {index} has {tensor.shape[0]} channels; the model takes "
                      f"{channels}")


def _spec_of(folder: RunFolder | None, state: dict[str, Any], checkpoint: Path) -> InferenceSpec:
    if "spec" in state:
        return InferenceSpec.from_dict(state["spec"], str(checkpoint))
    if folder is not None and folder.spec.is_file():
        return InferenceSpec.load(folder.spec)
    raise SpecError(f"{checkpoint} carries no inference spec (written by cnnkit before runs "
                    "kept one); retrain, or evaluate it with the run's data")


def load_run(path: str | Path | RunFolder, checkpoint: str | Path | None = None, *,
             device: str | torch.device = "cpu") -> Run:
    """The trained run at ``path``: a run folder (its best checkpoint, else the last) or a
    checkpoint file; ``checkpoint`` picks another file of the folder."""
    folder: RunFolder | None
    if isinstance(path, RunFolder) or Path(path).is_dir():
        folder = path if isinstance(path, RunFolder) else RunFolder(path)
        file = folder.require().checkpoint(checkpoint)
    elif Path(path).is_file():
        folder, file = None, Path(path)
    else:
        raise CnnkitError(f"{path}: no run folder or checkpoint file there")
    state = load_checkpoint(file)
    spec = _spec_of(folder, state, file)
    model = spec.build_model()
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CnnkitError(f"{file} does not fit {spec.model['name']}: "
                          f"{str(err).splitlines()[0]}") from None
    target = resolve_device(device)
    transforms = build_transforms(spec.transforms, f"{file}: spec transforms")
    return Run(spec, model.to(target).eval(), spec.build_task(), transforms, file, target)
