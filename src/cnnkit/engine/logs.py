"""Training logs: ``metrics.csv`` always, TensorBoard event files when tensorboard is installed.

``metrics.csv`` is in long format, one figure per row: ``epoch,step,split,name,value`` (split is
``train`` or ``val``; ``epoch`` counts completed epochs, so figures logged during the first
epoch have epoch 0 and its validation epoch 1). New metric names need no new columns. The header
is on disk as soon as the logger exists, and every row as soon as it is logged.

TensorBoard events are written by ``torch.utils.tensorboard.SummaryWriter``, which needs the
``tensorboard`` package (``pip install 'cnnkit[tensorboard]'``); without it only the CSV file is
written, and a debug message says so. Scalars are tagged ``<split>/<name>``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path


log = logging.getLogger(__name__)
HEADER = ["epoch", "step", "split", "name", "value"]


def tensorboard_available() -> bool:
    """Whether TensorBoard event files can be written (the tensorboard package imports)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class RunLogger:
    """Writes figures to ``metrics`` (a CSV path) and, when possible, TensorBoard events under
    ``tensorboard`` (a folder; None: no events).

    A disabled logger (non-zero ranks of a distributed run) accepts calls and writes nothing.
    """

    def __init__(self, metrics: str | Path, tensorboard: str | Path | None = None, *,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.csv_path = Path(metrics)
        self._csv = None
        self.events = None
        if not enabled:
            return
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        self._open("w" if fresh else "a")
        if fresh:
            self._writer.writerow(HEADER)
            self._csv.flush()
        if tensorboard is not None:
            if tensorboard_available():
                from torch.utils.tensorboard import SummaryWriter

                self.events = SummaryWriter(str(tensorboard))
            else:
                log.debug("tensorboard is not installed: writing metrics.csv only")

    def _open(self, mode: str) -> None:
        self._csv = open(self.csv_path, mode, newline="")
        self._writer = csv.writer(self._csv)

    def drop_after(self, step: int, epoch: int | None = None) -> None:
        """Keep only the rows a checkpoint at ``step`` (``epoch`` completed epochs) had seen:
        training rows up to ``step`` and validation rows up to ``epoch``. A resumed run repeats
        what came after its checkpoint, so those rows would otherwise appear twice; a row cut
        short by a kill, or a missing header, is dropped or restored too."""
        if not self.enabled or self._csv is None:
            return
        self._csv.close()
        text = self.csv_path.read_text()
        if text and not text.endswith("\n"):  # a row cut short by a kill
            text = text[:text.rfind("\n") + 1]
        rows = list(csv.reader(text.splitlines()))
        kept = [HEADER] + [row for row in rows if self._before(row, step, epoch)]
        with open(self.csv_path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)
        self._open("a")

    @staticmethod
    def _before(row: list[str], step: int, epoch: int | None) -> bool:
        if len(row) != len(HEADER) or row == HEADER:
            return False
        try:
            row_epoch, row_step = int(row[0]), int(row[1])
            float(row[4])
        except ValueError:
            return False
        if row[2] == "val" and epoch is not None:
            return row_epoch <= epoch and row_step <= step
        return row_step <= step

    def log(self, split: str, values: dict[str, float], *, epoch: int, step: int) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self._writer.writerow([epoch, step, split, name, repr(float(value))])
        if self.events is not None:
            for name, value in values.items():
                self.events.add_scalar(f"{split}/{name}", float(value), step)
        self.flush()

    def flush(self) -> None:
        if self._csv is not None and not self._csv.closed:
            self._csv.flush()
        if self.events is not None:
            self.events.flush()

    def close(self) -> None:
        if self._csv is not None and not self._csv.closed:
            self._csv.close()
        if self.events is not None:
            self.events.close()
            self.events = None

    def __del__(self) -> None:
        self.close()
