"""U-Net: the paper's sizes and parameter count, the padded and encoder variants, and a small
U-Net that overfits one synthetic batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import InputSizeError
from cnnkit.models import create, get_info
from cnnkit.models.segmentation.unet import valid_unet_sizes


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def paper_unet_count(widths=(64, 128, 256, 512, 1024), in_channels=1, classes=2) -> int:
    """The paper's Figure 1, layer by layer: double 3x3 convolutions, 2x2 up-convolutions."""
    double = lambda a, b: conv(a, b, 3) + conv(b, b, 3)  # noqa: E731
    encoder = sum(double(a, b) for a, b in zip((in_channels,) + widths[:-1], widths))
    decoder = sum(conv(2 * w, w, 2) + double(2 * w, w) for w in widths[:-1])
    return encoder + decoder + conv(widths[0], classes, 1)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread avoids contention on shared cores
    yield
    torch.set_num_threads(threads)


def test_paper_unet_572_gives_388_and_31_030_658_parameters() -> None:
    assert paper_unet_count() == 31_030_658
    with torch.device("meta"):
        model = create("unet")
        out = model(torch.empty(1, 1, 572, 572))
    assert count(model) == get_info("unet").num_params == 31_030_658
    assert out.shape == (1, 2, 388, 388) and model.output_size(572) == 388
    assert (model.input_sizes.minimum, model.input_sizes.step) == (188, 16)
    assert model.input_sizes.valid(572)
    with pytest.raises(InputSizeError, match=r"U-Net \(valid convs\) needs input sizes 188, 204, "
                                             r"220, \.\.\. .*got 500x500 .*492, 508"):
        model(torch.empty(1, 1, 500, 500))


@pytest.mark.parametrize("depth, minimum, shrink", [(1, 18, 16), (2, 44, 40), (3, 92, 88),
                                                    (4, 188, 184)])
def test_valid_unet_sizes_match_a_real_forward(depth: int, minimum: int, shrink: int) -> None:
    sizes, got_shrink = valid_unet_sizes(depth)
    assert (sizes.minimum, sizes.step, got_shrink) == (minimum, 2 ** depth, shrink)
    model = create("unet", depth=depth, base_width=4)
    for size in (minimum, minimum + 2 ** depth):
        out = model(torch.randn(1, 1, size, size))
        assert out.shape[-1] == model.output_size(size) == size - shrink
    with pytest.raises(InputSizeError):
        model(torch.randn(1, 1, minimum - 2 ** depth, minimum - 2 ** depth))


def test_padded_unet_keeps_the_resolution(one_thread) -> None:
    with torch.device("meta"):
        model = create("unet_padded")
        assert model(torch.empty(2, 1, 64, 64)).shape == (2, 2, 64, 64)
    assert count(model) == 31_030_658 and model.output_size(64) == 64
    small = create("unet_padded", base_width=8, batch_norm=True, upsampling="bilinear",
                   in_channels=3, num_classes=5)
    out = small(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5, 64, 64)
    out.mean().backward()
    with pytest.raises(InputSizeError, match=r"multiples|\+ k\*16"):
        small(torch.randn(2, 3, 72, 72))


def test_unet_resnet34_runs_at_64x64(one_thread) -> None:
    with torch.device("meta"):
        meta = create("unet_resnet34")
        assert meta(torch.empty(1, 3, 224, 224)).shape == (1, 2, 224, 224)
    # ResNet-34 without its 513,000-parameter classifier (torchvision: 21,797,672 in all)
    assert count(meta.encoder) == 21_797_672 - 513_000
    assert count(meta) == get_info("unet_resnet34").num_params == 24_349_458
    model = create("unet_resnet34", num_classes=3)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(InputSizeError, match="U-Net \\(resnet34 encoder\\)"):
        model(torch.randn(1, 3, 48, 48))


def test_unet_option_errors() -> None:
    with pytest.raises(ValueError, match="padding"):
        create("unet", padding="reflect")
    with pytest.raises(ValueError, match="upsampling"):
        create("unet", base_width=2, upsampling="cubic")
    with pytest.raises(ValueError, match="padding='same'"):
        create("unet", encoder="resnet34")


def shapes_batch(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy RGB images with a disc and a rectangle each, and their 3-class masks."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    masks = torch.zeros(2, size, size, dtype=torch.long)
    masks[0][(yy - 10) ** 2 + (xx - 12) ** 2 < 36] = 1
    masks[0][(yy > 18) & (yy < 28) & (xx > 4) & (xx < 20)] = 2
    masks[1][(yy - 20) ** 2 + (xx - 20) ** 2 < 64] = 1
    masks[1][(yy > 3) & (yy < 12) & (xx > 3) & (xx < 26)] = 2
    images = torch.stack([(masks == c).float() for c in range(3)], 1)
    return images + 0.3 * torch.randn(images.shape), masks


def overfit(model: nn.Module, steps: int = 300, lr: float = 1e-2) -> tuple[float, float]:
    """Adam on one batch until the loss is 100x smaller; returns (first, last) loss."""
    images, masks = shapes_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    first = last = None
    for _ in range(steps):
        loss = F.cross_entropy(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first, last = first or loss.item(), loss.item()
        if last < first / 100:
            break
    return first, last


def test_small_unet_overfits_one_batch(one_thread) -> None:
    model = create("unet_padded", depth=3, base_width=16, batch_norm=True, in_channels=3,
                   num_classes=3)
    first, last = overfit(model)
    assert last < first / 100
