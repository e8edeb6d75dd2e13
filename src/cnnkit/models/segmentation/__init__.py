"""segmentation networks; each family module registers its variants on import."""
from cnnkit.models.segmentation import deeplab, fcn, fpn, hypercolumn  # noqa: F401
from cnnkit.models.segmentation import deconvnet, segnet, sliding, unet  # noqa: F401
from cnnkit.models.segmentation import zoomout  # noqa: F401
