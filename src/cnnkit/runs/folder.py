"""The run folder: the one place that knows the name of every file a run writes.

A run folder holds:

=====================  ============================================================
``config.yaml``        the resolved configuration the run was trained with
``spec.json``          the inference spec (:mod:`cnnkit.runs.spec`): what a trained model
                       needs to be used without its training data
``split.json``         the train/val split of a dataset without official splits
``last.pt``            the latest training checkpoint (exact resume)
``best.pt``            the checkpoint of the best validation epoch
``metrics.csv``        every logged figure (``epoch,step,split,name,value``)
``tensorboard/``       TensorBoard event files (when the tensorboard package is installed)
``eval.json``          the evaluation of the best checkpoint (``eval_<tta>.json`` with TTA)
``samples/``           pictures of predictions next to the truth
``seen/``              what the network sees: first-layer filters, Grad-CAMs
``curves.png``         the training curves; ``confusion.png`` the confusion matrix
``report.html``        a self-contained report of all of the above
``.lock``              held while a run trains here (:mod:`cnnkit.runs.lock`)
=====================  ============================================================

Checkpoints carry the spec too, so a single ``best.pt`` is enough to predict with.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cnnkit.errors import CnnkitError


class RunFolder:
    """Paths of a run's files under ``path`` (nothing is created until something is written)."""

    CONFIG = "config.yaml"
    SPEC = "spec.json"
    SPLIT = "split.json"
    LAST = "last.pt"
    BEST = "best.pt"
    METRICS = "metrics.csv"
    TENSORBOARD = "tensorboard"
    SAMPLES = "samples"
    SEEN = "seen"
    CURVES = "curves.png"
    CONFUSION = "confusion.png"
    REPORT = "report.html"
    LOCK = ".lock"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def spec(self) -> Path:
        return self.path / self.SPEC

    @property
    def split(self) -> Path:
        return self.path / self.SPLIT

    @property
    def last(self) -> Path:
        return self.path / self.LAST

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def seen(self) -> Path:
        return self.path / self.SEEN

    @property
    def curves(self) -> Path:
        return self.path / self.CURVES

    @property
    def confusion(self) -> Path:
        return self.path / self.CONFUSION

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    def evaluation(self, tta: str | None = None) -> Path:
        """``eval.json``, or ``eval_<tta>.json`` for an evaluation with test-time augmentation."""
        return self.path / ("eval.json" if tta is None else f"eval_{tta}.json")

    def checkpoint(self, which: str | Path | None = None) -> Path:
        """``which`` when given (a path), else ``best.pt``, else ``last.pt`` (a run stopped before
        its first validation has no best)."""
        if which is not None:
            return Path(which)
        for path in (self.best, self.last):
            if path.is_file():
                return path
        raise CnnkitError(f"{self.path} holds no checkpoint ({self.BEST} or {self.LAST})")

    def known_names(self) -> set[str]:
        """The names of the entries a run writes at the top of its folder."""
        names = {self.CONFIG, self.SPEC, self.SPLIT, self.LAST, self.BEST, self.METRICS,
                 self.TENSORBOARD, self.SAMPLES, self.SEEN, self.CURVES, self.CONFUSION,
                 self.REPORT, self.LOCK}
        return names | {p.name for p in self.path.glob("eval*.json")}

    def foreign_entries(self) -> list[Path]:
        """Entries of the folder that no run wrote (a user's files)."""
        if not self.path.is_dir():
            return []
        known = self.known_names()
        return sorted(p for p in self.path.iterdir()
                      if p.name not in known and not p.name.startswith(f".{self.LAST}.")
                      and not p.name.startswith(f".{self.BEST}."))

    def run_entries(self) -> list[Path]:
        """Entries of the folder that a run wrote (temporary checkpoint files included)."""
        if not self.path.is_dir():
            return []
        foreign = set(self.foreign_entries())
        return sorted(p for p in self.path.iterdir() if p not in foreign and p.name != self.LOCK)

    def remove_run_files(self) -> None:
        """Remove what a run wrote here, and only that (other files stay)."""
        for entry in self.run_entries():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def clear(self) -> None:
        """Remove what a run wrote here, and only that; a folder that also holds other files
        is refused (cnnkit never deletes what it did not create)."""
        if self.path.exists() and not self.path.is_dir():
            raise CnnkitError(f"{self.path} is a file, not a run folder")
        foreign = self.foreign_entries()
        if foreign:
            shown = ", ".join(p.name for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise CnnkitError(f"{self.path} holds files that are not a run's ({shown}); "
                              "choose another run folder")
        self.remove_run_files()

    def require(self) -> RunFolder:
        """This folder, checked to be a run folder (one line naming what is missing)."""
        if not self.path.is_dir():
            raise CnnkitError(f"{self.path}: run folder not found")
        if not (self.spec.is_file() or self.best.is_file() or self.last.is_file()):
            raise CnnkitError(f"{self.path} is not a run folder: it has no {self.SPEC}, "
                              f"{self.BEST} or {self.LAST}")
        return self
