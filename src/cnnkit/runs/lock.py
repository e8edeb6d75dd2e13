"""One run per folder: a lock file holding the owner's process id and host.

``RunLock(folder)`` creates ``.lock`` with ``O_CREAT | O_EXCL`` (atomic: of two runs started at
the same moment exactly one gets it) and removes it when the run ends, however it ends short of
a ``kill -9``. A lock left by a process that no longer exists on this host is stale: the next
run takes it over and says so. A lock of a live process, or of another host (which cannot be
checked from here), is refused in one line naming its owner.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

from cnnkit.errors import CnnkitError

log = logging.getLogger(__name__)


class RunFolderLocked(CnnkitError):
    """Another live process trains in this run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Context manager holding ``path`` (a run folder's lock file) for this process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.held = False

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid, host = owner.get("pid"), owner.get("host")
                if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                    log.warning("%s: removing the stale lock of process %d, which no longer "
                                "runs", self.path.parent, pid)
                    self.path.unlink(missing_ok=True)
                    continue
                who = f"process {pid} on {host}" if pid else "another process"
                raise RunFolderLocked(f"run folder {self.path.parent} is in use by {who} "
                                      f"(lock file {self.path}); wait for it, or choose "
                                      "train.run_dir=...") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(me))
            self.held = True
            return self
        raise RunFolderLocked(f"run folder {self.path.parent}: could not take its lock")

    def release(self) -> None:
        if self.held:
            if self._owner().get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
