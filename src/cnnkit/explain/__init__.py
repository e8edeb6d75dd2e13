"""The lecture decks' mechanics as code: im2col, convolution as a matrix product, the
convolution matrix M and the transposed convolution as M^T, pooling and batch normalization
written plainly, true convolution vs cross-correlation, and texts for students.

Every mechanism equals its PyTorch counterpart (``F.unfold``, ``F.fold``, ``F.conv2d``,
``F.conv_transpose2d``, ``F.max_pool2d``, ``F.avg_pool2d``, ``F.batch_norm``) but is written
with index tensors and one matrix product, to show how it works rather than to be fast. The
texts (:func:`explain_layer`, :func:`explain_model`) return strings; they print nothing.

What a trained network sees (:mod:`cnnkit.explain.see`): first-layer filters, feature maps,
CAM, Grad-CAM, saliency and the effective receptive field, as tensors and Pillow pictures;
:func:`write_pictures` writes them for one image.
"""

from cnnkit.explain.im2col import col2im, im2col
from cnnkit.explain.layer_text import explain_layer
from cnnkit.explain.matrix import (
                                   conv2d_as_matmul,
                                   conv_matrix,
                                   transposed_conv_as_matmul,
                                   transposed_conv_by_zero_insertion,
)
from cnnkit.explain.model_text import explain_model
from cnnkit.explain.plain import (
                                   avg_pool2d_plain,
                                   batch_norm_plain,
                                   convolve2d,
                                   max_pool2d_plain,
)
from cnnkit.explain.see import (
                                   FilterGrid,
                                   Heatmap,
                                   LayerMaps,
                                   activation_maps,
                                   class_activation_map,
                                   first_layer_filters,
                                   grad_cam,
                                   saliency_map,
)
from cnnkit.explain.see_field import EffectiveField, effective_receptive_field
from cnnkit.explain.see_write import PICTURES, write_pictures
from cnnkit.explain.spec import GRAMMAR, LayerSpec, parse_layer

__all__ = ["GRAMMAR", "PICTURES", "EffectiveField", "FilterGrid", "Heatmap", "LayerMaps",
           "LayerSpec", "activation_maps", "avg_pool2d_plain", "batch_norm_plain",
           "class_activation_map", "col2im", "conv2d_as_matmul", "conv_matrix", "convolve2d",
           "effective_receptive_field", "explain_layer", "explain_model", "first_layer_filters",
           "grad_cam", "im2col", "max_pool2d_plain", "parse_layer", "saliency_map",
           "transposed_conv_as_matmul", "transposed_conv_by_zero_insertion", "write_pictures"]
