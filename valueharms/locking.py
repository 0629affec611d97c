"""One writer per run: an advisory lock a second ``predict`` or ``score`` on the same output cannot take.

Why: two writers on one JSONL pay for the same judgements twice and write every record twice. The lock is an OS
file lock (``filelock``, ``flock`` on POSIX), so a killed holder (kill -9, a crashed node) releases it with its
process: there is no stale lock to clean up by hand. The holder's pid and command are written beside it so the
refusal names who holds it. Readers never take the lock and tolerate duplicate records.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from types import TracebackType

from valueharms.errors import InputError


class RunLock:
    """``with RunLock(path, what="score"):`` holds ``<path>.lock`` or raises a one-line :class:`InputError`."""

    def __init__(self, path: str | Path, what: str) -> None:
        from filelock import FileLock

        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.info_path = self.path.with_name(self.path.name + ".lock.owner")
        self.what = what
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.lock_path), timeout=0)

    def __enter__(self) -> "RunLock":
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            owner = self.info_path.read_text(encoding="utf-8").strip() if self.info_path.is_file() else "unknown"
            raise InputError(self.path, None, None, f"another {self.what} is writing here ({owner}); wait for it "
                             "to finish or stop it, then rerun (a killed process releases the lock)") from None
        self.info_path.write_text(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv[:3])}\n",
                                  encoding="utf-8")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.info_path.unlink(missing_ok=True)
        self._lock.release()
