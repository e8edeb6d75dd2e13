"""Every kind of run trains, writes its pictures, and comes back with ``load_run`` ready to
predict, without dispatching on its kind anywhere outside the tasks."""

from __future__ import annotations

import json

import pytest
import torch

import cnnkit
from cnnkit.config import load_config
from cnnkit.runs import RunFolder, train

TINY = ["data.kind=synthetic", "data.num_samples=16", "data.val_samples=8", "data.size=32",
        "data.batch_size=8", "data.workers=0", "train.epochs=1", "model.in_channels=3"]
RUNS = {
    "classification": ["model.name=vgg_small_s", "model.num_classes=3",
                       "task.kind=classification"],
    "keypoints-heatmap": ["model.name=heatmap_unet", "model.num_classes=4",
                          "model.options={base_width: 4, depth: 2, output_stride: 2}",
                          "task.kind=keypoints-heatmap",
                          "data.eval_transforms=[{HeatmapTarget: {stride: 2}}]",
                          "data.train_transforms=[{HeatmapTarget: {stride: 2}}]"],
}


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_a_run_of_each_kind_trains_draws_and_predicts(kind, tmp_path) -> None:
    config = load_config(None, TINY + RUNS[kind] + [f"train.run_dir={tmp_path / kind}"])
    result = train(config, quiet=True)
    folder = RunFolder(tmp_path / kind)
    assert len(list(folder.samples.glob("*.png"))) == 8 and folder.report.is_file()
    record = json.loads(folder.evaluation().read_text())
    assert record["metrics"] == pytest.approx(result["metrics"], nan_ok=True)
    run = cnnkit.load_run(folder.path)
    image = torch.rand(3, 40, 48)  # another size than the training images
    prediction = run.predict(image)[0]
    if kind == "classification":  # the report shows what the network sees
        assert {p.name for p in folder.seen.glob("*.png")} == {
            "filters.png", "gradcam_00.png", "gradcam_01.png", "gradcam_02.png"}
        assert "What the network sees" in folder.report.read_text()
        assert run.meta["class_names"] == ["circle", "square", "triangle"]
        assert prediction["class_name"] in run.meta["class_names"]
        assert len(prediction["probabilities"]) == 3
    else:
        assert run.meta["keypoint_names"] == ["top", "left", "right", "centre"]
        assert run.meta["flip_pairs"] == [[1, 2]]
        assert len(prediction["keypoints"]) == 4


def test_flip_tta_evaluates_a_keypoint_run_with_its_left_right_pairs(tmp_path) -> None:
    config = load_config(None, TINY + RUNS["keypoints-heatmap"]
                         + [f"train.run_dir={tmp_path / 'kp'}"])
    train(config, quiet=True)
    result = cnnkit.runs.evaluate_run(tmp_path / "kp", tta="flip")
    assert json.loads((tmp_path / "kp" / "eval_flip.json").read_text())["tta"] == "flip"
    assert 0.0 <= result["metrics"]["pck"] <= 1.0


def test_eval_measures_a_trained_task_with_changed_options(tmp_path) -> None:
    config = load_config(None, TINY + RUNS["keypoints-heatmap"]
                         + [f"train.run_dir={tmp_path / 'kp'}"])
    train(config, quiet=True)
    strict, loose = (cnnkit.runs.evaluate_run(tmp_path / "kp", overrides=[
        f"task.options.pck_threshold={threshold}"]) for threshold in (0.01, 1000))
    assert strict["metrics"]["pck"] == 0.0 and loose["metrics"]["pck"] == 1.0
    assert strict["metrics"]["mean_error"] == loose["metrics"]["mean_error"]


SCENES = ["data.kind=scenes", "data.num_samples=8", "data.val_samples=4", "data.size=[32, 48]",
          "data.batch_size=4", "data.workers=0", "train.epochs=1"]
DENSE_RUNS = {
    "depth": (["model.name=eigen_fergus_small_depth", "task.kind=depth"], "depth"),
    "normals": (["model.name=eigen_fergus_small_normals", "task.kind=normals"], "normals"),
    "multitask": (["model.name=eigen_fergus_small", "task.kind=multitask"], "depth"),
    "colorization": (["model.name=zhang_colorization_small", "task.kind=colorization",
                      "task.options={prior: train}", "data.train_transforms=[ColorizationTarget]",
                      "data.eval_transforms=[ColorizationTarget]"], "rgb"),
}


@pytest.mark.parametrize("kind", sorted(DENSE_RUNS))
def test_a_dense_regression_run_trains_reports_and_predicts(kind, tmp_path) -> None:
    extra, field = DENSE_RUNS[kind]
    config = load_config(None, SCENES + extra + [f"train.run_dir={tmp_path / kind}"])
    result = train(config, quiet=True)
    folder = RunFolder(tmp_path / kind)
    assert folder.report.is_file() and len(list(folder.samples.glob("*.png"))) == 4
    record = json.loads(folder.evaluation().read_text())
    assert record["metrics"] == pytest.approx(result["metrics"], nan_ok=True)
    run = cnnkit.load_run(folder.path)
    prediction = run.predict(torch.rand(3, 40, 56))[0]
    if kind == "multitask":  # one record per sub-task
        assert set(prediction) == {"depth", "normals", "segmentation"}
        prediction = prediction["depth"]
    assert tuple(torch.as_tensor(prediction[field]).shape[-2:]) == (40, 56)
    if kind == "colorization":  # the prior was counted on the training split and recorded
        from cnnkit.runs.data import build_dataset
        from cnnkit.tasks import ab_prior

        counts = ab_prior(build_dataset(config.data, "train", seed=0)).tolist()
        assert run.task.spec()["options"]["prior"] == pytest.approx(counts)


def test_a_prior_from_the_training_split_needs_one() -> None:
    from cnnkit.tasks import ColorizationTask
    from cnnkit.errors import CnnkitError

    with pytest.raises(CnnkitError, match="task.options.prior: 'train' counts"):
        ColorizationTask.options_from_data({"prior": "train"}, None)
    assert ColorizationTask.options_from_data({"prior": [1.0] * 313}, None) == {}
