"""The detectors in the model zoo: builders, registered variants, and loading reference files.

``fasterrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn`` and ``keypointrcnn_resnet50_fpn`` are
torchvision's models of the same names as built for its COCO checkpoints (frozen batch norm,
three trainable stages): same structure, parameter counts (its published figures) and
``state_dict`` keys and shapes, so those checkpoint files load with ``strict=True``
(:func:`load_reference_checkpoint`, or ``create(name, weights=path)``: the older key names of
the files are renamed on loading). The ``*_resnet18_fpn`` variants are light ones that train
from scratch on a CPU: ResNet-18 with trainable batch norm, a 128-channel pyramid, narrower
heads, images resized to 320..512 pixels and fewer proposals. Every builder takes ``backbone=``
(any zoo ResNet name), ``norm``, ``trainable_layers``, ``fpn_channels``, ``in_channels`` and the
options of its model class (:class:`~cnnkit.models.detection.rcnn.FasterRCNN` and subclasses).
With ``in_channels`` other than 3 (e.g. 1 for gray microscopy) and no ``image_mean``/``image_std``
given, the inputs are normalised with the mean of ImageNet's three means and of its three standard
deviations on every channel.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from cnnkit.errors import OptionError
from cnnkit.models.detection.backbone import FrozenBatchNorm2d, ResNetFPN
from cnnkit.models.detection.rcnn import FasterRCNN, KeypointRCNN, MaskRCNN
from cnnkit.models.detection.transform import IMAGENET_MEAN, IMAGENET_STD
from cnnkit.models.registry import register

FASTER_PAPER = ("S. Ren, K. He, R. Girshick, J. Sun, Faster R-CNN: Towards Real-Time Object "
                "Detection with Region Proposal Networks, NIPS 2015; T.-Y. Lin, P. Dollar, "
                "R. Girshick, K. He, B. Hariharan, S. Belongie, Feature Pyramid Networks for "
                "Object Detection, CVPR 2017")
MASK_PAPER = ("K. He, G. Gkioxari, P. Dollar, R. Girshick, Mask R-CNN, ICCV 2017 (on Faster "
              "R-CNN, NIPS 2015, with an FPN, CVPR 2017)")


def _build(cls, backbone: str, num_classes: int, norm: str, trainable_layers: int,
           fpn_channels: int, in_channels: int, options: dict):
    valid = [n for n, p in inspect.signature(cls.__init__).parameters.items()
             if p.kind is p.KEYWORD_ONLY]
    if cls is not FasterRCNN:
        valid += [n for n, p in inspect.signature(FasterRCNN.__init__).parameters.items()
                  if p.kind is p.KEYWORD_ONLY and n not in valid]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise OptionError(f"{cls.__name__} does not take option(s) {', '.join(unknown)}; valid "
                          f"options: backbone, num_classes, norm, trainable_layers, "
                          f"fpn_channels, in_channels, {', '.join(valid)}")
    if in_channels != 3:
        options = {"image_mean": (sum(IMAGENET_MEAN) / 3,) * in_channels,
                   "image_std": (sum(IMAGENET_STD) / 3,) * in_channels, **options}
    body = ResNetFPN(backbone, trainable_layers=trainable_layers, norm=norm,
                     out_channels=fpn_channels, in_channels=in_channels)
    model = cls(body, num_classes, **options)
    model.classifier_names = tuple(  # the class-dependent layers (see load_weights)
        name for name in ("roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred",
                          "roi_heads.mask_predictor.mask_fcn_logits")
        if _has(model, name))
    return model


def _has(model, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def fasterrcnn(backbone: str = "resnet50", *, num_classes: int = 91, norm: str = "frozen",
               trainable_layers: int = 3, fpn_channels: int = 256, in_channels: int = 3,
               **options) -> FasterRCNN:
    """Faster R-CNN (Ren et al., NIPS 2015) with a ResNet-FPN backbone (Lin et al., CVPR 2017)."""
    return _build(FasterRCNN, backbone, num_classes, norm, trainable_layers, fpn_channels,
                  in_channels, options)


def maskrcnn(backbone: str = "resnet50", *, num_classes: int = 91, norm: str = "frozen",
             trainable_layers: int = 3, fpn_channels: int = 256, in_channels: int = 3,
             **options) -> MaskRCNN:
    """Mask R-CNN (He et al., ICCV 2017) with a ResNet-FPN backbone."""
    return _build(MaskRCNN, backbone, num_classes, norm, trainable_layers, fpn_channels,
                  in_channels, options)


def keypointrcnn(backbone: str = "resnet50", *, num_classes: int = 2, norm: str = "frozen",
                 trainable_layers: int = 3, fpn_channels: int = 256, in_channels: int = 3,
                 **options) -> KeypointRCNN:
    """Keypoint R-CNN (He et al., ICCV 2017, section 5) with a ResNet-FPN backbone."""
    return _build(KeypointRCNN, backbone, num_classes, norm, trainable_layers, fpn_channels,
                  in_channels, options)


def load_reference_checkpoint(model, path: str | Path, *, frozen_eps: float = 0.0):
    """Load a torchvision COCO checkpoint file (older key names renamed, ``strict``) and set the
    frozen batch norms' ``eps`` to ``frozen_eps``: torchvision sets 0 after loading the
    ``COCO_V1`` files of these three models, which were trained that way (pass 1e-5 for the
    legacy keypoint file). Returns the :class:`~cnnkit.models.weights.LoadReport`."""
    from cnnkit.models.weights import load_weights

    report = load_weights(model, path)
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = float(frozen_eps)
    return report


_REFERENCE_NOTES = ("torchvision's {name} as built for its COCO checkpoints: frozen batch norm "
                    "(buffers, not counted), layer2..layer4 trainable; inputs and outputs in "
                    "cnnkit's pixel-centre frame, exact mask pasting by default")
_LIGHT = {"backbone": "resnet18", "norm": "batch", "trainable_layers": 5, "fpn_channels": 128,
          "representation_size": 256, "min_size": 320, "max_size": 512,
          "rpn_pre_nms_top_n_train": 1000, "rpn_pre_nms_top_n_test": 500,
          "rpn_post_nms_top_n_train": 500, "rpn_post_nms_top_n_test": 300,
          "box_batch_size_per_image": 128}
_LIGHT_NOTES = ("light variant for training from scratch on a CPU: ResNet-18 with trainable batch "
                "norm, 128-channel FPN, {heads}, min_size 320 / max_size 512, 1000/500 "
                "proposals before NMS and 500/300 after (train/test), 128 RoIs per image")

# name: (builder, task, paper, year, classes, parameters, reference?, extra options, heads)
_VARIANTS = {
    "fasterrcnn_resnet50_fpn": (fasterrcnn, "detection", FASTER_PAPER, 2015, 91, 41_755_286,
                                True, {}, ""),
    "maskrcnn_resnet50_fpn": (maskrcnn, "instance-segmentation", MASK_PAPER, 2017, 91,
                              44_401_393, True, {}, ""),
    "keypointrcnn_resnet50_fpn": (keypointrcnn, "instance-keypoints", MASK_PAPER, 2017, 2,
                                  59_137_258, True, {}, ""),
    "fasterrcnn_resnet18_fpn": (fasterrcnn, "detection", FASTER_PAPER, 2015, 91, 13_828_374,
                                False, _LIGHT, "box head 256"),
    "maskrcnn_resnet18_fpn": (maskrcnn, "instance-segmentation", MASK_PAPER, 2017, 91,
                              14_496_113, False,
                              {**_LIGHT, "mask_layers": (128,) * 4, "mask_dim_reduced": 128},
                              "box head 256, mask head 4 x 128"),
    "keypointrcnn_resnet18_fpn": (keypointrcnn, "instance-keypoints", MASK_PAPER, 2017, 2,
                                  14_339_178, False,
                                  {**_LIGHT, "keypoint_layers": (128,) * 4},
                                  "box head 256, keypoint head 4 x 128"),
}

for _name, (_builder, _task, _paper, _year, _classes, _count, _ref, _options, _heads) in \
        _VARIANTS.items():
    register(_name, _builder, task=_task, paper=_paper, year=_year,
             input_size=(3, 800, 800) if _ref else (3, 320, 320), num_params=_count,
             num_classes=_classes, reference="torchvision" if _ref else "",
             notes=_REFERENCE_NOTES.format(name=_name) if _ref else _LIGHT_NOTES.format(
                 heads=_heads), **_options)
