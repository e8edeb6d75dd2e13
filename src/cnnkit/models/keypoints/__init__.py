"""keypoints networks; each family module registers its variants on import."""
from cnnkit.models.keypoints import cpm, heatmap, regression  # noqa: F401
