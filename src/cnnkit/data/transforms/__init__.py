"""Label-aware transforms: each one moves the image and every label of a :class:`Sample`."""

from cnnkit.data.transforms.base import Compose, RandomChoice, Transform
from cnnkit.data.transforms.affine import Affine, LensDistortion, QuarterTurn
from cnnkit.data.transforms.color import ColorJitter, Grayscale, PCAColor
from cnnkit.data.transforms.colorization import ColorizationTarget
from cnnkit.data.transforms.elastic import ElasticDeform
from cnnkit.data.transforms.flip import HorizontalFlip, VerticalFlip
from cnnkit.data.transforms.geometric import (CenterCrop, Crop, Pad, RandomCrop, RandomResizedCrop,
                                              ResNetScale, Resize)
from cnnkit.data.transforms.scale import ScaleJitter
from cnnkit.data.transforms.tensor import Normalize, ToTensor, to_channels_last, to_tensor

__all__ = ["Compose", "RandomChoice", "Transform"]
__all__ += ["ColorJitter", "Grayscale", "Normalize", "PCAColor", "ToTensor", "to_channels_last",
            "to_tensor"]
__all__ += ["Affine", "CenterCrop", "Crop", "HorizontalFlip", "LensDistortion", "Pad", "RandomCrop",
            "RandomResizedCrop", "ResNetScale", "Resize", "VerticalFlip"]
__all__ += ["ElasticDeform", "QuarterTurn"]  # few annotated images, no upright (U-Net)
__all__ += ["ScaleJitter"]  # multi-scale training (moves instances too)
__all__ += ["ColorizationTarget"]  # lightness in, meta["ab"] out (colourisation)
