"""Statistics and the `cnnkit data stats` command."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from helpers.data import need_data

from cnnkit.cli import cli
from cnnkit.data.stats import (dataset_stats, mean_std, median_frequency_weights,
                               pixel_counts)
from cnnkit.data.synthetic import SyntheticShapes


class Masks:
    def __init__(self, masks):
        self._masks = masks

    def __len__(self):
        return len(self._masks)

    def masks(self):
        return iter(self._masks)


def test_median_frequency_weights_by_hand() -> None:
    # image A (4 px): 3 x class 0, 1 x class 1; image B (4 px): 2 x class 1, 2 x ignore
    data = Masks([torch.tensor([[0, 0], [0, 1]]), torch.tensor([[1, 1], [255, 255]])])
    counts = pixel_counts(data, 3)
    assert counts["counts"].tolist() == [3, 3, 0] and counts["ignored"] == 2
    assert counts["image_pixels"].tolist() == [4, 8, 0] and counts["images"].tolist() == [1, 2, 0]
    # freq 0 = 3/4, freq 1 = 3/8, median = 9/16 -> weights 0.75, 1.5; absent class -> 0
    assert median_frequency_weights(counts["counts"], counts["image_pixels"]) == \
        pytest.approx([0.75, 1.5, 0.0])
    assert median_frequency_weights([3, 3, 5], [4, 8, 8], exclude=[2]) == pytest.approx([0.75, 1.5, 0])


def test_mean_std_matches_torch() -> None:
    data = SyntheticShapes(4, 32, seed=2)
    images = torch.stack([data[i].image for i in range(4)]).double()
    mean, std = mean_std(data)
    assert mean == pytest.approx(images.mean((0, 2, 3)).tolist(), abs=1e-6)
    assert std == pytest.approx(images.std((0, 2, 3), unbiased=False).tolist(), abs=1e-6)


def test_stats_of_synthetic() -> None:
    stats = dataset_stats(SyntheticShapes(6, 32, seed=0), with_mean_std=False)
    assert stats["num_samples"] == 6 and stats["num_classes"] == 4
    assert sum(stats["class_counts"].values()) == 6 * 32 * 32
    assert stats["image_sizes"] == {"32x32": 6}


def test_cli_stats_json_synthetic() -> None:
    result = CliRunner().invoke(cli, ["data", "stats", "synthetic", "--num-samples", "5",
                                      "--json", "--no-mean-std"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    direct = dataset_stats(SyntheticShapes(5, seed=0), with_mean_std=False)
    assert stats["num_samples"] == 5 and stats["num_classes"] == 4
    assert stats["class_counts"] == direct["class_counts"]


def test_cli_stats_json_camvid() -> None:
    root = need_data("camvid")
    result = CliRunner().invoke(cli, ["data", "stats", "camvid", str(root), "--split", "val",
                                      "--json", "--no-mean-std"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["num_samples"] == 101 and stats["num_classes"] == 12
    assert sum(stats["class_counts"].values()) == 101 * 480 * 360
    assert stats["class_counts"]["11"] == 297271  # void pixels in val (measured)
    assert stats["median_frequency_weights"][11] == 0.0  # void takes no weight


def test_cli_unknown_root_is_one_line_error(tmp_path, capsys) -> None:
    from cnnkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", "camvid", str(tmp_path / "none")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'none'}: not found (the root "
                                               "of the camvid data)")


def test_data_kinds_lists_every_layout_with_its_split_rule_and_options() -> None:
    from cnnkit.data.datasets.catalog import CATALOG

    result = CliRunner().invoke(cli, ["data", "kinds"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(CATALOG)
    membrane = next(line for line in lines if line.startswith("membrane-instances "))
    assert membrane.split()[1] == "keyed" and membrane.endswith("options: min_area")


def _pairs(root, masks: dict[str, int]) -> None:
    from PIL import Image

    for name, value in masks.items():
        for folder, mode, fill in (("image", "RGB", (9, 9, 9)), ("label", "L", value)):
            path = root / "train" / folder / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new(mode, (4, 3), fill).save(path)


def test_cli_stats_holdout_counts_only_the_train_part(tmp_path) -> None:
    _pairs(tmp_path, {"a1": 0, "a2": 1, "b1": 2, "b2": 2})
    args = ["data", "stats", "segmentation", str(tmp_path), "--split", "train",
            "--num-classes", "3", "--json", "--no-mean-std"]
    whole = json.loads(CliRunner().invoke(cli, args).output)
    result = CliRunner().invoke(cli, [*args, "--holdout", "b"])
    assert result.exit_code == 0, result.output
    part = json.loads(result.output)
    assert whole["num_samples"] == 4 and whole["class_counts"] == {"0": 12, "1": 12, "2": 24}
    assert part["num_samples"] == 2 and part["class_counts"] == {"0": 12, "1": 12, "2": 0}
    counted = json.loads(CliRunner().invoke(cli, [*args, "--holdout", "1"]).output)
    assert counted["num_samples"] == 3  # a count drawn with --seed


def test_cli_stats_holdout_takes_a_digits_only_prefix_with_a_trailing_comma(tmp_path) -> None:
    _pairs(tmp_path, {"12a": 0, "12b": 0, "3a": 1, "4a": 2})
    args = ["data", "stats", "segmentation", str(tmp_path), "--split", "train",
            "--num-classes", "3", "--json", "--no-mean-std", "--holdout"]
    prefix = CliRunner().invoke(cli, [*args, "12,"])
    assert prefix.exit_code == 0, prefix.output
    assert json.loads(prefix.output)["class_counts"] == {"0": 0, "1": 12, "2": 12}
    assert json.loads(CliRunner().invoke(cli, [*args, "2"]).output)["num_samples"] == 2


@pytest.mark.parametrize("holdout, message", [
    ("c", "--holdout: holdout prefixes ['c'] select 0 of 2 samples"),
    ("a,b", "--holdout: holdout prefixes ['a', 'b'] select 2 of 2 samples")])
def test_cli_stats_bad_holdout_is_one_line(tmp_path, capsys, holdout, message) -> None:
    from cnnkit.cli import main

    _pairs(tmp_path, {"a1": 0, "b1": 1})
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", "segmentation", str(tmp_path), "--split", "train",
              "--num-classes", "2", "--no-mean-std", "--holdout", holdout])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {message}")


def test_cli_stats_holdout_of_a_kind_without_keys_is_one_line(capsys) -> None:
    from cnnkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", "synthetic", "--num-samples", "4", "--no-mean-std",
              "--holdout", "1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --holdout: the synthetic data cannot be restricted to some keys here; "
        "image/mask pair kinds can (camvid, segmentation, membrane)")


def test_cli_stats_camvid_without_a_sequence() -> None:
    root = need_data("camvid")
    result = CliRunner().invoke(cli, ["data", "stats", "camvid", str(root), "--json",
                                      "--no-mean-std", "--holdout", "0001TP"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["num_samples"] == 367 - 62  # 0006R0 and 0016E5 frames
