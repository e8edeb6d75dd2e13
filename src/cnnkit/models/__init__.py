"""The cnnkit model zoo: ``create(name, ...)``, ``list(task=None)``, ``get_info(name)``."""

from cnnkit.models.base import Classifier, FeatureSpec
from cnnkit.models.features import FeatureExtractor
from cnnkit.models.probe import LinearProbe
from cnnkit.models.registry import (ModelInfo, create, feature_info, get_info, list_models,
                                    register)

list = list_models  # noqa: A001  (``cnnkit.models.list`` as the API promises)

__all__ = ["Classifier", "FeatureExtractor", "FeatureSpec", "LinearProbe", "ModelInfo", "create", "feature_info", "get_info",
           "list", "list_models", "register"]
