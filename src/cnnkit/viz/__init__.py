"""Pictures drawn with Pillow only: training curves, confusion matrices, masks, keypoints, boxes."""

from cnnkit.viz.confusion import cell_origin, confusion_matrix_image
from cnnkit.viz.curves import curve_names, epoch_curves, plot_training_curves, read_metrics_csv
from cnnkit.viz.overlays import (caption, colorize_mask, draw_boxes, draw_keypoints,
                                 keypoint_sides, overlay_heatmap, overlay_mask)
from cnnkit.viz.plots import Series, line_plot, nice_ticks, panels
from cnnkit.viz.style import CATEGORICAL, label_palette, to_pil

__all__ = [
    "CATEGORICAL", "Series", "caption", "cell_origin", "colorize_mask", "confusion_matrix_image",
    "curve_names", "draw_boxes", "draw_keypoints", "epoch_curves", "keypoint_sides",
    "label_palette", "line_plot", "nice_ticks", "overlay_heatmap", "overlay_mask", "panels",
    "plot_training_curves", "read_metrics_csv", "to_pil",
]
