"""segmentation networks; each family module registers its variants on import."""
