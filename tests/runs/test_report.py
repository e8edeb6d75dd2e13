"""HTML run report: written from a run folder, links only files that exist, shows the figures."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from PIL import Image

from cnnkit.config import load_config, save_config
from cnnkit.runs.report import summarize_metrics, write_report
from cnnkit.tasks import build_task
from cnnkit.viz import read_metrics_csv


def fake_run(run_dir: Path) -> None:
    run_dir.mkdir()
    save_config(load_config(None, ["name=fake", "train.epochs=3"]), run_dir / "config.yaml")
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "split", "name", "value"])
        for epoch in range(3):
            writer.writerow([epoch, epoch * 10 + 5, "train", "loss", 1.0 / (epoch + 1)])
            writer.writerow([epoch + 1, epoch * 10 + 10, "val", "loss", 0.9 - 0.1 * epoch])
            writer.writerow([epoch + 1, epoch * 10 + 10, "val", "miou", [0.3, 0.61, 0.55][epoch]])
            writer.writerow([epoch + 1, epoch * 10 + 10, "val", "iou/Road", 0.875])
            writer.writerow([epoch + 1, epoch * 10 + 10, "val", "iou/Sky", 0.25])
    (run_dir / "samples").mkdir()
    Image.new("RGB", (8, 8)).save(run_dir / "samples" / "sample 0.png")


def test_report_links_existing_files_and_shows_metrics(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir)
    path = write_report(run_dir, confusion=[[5, 1], [2, 7]], class_names=["Road", "Sky"])
    assert path == run_dir / "report.html"
    page = path.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {"curves.png", "confusion.png", "config.yaml", "samples/sample%200.png"} <= set(links)
    for link in links:
        assert (run_dir / link.replace("%20", " ")).is_file(), link
        assert not link.startswith("/")  # relative: the folder can be moved or opened offline
    assert Image.open(run_dir / "curves.png").size == (840, 280)  # loss and miou panels
    # final figures are the last validation epoch's; best miou 0.61 at epoch 2
    assert "<td>miou</td><td class=\"num\">0.5500</td><td class=\"num\">0.6100</td>" \
           "<td class=\"num\">2</td>" in page
    assert "<td>Road</td><td class=\"num\">0.8750</td>" in page  # per-class table
    assert "name: fake" in page and "epochs: 3" in page  # the resolved configuration


def test_report_without_metrics_and_summary_directions(tmp_path):
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    page = write_report(run_dir, title="nothing yet").read_text()
    assert "<h1>nothing yet</h1>" in page and "<img" not in page
    keypoints = build_task("keypoints-heatmap", num_keypoints=2)
    better = keypoints.higher_is_better_for  # the task knows each figure's direction
    assert not better("loss") and not better("error/Sky") and not better("mean_error")
    assert better("pck") and better("pck/nose")
    segmentation = build_task("segmentation", num_classes=2).higher_is_better_for
    assert segmentation("miou") and segmentation("iou/Sky") and not segmentation("loss")


def test_summarize_metrics_uses_last_validation_epoch(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir)
    rows = read_metrics_csv(run_dir / "metrics.csv")
    task = build_task("segmentation", num_classes=2)
    final, best = summarize_metrics(rows, higher_is_better=task.higher_is_better_for)
    assert final["loss"] == 0.9 - 0.2 and best["loss"] == (0.9 - 0.2, 3)
    assert final["iou/Sky"] == 0.25


def test_a_multitask_report_keeps_sub_task_figures_out_of_the_class_table(tmp_path):
    from cnnkit.tasks import build_task

    task = build_task("multitask", tasks={"depth": {}, "segmentation": {"num_classes": 2}})
    assert task.per_class("depth/abs_rel") is None
    assert task.per_class("segmentation/iou/floor") == ("segmentation/iou", "floor")
    assert build_task("segmentation", num_classes=2).per_class("iou/Road") == ("iou", "Road")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    page = write_report(run_dir, final_metrics={
        "depth/abs_rel": 0.25, "segmentation/iou/floor": 0.5, "segmentation/miou": 0.5},
        per_class=task.per_class).read_text()
    final, by_class = page.split("<h2>Per class</h2>")
    assert "depth/abs_rel" in final and "segmentation/miou" in final
    assert "floor" in by_class and "segmentation/iou" in by_class and "abs_rel" not in by_class
