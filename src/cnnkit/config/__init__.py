"""Run configuration: typed sections read from YAML with ``a.b=value`` overrides.

What the sections become (datasets, transforms, model, task) is built by :mod:`cnnkit.runs`.
"""

from cnnkit.config.loader import (ConfigError, apply_override, config_from_dict, config_to_dict,
                                  load_config, save_config)
from cnnkit.config.schema import (DataConfig, ModelConfig, OptimConfig, RunConfig,
                                  ScheduleConfig, TaskConfig, TrainConfig)

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "RunConfig", "ScheduleConfig",
    "TaskConfig", "TrainConfig", "apply_override", "config_from_dict", "config_to_dict",
    "load_config", "save_config",
]
