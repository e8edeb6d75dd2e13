"""Convolutional Pose Machines: Wei, Ramakrishna, Kanade & Sheikh, "Convolutional Pose Machines",
CVPR 2016.

T stages (``stages``, default 6) each predict K+1 belief maps (K keypoints + background, the
background last) at stride 8. Stage 1 sees only the image; every stage t >= 2 sees image features
concatenated with the beliefs of stage t-1; its 11x11 kernels grow the receptive field from
167 pixels (stage 1) to 407 (stage 2) and 647 (stage 3), beyond the 368x368 input, so later
stages use the context of the other parts' beliefs.
``forward`` returns **all stages' beliefs**, stacked N x T x (K+1) x H/8 x W/8, for the paper's
intermediate supervision (a loss on every stage); the last stage is the prediction.

Layers (the network of the paper's Fig. 2, 14 LSP keypoints by default), every convolution with
"same" padding and followed by ReLU except the last of each stage, every pooling 3x3 stride 2:

- stage 1 (``stage1``): 9x9 conv 128, pool, 9x9 conv 128, pool, 9x9 conv 128, pool,
  5x5 conv 32, 9x9 conv 512, 1x1 conv 512, 1x1 conv K+1;
- image features for stages >= 2 (``features``, computed once): 9x9 conv 128, pool, 9x9 conv
  128, pool, 9x9 conv 128, pool; then per stage a 5x5 conv 32 (``stage_features[t - 2]``);
- stage t >= 2 (``stages[t - 2]``): concatenation (32 + K + 1 channels), three 11x11 conv 128,
  1x1 conv 128, 1x1 conv K+1.

Differences from the paper: no centre map (the paper's model concatenates a Gaussian at the
person's centre as one more channel into every stage t >= 2; add 5 x 128 x 11 x 11 = 77,440
weights for it at T = 6); pooling pads by 1 (PyTorch) where Caffe rounded up; initialisation is
He et al.'s (``init_weights``), not the paper's; any input size that is a multiple of 8.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.layers.init import init_weights
from cnnkit.models.dense import DenseModel, InputSizes
from cnnkit.models.registry import register
from cnnkit.errors import require_positive

CPM_PAPER = ("S.-E. Wei, V. Ramakrishna, T. Kanade, Y. Sheikh, Convolutional Pose Machines, "
             "CVPR 2016")
LSP_KEYPOINTS = 14
POOL = "pool"


def conv_stack(in_channels: int, layers: list[tuple[int, int] | str], *,
               final_relu: bool = True) -> nn.Sequential:
    """Convolutions ``(out_channels, kernel)`` with same padding and ReLU, and ``"pool"`` entries
    (3x3 stride-2 max pooling). ``final_relu=False`` leaves the last convolution linear."""
    modules: list[nn.Module] = []
    for layer in layers:
        if layer == POOL:
            modules.append(nn.MaxPool2d(3, stride=2, padding=1))
            continue
        out_channels, kernel = layer
        modules += [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2),
                    nn.ReLU(inplace=True)]
        in_channels = out_channels
    if not final_relu:
        modules.pop()
    return nn.Sequential(*modules)


IMAGE_FEATURES = [(128, 9), POOL, (128, 9), POOL, (128, 9), POOL]


class ConvolutionalPoseMachine(DenseModel):
    """T-stage CPM; ``forward`` returns N x T x (K+1) x H/8 x W/8 belief maps (all stages)."""

    output_stride = 8

    def __init__(self, *, num_classes: int = LSP_KEYPOINTS, in_channels: int = 3,
                 stages: int = 6) -> None:
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        require_positive(stages=stages)
        beliefs = num_classes + 1
        self.num_keypoints, self.num_classes, self.num_stages = num_classes, beliefs, stages
        self.input_sizes = InputSizes(8, 8)
        self.display_name = "cpm"
        self.stage1 = conv_stack(in_channels, [*IMAGE_FEATURES, (32, 5), (512, 9), (512, 1),
                                               (beliefs, 1)], final_relu=False)
        self.features = conv_stack(in_channels, IMAGE_FEATURES) if stages > 1 else None
        self.stage_features = nn.ModuleList(conv_stack(128, [(32, 5)])
                                            for _ in range(stages - 1))
        self.stages = nn.ModuleList(
            conv_stack(32 + beliefs, [(128, 11), (128, 11), (128, 11), (128, 1), (beliefs, 1)],
                       final_relu=False) for _ in range(stages - 1))
        init_weights(self, "kaiming")

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        belief = self.stage1(x)
        outputs = [belief]
        if self.features is not None:
            shared = self.features(x)
            for image_conv, stage in zip(self.stage_features, self.stages):
                belief = stage(torch.cat([image_conv(shared), belief], dim=1))
                outputs.append(belief)
        return torch.stack(outputs, dim=1)


def cpm(*, num_classes: int = LSP_KEYPOINTS, in_channels: int = 3,
        stages: int = 6) -> ConvolutionalPoseMachine:
    """Convolutional Pose Machine with K = ``num_classes`` keypoints (K+1 maps) and T stages."""
    return ConvolutionalPoseMachine(num_classes=num_classes, in_channels=in_channels,
                                    stages=stages)


register("cpm", cpm, task="keypoints-heatmap", paper=CPM_PAPER, year=2016, input_size=(3, 368, 368),
         num_params=31_142_426, num_classes=LSP_KEYPOINTS,
         notes=("6 stages, 14 LSP keypoints + background = 15 belief maps of 46x46 at 368x368; "
                "forward returns N x 6 x 15 x 46 x 46 (all stages). No centre-map channel "
                "(the paper's model has 77,440 more weights for it). Input sizes: multiples "
                "of 8."))
