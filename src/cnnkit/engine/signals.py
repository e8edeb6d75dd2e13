"""Stopping a training run on request: SIGINT (Ctrl-C) and SIGTERM (what ``kill``, schedulers and
containers send) end it the same way, at the next step boundary, with a resumable checkpoint.

:class:`StopRequests` catches the two signals while the trainer runs (in the main thread of the
process; elsewhere it catches nothing and the default behaviour stays) and remembers the first;
the trainer checks it after every step, saves ``last`` and raises :class:`TrainingInterrupted`,
whose message says where the checkpoint is and how to resume. A second signal while the
checkpoint is being written is remembered, not obeyed, so the file is never left half-written
(and a half-written temporary file is removed by the next run anyway).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

from cnnkit.errors import CnnkitError

SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal number, as shells report


class TrainingInterrupted(CnnkitError):
    """Training stopped on a signal; ``checkpoint`` (if any) resumes it exactly."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path | None) -> None:
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.exit_code = EXIT_CODES.get(signal_name, 1)
        where = (f"saved {checkpoint}; resume with --resume {checkpoint}" if checkpoint
                 else "no checkpoint could be written")
        super().__init__(f"training stopped by {signal_name} after step {step}; {where}")


class StopRequests:
    """Context manager recording SIGINT/SIGTERM instead of dying on them (see the module)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, number: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = SIGNALS.get(number, str(number))

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
