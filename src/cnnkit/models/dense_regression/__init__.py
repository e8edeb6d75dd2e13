"""Dense regression and multi-task networks (depth, surface normals, colourisation, several
tasks at once); each family module registers its variants on import."""
from cnnkit.models.dense_regression import colorization, eigen_fergus, multitask  # noqa: F401
from cnnkit.models.dense_regression import variants  # noqa: F401
