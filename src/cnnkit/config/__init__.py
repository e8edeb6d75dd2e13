"""Run configuration: typed sections read from YAML with ``a.b=value`` overrides, and the
builders that turn them into transforms, datasets and models."""

from cnnkit.config.build import (TRANSFORMS, base_dataset, build_dataset, build_model,
                                 build_transforms, class_names, data_root, dataset_split,
                                 open_split)
from cnnkit.config.loader import (ConfigError, apply_override, config_from_dict, config_to_dict,
                                  load_config, save_config)
from cnnkit.config.schema import (DATA_KINDS, TASK_KINDS, DataConfig, ModelConfig, OptimConfig,
                                  RunConfig, ScheduleConfig, TaskConfig, TrainConfig)

__all__ = [
    "ConfigError", "DATA_KINDS", "DataConfig", "ModelConfig", "OptimConfig", "RunConfig",
    "ScheduleConfig", "TASK_KINDS", "TRANSFORMS", "TaskConfig", "TrainConfig", "apply_override",
    "base_dataset", "build_dataset", "build_model", "build_transforms", "class_names",
    "config_from_dict", "config_to_dict", "data_root", "dataset_split", "load_config",
    "open_split", "save_config",
]
