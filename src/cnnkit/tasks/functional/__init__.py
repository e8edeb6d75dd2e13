"""Dense-regression losses and metrics as plain functions (depth, surface normals, colourisation).

Pure functions of tensors, in the manner of a functional metrics API: no state except in the
``*Accumulator`` classes, which add sufficient statistics over batches so that dataset-wide
figures are exact. Every function checks its shapes and raises
:class:`cnnkit.errors.CnnkitError` with a one-line message naming the argument and the shape it
expects. The ab-plane tools of colourisation (bins, encodings, rebalancing weights, decodings)
are in :mod:`cnnkit.data.ab_bins`, colour conversion in :mod:`cnnkit.data.color`.
"""

from cnnkit.tasks.functional.colorization import (ab_auc, ab_errors, bin_accuracy,
                                                  rebalanced_cross_entropy)
from cnnkit.tasks.functional.depth import (DEPTH_METRIC_KEYS, DepthMetricAccumulator,
                                           depth_image_sums, depth_metrics, metrics_from_sums)
from cnnkit.tasks.functional.depth_losses import (berhu_loss, l1_depth_loss,
                                                  scale_invariant_log_loss)
from cnnkit.tasks.functional.normals import (NORMAL_METRIC_KEYS, NormalMetricAccumulator,
                                             angle_map, angular_normal_loss, cosine_normal_loss,
                                             normal_metrics, normalize_normals)
from cnnkit.tasks.functional.partition import (information_scores, partition_from_instances,
                                               partition_from_semantic, rand_error, rand_scores,
                                               variation_of_information)

__all__ = [
    "DEPTH_METRIC_KEYS", "NORMAL_METRIC_KEYS", "DepthMetricAccumulator",
    "NormalMetricAccumulator", "ab_auc", "ab_errors", "angle_map", "angular_normal_loss",
    "berhu_loss", "bin_accuracy", "cosine_normal_loss", "depth_image_sums", "depth_metrics",
    "information_scores", "l1_depth_loss", "metrics_from_sums", "normal_metrics",
    "normalize_normals", "partition_from_instances", "partition_from_semantic", "rand_error",
    "rand_scores", "rebalanced_cross_entropy", "scale_invariant_log_loss",
    "variation_of_information",
]
