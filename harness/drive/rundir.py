"""A run directory that a crash, a resume or a second writer cannot spoil.

- :class:`RunLock`: an exclusive ``flock`` on ``<run>/.lock`` for as long as a run writes there;
  a second ``streamchaos`` with the same ``--run-id`` gets :class:`RunLocked` (with the holder's
  pid) instead of running every trial twice. The kernel drops the lock when its holder dies,
  however it dies, so a crashed run never leaves a stale lock.
- :func:`repair_torn_tail`: a line of ``trials.jsonl`` cut by a crash is removed on resume (that
  trial runs again), instead of staying in the file for good.
- :func:`segment_journal`: each run segment (the first run and every resume) gets a simulator
  journal file of its own, so sequence numbers and connection ids never repeat within a file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RunLocked(RuntimeError):
    pass


class RunLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise RunLocked(
                f"{self.path.parent} is in use by another streamchaos run (pid {holder}); wait for it to finish or choose another --run-id"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline (a write cut by a crash); the bytes removed."""
    try:
        with open(path, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return 0
            keep = 0
            step = 64 * 1024
            position = size
            while position > 0:
                start = max(0, position - step)
                handle.seek(start)
                chunk = handle.read(position - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                position = start
            handle.truncate(keep)
            os.fsync(handle.fileno())
            return size - keep
    except FileNotFoundError:
        return 0


def segment_journal(directory: Path, scenario: str) -> Path:
    """``journal-<scenario>.jsonl`` for the first segment, ``journal-<scenario>.segment-<n>.jsonl``
    (n = 2, 3, ...) for each resume."""
    first = directory / f"journal-{scenario}.jsonl"
    if not first.exists():
        return first
    for number in range(2, 100_000):
        candidate = directory / f"journal-{scenario}.segment-{number}.jsonl"
        if not candidate.exists():
            return candidate
    raise RuntimeError(f"{directory}: too many journal segments for {scenario}")
