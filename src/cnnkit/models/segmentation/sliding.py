"""Dense prediction by a sliding window: one patch classification per pixel, the starting point
that fully convolutional networks replace.

:class:`PatchClassifier` classifies, for every pixel, the ``patch x patch`` window around it (the
image zero-padded by ``patch // 2`` before and ``(patch - 1) // 2`` after, so pixel ``i``'s
window covers ``i - patch // 2 .. i + (patch - 1) // 2``) with a small classification CNN; the
class scores of that window are the pixel's logits. The windows are cut with ``F.unfold`` block
by block (at most ``chunk`` windows per classifier call, so memory stays bounded) and go through
the classifier as one batch; there is no loop over pixels beyond the blocks. This is how Ciresan,
Giusti, Gambardella & Schmidhuber, "Deep Neural Networks Segment Neuronal Membranes in Electron
Microscopy Images", NIPS 2012, segment (their patches are 65x65 and their network larger).

The decks' point -- "very inefficient, no reuse of shared features between overlapping patches"
-- is measured by :func:`sliding_vs_fcn_cost`: the classifier converted to convolutions
(:func:`convolutionalize`: every fully connected layer becomes a convolution whose kernel covers
its input map, Long, Shelhamer & Darrell, CVPR 2015) computes each feature once per image
position instead of once per window that contains it. Two conversions:

- ``dense=True``: the stride of every pool and convolution is replaced by dilation of the
  layers after it ("filter rarefaction"/a trous, Long et al. section 3.2; Chen et al.,
  DeepLab); the result is the PatchClassifier's output, pixel for pixel (equal up to rounding),
  at a fraction of its cost;
- ``dense=False``: the strides are kept; the network predicts only every ``stride``-th pixel in
  each direction (pixel ``stride * i``), the deck's "predictions for a subset of pixels".

The conversion needs unpadded convolutions and pools (LeNet-5-like networks): a padded layer
would pad each window at its own border, which no shared computation reproduces.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import ArgumentError, require_positive
from cnnkit.models.dense import DenseModel
from cnnkit.models.registry import create, register

PAPER = ("D. C. Ciresan, A. Giusti, L. M. Gambardella, J. Schmidhuber, Deep Neural Networks "
         "Segment Neuronal Membranes in Electron Microscopy Images, NIPS 2012")
PASSTHROUGH = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ReLU6, nn.BatchNorm2d,
               nn.Dropout, nn.Identity, nn.LocalResponseNorm)


def _window_pad(patch: int) -> tuple[int, int, int, int]:
    return (patch // 2, (patch - 1) // 2, patch // 2, (patch - 1) // 2)


class PatchClassifier(DenseModel):
    """Per-pixel logits from a patch classifier; see the module docstring.

    ``classifier``: a zoo classifier name (built with ``num_classes`` and ``in_channels``) or a
    module mapping ``B x C x patch x patch`` to ``B x classes`` (``num_classes`` should then
    state its class count, unless it has a ``num_classes`` attribute); ``chunk``: windows per
    classifier call (the unfolded windows of one call take ``chunk x C x patch^2`` values).
    """

    def __init__(self, classifier: str | nn.Module = "lenet5_relu", *, patch: int = 32,
                 num_classes: int = 2, in_channels: int = 1, chunk: int = 1024) -> None:
        super().__init__()
        require_positive(patch=patch, chunk=chunk, num_classes=num_classes,
                         in_channels=in_channels)
        if isinstance(classifier, str):
            classifier = create(classifier, num_classes=num_classes, in_channels=in_channels)
        elif not isinstance(classifier, nn.Module):
            raise ArgumentError(f"classifier must be a zoo model name or an nn.Module; got "
                                f"{type(classifier).__name__}")
        self.classifier = classifier
        self.patch, self.chunk = patch, chunk
        self.num_classes = getattr(classifier, "num_classes", num_classes)
        self.display_name = f"sliding-window {type(classifier).__name__} ({patch}x{patch})"

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        n, c, height, width = x.shape
        p = self.patch
        padded = F.pad(x, _window_pad(p))
        cols = min(width, max(1, self.chunk // n))
        rows = min(height, max(1, self.chunk // (n * cols)))
        out = None
        for top in range(0, height, rows):
            bottom = min(top + rows, height)
            for left in range(0, width, cols):
                right = min(left + cols, width)
                block = padded[..., top:bottom + p - 1, left:right + p - 1]
                windows = F.unfold(block, p)  # n x (c p p) x (rows * cols)
                windows = windows.transpose(1, 2).reshape(-1, c, p, p)
                logits = self.classifier(windows)
                if logits.dim() != 2 or logits.shape[0] != windows.shape[0]:
                    raise ArgumentError(f"the patch classifier must return B x classes logits "
                                        f"for B windows; got {tuple(logits.shape)}")
                if out is None:
                    out = logits.new_empty(n, logits.shape[1], height, width)
                out[..., top:bottom, left:right] = logits.view(
                    n, bottom - top, right - left, -1).permute(0, 3, 1, 2)
        assert out is not None
        return out


class DilatedAvgPool2d(nn.Module):
    """Average pooling over a ``kernel x kernel`` window whose taps are ``dilation`` apart
    (stride 1, no padding); ``nn.AvgPool2d`` has no dilation. Costed as a pool."""

    def __init__(self, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        weight = x.new_full((x.shape[1], 1, k, k), 1.0 / (k * k))
        return F.conv2d(x, weight, dilation=self.dilation, groups=x.shape[1])

    def analysis_cost(self, inputs, outputs) -> tuple[int, int]:
        return 0, self.kernel_size ** 2 * outputs[0].numel()


def _layers(classifier: nn.Module) -> list[tuple[str, nn.Module]]:
    if isinstance(classifier, nn.Sequential):
        return list(classifier.named_children())
    found = [(name, getattr(classifier, name, None)) for name in
             ("features", "avgpool", "pool", "classifier")]
    if found[0][1] is None or found[3][1] is None:
        raise ArgumentError(f"convolutionalize needs an nn.Sequential or a model with "
                            f"'features' and 'classifier'; got {type(classifier).__name__}")
    return [(f"{name}.{child}" if isinstance(module, nn.Sequential) else name, m)
            for name, module in found if module is not None
            for child, m in (module.named_children() if isinstance(module, nn.Sequential)
                             else [("", module)])]


def _unpadded(name: str, layer: nn.Module) -> None:
    padding = getattr(layer, "padding", 0)
    if any(v != 0 for v in (padding if isinstance(padding, tuple) else (padding,))) or \
            getattr(layer, "ceil_mode", False):
        raise ArgumentError(f"convolutionalize needs unpadded convolutions and floor-mode pools "
                            f"(a padded layer pads every window at its own border); layer "
                            f"{name!r} has padding {padding}")


def _single(value) -> int:
    values = value if isinstance(value, tuple) else (value, value)
    if values[0] != values[-1]:
        raise ArgumentError(f"convolutionalize needs square kernels and strides; got {values}")
    return int(values[0])


class Convolutionalized(nn.Module):
    """A patch classifier rewritten as a fully convolutional network (see
    :func:`convolutionalize`): the image is padded as by :class:`PatchClassifier`, ``body``
    runs once on the whole image; ``stride`` is the output's stride (1 when dense)."""

    def __init__(self, body: nn.Sequential, patch: int, stride: int) -> None:
        super().__init__()
        self.body, self.patch, self.stride = body, patch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(F.pad(x, _window_pad(self.patch)))
        rows, cols = (math.ceil(s / self.stride) for s in x.shape[-2:])
        return out[..., :rows, :cols]


@torch.no_grad()
def convolutionalize(classifier: nn.Module, patch: int, *, dense: bool = True
                     ) -> Convolutionalized:
    """A fully convolutional copy of ``classifier`` (made for ``patch x patch`` inputs).

    Fully connected layers become convolutions with the weights reshaped (the first one's
    kernel covers its input map); pools and convolutions keep their weights. ``dense=True``
    replaces strides by dilation, so output pixel ``i`` equals ``PatchClassifier``'s; with
    ``dense=False`` output ``i`` is the window of pixel ``stride * i``. Supported layers:
    unpadded Conv2d, MaxPool2d/AvgPool2d, adaptive pools (identity, or global), Linear,
    Flatten, activations, BatchNorm2d, Dropout, LRN.
    """
    require_positive(patch=patch)
    size, dilation, stride, body = patch, 1, 1, []
    for name, layer in _layers(copy.deepcopy(classifier)):
        if isinstance(layer, nn.Conv2d):
            _unpadded(name, layer)
            k, s, d = (_single(v) for v in (layer.kernel_size, layer.stride, layer.dilation))
            size = (size - d * (k - 1) - 1) // s + 1
            if dense:
                layer.stride, layer.dilation = (1, 1), (d * dilation,) * 2
            dilation, stride = dilation * (s if dense else 1), stride * s
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            _unpadded(name, layer)
            k, s = _single(layer.kernel_size), _single(layer.stride or layer.kernel_size)
            size = (size - k) // s + 1
            if dense and isinstance(layer, nn.MaxPool2d):
                layer = nn.MaxPool2d(k, stride=1, dilation=dilation * _single(layer.dilation))
            elif dense:
                layer = DilatedAvgPool2d(k, dilation)
            dilation, stride = dilation * (s if dense else 1), stride * s
        elif isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            out = _single(layer.output_size)
            if out not in (1, size):
                raise ArgumentError(f"layer {name!r}: an adaptive pool converts when its output "
                                    f"is 1 (global) or the map size {size}; got {out}")
            if out == size:
                layer = nn.Identity()
            elif isinstance(layer, nn.AdaptiveMaxPool2d):
                layer = nn.MaxPool2d(size, 1, dilation=dilation if dense else 1)
            else:
                layer = DilatedAvgPool2d(size, dilation) if dense else nn.AvgPool2d(size, 1)
            size = 1
        elif isinstance(layer, nn.Linear):
            channels, rem = divmod(layer.in_features, size * size)
            if rem:
                raise ArgumentError(f"layer {name!r}: {layer.in_features} inputs are not C x "
                                    f"{size} x {size} (the map it follows)")
            conv = nn.Conv2d(channels, layer.out_features, size, bias=layer.bias is not None,
                             dilation=dilation if dense else 1,
                             device=layer.weight.device, dtype=layer.weight.dtype)
            conv.weight.copy_(layer.weight.view_as(conv.weight))
            if layer.bias is not None:
                conv.bias.copy_(layer.bias)
            layer, size = conv, 1
        elif isinstance(layer, nn.Flatten):
            continue
        elif not isinstance(layer, PASSTHROUGH):
            raise ArgumentError(f"convolutionalize cannot convert layer {name!r} "
                                f"({type(layer).__name__})")
        body.append(layer)
    return Convolutionalized(nn.Sequential(*body), patch, 1 if dense else stride)


def sliding_vs_fcn_cost(classifier: nn.Module, patch: int, image_size: tuple[int, int, int]
                        ) -> dict[str, float]:
    """Multiply-adds (cnnkit's analyzer) of one ``image_size`` (C, H, W) image: the sliding
    window (``"sliding"``), the dense fully convolutional equivalent with the same output
    (``"fcn_dense"``) and the strided one with ``"stride"``-th pixel outputs
    (``"fcn_strided"``), and the ratios ``"dense_ratio"`` and ``"strided_ratio"``
    (sliding / FCN)."""
    from cnnkit.analysis import analyze

    sliding = analyze(PatchClassifier(classifier, patch=patch, in_channels=image_size[0]),
                      image_size).totals["macs"]
    dense = analyze(convolutionalize(classifier, patch), image_size).totals["macs"]
    strided_model = convolutionalize(classifier, patch, dense=False)
    strided = analyze(strided_model, image_size).totals["macs"]
    return {"sliding": sliding, "fcn_dense": dense, "fcn_strided": strided,
            "stride": strided_model.stride, "dense_ratio": sliding / dense,
            "strided_ratio": sliding / strided}


def patch_classifier(classifier: str = "lenet5_relu", *, patch: int = 32, num_classes: int = 2,
                     in_channels: int = 1, chunk: int = 1024) -> PatchClassifier:
    """Per-pixel classification of ``patch x patch`` windows by the zoo ``classifier``
    (Ciresan et al. 2012's sliding window; see the module docstring)."""
    return PatchClassifier(classifier, patch=patch, num_classes=num_classes,
                           in_channels=in_channels, chunk=chunk)


register("patch_lenet5", patch_classifier, task="segmentation", paper=PAPER, year=2012,
         input_size=(1, 64, 64), num_params=61_026, num_classes=2,
         notes=("one 32x32 window per pixel (zero padded) through LeNet-5 with ReLU and max "
                "pooling (lenet5_relu, 2 classes); the network is LeNet-5, not the paper's "
                "larger 65x65 one; see sliding_vs_fcn_cost for its cost against an FCN"))
