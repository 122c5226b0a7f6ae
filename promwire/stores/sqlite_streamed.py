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

The rules, for both, are Prometheus 2.42's (``populateWithDelGenericSeriesIterator``):
every stored chunk that overlaps the range goes as it is, samples outside
the range included (clients filter by time; a read needs no decoding);
head samples are cut like Prometheus' head cuts them, over the whole head
so that a group's bounds do not move with the range, and the closed groups
that overlap the range go whole while the last, still open, is trimmed to
it (Prometheus re-encodes its open head chunk); out-of-order head samples
that fall inside stored chunks are merged and everything is cut again and
trimmed; native histograms in range become histogram chunks beside the XOR
ones, in time order.
"""

from __future__ import annotations

import sqlite3
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from hashlib import blake2b

from ..chunks.streamed import EncodedSeries
from ..chunks.xor import decode_xor_bits
from ..codec.messages import Chunk, ChunkEncoding
from ..errors import EncodeError
from .fifo_cache import FifoCache
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
        #: runs by the digest of their samples
        self.cache: FifoCache[bytes, RecordRun] = FifoCache(max_entries)
        #: runs by group bounds, for the shared lists of a series' merged head
        #: samples (:attr:`~.sqlite_head.HeadCache.merged`): an entry holds its lists, so
        #: their ``id`` cannot be another list's while it is here
        self.by_lists: FifoCache[int, tuple[list[int], list[int], dict[tuple[int, int], RecordRun]]]
        self.by_lists = FifoCache(1 << 18)

    def run(self, ts: Sequence[int], bits: Sequence[int], lo: int, hi: int) -> RecordRun:
        """The chunks of the group ``ts[lo:hi]``, ``bits[lo:hi]``."""
        key = blake2b(
            array("q", ts[lo:hi]).tobytes() + array("Q", bits[lo:hi]).tobytes(), digest_size=16
        ).digest()
        run = self.cache.get(key)
        if run is None:
            chunks = tuple(encode_groups(ts, bits, [(lo, hi)]))
            run = RecordRun(chunks, sum(len(c[3]) for c in chunks))
            self.cache.put(key, run)
        return run

    def runs(self, ts: Sequence[int], bits: Sequence[int], groups: Groups) -> list[RecordRun]:
        """:meth:`run` of each of ``groups``; for lists seen before (the same
        objects), by their bounds, without a digest."""
        if not isinstance(ts, list) or not isinstance(bits, list):
            return [self.run(ts, bits, lo, hi) for lo, hi in groups]
        entry = self.by_lists.get(id(ts))
        if entry is None or entry[0] is not ts or entry[1] is not bits:
            entry = (ts, bits, {})
            self.by_lists.put(id(ts), entry, len(ts) or 1)
        known = entry[2]
        out = []
        for lo, hi in groups:
            run = known.get((lo, hi))
            if run is None:
                run = known[(lo, hi)] = self.run(ts, bits, lo, hi)
            out.append(run)
        return out


#: Index ranges ``(lo, hi)`` of head samples, one per chunk group.
Groups = list[tuple[int, int]]


def head_groups(ts: Sequence[int], start: int, end: int) -> Groups:
    """The groups of a series' head samples ``ts`` (sorted) that a read of
    ``[start, end]`` sends: cut over the whole head, those overlapping the
    range, the last (still open) trimmed to it."""
    groups, _ = cut_groups(ts, None)
    out: Groups = []
    last = len(groups) - 1
    for k, (lo, hi) in enumerate(groups):
        if ts[hi - 1] < start or ts[lo] > end:
            continue
        if k == last:
            lo, hi = bisect_left(ts, start, lo, hi), bisect_right(ts, end, lo, hi)
            if lo == hi:
                continue
        out.append((lo, hi))
    return out


_HEAD_GROUPS = _HeadGroups()


def any_histograms(conn: sqlite3.Connection) -> bool:
    """Whether the store holds any native histogram (in its head or as
    chunks): a read of a store without any skips looking for each series'."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM histograms) OR EXISTS (SELECT 1 FROM histogram_chunks)"
    ).fetchone()
    return bool(row[0])


def _encode(ts: Sequence[int], bits: Sequence[int], groups: Groups) -> list[Chunk]:
    return [
        Chunk(mint, maxt, ChunkEncoding.XOR, data)
        for run in _HEAD_GROUPS.runs(ts, bits, groups)
        for mint, maxt, _, data in run.chunks
    ]


def _as_stored(rows: Sequence[tuple[int, int, int, bytes]]) -> list[Chunk]:
    return [Chunk(mint, maxt, ChunkEncoding.XOR, data) for mint, maxt, _, data in rows]


def _head_part(head: Head | None, start: int, end: int) -> tuple[list[int], list[int], Groups]:
    """A series' head samples and the groups of them a read sends."""
    if head is None or not head[0]:
        return [], [], []
    return head[0], head[1], head_groups(head[0], start, end)


def series_chunks(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    head: Head | None,
    sealed: SealedView | None = None,
    histograms: bool = True,
    histogram_chunks: list[Chunk] | None = None,
) -> tuple[list[Chunk], bool]:
    """Series ``sid``'s chunks over ``[start, end]`` (``head``: its samples in
    the head; ``sealed``: the read's view of the sealed ranges, looked up
    when not given; ``histograms``: ``False`` when the store holds none, see
    :func:`any_histograms`; ``histogram_chunks``: its histogram chunks in
    range when the caller has made them already) and whether histograms
    there had to be left out (stored before they were validated, they cannot
    all be encoded as chunks)."""
    rows = chunk_rows(conn, sid, start, end, sealed)
    hts, hbits, groups = _head_part(head, start, end)
    if groups and rows and hts[groups[0][0]] <= rows[-1][1]:
        # Out-of-order samples waiting in the head overlap stored chunks:
        # merged (what is stored wins), cut again, trimmed to the range.
        ts: list[int] = []
        bits: list[int] = []
        for *_, data in rows:
            t, b = decode_xor_bits(data)
            ts += t
            bits += b
        lo, hi = bisect_left(hts, start), bisect_right(hts, end)
        merged = dict(zip(hts[lo:hi], hbits[lo:hi], strict=True))
        merged.update(zip(ts, bits, strict=True))
        keys = [t for t in sorted(merged) if start <= t <= end]
        rows, hts, hbits = [], keys, [merged[t] for t in keys]
        groups = cut_groups(hts, None)[0]
    chunks = _as_stored(rows)
    if groups:
        chunks.extend(_encode(hts, hbits, groups))
    if not histograms:
        return chunks, False
    try:
        hchunks = (
            series_histogram_chunks(conn, sid, start, end)
            if histogram_chunks is None
            else histogram_chunks
        )
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

    Sealed ranges take their records from their cached
    :class:`~.sqlite_blocks.RecordRun` (those wholly inside ``[start, end]``
    joined once, :meth:`~.sqlite_blocks.Walk.wire`); chunks not sealed yet
    are encoded now, and head groups come from their cache. A series with
    histograms, or whose head overlaps its stored chunks, goes through
    :func:`series_chunks` (rare, and the same bytes)."""
    hts, hbits, groups = _head_part(head, start, end)
    if sealed is None:
        sealed = SealedView.uncached(conn)
    walk = sealed.walk(conn, sid, start // CHUNK_RANGE_MS, end // CHUNK_RANGE_MS)
    runs = walk.runs
    loose = unsealed_rows(conn, sid, start, end)
    newest = max(
        loose[-1][1] if loose else start - 1, runs[-1].chunks[-1][1] if runs else start - 1
    )
    if groups and hts[groups[0][0]] <= newest:  # the head's out-of-order samples
        return _fallback(conn, sid, start, end, head, sealed, histograms)
    # Runs are in time order and do not overlap, so those wholly inside the
    # range are one stretch runs[first:stop], joined once; of a run at either
    # end, the chunks that overlap the range.
    first, stop = 0, len(runs)
    while first < stop and not _inside(runs[first], start, end):
        first += 1
    while stop > first and not _inside(runs[stop - 1], start, end):
        stop -= 1
    pieces: list[bytes] = []
    sizes: list[int] = []
    for run in runs[:first]:
        _add_overlapping(run, start, end, pieces, sizes)
    more, lengths = walk.wire(first, stop)
    pieces += more
    sizes += lengths
    for run in runs[stop:]:
        _add_overlapping(run, start, end, pieces, sizes)
    if loose:
        encoded = EncodedSeries.of((), _as_stored(loose))
        pieces += encoded.pieces
        sizes += encoded.sizes
    for run in _HEAD_GROUPS.runs(hts, hbits, groups):
        more, lengths = run.wire()
        pieces += more
        sizes += lengths
    if not histograms:
        return EncodedSeries((), tuple(pieces), tuple(sizes)), False
    try:
        hchunks = series_histogram_chunks(conn, sid, start, end)
    except EncodeError:
        return EncodedSeries((), tuple(pieces), tuple(sizes)), True
    if hchunks:  # floats and histograms in time order: made once, merged there
        return _fallback(conn, sid, start, end, head, sealed, histogram_chunks=hchunks)
    return EncodedSeries((), tuple(pieces), tuple(sizes)), False


def _inside(run: RecordRun, start: int, end: int) -> bool:
    return start <= run.chunks[0][0] and run.chunks[-1][1] <= end


def _add_overlapping(
    run: RecordRun, start: int, end: int, pieces: list[bytes], sizes: list[int]
) -> None:
    """The records of ``run``'s chunks that overlap ``[start, end]``, as they are."""
    chunks = run.chunks
    lo, hi = 0, len(chunks)
    while lo < hi and chunks[lo][1] < start:
        lo += 1
    while hi > lo and chunks[hi - 1][0] > end:
        hi -= 1
    if lo < hi:
        more, lengths = run.wire()
        pieces += more[2 * lo : 2 * hi]
        sizes += lengths[lo:hi]


def _fallback(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    head: Head | None,
    sealed: SealedView,
    histograms: bool = True,
    histogram_chunks: list[Chunk] | None = None,
) -> tuple[EncodedSeries, bool]:
    chunks, left_out = series_chunks(
        conn, sid, start, end, head, sealed, histograms, histogram_chunks
    )
    return EncodedSeries.of((), chunks), left_out
