"""The keypoint branch of Mask R-CNN (Keypoint R-CNN): heads, loss and heatmap decoding.

He, Gkioxari, Dollar & Girshick, "Mask R-CNN", ICCV 2017, section 5: each of the K keypoints of
an instance is a one-hot ``m x m`` mask; on each positive RoI (RoIAlign 14x14) eight 3x3
convolutions (512, ReLU) and a transposed convolution + 2x bilinear upsampling give K maps of
56x56 logits; the loss is the cross-entropy over the 56 x 56 cells (a softmax per map) of every
visible keypoint that falls inside its proposal.

As torchvision (names ``keypoint_head.0, .2, ..., .14`` and ``keypoint_predictor.
kps_score_lowres``; Kaiming-normal fan-out initialisation, zero biases): the transposed
convolution has kernel 4, stride 2, padding 1; a keypoint ``x`` maps to cell
``floor((x - x1) * 56 / (x2 - x1))`` (a keypoint exactly on the right/bottom edge to the last
cell). Decoding: each map is resized bicubically (``align_corners=False``) to the box's size
rounded up, ``(ceil(w), ceil(h))`` with ``w, h >= 1``; the argmax cell ``(i, j)`` (first in
row-major order) gives ``x = x1 + (j + 0.5) w / ceil(w)`` (likewise y), visibility 1, and the
resized map's value there is the keypoint's score. The reference loops over boxes with
``F.interpolate``; here the bicubic resize is two batched matrix products with the same cubic
weights (A = -0.75, taps clamped at the borders), over groups of boxes (memory bounded), so
scores may differ from the reference's in the last bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHUNK_ELEMENTS = 1 << 24  # elements of the resized maps held at once while decoding
CUBIC_A = -0.75


class KeypointRCNNHeads(nn.Sequential):
    """3x3 convolution + ReLU per entry of ``layers`` (their widths), flat: ``0, 1, 2, ...``."""

    def __init__(self, in_channels: int, layers: tuple[int, ...]) -> None:
        blocks, channels = [], in_channels
        for width in layers:
            blocks += [nn.Conv2d(channels, width, 3, stride=1, padding=1), nn.ReLU(inplace=True)]
            channels = width
        super().__init__(*blocks)
        if not any(p.is_meta for p in self.parameters()):
            for m in self.children():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)


class KeypointRCNNPredictor(nn.Module):
    """``kps_score_lowres`` (4x4 transposed convolution, stride 2: 14 -> 28) and 2x bilinear
    upsampling (28 -> 56): K heatmaps of logits."""

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.kps_score_lowres = nn.ConvTranspose2d(in_channels, num_keypoints, 4, stride=2,
                                                   padding=1)
        if not self.kps_score_lowres.weight.is_meta:
            nn.init.kaiming_normal_(self.kps_score_lowres.weight, mode="fan_out",
                                    nonlinearity="relu")
            nn.init.zeros_(self.kps_score_lowres.bias)
        self.up_scale = 2
        self.out_channels = num_keypoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.kps_score_lowres(x), scale_factor=float(self.up_scale),
                             mode="bilinear", align_corners=False, recompute_scale_factor=False)


def keypoints_to_heatmap(keypoints, rois, size: int):
    """Cell index ``row * size + column`` of every keypoint ``[R, K, 3]`` in its RoI ``[R, 4]``
    and whether it is usable (visible and inside): two ``[R, K]`` int64 tensors."""
    x1, y1, x2, y2 = (rois[:, i:i + 1] for i in range(4))
    x, y = keypoints[..., 0], keypoints[..., 1]
    cx = ((x - x1) * (size / (x2 - x1))).floor().long()
    cy = ((y - y1) * (size / (y2 - y1))).floor().long()
    cx = torch.where(x == x2, torch.full_like(cx, size - 1), cx)
    cy = torch.where(y == y2, torch.full_like(cy, size - 1), cy)
    valid = ((cx >= 0) & (cy >= 0) & (cx < size) & (cy < size) & (keypoints[..., 2] > 0)).long()
    return (cy * size + cx) * valid, valid


def keypointrcnn_loss(logits, proposals, gt_keypoints, matched_idxs) -> torch.Tensor:
    """Cross-entropy over the cells of each usable keypoint's map (0 without any)."""
    n, k, h, w = logits.shape
    cells, valid = [], []
    for boxes, keypoints, idx in zip(proposals, gt_keypoints, matched_idxs):
        c, v = keypoints_to_heatmap(keypoints[idx], boxes, h)
        cells.append(c.view(-1))
        valid.append(v.view(-1))
    cells = torch.cat(cells)
    usable = torch.where(torch.cat(valid) > 0)[0]
    if cells.numel() == 0 or usable.numel() == 0:
        return logits.sum() * 0
    return F.cross_entropy(logits.reshape(n * k, h * w)[usable], cells[usable])


def _cubic_weights(out_sizes: torch.Tensor, in_size: int, most: int) -> torch.Tensor:
    """``[R, most, in_size]``: row ``o`` holds the weights of output ``o`` of a bicubic resize
    (``align_corners=False``) from ``in_size`` to ``out_sizes[r]``; rows past it are 0."""
    dtype = out_sizes.dtype
    dst = torch.arange(most, dtype=dtype, device=out_sizes.device)[None]
    scale = (torch.full_like(out_sizes, in_size) / out_sizes)[:, None]
    real = scale * (dst + 0.5) - 0.5
    index = real.floor().clamp(max=in_size - 1)
    t = (real - index).clamp(0, 1)

    def near(x):  # |x| <= 1
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A

    coeffs = torch.stack([far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)], dim=-1)
    coeffs = coeffs * (dst < out_sizes[:, None]).to(dtype)[..., None]
    taps = (index.long()[..., None] + torch.arange(-1, 3, device=out_sizes.device))
    weights = coeffs.new_zeros(out_sizes.shape[0], most, in_size)
    return weights.scatter_add_(2, taps.clamp(0, in_size - 1), coeffs)


def _groups(heights: list[int], widths: list[int], per_cell: int):
    """Boxes grouped largest first so that a group's padded maps hold at most CHUNK_ELEMENTS."""
    order = sorted(range(len(heights)), key=lambda i: -max(heights[i], widths[i]))
    start = 0
    while start < len(order):
        side = max(heights[order[start]], widths[order[start]])
        stop = min(len(order), start + max(1, CHUNK_ELEMENTS // (per_cell * side * side)))
        part = order[start:stop]
        yield part, max(heights[i] for i in part), max(widths[i] for i in part)
        start = stop


def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor):
    """Keypoints ``[R, K, 3]`` (x, y, 1) and scores ``[R, K]`` from heatmap logits
    ``[R, K, S, S]`` of the boxes ``rois`` [R, 4] (see the module docstring). Computed in
    float32 also under autocast, whose bf16 products would move a keypoint by pixels."""
    with torch.autocast(maps.device.type, enabled=False):
        return _heatmaps_to_keypoints(maps, rois)


def _heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor):
    count, k, size = maps.shape[0], maps.shape[1], maps.shape[-1]
    work = maps if maps.dtype in (torch.float32, torch.float64) else maps.float()
    rois = rois.to(work.dtype)
    points, scores = work.new_zeros((count, k, 3)), work.new_zeros((count, k))
    if count == 0:
        return points, scores
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    wide, high = widths.ceil(), heights.ceil()
    for part, most_h, most_w in _groups([int(v) for v in high.tolist()],
                                        [int(v) for v in wide.tolist()], k):
        part = torch.tensor(part, device=maps.device)
        along_y = _cubic_weights(high[part], size, most_h)[:, None]
        along_x = _cubic_weights(wide[part], size, most_w)[:, None]
        resized = torch.matmul(along_y, torch.matmul(work[part], along_x.transpose(-1, -2)))
        inside = ((torch.arange(most_h, device=maps.device)[None, :, None] < high[part, None, None])
                  & (torch.arange(most_w, device=maps.device)[None, None, :]
                     < wide[part, None, None]))
        flat = resized.masked_fill(~inside[:, None], float("-inf")).flatten(2)
        best = flat.argmax(dim=2)
        col, row = best % most_w, best // most_w
        x = (col.to(work.dtype) + 0.5) * (widths[part] / wide[part])[:, None]
        y = (row.to(work.dtype) + 0.5) * (heights[part] / high[part])[:, None]
        points[part] = torch.stack([x + rois[part, 0:1], y + rois[part, 1:2],
                                    torch.ones_like(x)], dim=-1)
        scores[part] = flat.gather(2, best[..., None])[..., 0]
    return points, scores
