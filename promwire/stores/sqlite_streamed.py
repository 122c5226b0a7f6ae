"""One series of a streamed remote read from the SQLite store.

:func:`series_chunks` gives a series' chunks over a time range as
:class:`~promwire.codec.messages.Chunk` objects (what
``SQLiteStorage.process_query_chunks`` yields); :func:`series_encoded` gives
the same chunks already in wire form
(:class:`~promwire.chunks.streamed.EncodedSeries`, what
``process_query_encoded`` yields and the streamed handler prefers): a sealed
range read whole is the records its :class:`~.sqlite_blocks.RecordRun` made
the first time, so a read of stored chunks joins bytes instead of encoding
each chunk's fields again. Both give the same bytes on the wire.

The rules, for both: stored chunks inside the range go as they are; a chunk
the range cuts is trimmed and re-encoded; head samples are cut like
Prometheus' head cuts them; out-of-order head samples that fall inside
stored chunks are merged and everything is cut again; native histograms in
range become histogram chunks beside the XOR ones, in time order.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from hashlib import blake2b

from ..chunks.streamed import EncodedSeries
from ..chunks.xor import decode_xor_bits
from ..codec.messages import Chunk, ChunkEncoding
from ..errors import EncodeError
from .sqlite_blocks import RecordRun, SealedView
from .sqlite_chunks import CHUNK_RANGE_MS, chunk_rows, cut_groups, encode_groups, unsealed_rows
from .sqlite_histograms import series_histogram_chunks

__all__ = ["any_histograms", "series_chunks", "series_encoded"]

#: Head samples of one series: timestamps and value bits, in time order.
Head = tuple[list[int], list[int]]


class _HeadGroups:
    """Head samples cut into chunks and encoded, remembered by a 128-bit
    BLAKE2b digest of the group's timestamps and value bits (the encoding is
    a function of them alone, so an entry is never stale): a series' closed
    head groups stay the same from one read to the next while new samples
    only change its last one, so a read of recent data encodes that one
    group. At most ``max_entries`` groups (about 1 KiB of chunk bytes each),
    oldest dropped first; shared by the threads and stores of a process."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._runs: dict[bytes, RecordRun] = {}
        self._lock = threading.Lock()

    def runs(self, ts: Sequence[int], bits: Sequence[int]) -> list[RecordRun]:
        """The chunks of ``ts``/``bits`` (sorted, cut like Prometheus' head),
        one :class:`~.sqlite_blocks.RecordRun` per group."""
        groups, _ = cut_groups(ts, None)
        out: list[RecordRun] = []
        for lo, hi in groups:
            key = blake2b(
                array("q", ts[lo:hi]).tobytes() + array("Q", bits[lo:hi]).tobytes(),
                digest_size=16,
            ).digest()
            run = self._runs.get(key)
            if run is None:
                chunks = tuple(encode_groups(ts, bits, [(lo, hi)]))
                run = RecordRun(chunks, sum(len(c[3]) for c in chunks))
                with self._lock:
                    while len(self._runs) >= self.max_entries:
                        del self._runs[next(iter(self._runs))]
                    self._runs[key] = run
            out.append(run)
        return out


_HEAD_GROUPS = _HeadGroups()


def any_histograms(conn: sqlite3.Connection) -> bool:
    """Whether the store holds any native histogram (in its head or as
    chunks): a read of a store without any skips looking for each series'."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM histograms) OR EXISTS (SELECT 1 FROM histogram_chunks)"
    ).fetchone()
    return bool(row[0])


def _encode(ts: Sequence[int], bits: Sequence[int]) -> list[Chunk]:
    return [
        Chunk(mint, maxt, ChunkEncoding.XOR, data)
        for run in _HEAD_GROUPS.runs(ts, bits)
        for mint, maxt, _, data in run.chunks
    ]


def _in_range(head: Head | None, start: int, end: int) -> Head:
    if head is None or not head[0]:
        return [], []
    lo, hi = bisect_left(head[0], start), bisect_right(head[0], end)
    return head[0][lo:hi], head[1][lo:hi]


def _trimmed(rows: list[tuple[int, int, int, bytes]], start: int, end: int) -> list[Chunk]:
    """Stored chunks as they are when inside ``[start, end]``, else trimmed."""
    chunks: list[Chunk] = []
    for mint, maxt, _, data in rows:
        if start <= mint and maxt <= end:
            chunks.append(Chunk(mint, maxt, ChunkEncoding.XOR, data))  # as stored
            continue
        t, b = decode_xor_bits(data)
        lo, hi = bisect_left(t, start), bisect_right(t, end)
        if lo < hi:
            chunks.extend(_encode(t[lo:hi], b[lo:hi]))
    return chunks


def series_chunks(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    head: Head | None,
    sealed: SealedView | None = None,
    histograms: bool = True,
) -> tuple[list[Chunk], bool]:
    """Series ``sid``'s chunks over ``[start, end]`` (``head``: its samples in
    the head; ``sealed``: the read's view of the sealed ranges, looked up
    when not given; ``histograms``: ``False`` when the store holds none, see
    :func:`any_histograms`) and whether histograms there had to be left out (stored
    before they were validated, they cannot all be encoded as chunks)."""
    rows = chunk_rows(conn, sid, start, end, sealed)
    hts, hbits = _in_range(head, start, end)
    if hts and rows and hts[0] <= rows[-1][1]:
        # Out-of-order samples waiting in the head overlap stored chunks: merge, re-cut.
        ts: list[int] = []
        bits: list[int] = []
        for *_, data in rows:
            t, b = decode_xor_bits(data)
            ts += t
            bits += b
        merged = dict(zip(hts, hbits, strict=True))
        merged.update(zip(ts, bits, strict=True))
        keys = [t for t in sorted(merged) if start <= t <= end]
        rows, hts, hbits = [], keys, [merged[t] for t in keys]
    chunks = _trimmed(rows, start, end)
    if hts:
        chunks.extend(_encode(hts, hbits))
    if not histograms:
        return chunks, False
    try:
        hchunks = series_histogram_chunks(conn, sid, start, end)
    except EncodeError:
        return chunks, True
    if not hchunks:
        return chunks, False
    if chunks:  # floats and histograms in one series: chunks in time order
        hchunks = sorted([*chunks, *hchunks], key=lambda c: (c.min_time_ms, c.max_time_ms))
    return hchunks, False


def series_encoded(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    head: Head | None,
    sealed: SealedView | None = None,
    histograms: bool = True,
) -> tuple[EncodedSeries, bool]:
    """:func:`series_chunks` in wire form (labels left empty for the caller).

    Sealed ranges inside ``[start, end]`` take their records from their
    cached :class:`~.sqlite_blocks.RecordRun`; what the range cuts, chunks
    not sealed yet and the head are encoded now. A series with histograms,
    or whose head overlaps its stored chunks, goes through
    :func:`series_chunks` (rare, and the same bytes)."""
    hts, hbits = _in_range(head, start, end)
    if sealed is None:
        sealed = SealedView.uncached(conn)
    walk = sealed.walk(conn, sid, start // CHUNK_RANGE_MS, end // CHUNK_RANGE_MS)
    runs = walk.runs
    loose = unsealed_rows(conn, sid, start, end)
    newest = max(
        loose[-1][1] if loose else start - 1, runs[-1].chunks[-1][1] if runs else start - 1
    )
    if hts and hts[0] <= newest:  # the head's out-of-order samples: merged, re-cut
        return _fallback(conn, sid, start, end, head, sealed, histograms)
    # Runs are in time order and do not overlap, so those wholly inside the
    # range are one stretch runs[first:stop]; only runs at its ends can be cut.
    first, stop = 0, len(runs)
    while first < stop and not (
        start <= runs[first].chunks[0][0] and runs[first].chunks[-1][1] <= end
    ):
        first += 1
    while stop > first and not (
        start <= runs[stop - 1].chunks[0][0] and runs[stop - 1].chunks[-1][1] <= end
    ):
        stop -= 1
    pieces: list[bytes] = []
    sizes: list[int] = []

    def add(chunks: list[Chunk]) -> None:
        if chunks:
            encoded = EncodedSeries.of((), chunks)
            pieces.extend(encoded.pieces)
            sizes.extend(encoded.sizes)

    def cut(part: tuple[RecordRun, ...]) -> list[Chunk]:
        rows = [c for run in part for c in run.chunks if c[1] >= start and c[0] <= end]
        return _trimmed(rows, start, end)

    add(cut(runs[:first]))
    more, lengths = walk.wire(first, stop)
    pieces += more
    sizes += lengths
    add(cut(runs[stop:]) + _trimmed(loose, start, end))
    if hts:
        for run in _HEAD_GROUPS.runs(hts, hbits):
            more, lengths = run.wire()
            pieces += more
            sizes += lengths
    if not histograms:
        return EncodedSeries((), tuple(pieces), tuple(sizes)), False
    try:
        has_histograms = bool(series_histogram_chunks(conn, sid, start, end))
    except EncodeError:
        return EncodedSeries((), tuple(pieces), tuple(sizes)), True
    if has_histograms:
        return _fallback(conn, sid, start, end, head, sealed)
    return EncodedSeries((), tuple(pieces), tuple(sizes)), False


def _fallback(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    head: Head | None,
    sealed: SealedView,
    histograms: bool = True,
) -> tuple[EncodedSeries, bool]:
    chunks, left_out = series_chunks(conn, sid, start, end, head, sealed, histograms)
    return EncodedSeries.of((), chunks), left_out
