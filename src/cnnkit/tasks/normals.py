"""Surface normals: a unit vector per pixel, cosine or angular losses, the angle measures of
Fouhey et al. (ICCV 2013) and Eigen & Fergus (ICCV 2015) over the whole dataset.

**Output**: ``N x 3 x h x w``, any length: the task **normalises every vector to unit length**
(:func:`~cnnkit.tasks.functional.normalize_normals`, the network's last layer stays linear;
Eigen & Fergus normalise the same way and back-propagate through the normalisation). The frame
is the camera's of :mod:`cnnkit.data.sample` (x right, y down, z forward). An output smaller
than the labels is resized bilinearly to their size and normalised again.

**Labels**: ``batch["normals"]`` (N x 3 x H x W unit vectors, 0 where unknown) and
``batch["valid"]`` (when present); a pixel counts when it is valid and both vectors are
non-zero and finite.

**Loss** (``loss``): ``"cosine"``, mean ``1 - cos`` (Eigen & Fergus's loss is the negative mean
dot product, the same up to a constant); ``"angular"``, the mean angle in radians
(:mod:`cnnkit.tasks.functional.normals`).

**Metrics** (:class:`NormalMetric`): ``mean_angle``, ``median_angle`` (degrees; the median from
a histogram of ``median_bin_width`` degrees, exact to within one bin) and the fractions
``within_11_25``, ``within_22_5``, ``within_30``, from dataset-wide sums. **Primary**:
``mean_angle``, lower is better.

**Decoding**: ``normals`` (3 x H0 x W0 float32) in original image coordinates: brought back with
:func:`~cnnkit.tasks.original_coordinates.maps_to_original` (bilinear), then **normalised again**
(an interpolated vector is shorter than one); pixels the network did not see are 0. Flips
in the sample's transforms are undone on the vectors too: x negated for each horizontal flip,
y for each vertical one (as the data pipeline moved the labels).
**Pictures**: the image, the true and the predicted normals as RGB ``(n + 1) / 2``.
**Files**: ``<stem>_normals.png`` (8-bit RGB, ``(n + 1) / 2 * 255``). **Flip TTA**: the mirrored
map is flipped back **and its x component negated** (a mirror in the camera's y-z plane).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from cnnkit.data.datasets.labels import LabelSpace
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.tasks.base import Batch, Metric, Task
from cnnkit.tasks.dense_regression import (check_flip_width, dense_output, input_size,
                                           maps_in_original, require_field, to_size, valid_map)
from cnnkit.tasks.functional import (NormalMetricAccumulator, angular_normal_loss,
                                     cosine_normal_loss, normalize_normals)
from cnnkit.tasks.registry import register_task
from cnnkit.viz import caption, panels
from cnnkit.viz.dense import enlarge, normals_to_image

NormalLoss = Literal["cosine", "angular"]
NORMAL_LOSSES = ("cosine", "angular")
ENCODING = "RGB = (n + 1) / 2 * 255, camera frame: x right, y down, z forward"


def _unflip_signs(meta: dict[str, Any]) -> torch.Tensor:
    """(3 x 1 x 1) signs that undo the flips of ``meta["transforms"]`` on normal vectors."""
    names = [name for name, _ in meta.get("transforms", [])]
    x = -1.0 if names.count("horizontal_flip") % 2 else 1.0
    y = -1.0 if names.count("vertical_flip") % 2 else 1.0
    return torch.tensor([x, y, 1.0]).view(3, 1, 1)


class NormalMetric(Metric):
    """Dataset-wide angle figures (:class:`~cnnkit.tasks.functional.NormalMetricAccumulator`)."""

    def __init__(self, task: NormalsTask) -> None:
        self.task = task
        self.accumulator = NormalMetricAccumulator(bin_width=task.median_bin_width)

    def reset(self) -> None:
        self.accumulator.reset()

    def state(self) -> list[torch.Tensor]:
        return self.accumulator.state()

    def update(self, output: Any, batch: Batch) -> None:
        target, valid = self.task.targets(batch)
        pred = self.task.unit_normals(output, target.shape[-2:]).detach().float()
        self.accumulator.update(pred, target.to(pred), valid)

    def compute(self) -> dict[str, float]:
        return self.accumulator.compute()


@register_task
class NormalsTask(Task):
    """Per-pixel unit surface normals (see the module docstring)."""

    kind = "normals"
    primary_metric = "mean_angle"
    higher_is_better = False
    lower_is_better = ("loss", "mean_angle", "median_angle") + NORMAL_LOSSES

    def __init__(self, *, loss: NormalLoss = "cosine", median_bin_width: float = 0.01) -> None:
        if loss not in NORMAL_LOSSES:
            raise ArgumentError(f"normals loss must be one of {', '.join(NORMAL_LOSSES)}; "
                                f"got {loss!r}")
        if not median_bin_width > 0:
            raise ArgumentError(f"median_bin_width must be > 0 degrees; got {median_bin_width}")
        self.loss_name, self.median_bin_width = loss, median_bin_width

    @classmethod
    def options_from(cls, labels: LabelSpace, model: nn.Module) -> dict[str, Any]:
        channels = getattr(model, "num_classes", None)
        if not hasattr(model, "task_kinds") and channels not in (None, 3):
            raise CnnkitError(f"a normals model predicts 3 channels (x, y, z); this one gives "
                              f"{channels}: set model.num_classes=3")
        return {}

    def unit_normals(self, output: Any, size: Any = None) -> torch.Tensor:
        """The output as unit vectors (N x 3 x H x W), resized to ``size`` when given."""
        maps = dense_output(output, 3, "normals")
        return normalize_normals(maps if size is None else to_size(maps, size))

    def targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(normals N x 3 x H x W, valid N x H x W)."""
        normals = require_field(batch, "normals", "normals", "N x 3 x H x W unit vectors")
        return normals, valid_map(batch, normals[:, 0])

    def loss(self, output: Any, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target, valid = self.targets(batch)
        pred = self.unit_normals(output, target.shape[-2:])
        function = cosine_normal_loss if self.loss_name == "cosine" else angular_normal_loss
        value = function(pred, target.to(pred), valid)
        return value, {self.loss_name: value.detach()}

    def new_metric(self) -> NormalMetric:
        return NormalMetric(self)

    def _in_input(self, output: Any, batch: Batch | None) -> torch.Tensor:
        maps = dense_output(output, 3, "normals").detach().float()
        return self.unit_normals(maps, input_size(batch, maps))

    def decode_in_input(self, output: Any, batch: Batch | None) -> list[dict[str, Any]]:
        """Per sample: ``normals`` (3 x H x W unit vectors) over the network input."""
        return [{"normals": n.cpu()} for n in self._in_input(output, batch)]

    def decode(self, output: Any, batch: Batch | None = None) -> list[dict[str, Any]]:
        """Per sample: ``normals`` (3 x H0 x W0 float32, unit vectors, 0 where unseen) in
        original image coordinates, normalised again after the resampling."""
        maps = self._in_input(output, batch)
        metas = (batch or {}).get("meta") or [{}] * len(maps)
        results = []
        for (one, seen), meta in zip(maps_in_original(maps, batch), metas):
            unit = normalize_normals(one) * seen * _unflip_signs(meta).to(one)
            results.append({"normals": unit.cpu()})
        return results

    def ground_truth(self, batch: Batch) -> list[dict[str, Any]]:
        target, valid = self.targets(batch)
        return [{"normals": n.cpu(), "valid": v.cpu()} for n, v in zip(target, valid)]

    def flip_back(self, output: Any, width: int) -> Any:
        """Flipped back and x negated: a mirrored scene has mirrored normals."""
        maps = dense_output(output, 3, "normals")
        check_flip_width(maps, width, "normals")
        sign = maps.new_tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
        return maps.flip(-1) * sign

    def draw(self, image: Image.Image, target: dict[str, Any] | None,
             prediction: dict[str, Any], *, scale: int = 1) -> Image.Image:
        """The image, the true normals (when given) and the predicted ones as RGB."""
        tiles = [caption(enlarge(image, scale), "image")]
        if target is not None and target.get("normals") is not None:
            truth = normals_to_image(target["normals"], target.get("valid"))
            tiles.append(caption(enlarge(truth, scale), "true normals"))
        predicted = normals_to_image(prediction["normals"])
        tiles.append(caption(enlarge(predicted, scale), "predicted normals"))
        return panels(tiles, columns=len(tiles))

    def write(self, record: dict[str, Any], image: Image.Image, stem: Path) -> dict[str, Any]:
        """``<stem>_normals.png`` (8-bit RGB, (n + 1) / 2); the record names it."""
        normals_to_image(torch.as_tensor(record["normals"])).save(f"{stem}_normals.png")
        return {**{k: v for k, v in record.items() if k != "normals"},
                "normals": f"{stem.name}_normals.png", "normals_encoding": ENCODING}
