"""Label-aware transforms: each one moves the image and every label of a :class:`Sample`."""

from cnnkit.data.transforms.base import Compose, RandomChoice, Transform

__all__ = ["Compose", "RandomChoice", "Transform"]
