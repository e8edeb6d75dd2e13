"""Fully convolutional networks: Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015.

**FCN-32s/16s/8s on VGG** (:class:`FCNVGG`): VGG's fully connected layers become convolutions
("convolutionalization": fc6 = 7x7 convolution with 4096 outputs, whose kernel covers the whole
7x7 pool5 map a 224x224 image gives, fc7 = 1x1 convolution), a 1x1 ``score_fr`` convolution
predicts the classes at stride 32, and transposed convolutions initialised as bilinear
interpolation upsample the scores. FCN-16s adds the scores of pool4 (``score_pool4``) to the
2x-upsampled stride-32 scores (``upscore2``), FCN-8s also those of pool3 after another 2x
(``upscore_pool4``); a final transposed convolution (``upscore32``/``16``/``8``) returns to the
input resolution. Module names follow the authors' Caffe models (fc6, fc7, score_fr, upscore2,
score_pool4, upscore_pool4, score_pool3); the VGG convolutions keep the zoo's ``features.*``
names, so :func:`fcn_from_vgg_classifier` copies a trained VGG classifier into the FCN.

Any input size works, as in the paper: the first convolution pads by 100 pixels (so that even a
small image leaves a 7x7 pool5 map for fc6), pools round up (Caffe's ceil mode) and every map is
cropped where it meets another. The crop offsets follow from each layer's coordinate map
``x_in = stride * x_out + (kernel - 1) / 2 - padding``: pool5 cell ``i`` is centred on image
pixel ``32 i - 83.5``, so ``score_fr`` cell ``i`` (fc6 is 7x7 and unpadded) on ``32 i + 12.5``,
and the 64x64 stride-32 transposed convolution puts that cell at its output pixel
``32 i + 31.5``: cropping 19 pixels aligns output pixel ``x`` with image pixel ``x``. The same
computation gives crops of 5 (pool4 scores), 9 (pool3 scores), 27 (FCN-16s) and 31 (FCN-8s).

Choices and differences:

- skips are fused as in the paper's staged training (FCN-32s -> 16s -> 8s): the skip score
  layers start at zero so a net starts with its coarser parent's predictions; ``at_once=True``
  instead scales pool4 by 0.01 and pool3 by 0.0001 before scoring, as the authors' later
  "at-once" FCN-8s (Shelhamer, Long & Darrell, PAMI 2017) trained in one stage;
- the 2x upsampling layers are learned; the final one is fixed to bilinear interpolation as in
  the paper (``learn_final_upsampling=True`` trains it too). Transposed convolutions have no
  bias. Score layers start at zero, as in the paper; fc6/fc7 get He et al. initialisation (the
  paper starts them from the ImageNet classifier: use :func:`fcn_from_vgg_classifier`);
- ``fc_channels`` (4096 in the paper) and ``config`` (VGG-16 = "D") can be changed;
- ``output_stride`` 16 or 8 (FCN-32s only; not in the paper): the VGG loses the stride of pool5
  (16) or of pool4 and pool5 (8) by dilation, DeepLab v1's recipe (see
  :mod:`cnnkit.models.classification.vgg`), fc6 becomes a 7x7 convolution with dilation 2 or 4,
  and the final fixed bilinear upsampling is by 16 (``upscore16``, 32x32 kernel) or 8
  (``upscore8``, 16x16). The same coordinate map gives the crops: fc6 cell ``i`` is centred on
  image pixel ``16 i + 4.5`` (``8 i + 0.5``) and the upsampling puts it at ``16 i + 15.5``
  (``8 i + 7.5``), so the final crop is 11 (7). The skip nets keep output stride 32: fusing a
  stride-16 pool4 with stride-16 scores would need another layout.

**FCN on a dilated ResNet** (:func:`fcn`): torchvision's ``fcn_resnet50``/``fcn_resnet101``
layout, keys and parameter counts: a ResNet at output stride 8 (``backbone.*``, no ``fc``),
:class:`FCNHead` on layer4 (``classifier.0..4``) and, with ``aux_loss``, on layer3
(``aux_classifier.0..4``), logits bilinearly upsampled to the input size.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cnnkit.errors import ArgumentError, WeightsError, require_positive
from cnnkit.layers.init import init_weights
from cnnkit.layers.upsample import init_bilinear_
from cnnkit.models.classification.vgg import VGG_CONFIGS, vgg
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import register
from cnnkit.models.backbones import headless_backbone
from cnnkit.models.segmentation.headless import HeadOnBackbone

PAPER = ("J. Long, E. Shelhamer, T. Darrell, Fully Convolutional Networks for Semantic "
         "Segmentation, CVPR 2015")
FIRST_PADDING = 100
# skip -> (index of the VGG pool in feature_specs, the 2x upsampler applied to the coarser
#          scores before the fusion, crop offset of the skip's scores, at-once input scale)
SKIPS: dict[str, tuple[int, str, int, float]] = {
    "pool4": (3, "upscore2", 5, 1e-2),
    "pool3": (2, "upscore_pool4", 9, 1e-4),
}
# prediction stride -> (skips fused, crop offset of the final upsampling)
STRIDES: dict[int, tuple[tuple[str, ...], int]] = {
    32: ((), 19), 16: (("pool4",), 27), 8: (("pool4", "pool3"), 31)}
# FCN-32s on a dilated VGG: output stride -> crop offset of the final upsampling
DILATED_CROPS = {32: 19, 16: 11, 8: 7}


def _crop(x: torch.Tensor, offset: int, size: tuple[int, int]) -> torch.Tensor:
    return x[..., offset:offset + size[0], offset:offset + size[1]]


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A 2f x 2f, stride-f transposed convolution (no padding, no bias), bilinear at start."""
    return nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)


class FCNVGG(DenseModel):
    """FCN-32s, -16s or -8s on a VGG; see the module docstring."""

    def __init__(self, *, stride: int, num_classes: int, in_channels: int, config: str,
                 fc_channels: int, at_once: bool, learn_final_upsampling: bool,
                 output_stride: int = 32) -> None:
        super().__init__()
        if stride not in STRIDES:
            raise ArgumentError(f"FCN stride must be one of {sorted(STRIDES)} (FCN-32s/16s/8s); "
                             f"got {stride}")
        if output_stride not in DILATED_CROPS or (output_stride != 32 and stride != 32):
            raise ArgumentError(f"output_stride must be one of {sorted(DILATED_CROPS)}, and 32 "
                                f"for FCN-16s/8s (dilation applies to FCN-32s only); got "
                                f"output_stride={output_stride!r} with stride={stride}")
        if config not in VGG_CONFIGS:
            raise ArgumentError(f"FCN config must be a VGG configuration among {list(VGG_CONFIGS)}; "
                             f"got {config!r}")
        require_positive(num_classes=num_classes, in_channels=in_channels)
        require_positive(fc_channels=fc_channels)
        self.num_classes, self.stride = num_classes, stride
        self.display_name = f"FCN-{stride}s (VGG config {config})" + (
            f", output stride {output_stride}" if output_stride != 32 else "")
        self.input_sizes = InputSizes(minimum=1)
        # Build on the meta device, then allocate: VGG's 120M-parameter classifier is never built
        # and fc6 is initialised once.
        with torch.device("meta"):
            source = vgg(config, in_channels=in_channels, output_stride=output_stride)
            self.features = source.features
            self.fc6 = nn.Conv2d(source.feature_specs[-1].channels, fc_channels, 7,
                                 dilation=source.dilation)
            self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        for module in (self.features, self.fc6, self.fc7):
            module.to_empty(device=torch.get_default_device())
        self.features[0].padding = (FIRST_PADDING, FIRST_PADDING)
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                layer.ceil_mode = True
        self.relu6, self.drop6 = nn.ReLU(inplace=True), nn.Dropout(0.5)
        self.relu7, self.drop7 = nn.ReLU(inplace=True), nn.Dropout(0.5)
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)

        self.skips, self.final_crop = STRIDES[stride]
        self.factor = min(stride, output_stride)  # of the final upsampling
        if output_stride != 32:
            self.final_crop = DILATED_CROPS[output_stride]
        self.skip_crops = {name: SKIPS[name][2] for name in self.skips}
        self.skip_scales = {name: SKIPS[name][3] if at_once else 1.0 for name in self.skips}
        self._skip_layers: dict[int, str] = {}
        for name in self.skips:
            spec = source.feature_specs[SKIPS[name][0]]
            self._skip_layers[int(spec.module.rsplit(".", 1)[1])] = name
            self.add_module(SKIPS[name][1], _upsampler(num_classes, 2))
            self.add_module(f"score_{name}", nn.Conv2d(spec.channels, num_classes, 1))
        self.add_module(f"upscore{self.factor}", _upsampler(num_classes, self.factor))

        init_weights(self, "kaiming")  # the zoo VGG's scheme, for features, fc6 and fc7
        for name, module in self.named_modules():
            if name.startswith("score"):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.ConvTranspose2d):
                init_bilinear_(module)
        getattr(self, f"upscore{self.factor}").weight.requires_grad_(learn_final_upsampling)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        pools: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._skip_layers:
                pools[self._skip_layers[index]] = x
        x = self.drop6(self.relu6(self.fc6(x)))
        score = self.score_fr(self.drop7(self.relu7(self.fc7(x))))
        for name in self.skips:
            score = getattr(self, SKIPS[name][1])(score)
            pool, scale = pools[name], self.skip_scales[name]
            skip = getattr(self, f"score_{name}")(pool * scale if scale != 1 else pool)
            score = score + _crop(skip, self.skip_crops[name], score.shape[-2:])
        return _crop(getattr(self, f"upscore{self.factor}")(score), self.final_crop, size)


def fcn_vgg(stride: int = 32, *, num_classes: int = 21, in_channels: int = 3,
            config: str = "D", fc_channels: int = 4096, at_once: bool = False,
            learn_final_upsampling: bool = False, output_stride: int = 32) -> FCNVGG:
    """Build FCN-``stride``s (32, 16 or 8) on VGG ``config`` ("D" = VGG-16); see the module
    docstring for the options (``output_stride`` 16 or 8: FCN-32s on a dilated VGG)."""
    return FCNVGG(stride=stride, num_classes=num_classes, in_channels=in_channels, config=config,
                  fc_channels=fc_channels, at_once=at_once,
                  learn_final_upsampling=learn_final_upsampling, output_stride=output_stride)


@torch.no_grad()
def fcn_from_vgg_classifier(vgg_model: nn.Module | Mapping[str, torch.Tensor],
                            fcn_model: FCNVGG) -> FCNVGG:
    """Copy a trained zoo VGG classifier (model or state_dict) into ``fcn_model``.

    The convolutions are copied as they are; ``classifier.0`` (fc6, ``F x 512*7*7``) is
    reshaped to the 7x7 convolution ``fc6`` (``F x 512 x 7 x 7``, the order in which VGG
    flattens its pool5 map) and ``classifier.3`` (fc7, ``F x F``) to the 1x1 convolution
    ``fc7``. The score and upsampling layers keep their initialisation. Returns ``fcn_model``.
    """
    state = vgg_model.state_dict() if isinstance(vgg_model, nn.Module) else dict(vgg_model)
    targets = {f"features.{k}": v for k, v in fcn_model.features.state_dict().items()}
    for layer, source in (("fc6", "classifier.0"), ("fc7", "classifier.3")):
        conv = getattr(fcn_model, layer)
        targets[f"{layer}.weight"], targets[f"{layer}.bias"] = conv.weight, conv.bias
        if f"{source}.weight" in state:
            state[f"{layer}.weight"] = state[f"{source}.weight"]
            state[f"{layer}.bias"] = state[f"{source}.bias"]
    missing = [k for k in targets if k not in state]
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in targets.items()
                  if k in state and state[k].numel() != v.numel()]
    if missing or mismatched:
        raise WeightsError(f"cannot convert this VGG into {fcn_model.display_name}: missing "
                           f"{missing or 'none'}; shape mismatches {mismatched or 'none'} "
                           "(same VGG configuration, in_channels and fc_channels needed)")
    for key, target in targets.items():
        target.copy_(state[key].reshape(target.shape))
    return fcn_model


class FCNHead(nn.Sequential):
    """torchvision's FCN head: 3x3 conv to ``in_channels // 4`` (no bias), BN, ReLU,
    Dropout(0.1), 1x1 conv to the classes (submodules ``0``..``4``)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        hidden = in_channels // 4
        super().__init__(nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
                         nn.BatchNorm2d(hidden), nn.ReLU(), nn.Dropout(0.1),
                         nn.Conv2d(hidden, num_classes, 1))
        init_weights(self, "kaiming")


def fcn(backbone: str = "resnet50", *, num_classes: int = 21, in_channels: int = 3,
        output_stride: int | None = 8, aux_loss: bool = True) -> HeadOnBackbone:
    """FCN head on a zoo ``backbone`` (dilated to ``output_stride``; ``None`` leaves the backbone
    as it is, for families without that option), auxiliary head on the previous stage with
    ``aux_loss``. With a ResNet this is torchvision's ``fcn_resnet*``."""
    require_positive(num_classes=num_classes, in_channels=in_channels)
    options = {} if output_stride is None else {"output_stride": output_stride}
    body = headless_backbone(backbone, in_channels=in_channels, **options)
    specs = body.feature_specs
    aux = FCNHead(specs[-2].channels, num_classes) if aux_loss else None
    return HeadOnBackbone(body, FCNHead(specs[-1].channels, num_classes), aux,
                          num_classes=num_classes, display_name=f"FCN ({backbone})")


_VGG_NOTES = ("VGG-16 backbone, 21 classes (PASCAL VOC); conv1_1 padded by 100 and ceil-mode "
              "pools so that any input size works (cropped back, Caffe-style); skip score "
              "layers zero-initialised (staged training; at_once=True for the 0.01/0.0001 "
              "scaled at-once variant); final upsampling fixed bilinear. Default size 500x500 "
              "(the paper's inference timing input; PASCAL images are at most 500 pixels).")
for _stride, _count in ((32, 136_152_917), (16, 134_815_994), (8, 134_489_759)):
    register(f"fcn{_stride}s_vgg16", fcn_vgg, task="segmentation", paper=PAPER, year=2015,
             input_size=(3, 500, 500), num_params=_count, num_classes=21,
             notes=f"FCN-{_stride}s; " + _VGG_NOTES, stride=_stride)

_TV = ("torchvision's {name}: {depth} at output stride 8 (layer3 and layer4 dilated), FCNHead "
       "on layer4 and auxiliary FCNHead on layer3; count includes the auxiliary head "
       "(aux_loss=False drops it). Logits bilinearly upsampled to the input size.")
for _name, _depth, _count in (("fcn_resnet50", "resnet50", 35_322_218),
                              ("fcn_resnet101", "resnet101", 54_314_346)):
    register(_name, fcn, task="segmentation", paper=PAPER, year=2015, input_size=(3, 520, 520),
             num_params=_count, num_classes=21, reference="torchvision",
             notes=_TV.format(name=_name, depth=_depth), backbone=_depth)
