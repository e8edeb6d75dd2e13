"""The inference spec: everything a trained model needs to be used without its training data.

Written at training time into every checkpoint (``state["spec"]``) and, readable, as
``spec.json`` in the run folder; :func:`cnnkit.load_run`, ``cnnkit predict``, ``cnnkit export``
and ``cnnkit eval --data-root`` read it instead of the training data. It holds:

- ``task``: the task's kind and options (:meth:`cnnkit.tasks.Task.spec`), class names and
  colours, keypoint names and left/right pairs included;
- ``model``: the registry name and options, class count and input channels (a linear probe's
  stage too), enough to rebuild the network before loading the checkpoint's weights;
- ``transforms``: the evaluation transforms, as the configuration writes them (resize,
  normalisation);
- ``input``: the channels and the size the model was evaluated at, and the rule of the sizes it
  accepts (``minimum + k * step``) when the model declares one;
- ``versions``: of cnnkit and torch that wrote it.

Like weights objects in torchvision's model API, the spec carries the model's meta data and
transforms; unlike them it is written by every training run, not only for published weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit import __version__
from cnnkit.config import RunConfig
from cnnkit.errors import CnnkitError
from cnnkit.geometry import Skeleton
from cnnkit.tasks import Task, build_task

FORMAT = "cnnkit.spec/1"
SECTIONS = ("task", "model", "transforms", "input", "versions")


class SpecError(CnnkitError):
    """An inference spec that is missing or cannot be read."""


@dataclass
class InferenceSpec:
    """See the module docstring; ``to_dict``/``from_dict`` give and read plain JSON values."""

    task: dict[str, Any]
    model: dict[str, Any]
    transforms: list[Any] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT

    @classmethod
    def for_run(cls, config: RunConfig, model: nn.Module, task: Task,
                input_size: tuple[int, ...], image_channels: int | None = None) -> InferenceSpec:
        """The spec of a run configured by ``config`` whose evaluation images (after the
        evaluation transforms) have size ``input_size`` (C, H, W); ``image_channels``: those of
        the images the transforms read, where they differ (colourisation reads RGB and gives
        the network L)."""
        section = config.model
        info: dict[str, Any] = {"name": section.name, "options": dict(section.options),
                                "num_classes": section.num_classes,
                                "in_channels": section.in_channels,
                                "probe_stage": section.probe_stage}
        sizes = getattr(model, "input_sizes", None)
        shape = {"channels": int(input_size[0]), "size": [int(s) for s in input_size[1:]]}
        if image_channels is not None and image_channels != input_size[0]:
            shape["image_channels"] = int(image_channels)
        if sizes is not None:
            shape.update(minimum=int(sizes.minimum), step=int(sizes.step))
        return cls(task=task.spec(), model=info, transforms=list(config.data.eval_transforms),
                   input=shape, versions={"cnnkit": __version__, "torch": torch.__version__})

    @property
    def image_channels(self) -> int:
        """The channels of the images :meth:`Run.predict` reads (before the transforms)."""
        return int(self.input.get("image_channels", self.input.get("channels", 3)))

    # ----------------------------------------------------------------- reading and writing
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Any, source: str = "spec") -> InferenceSpec:
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise SpecError(f"{source}: not a cnnkit inference spec (format {FORMAT!r})")
        missing = [name for name in ("task", "model") if not isinstance(values.get(name), dict)]
        if missing:
            raise SpecError(f"{source}: the spec has no {' or '.join(missing)} section")
        return cls(**{name: values[name] for name in (*SECTIONS, "format") if name in values})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> InferenceSpec:
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise SpecError(f"{path}: spec file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SpecError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(values, str(path))

    # ----------------------------------------------------------------- what it describes
    @property
    def kind(self) -> str:
        return self.task["kind"]

    @property
    def options(self) -> dict[str, Any]:
        return self.task.get("options", {})

    @property
    def class_names(self) -> list[str] | None:
        return self.options.get("class_names")

    @property
    def skeleton(self) -> Skeleton | None:
        names = self.options.get("keypoint_names")
        if names is None:
            return None
        return Skeleton(tuple(names), tuple(tuple(p) for p in self.options.get("flip_pairs", ())))

    @property
    def normalization(self) -> tuple[list[float], list[float]] | None:
        """(mean, std) of the evaluation transforms' ``Normalize``, if they have one."""
        for entry in self.transforms:
            if isinstance(entry, dict) and "Normalize" in entry:
                params = entry["Normalize"] or {}
                return list(params.get("mean", ())), list(params.get("std", ()))
        return None

    def build_task(self) -> Task:
        return build_task(self.kind, **self.options)

    def build_model(self) -> nn.Module:
        """The network, freshly initialised (load the checkpoint's weights into it)."""
        from cnnkit.models import LinearProbe, create

        section = self.model
        model = create(section["name"], num_classes=section.get("num_classes"),
                       in_channels=section.get("in_channels"), **section.get("options", {}))
        if section.get("probe_stage") is not None:
            model = LinearProbe(model, model.num_classes, stage=section["probe_stage"])
        return model

    def metadata(self) -> dict[str, str]:
        """String facts for an exported file (ONNX ``metadata_props``): task, class names,
        normalisation, input size, keypoints, and the whole spec as JSON."""
        facts = {"cnnkit.task": self.kind, "cnnkit.model": self.model["name"],
                 "cnnkit.input_size": json.dumps([self.input.get("channels"),
                                                  *self.input.get("size", [])]),
                 "cnnkit.transforms": json.dumps(self.transforms),
                 "cnnkit.spec": json.dumps(self.to_dict())}
        if self.class_names is not None:
            facts["cnnkit.class_names"] = json.dumps(self.class_names)
        if self.normalization is not None:
            facts["cnnkit.mean"] = json.dumps(self.normalization[0])
            facts["cnnkit.std"] = json.dumps(self.normalization[1])
        if self.skeleton is not None:
            facts["cnnkit.keypoint_names"] = json.dumps(list(self.skeleton.names))
            facts["cnnkit.flip_pairs"] = json.dumps([list(p) for p in self.skeleton.flip_pairs])
        return facts
