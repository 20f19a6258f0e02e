"""A service's access log: one JSON line per request, appended by every replica of the service, rotated by size.

Rotation keeps ``access.log`` plus ``BACKUPS`` older files (``access.log.1`` newest ... ``access.log.5``), each about
``MAX_BYTES``, so a busy service holds at most ~60 MB of access log. Several replicas append to the same file: the
one whose write crosses the size takes a lock, checks the file was not rotated by another meanwhile, shifts the
files and reopens; the others notice that the path now names a new file (its inode changed) and reopen it before
their next write, so no replica keeps writing into a rotated file.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


class AccessLog:
    """Args:
        path: the log file (created on first use).
        max_bytes: rotate once the file reaches this size. Default ``MAX_BYTES``.
        backups: rotated files kept. Default ``BACKUPS``.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._handle = None
        self._inode = None

    def _open(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - held for the log's life
        self._inode = os.fstat(self._handle.fileno()).st_ino

    def _current(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def write(self, line: str) -> None:
        if self._handle is None or not self._current():
            self._open()
        self._handle.write(line)
        if self._handle.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        import fcntl

        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # another replica may have rotated while we waited for the lock: then the path is a new, small file
            if self._current() and os.stat(self.path).st_size >= self.max_bytes:
                for index in range(self.backups - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{index}")
                    if older.exists():
                        os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            self._open()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
