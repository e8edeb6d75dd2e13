"""Colourisation: the ColorizationTarget transform, the task's metrics by hand, losses, class
rebalancing from a prior, spec round trip, flip TTA, decoding, pictures and files, a short
training of Zhang et al.'s network."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.data.ab_bins import (ab_gamut_bins, ab_histogram, encode_ab_hard, encode_ab_soft,
                                 rebalance_weights)
from cnnkit.data.batch import collate_samples
from cnnkit.data.color import rgb_to_lab
from cnnkit.data.datasets.transformed import TransformedDataset
from cnnkit.data.sample import Sample
from cnnkit.data.scenes import SyntheticScenes
from cnnkit.data.transforms import ColorizationTarget, ColorJitter, Compose, HorizontalFlip
from cnnkit.engine import Trainer, build_optimizer, make_loader
from cnnkit.errors import ArgumentError, CnnkitError
from cnnkit.inference import FlipTTA
from cnnkit.models import create
from cnnkit.runs import RunFolder
from cnnkit.tasks import ColorizationTask, ab_prior, build_task
from cnnkit.tasks.functional import rebalanced_cross_entropy

NAN = float("nan")


def test_target_of_known_colours() -> None:
    image = torch.zeros(3, 2, 2)
    image[:, 0, 0] = 1.0                        # white
    image[:, 1, 1] = torch.tensor([1.0, 0.0, 0.0])  # red
    out = ColorizationTarget()(Sample(image))
    assert out.image.shape == (1, 2, 2)
    assert float(out.image[0, 0, 0]) == pytest.approx(1.0, abs=1e-5)   # L = 100
    assert float(out.image[0, 0, 1]) == pytest.approx(-1.0, abs=1e-5)  # black: L = 0
    ab = out.meta["ab"]
    assert ab.shape == (2, 2, 2) and ab[:, 0, 0].abs().max() < 1e-3
    red = rgb_to_lab(torch.tensor([1.0, 0, 0]).view(3, 1, 1))[1:, 0, 0]
    assert torch.allclose(ab[:, 1, 1], red) and red[0] > 70   # a* of sRGB red: about 80
    gray = ColorizationTarget()(Sample(torch.full((1, 2, 2), 0.5)))
    assert gray.meta["ab"].abs().max() == 0 and gray.image.shape == (1, 2, 2)
    with pytest.raises(ArgumentError, match=r"needs an image in \[0, 1\].*before Normalize"):
        ColorizationTarget()(Sample(image - 0.5))
    batch = collate_samples([out, out])
    assert batch["ab"].shape == (2, 2, 2, 2) and batch["image"].shape == (2, 1, 2, 2)


def test_jitter_before_the_target_changes_it_only_through_the_image() -> None:
    sample = SyntheticScenes(1, size=(16, 16))[0]
    jitter = ColorJitter(brightness=0.4, saturation=0.5, hue=0.1)
    together = Compose([jitter, ColorizationTarget()])(sample, torch.Generator().manual_seed(3))
    jittered = jitter(sample, torch.Generator().manual_seed(3))
    alone = ColorizationTarget()(jittered)
    assert torch.equal(together.meta["ab"], alone.meta["ab"])
    assert torch.equal(together.image, alone.image)
    assert not torch.allclose(alone.meta["ab"], ColorizationTarget()(sample).meta["ab"])
    flipped = Compose([HorizontalFlip(p=1.0), ColorizationTarget()])(sample)
    assert torch.allclose(flipped.meta["ab"], ColorizationTarget()(sample).meta["ab"].flip(-1))


def ab_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """The functional tests' case: errors 0, 5, 200 and a NaN target at four pixels."""
    pred = torch.tensor([[10.0, 3.0, 100.0, 0.0], [20.0, 4.0, 0.0, 0.0]])[None, :, None, :]
    target = torch.tensor([[10.0, 0.0, -100.0, NAN], [20.0, 0.0, 0.0, 0.0]])[None, :, None, :]
    return pred, target


def test_regression_metrics_by_hand_and_dataset_wide() -> None:
    pred, target = ab_pair()
    task = ColorizationTask(mode="regression", ab_scale=100.0)
    metric = task.new_metric()
    metric.update(pred / 100, {"ab": target})
    assert metric.compute() == pytest.approx({"ab_auc": (1 + 146 / 151 + 0) / 3,
                                              "ab_error": 205 / 3})
    split, other = task.new_metric(), task.new_metric()
    split.update(pred[..., :2] / 100, {"ab": target[..., :2]})
    other.update(pred[..., 2:] / 100, {"ab": target[..., 2:]})
    split.sums += other.sums   # what all_reduce does with state()
    assert split.compute() == pytest.approx(metric.compute())
    metric.reset()
    metric.update(pred / 100, {"ab": target, "valid": torch.tensor([[[True, True, False, True]]])})
    assert metric.compute()["ab_auc"] == pytest.approx((1 + 146 / 151) / 2)


def test_classification_metrics_and_loss() -> None:
    bins = ab_gamut_bins()
    target = bins[[0, 100, 200, 300]].T.reshape(1, 2, 2, 2)   # four bin centres
    codes = encode_ab_hard(target)
    logits = torch.zeros(1, 313, 2, 2)
    logits[0, codes[0, 0, 0], 0, 0] = logits[0, codes[0, 0, 1], 0, 1] = 20.0
    logits[0, 5, 1, 0] = logits[0, 7, 1, 1] = 20.0           # two wrong bins
    task = ColorizationTask(temperature=0.01)               # nearly the mode
    metric = task.new_metric()
    metric.update(logits, {"ab": target})
    figures = metric.compute()
    assert figures["bin_accuracy"] == pytest.approx(0.5)
    assert set(figures) == {"ab_auc", "ab_error", "bin_accuracy"}
    weights = torch.rand(313) + 0.5
    weighted = ColorizationTask(class_weights=weights.tolist())
    value, parts = weighted.loss(logits, {"ab": target})
    expected = rebalanced_cross_entropy(logits, encode_ab_soft(target), weights.double())
    assert float(value) == pytest.approx(float(expected), rel=1e-5) and set(parts) == {
        "cross_entropy"}
    small = torch.randn(1, 313, 1, 1)   # a quarter-size output: the target is area-averaged
    value, _ = task.loss(small, {"ab": target})
    mean_ab = target.mean((2, 3), keepdim=True)
    assert float(value) == pytest.approx(float(rebalanced_cross_entropy(
        small, encode_ab_soft(mean_ab))), rel=1e-5)
    assert "ab_auc_rebalanced" in weighted.new_metric().compute()


def test_prior_gives_rebalancing_weights_and_spec_round_trip() -> None:
    samples = [ColorizationTarget()(SyntheticScenes(2, size=(8, 8))[i]) for i in range(2)]
    counts = ab_prior(samples)
    assert torch.equal(counts, sum(ab_histogram(s.meta["ab"]) for s in samples))
    assert torch.equal(ab_prior(SyntheticScenes(2, size=(8, 8))), counts)  # from the RGB
    task = ColorizationTask(prior=counts.tolist(), rebalance_lambda=0.3)
    assert torch.allclose(task.class_weights, rebalance_weights(counts, lam=0.3))
    again = build_task(task.kind, **task.spec()["options"])
    assert torch.equal(again.class_weights, task.class_weights)
    logits, target = torch.randn(1, 313, 2, 2), torch.randn(1, 2, 2, 2) * 30
    assert float(again.loss(logits, {"ab": target})[0]) == \
        float(task.loss(logits, {"ab": target})[0])
    with pytest.raises(ArgumentError, match="class_weights or prior, not both"):
        ColorizationTask(prior=counts.tolist(), class_weights=counts.tolist())
    with pytest.raises(ArgumentError, match="prior must be 313"):
        ColorizationTask(prior=[1.0, 2.0])
    with pytest.raises(ArgumentError, match="mode must be"):
        ColorizationTask(mode="gan")
    with pytest.raises(ArgumentError, match=r"\(regression\) output must be N x 2"):
        ColorizationTask(mode="regression").loss(logits, {"ab": target})


def test_options_from_the_model() -> None:
    assert ColorizationTask.options_from(None, create("zhang_colorization_small")) == \
        {"mode": "classification"}
    assert ColorizationTask.options_from(None, create("zhang_colorization_small_regression")) \
        == {"mode": "regression"}
    with pytest.raises(CnnkitError, match="313 bin logits or 2 ab channels"):
        ColorizationTask.options_from(None, create("fpn_resnet18_depth"))


def test_flip_tta_on_a_flip_equivariant_model() -> None:
    model, task = nn.Conv2d(1, 313, 1), ColorizationTask()
    images = torch.rand(2, 1, 4, 8)
    assert torch.allclose(FlipTTA(model, task)(images), model(images), atol=1e-6)
    quarter = torch.randn(1, 2, 1, 2)
    assert torch.equal(ColorizationTask(mode="regression").flip_back(quarter, 8),
                       quarter.flip(-1))
    with pytest.raises(CnnkitError, match="width divides the input width 7"):
        task.flip_back(torch.randn(1, 313, 1, 2), 7)


def test_decode_draw_and_write(tmp_path) -> None:
    task = ColorizationTask(mode="regression")
    out = torch.zeros(1, 2, 1, 2)
    out[0, 0, 0, 1] = 0.5                                  # a = 55 on the right
    meta = {"original_size": (8, 8), "transforms": [("resize", {"size": (4, 4)})]}
    batch = {"image": torch.ones(1, 1, 4, 4), "meta": [meta]}  # L = 100
    (record,) = task.decode(out, batch)
    assert record["ab"].shape == (2, 8, 8) and record["rgb"].shape == (3, 8, 8)
    assert torch.allclose(record["rgb"][:, 0, 0], torch.ones(3), atol=1e-3)   # white
    assert float(record["ab"][0, 0, -1]) == pytest.approx(55.0)
    (shown,) = task.decode_in_input(out, batch)
    assert shown["ab"].shape == (2, 4, 4) and float(shown["lightness"][0, 0]) == 100
    truth = {"ab": torch.zeros(2, 4, 4), "lightness": shown["lightness"]}
    picture = task.draw(Image.new("RGB", (4, 4)), truth, shown, scale=2)
    assert picture.size == (3 * 8, 8 + 16)
    original = Image.new("RGB", (8, 8), (128, 128, 128))
    written = task.write({"image": "x.png", **record}, original, tmp_path / "x")
    assert written == {"image": "x.png", "colorized": "x_color.png"}
    colored = Image.open(tmp_path / "x_color.png")
    assert colored.size == (8, 8) and colored.getpixel((7, 0))[0] > colored.getpixel((0, 0))[0]


@pytest.mark.parametrize("name", ["zhang_colorization_small",
                                  "zhang_colorization_small_regression"])
def test_short_training_lowers_the_loss(tmp_path, name: str) -> None:
    data = TransformedDataset(SyntheticScenes(8, size=(32, 48), seed=3), ColorizationTarget())
    model = create(name)
    options = ColorizationTask.options_from(None, model)
    task = ColorizationTask(**options, prior=ab_prior(data).tolist())
    train = make_loader(data, 4, train=True, seed=0)
    trainer = Trainer(model, task, train, make_loader(data, 4, train=False), epochs=4,
                      device="cpu", quiet=True, optimizer=build_optimizer(model, "adam", lr=3e-3),
                      log_every=1, files=RunFolder(tmp_path), tensorboard=False)
    history = trainer.fit()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[4]) for r in rows if ",train,loss," in r]
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2])
    assert {"val_ab_auc", "val_ab_auc_rebalanced"} <= set(history[-1])
    assert math.isfinite(history[-1]["val_ab_auc"])
