"""localization networks (one class and one box per image); each module registers its variants."""
from cnnkit.models.localization import classloc  # noqa: F401
