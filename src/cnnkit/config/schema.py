"""The sections of a run configuration, as typed dataclasses.

A YAML file sets any subset of these fields (the rest keep their defaults); see
:func:`cnnkit.config.load_config`. ``data.kind`` names an entry of the dataset catalog
(:data:`cnnkit.data.datasets.catalog.CATALOG`), ``task.kind`` a task kind
(:data:`cnnkit.kinds.TASK_KINDS`). Transform lists hold entries written as a name
(``HorizontalFlip``) or a one-key mapping of a name to its keyword arguments
(``{Resize: {size: [180, 240]}}``); :func:`cnnkit.runs.data.build_transforms` builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any



@dataclass
class DataConfig:
    """Where the samples come from, how they are split, augmented and batched.

    ``train_split`` / ``val_split`` / ``test_split`` name the dataset's own splits where it has
    them (idx: train, test; camvid: train, val, test; folders and segmentation: sub-folders of
    ``root``). membrane and dlc have none: their keys (file names) are split once into "train"
    and "val" by :func:`cnnkit.data.datasets.random_split` with ``val_fraction`` (a float
    fraction or an int count) and ``split_seed``, unless ``split_file`` names a saved split JSON.
    synthetic: "train" has ``num_samples`` samples from seed ``split_seed``, the other splits
    ``val_samples`` from seeds ``split_seed + 1`` (val) and ``split_seed + 2`` (test).
    ``holdout`` carves the validation samples out of the train split instead (``val_split``
    is then not read): a fraction or a count drawn with ``split_seed``, or key prefixes (e.g.
    ``[0001TP]``, a whole CamVid sequence). Choose a recipe on such a holdout, never on a test
    split; then train the final model on the whole train split.
    ``root`` may use ``~`` and ``$VARIABLES``; a relative root is taken from the working folder.
    """

    kind: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str | None = None
    val_fraction: int | float = 0.2  # a fraction (float) or a count (int)
    split_seed: int = 0
    split_file: str | None = None
    holdout: int | float | list[str] | None = None
    cache: bool = False  # decode every sample once and keep it in memory (uint8 images)
    num_classes: int | None = None  # segmentation: index masks with classes 0..num_classes-1
    mask_values: list[int] | None = None  # segmentation: stored mask values in class order
    void_to_ignore: bool = True  # camvid: void (11) -> ignore index 255
    images: str | None = None  # coco-keypoints, coco-instances: the image folder
    keep_empty: bool = True  # coco-instances: keep images without annotations
    min_area: int = 1  # membrane-instances: smallest cell region (pixels) that is an instance
    box_margin: float = 0.15  # dlc-instances: hull of the keypoints grown by this x its longer side
    depth_scale: float = 1000.0  # dense-folders: stored units per metre of 16-bit depth PNGs
    num_samples: int = 256  # synthetic (train)
    val_samples: int = 64  # synthetic (val, test)
    size: int | list[int] = 64  # synthetic image size: int or [height, width]
    train_transforms: list[Any] = field(default_factory=list)
    eval_transforms: list[Any] = field(default_factory=list)
    batch_transforms: list[Any] = field(default_factory=list)  # training batches, on the device
    batch_size: int = 32
    eval_batch_size: int | None = None  # default: batch_size
    workers: int = 2


@dataclass
class ModelConfig:
    """A registered model (``cnnkit models``) and the options of its builder.

    ``probe_stage``: train only a linear classifier on the globally averaged feature map of this
    stage of the (frozen) model (index into its feature maps, -1 the last): the transfer
    recipe for very little data (:class:`cnnkit.models.LinearProbe`)."""

    name: str = "resnet20_cifar"
    options: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None  # default: the model's own
    in_channels: int | None = None
    weights: str | None = None  # a local .pth/.pt/.safetensors file
    probe_stage: int | None = None


@dataclass
class TaskConfig:
    """The task (loss, metrics, decoding) and its options, e.g. ``class_weights``."""

    kind: str = "classification"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimizer. ``lr_mult`` scales the learning rate of parameter groups ("stem", "stages",
    "head" of the zoo models); ``freeze`` lists groups that are not trained."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_mult: dict[str, float] = field(default_factory=dict)
    freeze: list[str] = field(default_factory=list)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``name`` (e.g. constant, step, multistep, cosine, poly) with its
    ``params``, after ``warmup_epochs`` of linear warm-up from ``warmup_factor`` x lr."""

    name: str = "cosine"
    params: dict[str, Any] = field(default_factory=dict)
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.1


@dataclass
class TrainConfig:
    """The training loop. ``early_stopping``: epochs without improvement of the task's primary
    metric before stopping (None: never). ``grad_clip``: max gradient norm (None: no clipping).
    ``ema``: decay of an exponential moving average of the weights (e.g. 0.999): validation,
    the checkpoints' weights and the final evaluation use the average (None: no average).
    ``checkpoint_every``: also write ``last.pt`` every that many optimizer steps (mid-epoch
    checkpoints, resumed exactly; None: at the end of each epoch only). ``sync_bn``: under
    torchrun, batch norms compute their statistics over the global batch
    (``torch.nn.SyncBatchNorm``; CUDA/NCCL only, a CPU gloo run refuses it; one process: no
    effect; see docs/distributed.md)."""

    epochs: int = 10
    amp: str | bool = "auto"  # auto (bf16 where the hardware has it), off, bf16 or fp16
    channels_last: bool | str = "auto"  # auto: with bf16 autocast (measured faster)
    grad_clip: float | None = None
    ema: float | None = None  # decay of the weights' moving average (e.g. 0.999)
    early_stopping: int | None = None
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    run_dir: str = "runs/run"
    checkpoint_every: int | None = None
    log_every: int = 50
    eval_every: int = 1  # validate every that many epochs (and after the last)
    sync_bn: bool = False  # SyncBatchNorm in a distributed run (CUDA only)


@dataclass
class RunConfig:
    """Everything a training run needs; saved resolved as ``config.yaml`` in its run folder."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
