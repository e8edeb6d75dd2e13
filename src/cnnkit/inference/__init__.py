"""Inference helpers: test-time augmentation and sliding-window (tiled) dense prediction."""

from cnnkit.inference.sliding import blend_window, reflect_pad, sliding_window_inference
from cnnkit.inference.tta import (DECK_SCALES, FlipTTA, classify_tta, five_crop_positions,
                                  multi_scale_views, resize_short_side, ten_crop)

__all__ = ["DECK_SCALES", "FlipTTA", "blend_window", "classify_tta", "five_crop_positions",
           "multi_scale_views", "reflect_pad", "resize_short_side", "sliding_window_inference",
           "ten_crop"]
