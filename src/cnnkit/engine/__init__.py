"""Training engine: optimizers and schedules, the Trainer (checkpoints, exact resume, logs,
mixed precision, distributed data parallel), transfer-learning helpers and sanity checks."""

from cnnkit.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cnnkit.engine.distributed import (cleanup_distributed, init_distributed, make_loader)
from cnnkit.engine.evaluate import evaluate
from cnnkit.engine.logs import RunLogger, tensorboard_available
from cnnkit.engine.optim import build_optimizer
from cnnkit.engine.sanity import overfit_one_batch
from cnnkit.engine.schedules import (ConstantLR, MultiStepLR, PlateauLR, PolyLR, Schedule,
                                     StepLR, WarmupCosineLR, build_schedule)
from cnnkit.engine.trainer import NonFiniteLossError, Trainer
from cnnkit.engine.transfer import BACKBONE_TENTH, freeze, unfreeze

__all__ = [
    "BACKBONE_TENTH", "CheckpointError", "ConstantLR", "MultiStepLR",
    "NonFiniteLossError", "PlateauLR", "PolyLR", "RunLogger", "Schedule", "StepLR", "Trainer",
    "WarmupCosineLR", "build_optimizer", "build_schedule", "cleanup_distributed", "evaluate",
    "freeze", "init_distributed", "load_checkpoint", "make_loader", "overfit_one_batch",
    "save_checkpoint", "tensorboard_available", "unfreeze",
]
