"""The on-disk segment log under :class:`~promwire.client.durable.DurableWriter`.

One :class:`SegmentLog` per shard directory. It holds numbered segment files
(``00000001.wal``, ...) of records and one small ``acked`` file::

    record = header payload
    header = <u32 payload length> <u32 CRC-32 of payload> <u32 points>   (little endian)

The payload is opaque here (the writer stores a snappy-compressed
``WriteRequest``); ``points`` is how many samples + histograms + exemplars it
holds, so pending counts are known without decoding. ``acked`` holds
``"<segment> <offset>"``: everything before that position was answered 2xx.
It is replaced atomically (write a temporary file, ``os.replace``) after each
acknowledgement; segments wholly before it are deleted, never earlier. It is
not fsynced: if a power loss leaves it stale, empty or garbled, the log starts
from an older position or from its first segment, which re-sends
acknowledged records (duplicates) but never skips one.

Records are written with ``os.write`` on an unbuffered descriptor, so once
:meth:`SegmentLog.append` returns the bytes are in the kernel and survive a
``kill -9`` of the process; :meth:`SegmentLog.sync` (``fsync``) makes them
survive a power loss too. On opening, every segment is checked record by
record: a record cut short or failing its CRC at the end of the last
segment is a write the crash interrupted (its ``append`` never returned) and
is cut off; the same in an earlier segment is damage on disk, also cut off
and counted in :attr:`SegmentLog.damaged_bytes`.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import PromwireError

__all__ = ["HEADER", "Position", "SegmentLog", "WalError", "WalFull"]

#: Record header: payload length, CRC-32 (zlib) of the payload, points.
HEADER = struct.Struct("<III")
SUFFIX = ".wal"
ACK_FILE = "acked"


class WalError(PromwireError):
    """The write-ahead log cannot be used (bad directory, unreadable file)."""


class WalFull(WalError):
    """``max_bytes`` of the write-ahead log are in use and did not free up in time."""

    status = 429


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the log: segment number and byte offset in it."""

    segment: int
    offset: int


def _name(segment: int) -> str:
    return f"{segment:08d}{SUFFIX}"


def _scan(data: bytes) -> tuple[int, int]:
    """(bytes of whole, valid records at the start of ``data``, their points)."""
    pos = points = 0
    hsize = HEADER.size
    while pos + hsize <= len(data):
        length, crc, n = HEADER.unpack_from(data, pos)
        end = pos + hsize + length
        if end > len(data) or zlib.crc32(data[pos + hsize : end]) != crc:
            break
        points += n
        pos = end
    return pos, points


class SegmentLog:
    """An append-only log of records in segment files, with an acknowledged
    position. Thread-safe: one appender and one reader/acknowledger may run
    at the same time.

    ``segment_bytes``: a segment is closed and a new one started once it holds
    at least this many bytes. ``rotate_bytes``: when everything is
    acknowledged and the head segment holds at least this many bytes, a new
    segment is started so the old one can be deleted at once.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 8 << 20,
        rotate_bytes: int = 1 << 20,
    ) -> None:
        if segment_bytes < 1 or rotate_bytes < 1:
            raise ValueError("segment_bytes and rotate_bytes must be >= 1")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.rotate_bytes = rotate_bytes
        self.damaged_bytes = 0
        #: True when the ``acked`` file was unreadable and everything left is re-sent.
        self.ack_lost = False
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WalError(f"cannot create {self.directory}: {exc}") from None
        self.acked = self._read_ack()
        self._sizes: dict[int, int] = {}
        self.pending_points = 0
        self._recover()
        if not self._sizes:
            first = max(self.acked.segment, 1)
            self._create(first)
            self.acked = max(self.acked, Position(first, 0))
        self._head = max(self._sizes)
        self._fd = os.open(self._path(self._head), os.O_WRONLY | os.O_APPEND)

    # ------------------------------------------------------------- opening

    def _path(self, segment: int) -> Path:
        return self.directory / _name(segment)

    def _read_ack(self) -> Position:
        try:
            text = (self.directory / ACK_FILE).read_text(encoding="ascii")
        except FileNotFoundError:
            return Position(0, 0)
        except (OSError, UnicodeDecodeError) as exc:
            raise WalError(f"cannot read {self.directory / ACK_FILE}: {exc}") from None
        parts = text.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            # Empty or garbled (a power loss before the file reached the disk):
            # start from the first segment left. That can only re-send what
            # was acknowledged already (duplicates), never skip anything.
            self.ack_lost = True
            return Position(0, 0)
        return Position(int(parts[0]), int(parts[1]))

    def _recover(self) -> None:
        segments = sorted(
            int(p.name[: -len(SUFFIX)])
            for p in self.directory.iterdir()
            if p.name.endswith(SUFFIX) and p.name[: -len(SUFFIX)].isdigit()
        )
        for i, seg in enumerate(segments):
            path = self._path(seg)
            if seg < self.acked.segment:
                path.unlink()  # acknowledged: the crash came before its deletion
                continue
            data = path.read_bytes()
            valid, _ = _scan(data)
            if valid < len(data):
                if i != len(segments) - 1:
                    self.damaged_bytes += len(data) - valid
                with open(path, "r+b") as f:
                    f.truncate(valid)
            start = self.acked.offset if seg == self.acked.segment else 0
            start = min(start, valid)
            _, points = _scan(data[start:valid])
            self.pending_points += points
            self._sizes[seg] = valid
        if self._sizes and self.acked.segment < min(self._sizes):
            self.acked = Position(min(self._sizes), 0)

    def _create(self, segment: int) -> None:
        fd = os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.close(fd)
        self._sizes[segment] = 0

    # ------------------------------------------------------------- writing

    @property
    def bytes_on_disk(self) -> int:
        """Bytes of all segment files."""
        with self._lock:
            return sum(self._sizes.values())

    @property
    def end(self) -> Position:
        """Where the next record will start."""
        with self._lock:
            return Position(self._head, self._sizes[self._head])

    def append(self, payload: bytes, points: int) -> int:
        """Write one record; returns the bytes it took. In the kernel (not yet
        fsynced) when this returns."""
        record = HEADER.pack(len(payload), zlib.crc32(payload), points) + payload
        with self._lock:
            if self._sizes[self._head] >= self.segment_bytes:
                self._rotate()
            written = os.write(self._fd, record)
            while written < len(record):  # a short write (signal, disk nearly full)
                written += os.write(self._fd, record[written:])
            self._sizes[self._head] += len(record)
            self.pending_points += points
        return len(record)

    def _rotate(self) -> None:
        """Start the next segment (lock held)."""
        os.fsync(self._fd)  # the closed segment is complete on disk
        os.close(self._fd)
        self._head += 1
        self._create(self._head)
        self._fd = os.open(self._path(self._head), os.O_WRONLY | os.O_APPEND)
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """fsync the head segment: what was appended survives a power loss."""
        with self._lock:
            fd = self._fd
            os.fsync(fd)

    # ------------------------------------------------------------- reading

    def read(
        self, start: Position, *, max_points: int, max_bytes: int
    ) -> tuple[list[tuple[bytes, int]], Position]:
        """Records from ``start`` on: at least one if any is there, then more
        while under ``max_points`` points and ``max_bytes`` payload bytes.
        Returns them as (payload, points) and the position after the last."""
        out: list[tuple[bytes, int]] = []
        points = size = 0
        seg, off = start.segment, start.offset
        while True:
            with self._lock:
                head = self._head
                seg_size = self._sizes.get(seg)
            if seg_size is None:  # deleted or not created yet: go to the next one
                if seg >= head:
                    break
                seg, off = seg + 1, 0
                continue
            if off >= seg_size:
                if seg >= head:
                    break
                seg, off = seg + 1, 0
                continue
            hsize = HEADER.size
            with open(self._path(seg), "rb") as f:
                f.seek(off)
                while off + hsize <= seg_size:
                    length, crc, n = HEADER.unpack(f.read(hsize))
                    if out and (points + n > max_points or size + length > max_bytes):
                        return out, Position(seg, off)
                    payload = f.read(length)
                    if len(payload) < length or zlib.crc32(payload) != crc:
                        raise WalError(f"{self._path(seg)}: damaged record at offset {off}")
                    out.append((payload, n))
                    points += n
                    size += length
                    off += hsize + length
        return out, Position(seg, off)

    def ack(self, upto: Position, points: int) -> int:
        """Everything before ``upto`` was answered 2xx: record that, delete the
        segments wholly before it; returns the bytes freed."""
        freed = 0
        with self._lock:
            self.pending_points -= points
            head_size = self._sizes[self._head]
            if upto == Position(self._head, head_size) and head_size >= self.rotate_bytes:
                self._rotate()  # all sent: start afresh so the old head goes now
                upto = Position(self._head, 0)
            tmp = self.directory / (ACK_FILE + ".tmp")
            tmp.write_text(f"{upto.segment} {upto.offset}\n", encoding="ascii")
            os.replace(tmp, self.directory / ACK_FILE)
            self.acked = upto
            for seg in [s for s in self._sizes if s < upto.segment]:
                freed += self._sizes.pop(seg)
                self._path(seg).unlink()
        return freed

    def close(self) -> None:
        """fsync and close the head segment."""
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
