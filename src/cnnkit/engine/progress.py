"""Training progress: a live bar on a terminal (tqdm), plain log lines otherwise.

Messages go through Python's ``logging`` (logger ``cnnkit``), the one channel for messages:
the command line sets its level (``--quiet``, ``--verbose``) and a program using cnnkit as a
library configures it like any other. On a terminal a tqdm bar shows the optimizer steps with
the loss, learning rate, throughput and time left; when the output is a file (a CI job, a log)
each update is one ``INFO`` line instead. Updates happen only where the trainer already
synchronises with the device (every ``log_every`` steps), so reporting costs no extra
synchronisation.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("cnnkit.train")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Reports progress of ``total_steps`` optimizer steps (``done_steps`` already done).

    ``bar``: None decides by the stream (a terminal gets a bar); ``quiet`` reports nothing but
    warnings.
    """

    def __init__(self, total_steps: int, done_steps: int = 0, *, stream: TextIO | None = None,
                 quiet: bool = False, bar: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.use_bar = (tty if bar is None else bar) and not quiet
        self.total_steps, self.start_steps = total_steps, done_steps
        self.start_time = time.perf_counter()
        self._bar = None

    @property
    def start_steps(self) -> int:
        return self._start_steps

    @start_steps.setter
    def start_steps(self, steps: int) -> None:
        self._start_steps = steps
        self.start_time = time.perf_counter()
        if getattr(self, "_bar", None) is not None:
            self._bar.reset(total=self.total_steps or None)
            self._bar.update(steps)

    def eta(self, step: int) -> float | None:
        done = step - self.start_steps
        if done <= 0 or self.total_steps <= 0:  # nothing measured yet, or length unknown
            return None
        per_step = (time.perf_counter() - self.start_time) / done
        return per_step * max(0, self.total_steps - step)

    def _open_bar(self):
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total_steps or None, initial=self.start_steps,
                             file=self.stream, unit="step", dynamic_ncols=True, leave=False)
        return self._bar

    def update(self, *, epoch: int, epochs: int, batch: int, batches: int, step: int,
               loss: float, lr: float, images_per_s: float) -> None:
        if self.quiet:
            return
        if self.use_bar:
            bar = self._open_bar()
            bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)
            bar.set_postfix_str(f"loss {loss:.4f} lr {lr:.3g} {images_per_s:.0f} img/s",
                                refresh=False)
            bar.update(step - bar.n)
            return
        eta = self.eta(step)
        log.info("epoch %d/%d batch %d/%s loss %.4f lr %.3g %.0f img/s ETA %s", epoch + 1,
                 epochs, batch, batches or "?", loss, lr, images_per_s,
                 format_duration(eta) if eta is not None else "?")

    def message(self, text: str) -> None:
        """A line of its own (epoch summaries), above the bar."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.clear()
        log.info(text)
        if self._bar is not None:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
