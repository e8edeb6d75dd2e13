"""Data: samples that carry their labels, label-aware transforms, datasets and statistics."""

from cnnkit.data.sample import IGNORE_INDEX, Sample

__all__ = ["IGNORE_INDEX", "Sample"]
