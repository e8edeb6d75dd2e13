"""The bad inputs cnnkit has been tried with: each is a command line (with the files it needs)
that must end in exit status 2 and one line naming the file, key or argument at fault.

``tests/cli/test_cli_bad_inputs.py`` runs every case; ``benchmarks/bad_inputs.py`` prints the
table of cases and messages that docs/reliability.md shows.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

BAD_DLC_HEADER = "scorer,me\nbodyparts,a\n"
DEMO = Path(__file__).resolve().parents[2] / "src" / "cnnkit" / "demo.yaml"
TINY = ["data.num_samples=16", "data.val_samples=8", "data.size=32", "data.batch_size=8",
        "model.options.base_width=4", "model.options.depth=2", "train.epochs=1",
        "data.workers=0"]


@dataclass(frozen=True)
class Case:
    """``argv(tmp, trained)`` builds the command line (and its files under ``tmp``);
    ``names`` must appear in the one error line."""

    what: str
    argv: Callable[[Path, Path], list[str]]
    names: str


def tiny(tmp: Path, *extra: str) -> list[str]:
    return ["train", str(DEMO), *TINY, f"train.run_dir={tmp / 'run'}", *extra]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def image(path: Path, size: tuple[int, int] = (16, 16), mode: str = "RGB", value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def seg_folder(tmp: Path, mask: np.ndarray, image_size: tuple[int, int] = (16, 16)) -> Path:
    root = tmp / "seg"
    for split in ("train", "val"):
        image(root / split / "image" / "a.png", image_size)
        mask_path = root / split / "label" / "a.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8)).save(mask_path)
    return root


def seg_run(tmp: Path, root: Path, *extra: str) -> list[str]:
    return tiny(tmp, "data.kind=segmentation", f"data.root={root}", "data.num_classes=2",
                "model.num_classes=2", "model.in_channels=3", *extra)


def dlc_csv(tmp: Path, header: str | None = None, point: str = "5,5") -> Path:
    folder = tmp / "dlc" / "labeled-data" / "video"
    for i in range(4):
        image(folder / f"img{i}.png", (16, 16))
    head = header or ("scorer,me,me\nbodyparts,nose,nose\ncoords,x,y\n")
    rows = "".join(f"labeled-data/video/img{i}.png,{point if i == 0 else '5,5'}\n"
                   for i in range(4))
    return write(folder / "CollectedData_me.csv", head + rows)


def folders(tmp: Path, corrupt: bool = False, empty: bool = False) -> Path:
    root = tmp / "classes"
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            if empty:
                continue
            for i in range(4):
                image(root / split / cls / f"{i}.png", (32, 32), value=60 * i)
    if corrupt:  # every training image of one class: some batch of the epoch reads one
        for i in range(4):
            write(root / "train" / "cat" / f"{i}.png", b"not a png at all")
    return root


def folder_run(tmp: Path, root: Path, *extra: str) -> list[str]:
    return ["train", str(DEMO), f"train.run_dir={tmp / 'run'}", "data.kind=folders",
            f"data.root={root}", "task.kind=classification", "task.options={}",
            "model.name=vgg_small_s", "model.num_classes=2", "model.in_channels=3",
            "model.options={}", "train.epochs=1", "data.batch_size=4", *extra]


def resume_with(tmp: Path, checkpoint: Path) -> list[str]:
    return tiny(tmp, "--resume", str(checkpoint))


def other_architecture(tmp: Path, trained: Path) -> list[str]:
    return tiny(tmp, "model.options.base_width=8", "--resume", str(trained / "last.pt"))


def malicious(tmp: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "cnnkit.checkpoint/1", "model": Evil()}))
    return path


def coco(tmp: Path) -> Path:
    image(tmp / "coco" / "images" / "a.png", (16, 16))
    data = {"categories": [{"id": 1, "name": "p", "keypoints": ["a", "b"]}],
            "images": [{"id": 1, "file_name": "a.png"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1,
                             "keypoints": [1, 2, 2, "x", 3, 2]}]}
    return write(tmp / "coco" / "ann.json", json.dumps(data))


def locked(tmp: Path) -> list[str]:
    import os

    run = tmp / "run"
    run.mkdir(parents=True, exist_ok=True)
    import socket

    write(run / ".lock", json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    return tiny(tmp)


def with_checkpoint(tmp: Path) -> list[str]:
    torch.save({"format": "cnnkit.checkpoint/1"}, write(tmp / "run" / "last.pt", b""))
    return tiny(tmp)


def other_run(tmp: Path) -> list[str]:
    write(tmp / "run" / "config.yaml", "name: other\n")
    return tiny(tmp)


CASES: list[Case] = [
    # the configuration file and its overrides
    Case("configuration file missing", lambda t, r: ["train", str(t / "none.yaml")], "none.yaml"),
    Case("configuration is a folder", lambda t, r: ["train", str(t)], "is a directory"),
    Case("configuration file empty", lambda t, r: ["train", str(write(t / "e.yaml", ""))],
         "e.yaml: the configuration is empty"),
    Case("configuration file only comments",
         lambda t, r: ["train", str(write(t / "c.yaml", "# nothing\n"))], "c.yaml"),
    Case("configuration file binary",
         lambda t, r: ["train", str(write(t / "b.yaml", bytes(range(256))))],
         "b.yaml: not a text file"),
    Case("configuration not valid YAML",
         lambda t, r: ["train", str(write(t / "y.yaml", "data: [1,\n"))], "y.yaml"),
    Case("a key written twice",
         lambda t, r: ["train", str(write(t / "d.yaml", "train:\n  epochs: 1\n  epochs: 2\n"))],
         "d.yaml:3: key 'epochs' is written twice"),
    Case("configuration is a list", lambda t, r: ["train", str(write(t / "l.yaml", "- 1\n"))],
         "l.yaml"),
    Case("unknown section", lambda t, r: tiny(t, "trian.epochs=1"), "trian"),
    Case("unknown key", lambda t, r: tiny(t, "optim.lrr=3"), "optim.lrr"),
    Case("wrong type", lambda t, r: tiny(t, "train.epochs=three"), "train.epochs"),
    Case("override without =", lambda t, r: tiny(t, "train.epochs"), "train.epochs"),
    Case("override not YAML", lambda t, r: tiny(t, "data.size=[1,"), "data.size"),
    Case("override below a value", lambda t, r: tiny(t, "train.epochs.max=1"), "train.epochs"),
    Case("unknown data kind", lambda t, r: tiny(t, "data.kind=imagenet"), "data.kind"),
    Case("unknown task kind", lambda t, r: tiny(t, "task.kind=tracking"), "task.kind"),
    Case("unknown model", lambda t, r: tiny(t, "model.name=resnet05"), "resnet05"),
    Case("unknown model option", lambda t, r: tiny(t, "model.options.widht=2"), "widht"),
    Case("epochs 0", lambda t, r: tiny(t, "train.epochs=0"), "train.epochs"),
    Case("batch size 0", lambda t, r: tiny(t, "data.batch_size=0"), "data.batch_size"),
    Case("eval batch size 0", lambda t, r: tiny(t, "data.eval_batch_size=0"),
         "data.eval_batch_size"),
    Case("negative workers", lambda t, r: tiny(t, "data.workers=-1"), "data.workers"),
    Case("learning rate 0", lambda t, r: tiny(t, "optim.lr=0"), "optim.lr"),
    Case("momentum above 1", lambda t, r: tiny(t, "optim.momentum=1.5"), "optim.momentum"),
    Case("negative weight decay", lambda t, r: tiny(t, "optim.weight_decay=-1"),
         "optim.weight_decay"),
    Case("negative gradient clip", lambda t, r: tiny(t, "train.grad_clip=-1"),
         "train.grad_clip"),
    Case("early stopping 0", lambda t, r: tiny(t, "train.early_stopping=0"),
         "train.early_stopping"),
    Case("checkpoint every 0 steps", lambda t, r: tiny(t, "train.checkpoint_every=0"),
         "train.checkpoint_every"),
    Case("val fraction 1.5", lambda t, r: tiny(t, "data.val_fraction=1.5"), "data.val_fraction"),
    Case("image size 0", lambda t, r: tiny(t, "data.size=0"), "data.size"),
    Case("unknown optimizer", lambda t, r: tiny(t, "optim.name=sgdd"), "sgdd"),
    Case("unknown schedule", lambda t, r: tiny(t, "schedule.name=linear"), "linear"),
    Case("warm-up on a step schedule",
         lambda t, r: tiny(t, "schedule.name=step", "schedule.warmup_epochs=1"),
         "schedule.warmup_epochs"),
    Case("warm-up as long as the training",
         lambda t, r: tiny(t, "train.epochs=1", "schedule.warmup_epochs=1"),
         "schedule.warmup_epochs must be less than train.epochs"),
    Case("eval every 0 epochs", lambda t, r: tiny(t, "train.eval_every=0"), "train.eval_every"),
    Case("ema decay 1", lambda t, r: tiny(t, "train.ema=1.0"), "train.ema"),
    Case("min_area 0", lambda t, r: tiny(t, "data.min_area=0"), "data.min_area"),
    Case("negative box margin", lambda t, r: tiny(t, "data.box_margin=-0.1"), "data.box_margin"),
    Case("unknown schedule option", lambda t, r: tiny(t, "schedule.params={gama: 0.1}"),
         "gama"),
    Case("unknown transform", lambda t, r: tiny(t, "data.train_transforms=[Rezise]"),
         "data.train_transforms[0]"),
    Case("transform option unknown",
         lambda t, r: tiny(t, "data.train_transforms=[{HorizontalFlip: {prob: 1}}]"),
         "data.train_transforms[0]"),
    Case("transform option out of range",
         lambda t, r: tiny(t, "data.train_transforms=[{HorizontalFlip: {p: 2}}]"),
         "data.train_transforms[0]"),
    Case("transform written as a list", lambda t, r: tiny(t, "data.eval_transforms=[[1, 2]]"),
         "data.eval_transforms[0]"),
    Case("unknown batch transform", lambda t, r: tiny(t, "data.batch_transforms=[Mixup]"),
         "data.batch_transforms[0]"),
    Case("unknown amp mode", lambda t, r: tiny(t, "train.amp=fp8"), "train.amp"),
    Case("CUDA on a machine without it", lambda t, r: tiny(t, "train.device=cuda"), "cuda"),
    Case("not a device", lambda t, r: tiny(t, "train.device=gpu"), "gpu"),
    Case("unknown group to freeze", lambda t, r: tiny(t, "optim.freeze=[bakcbone]"),
         "optim.freeze: 'bakcbone'"),
    Case("unknown task option", lambda t, r: tiny(t, "task.options={dice_wieght: 1}"),
         "task.options: task 'segmentation'"),
    Case("task option out of range", lambda t, r: tiny(t, "task.options={ce_weight: 0}"),
         "ce_weight"),
    Case("class weights of the wrong length",
         lambda t, r: tiny(t, "task.options={class_weights: [1, 2]}"), "class_weights"),
    Case("model classes against the data's",
         lambda t, r: tiny(t, "model.num_classes=5"), "model.num_classes=4"),
    Case("model input channels against the data's",
         lambda t, r: tiny(t, "model.in_channels=1"), "model.in_channels=3"),
    Case("linear probe on a dense model", lambda t, r: tiny(t, "model.probe_stage=0"),
         "model.probe_stage"),
    Case("weights file missing", lambda t, r: tiny(t, f"model.weights={t / 'w.pt'}"), "w.pt"),
    # where the run goes
    Case("run folder is a file", lambda t, r: ["train", str(DEMO), *TINY,
                                               f"train.run_dir={write(t / 'f', 'x')}"],
         "train.run_dir"),
    Case("run folder holds a run", lambda t, r: with_checkpoint(t), "already holds a run"),
    Case("run folder holds another unfinished run", lambda t, r: other_run(t), "another run"),
    Case("run folder in use", lambda t, r: locked(t), "in use by process"),
    Case("demo folder with a user's files",
         lambda t, r: ["demo", "--run-dir", str(write(t / "thesis" / "thesis.tex", "x").parent)],
         "thesis.tex"),
    # resuming
    Case("resume from a missing file", lambda t, r: resume_with(t, t / "nope.pt"), "nope.pt"),
    Case("resume from an empty file", lambda t, r: resume_with(t, write(t / "z.pt", b"")),
         "z.pt: the file is empty"),
    Case("resume from a text file", lambda t, r: resume_with(t, write(t / "t.pt", "hello")),
         "t.pt"),
    Case("resume from a weights file", lambda t, r: resume_with(t, _weights(t)),
         "w.pt: not a cnnkit training checkpoint"),
    Case("resume from a pickle with code", lambda t, r: resume_with(t, malicious(t)),
         "evil.pt"),
    Case("resume with another architecture", lambda t, r: other_architecture(t, r),
         "last.pt does not fit"),
    # data files
    Case("data root missing",
         lambda t, r: tiny(t, "data.kind=camvid", f"data.root={t / 'camvid'}"), "camvid"),
    Case("camvid list file missing",
         lambda t, r: tiny(t, "data.kind=camvid", f"data.root={t}"), "train.txt"),
    Case("unknown split name", lambda t, r: tiny(t, "data.val_split=valid"), "data.val_split"),
    Case("segmentation data without classes",
         lambda t, r: seg_run(t, seg_folder(t, np.zeros((16, 16))), "data.num_classes=null"),
         "num_classes"),
    Case("mask value outside the classes",
         lambda t, r: seg_run(t, seg_folder(t, np.full((16, 16), 7))), "a.png"),
    Case("black/white mask read as indices",
         lambda t, r: seg_run(t, seg_folder(t, np.where(np.tri(16) > 0, 255, 0))),
         "a.png: the mask holds only 0 and 255"),
    Case("mask and image of different sizes",
         lambda t, r: seg_run(t, seg_folder(t, np.zeros((8, 8)))), "a.png"),
    Case("a corrupt image read by a loader worker",
         lambda t, r: folder_run(t, folders(t, corrupt=True), "data.workers=2"),
         "classes/train/cat/"),
    Case("class folders without images",
         lambda t, r: folder_run(t, folders(t, empty=True)), "classes"),
    Case("DeepLabCut header wrong",
         lambda t, r: tiny(t, "data.kind=dlc", "task.kind=keypoints-heatmap",
                           "data.root=" + str(dlc_csv(t, header=BAD_DLC_HEADER))),
         "CollectedData_me.csv"),
    Case("DeepLabCut keypoint outside the image",
         lambda t, r: tiny(t, "data.kind=dlc", "task.kind=keypoints-heatmap",
                           "task.options={}", "model.name=heatmap_unet", "model.num_classes=1",
                           "data.val_fraction=2", f"data.root={dlc_csv(t, point='40,5')}"),
         "img0.png: keypoint 'nose'"),
    Case("COCO keypoint given as a string",
         lambda t, r: tiny(t, "data.kind=coco-keypoints", f"data.root={coco(t)}",
                           f"data.images={t / 'coco' / 'images'}"), "annotation 7"),
    # using a trained run
    Case("evaluate a folder that is no run", lambda t, r: ["eval", str(t)],
         "is not a run folder"),
    Case("evaluate on a split that is not set", lambda t, r: ["eval", str(r), "--split", "test"],
         "data.test_split"),
    Case("evaluate with an unknown override", lambda t, r: ["eval", str(r), "data.rooot=x"],
         "data.rooot"),
    Case("predict a non-image", lambda t, r: ["predict", str(r), str(write(t / "x.png", "no")),
                                              "--out", str(t / "out")], "x.png"),
    Case("predict into a path below a file",
         lambda t, r: ["predict", str(r), str(image(t / "i.png")), "--out",
                       str(write(t / "file", "x") / "sub")], "--out"),
    Case("predict with a folder holding no run",
         lambda t, r: ["predict", str(t), str(image(t / "i.png")), "--out", str(t / "o")],
         "is not a run folder"),
    Case("export with a bad input size", lambda t, r: ["export", str(r), "--onnx",
                                                        str(t / "m.onnx"), "--input", "3x"],
         "--input"),
    Case("analyse an unknown model", lambda t, r: ["summary", "vggg16"], "vggg16"),
    Case("analyse with a bad input size", lambda t, r: ["summary", "vgg16", "--input", "3x2"],
         "--input"),
    Case("statistics of a missing root", lambda t, r: ["data", "stats", "camvid", str(t / "no")],
         "no"),
]


def _weights(tmp: Path) -> Path:
    path = tmp / "w.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    return path
