"""A one-line training progress report on stderr: epoch, batch, loss, rate, throughput, ETA.

On a terminal the line is rewritten in place (carriage return); otherwise (a log file, a CI job)
one line is printed per update. Updates happen only where the trainer already synchronises with
the device (every ``log_every`` steps), so the report costs no extra synchronisation.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Prints progress of ``total_steps`` optimizer steps (of which ``done_steps`` already done)."""

    def __init__(self, total_steps: int, done_steps: int = 0, *, stream: TextIO | None = None,
                 quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_steps, self.start_steps = total_steps, done_steps
        self.start_time = time.perf_counter()
        self._open_line = False

    def eta(self, step: int) -> float | None:
        done = step - self.start_steps
        if done <= 0 or self.total_steps <= 0:  # nothing measured yet, or length unknown
            return None
        per_step = (time.perf_counter() - self.start_time) / done
        return per_step * max(0, self.total_steps - step)

    def update(self, *, epoch: int, epochs: int, batch: int, batches: int, step: int,
               loss: float, lr: float, images_per_s: float) -> None:
        if self.quiet:
            return
        eta = self.eta(step)
        line = (f"epoch {epoch + 1}/{epochs} batch {batch}/{batches or '?'} loss {loss:.4f} "
                f"lr {lr:.3g} {images_per_s:.0f} img/s "
                f"ETA {format_duration(eta) if eta is not None else '?'}")
        if self.tty:
            self.stream.write("\r" + line.ljust(79))
            self._open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (epoch summaries, warnings), after any in-place line."""
        if self.quiet:
            return
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()
