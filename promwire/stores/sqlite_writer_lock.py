"""Between processes sharing one SQLite file, the write lock handed over at once.

SQLite makes a writer that finds the database locked sleep and retry (1, 2,
5, 10 ms, ...), so with ``serve --workers`` a request often sleeps several
milliseconds after the lock came free. :class:`WriterLock` is an ``flock``
on a sidecar file (``<database>-writer``, empty) taken before ``BEGIN
IMMEDIATE`` and released after the commit: a waiting process polls it every
50 µs to 1 ms instead.

It only orders the writers; SQLite's own locking stays what makes the file
safe. So nothing depends on it: where the sidecar cannot be created (a
read-only directory), where ``fcntl`` does not exist (Windows), or when
another process holds it longer than the store's ``timeout``, the write goes
ahead and SQLite arbitrates as before.

A second lock on the same file (:meth:`WriterLock.planning`, a record lock
on one byte) lets one process at a time plan a compaction.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock"]

#: Shortest and longest pause between two tries of a held lock (seconds).
_FIRST_PAUSE = 50e-6
_LONGEST_PAUSE = 1e-3


class WriterLock:
    """An exclusive ``flock`` on ``path + "-writer"``, when one can be had
    (``path`` None: an in-memory database, nothing to order)."""

    def __init__(self, path: str | None) -> None:
        self._fd: int | None = None
        if fcntl is None or path is None:
            return
        try:
            self._fd = os.open(path + "-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            self._fd = None  # SQLite's locking alone

    @contextmanager
    def held(self, timeout: float) -> Iterator[bool]:
        """Hold the lock for the block (yields whether it is held: after
        ``timeout`` seconds of trying the block runs without it)."""
        fd = self._fd
        if fd is None or fcntl is None:
            yield False
            return
        deadline = time.monotonic() + timeout
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(pause)
                pause = min(2 * pause, _LONGEST_PAUSE)
            except OSError:
                yield False  # e.g. a file system without flock
                return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def planning(self) -> Iterator[bool]:
        """Whether this process may plan a compaction now (yields False while
        another process is planning one, whose work would make this one's
        plan stale): a POSIX record lock on one byte of the sidecar, tried
        once, never waited for. On Linux record locks and ``flock`` do not
        interact, so it is independent of :meth:`held`. Only saves work:
        without the sidecar or record locks it yields True."""
        fd = self._fd
        if fd is None or fcntl is None:
            yield True
            return
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1)
        except OSError as exc:
            yield exc.errno not in (errno.EACCES, errno.EAGAIN)
            return
        try:
            yield True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, 1)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
