"""Inference helpers: test-time augmentation and sliding-window (tiled) dense prediction, blended
or exact."""

from cnnkit.inference.sliding import (TilingGeometry, blend_window, exact_tiled_inference,
                                      reflect_pad, sliding_window_inference, tiling_geometry)
from cnnkit.inference.tta import (DECK_SCALES, DihedralTTA, FlipTTA, classify_tta,
                                  five_crop_positions, multi_scale_views, resize_short_side,
                                  ten_crop)

__all__ = ["DECK_SCALES", "DihedralTTA", "FlipTTA", "TilingGeometry", "blend_window", "classify_tta",
           "exact_tiled_inference", "five_crop_positions", "multi_scale_views", "reflect_pad",
           "resize_short_side", "sliding_window_inference", "ten_crop", "tiling_geometry"]
