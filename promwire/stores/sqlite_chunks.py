"""Chunks at rest in the SQLite store: cutting, compaction and retention.

A series' settled samples live in the ``chunks`` table as Prometheus XOR
chunks (:mod:`promwire.chunks.xor`, byte-identical to Prometheus' encoder),
one row per chunk: ``(series_id, maxt, data)``, keyed by ``(series_id,
maxt)`` (a ``WITHOUT ROWID`` table: the key is the only index). A chunk's
sample count and oldest timestamp are read from its first bytes
(:func:`chunk_count`, :func:`chunk_mint`) rather than stored twice.

Chunks are cut like Prometheus 2.42's head cuts them (:func:`cut_groups`):
about 120 samples, a range's chunks of equal time, at most 240 samples (and
never over 1024 bytes), and never across a 2-hour boundary
(``CHUNK_RANGE_MS``, aligned on the epoch like TSDB blocks), so a chunk
always lies within one block range and retention can drop whole chunks.

The compaction (:func:`compact`) moves the postings of new series into their
blocks (:func:`~.sqlite_index.merge_postings`) and turns the head's
per-request records (:mod:`.sqlite_head`) into chunks, all in one transaction.
Its cutting and encoding can also be planned from a read snapshot
(:func:`plan_compaction`, outside the write lock while writes go on) and
written later in a short transaction (:func:`apply_compaction`, after
:func:`plan_is_current` found that no compaction ran since). Either way:

* every series' head samples are merged (first write wins for a timestamp
  sent twice), together with its stored chunks they overlap (out-of-order
  samples: the stored value wins) and its last chunk when that one is not
  full and the new samples continue it in the same 2-hour range;
* every complete group (120 samples, or a 2-hour range that has ended: a
  later range has samples, or the newest head sample is past its end plus
  the out-of-order window) becomes a chunk; the rest stays in the head as one
  new record; ``flush=True`` (on close) makes every group complete;
* samples older than the retention are dropped instead.

Retention (:func:`apply_retention`) deletes whole chunks: by time, every
chunk whose newest sample is older than the newest sample stored minus the
retention; by size, the oldest chunks until the used pages fit. SQLite
reuses the freed pages, so at steady state the file stops growing.
"""

from __future__ import annotations

import sqlite3
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..chunks.xor import (
    MAX_BYTES_PER_CHUNK,
    SAMPLES_PER_CHUNK,
    decode_xor_bits,
    decode_xor_columns,
)
from ..chunks.xor import _encode_prefix as encode_prefix
from ..codec.wire import read_varint, zigzag_decode
from ..errors import StorageError
from .fifo_cache import FifoCache
from .sqlite_blocks import (
    SealedView,
    block_span,
    delete_ranges_before,
    newest_sealed,
    oldest_block_rows,
    seal,
    sealed_chunks,
    unseal,
)
from .sqlite_head import HeadCache, RecordBuilder, first_wins
from .sqlite_index import merge_postings

__all__ = [
    "CHUNK_RANGE_MS",
    "CompactionResult",
    "DecodedChunks",
    "apply_retention",
    "chunk_count",
    "chunk_end",
    "chunk_mint",
    "chunk_rows",
    "compact",
    "cut_groups",
    "encode_groups",
    "range_end",
    "stored_chunks",
    "unsealed_rows",
]

#: Chunks never span a boundary of this range (TSDB's default block range: 2 h).
CHUNK_RANGE_MS = 2 * 60 * 60 * 1000
_MAX_BITS = MAX_BYTES_PER_CHUNK * 8


def range_end(t: int) -> int:
    """The end (exclusive) of the 2-hour range holding ``t``."""
    return (t // CHUNK_RANGE_MS + 1) * CHUNK_RANGE_MS


def chunk_end(start: int, cur: int, bound: int) -> int:
    """Where Prometheus' head ends a chunk begun at ``start`` once its 30th
    sample (at ``cur``) is in: the rest of the range up to ``bound`` split into
    chunks of equal time, as many as a chunk of this rate would fill with
    about 120 samples (TSDB's ``computeChunkEndTime``)."""
    n = (bound - start) // ((cur - start + 1) * 4)
    return bound if n <= 1 else start + (bound - start) // n


def cut_groups(ts: Sequence[int], cutoff: int | None) -> tuple[list[tuple[int, int]], int]:
    """Cut sorted timestamps into chunk groups ``[(lo, hi), ...]`` (index ranges).

    The cut of Prometheus 2.42's head (``appendPreprocessor``): a chunk ends
    at its 2-hour boundary, or earlier where :func:`chunk_end` predicts from
    its first 30 samples (so a range's chunks come out about equal, near 120
    samples), and at 240 samples at most. Returns the complete groups and the
    index where the incomplete rest starts: the last group is complete when
    full, when a sample past its end is there, when its end is before
    ``cutoff`` (the newest head sample minus the out-of-order window) or
    when ``cutoff`` is ``None`` (flush everything).
    """
    groups: list[tuple[int, int]] = []
    n = len(ts)
    lo = 0
    quarter = SAMPLES_PER_CHUNK // 4
    most = SAMPLES_PER_CHUNK * 2
    while lo < n:
        # The timestamps are sorted: each end is found by bisection.
        end = range_end(ts[lo])
        top = min(n, lo + quarter)
        hi = bisect_left(ts, end, lo + 1, top)
        if hi == top and top < n:  # 30 samples in: the predicted end
            end = chunk_end(ts[lo], ts[top - 1], end)
            hi = bisect_left(ts, end, top, min(n, lo + most))
        closed = hi - lo == most or hi < n or cutoff is None or end <= cutoff
        if not closed:
            break
        groups.append((lo, hi))
        lo = hi
    return groups, lo


def encode_groups(
    ts: Sequence[int], bits: Sequence[int], groups: Sequence[tuple[int, int]]
) -> Iterator[tuple[int, int, int, bytes]]:
    """XOR chunks ``(mint, maxt, n, data)`` for the groups (a group whose
    encoding would pass 1024 bytes is split, as Prometheus' head does)."""
    for lo, hi in groups:
        start = lo
        while start < hi:
            data, n = encode_prefix(ts, bits, start, hi - start, _MAX_BITS)
            yield ts[start], ts[start + n - 1], n, data
            start += n


def chunk_count(data: bytes) -> int:
    """The number of samples of an XOR chunk (its 2-byte big-endian header)."""
    if len(data) < 2:
        raise StorageError("damaged promwire database: a chunk shorter than its header")
    return (data[0] << 8) | data[1]


def chunk_mint(data: bytes) -> int:
    """The oldest timestamp of an XOR chunk (the signed varint after the count)."""
    try:
        return zigzag_decode(read_varint(data, 2)[0])
    except Exception as exc:  # a DecodeError of a truncated varint: the file is damaged
        raise StorageError("damaged promwire database: a chunk without a timestamp") from exc


def chunk_rows(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    sealed: SealedView | None = None,
) -> list[tuple[int, int, int, bytes]]:
    """Series ``sid``'s chunks overlapping ``[start, end]``: ``(mint, maxt, n, data)``
    in time order, sealed (:mod:`.sqlite_blocks`) and not (the chunks of a
    series never overlap: the first one starting after ``end`` ends the scan).
    ``sealed``: the read's :class:`~.sqlite_blocks.SealedView` (its cache is
    used), looked up uncached when not given."""
    if sealed is None:
        sealed = SealedView.uncached(conn)
    out: list[tuple[int, int, int, bytes]] = []
    for run in sealed.walk(conn, sid, start // CHUNK_RANGE_MS, end // CHUNK_RANGE_MS).runs:
        out += [row for row in run.chunks if row[1] >= start and row[0] <= end]
    sealed_rows = len(out)
    out += unsealed_rows(conn, sid, start, end)
    if sealed_rows and len(out) > sealed_rows:  # both tables (after an unseal): time order
        out.sort(key=lambda row: row[1])
    return out


def unsealed_rows(
    conn: sqlite3.Connection, sid: int, start: int, end: int
) -> list[tuple[int, int, int, bytes]]:
    """:func:`chunk_rows` of the ``chunks`` table only (not yet sealed)."""
    out: list[tuple[int, int, int, bytes]] = []
    cur = conn.execute(
        "SELECT maxt, data FROM chunks WHERE series_id = ? AND maxt >= ? ORDER BY maxt",
        (sid, start),
    )
    try:
        for maxt, blob in cur:
            data = bytes(blob)
            mint = chunk_mint(data)
            if mint > end:
                break
            out.append((mint, int(maxt), chunk_count(data), data))
    finally:
        cur.close()
    return out


def stored_chunks(conn: sqlite3.Connection) -> Iterator[tuple[int, int, int, int, bytes]]:
    """Every stored chunk, sealed or not: ``(series_id, mint, maxt, count, data)``."""
    yield from sealed_chunks(conn)
    for sid, maxt, blob in conn.execute("SELECT series_id, maxt, data FROM chunks"):
        data = bytes(blob)
        yield int(sid), chunk_mint(data), int(maxt), chunk_count(data), data


class DecodedChunks:
    """Recently decoded chunks, keyed by their bytes (decoding is a pure function
    of them, so an entry can never be stale, whichever process rewrote what).
    At most ``max_chunks`` entries (two arrays, about 2 KB for 120 samples), oldest
    dropped first; shared by the threads of a store."""

    def __init__(self, max_chunks: int = 2048) -> None:
        self.cache: FifoCache[bytes, tuple[array[int], array[float]]] = FifoCache(max_chunks)

    def decode(self, data: bytes) -> tuple[array[int], array[float]]:
        """``decode_xor_columns(data)``; the caller must not change the arrays."""
        hit = self.cache.get(data)
        if hit is None:
            hit = decode_xor_columns(data)
            self.cache.put(data, hit)
        return hit


@dataclass(slots=True)
class CompactionResult:
    """What one compaction did."""

    series: int = 0
    chunks_written: int = 0
    samples_sealed: int = 0
    samples_kept: int = 0
    chunks_rewritten: int = 0
    chunks_sealed: int = 0
    chunks_unsealed: int = 0
    sealed: dict[int, int] = field(default_factory=dict)  # series id -> newest chunk maxt


#: A series' stored chunks ending at or after a time, or its last chunk when
#: none does (``?1``: series id, ``?2``: the time).
_MERGE_CANDIDATES = (
    "SELECT maxt, data FROM chunks WHERE series_id = ?1 AND maxt >= "
    "(SELECT min(?2, max(maxt)) FROM chunks WHERE series_id = ?1) ORDER BY maxt"
)


@dataclass(slots=True)
class CompactionPlan:
    """What a compaction writes, decided from one snapshot of the head and the
    chunks (:func:`plan_compaction`), applied by :func:`apply_compaction`."""

    #: the head records it compacts, and what the trigger had counted then
    head_ids: list[int]
    head_samples: int
    #: stored chunks merged with new samples: ``(series_id, maxt)`` to delete
    merged: list[tuple[int, int]]
    #: chunks to insert: ``(series_id, maxt, data)``
    inserts: list[tuple[int, int, bytes]]
    #: the samples that stay in the head (open groups), as one record
    carry: RecordBuilder
    #: seal the ranges ended before ``cutoff`` (``None``: every range) when ``seal``
    cutoff: int | None
    seal: bool
    result: CompactionResult


def compact(
    conn: sqlite3.Connection,
    cache: HeadCache,
    *,
    ooo_window_ms: int,
    flush: bool = False,
    retention_ms: int | None = None,
) -> CompactionResult:
    """Move the head's complete groups into chunks, and the chunks of ended
    ranges into blocks (inside the caller's write transaction; see the module
    docstring)."""
    plan = plan_compaction(
        conn, cache, ooo_window_ms=ooo_window_ms, flush=flush, retention_ms=retention_ms
    )
    assert plan is not None  # may_unseal: always a plan
    return apply_compaction(conn, plan)


def plan_compaction(
    conn: sqlite3.Connection,
    cache: HeadCache,
    *,
    ooo_window_ms: int,
    flush: bool = False,
    retention_ms: int | None = None,
    may_unseal: bool = True,
    share_gil: bool = False,
) -> CompactionPlan | None:
    """Decide a compaction from ``conn``'s snapshot: the work of cutting and
    encoding, and no write unless samples reach a sealed range (those rows
    come back to chunks first, which writes: with ``may_unseal=False`` the
    answer is then ``None``, to be planned again inside a write transaction).
    ``share_gil``: offer the GIL to other threads every few series (writes
    going on meanwhile), not only every switch interval."""
    result = CompactionResult()
    view = cache.view(conn)
    counted = conn.execute("SELECT value FROM meta WHERE key = 'head_samples'").fetchone()
    plan = CompactionPlan(
        head_ids=view.ids,
        head_samples=int(counted[0]) if counted else 0,
        merged=[],
        inserts=[],
        carry=RecordBuilder(),
        cutoff=None,
        seal=flush,
        result=result,
    )
    by_series = view.by_series() if view else {}
    newest = max((max(ts) for ts, _ in by_series.values() if ts), default=None)
    if newest is None:
        return plan
    cutoff = None if flush else newest - ooo_window_ms
    plan.cutoff, plan.seal = cutoff, True
    floor = None
    if retention_ms is not None:
        stored = newest_stored(conn)
        floor = max(newest, newest if stored is None else stored) - retention_ms
    span = block_span(conn)
    if span is not None:
        # Samples reaching a sealed range: those series' rows there come back
        # to chunks first (one rewrite per pack), then merge as any others.
        oldest = {sid: min(ts) // CHUNK_RANGE_MS for sid, (ts, _) in by_series.items() if ts}
        wants = {sid: rng for sid, rng in oldest.items() if rng <= span[1]}
        if wants:
            if not may_unseal:
                return None
            result.chunks_unsealed = unseal(conn, wants, span)
    carry, inserts, merged = plan.carry, plan.inserts, plan.merged
    for sid in sorted(by_series):
        ts, bits = first_wins([by_series[sid]])
        if not ts:
            continue
        result.series += 1
        if share_gil and not result.series % 4:
            # A thread that gave the GIL up for a moment (an SQLite call, a
            # socket read) waits up to the switch interval (5 ms) to get it
            # back from a busy one: a write of a few dozen such calls would
            # take 50x its time while a compaction is planned.
            time.sleep(0)
        # Stored chunks that must be merged: those the new samples overlap
        # (out of order), else the last one when not full and continued. One
        # statement: the chunks from min(first new sample, newest chunk's maxt).
        old: list[tuple[int, bytes]] = [
            (int(a), bytes(b)) for a, b in conn.execute(_MERGE_CANDIDATES, (sid, ts[0]))
        ]
        if old and old[0][0] < ts[0]:  # only the last chunk, which ends before
            maxt, data = old[0]
            if chunk_count(data) >= SAMPLES_PER_CHUNK or range_end(maxt) != range_end(ts[0]):
                old = []
        if old:
            parts: list[tuple[Sequence[int], Sequence[int]]] = [
                decode_xor_bits(data) for _, data in old
            ]
            parts.append((ts, bits))
            ts, bits = first_wins(parts)
            merged += [(sid, maxt) for maxt, _ in old]
            result.chunks_rewritten += len(old)
        if floor is not None and ts[0] < floor:
            keep = next((i for i, t in enumerate(ts) if t >= floor), len(ts))
            ts, bits = ts[keep:], bits[keep:]
            if not ts:
                continue
        groups, rest = cut_groups(ts, cutoff)
        for _, maxt, _, data in encode_groups(ts, bits, groups):
            inserts.append((sid, maxt, data))
            result.sealed[sid] = maxt
        result.samples_sealed += rest
        if rest < len(ts):
            carry.add_bits(sid, ts[rest:], bits[rest:])
    result.chunks_written = len(inserts)
    result.samples_kept = len(carry)
    return plan


def plan_is_current(conn: sqlite3.Connection, plan: CompactionPlan) -> bool:
    """Whether ``plan``, made from an earlier snapshot, still applies in
    ``conn``'s write transaction: no compaction ran since (one deletes the
    records a plan compacts, and only a compaction changes chunks)."""
    if not plan.head_ids:
        return False
    now = [
        int(r[0])
        for r in conn.execute("SELECT id FROM head WHERE id <= ? ORDER BY id", (plan.head_ids[-1],))
    ]
    return now == plan.head_ids


def apply_compaction(conn: sqlite3.Connection, plan: CompactionPlan) -> CompactionResult:
    """Write ``plan`` (inside the caller's write transaction), after moving
    new series' postings into their blocks (planning does not read them)."""
    merge_postings(conn)
    result = plan.result
    conn.executemany("DELETE FROM chunks WHERE series_id = ? AND maxt = ?", plan.merged)
    conn.executemany("INSERT INTO chunks(series_id, maxt, data) VALUES (?, ?, ?)", plan.inserts)
    conn.executemany("DELETE FROM head WHERE id = ?", [(i,) for i in plan.head_ids])
    if len(plan.carry):
        # Kept samples go before every record written since the plan was made
        # (the first write of a timestamp wins): a negative id, never reused.
        (carry_id,) = conn.execute(
            "INSERT INTO meta VALUES ('head_kept_id', -1) "
            "ON CONFLICT(key) DO UPDATE SET value = value - 1 RETURNING value"
        ).fetchone()
        conn.execute(
            "INSERT INTO head(id, n, sids, offsets, ts, bits) VALUES (?, ?, ?, ?, ?, ?)",
            (int(carry_id), *plan.carry.row()),
        )
    # The trigger counts samples written since the plan's snapshot, not what it
    # kept: a kept group of more than the trigger's share (a series' first
    # chunk before a 2-hour boundary can be 160-240 samples) would otherwise
    # start a compaction of the whole head on every write until it closed.
    conn.execute(
        "UPDATE meta SET value = max(value - ?, 0) WHERE key = 'head_samples'",
        (plan.head_samples,),
    )
    if plan.seal:
        result.chunks_sealed = _seal_ended(conn, plan.cutoff)
    return result


def _seal_ended(conn: sqlite3.Connection, cutoff: int | None) -> int:
    """Seal every range ended before ``cutoff`` (``None``: every range) unless
    an earlier compaction already sealed up to there."""
    if cutoff is None:
        return seal(conn, None)
    before = cutoff // CHUNK_RANGE_MS * CHUNK_RANGE_MS
    row = conn.execute("SELECT value FROM meta WHERE key = 'sealed_before'").fetchone()
    if row is not None and int(row[0]) >= before:
        return 0
    moved = seal(conn, before)
    conn.execute(
        "INSERT INTO meta VALUES ('sealed_before', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (before,),
    )
    return moved


def newest_stored(conn: sqlite3.Connection) -> int | None:
    """About the newest stored sample's time: exact from ``chunks``, else the
    newest sealed row's (:func:`~.sqlite_blocks.newest_sealed`)."""
    row = conn.execute("SELECT max(maxt) FROM chunks").fetchone()
    newest = None if row[0] is None else int(row[0])
    sealed = newest_sealed(conn)
    if sealed is not None and (newest is None or sealed > newest):
        newest = sealed
    return newest


def excess_bytes(conn: sqlite3.Connection, bound: int) -> int:
    """How many bytes the pages in use take beyond ``bound``."""
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return (pages - free) * page - bound


def shed(
    conn: sqlite3.Connection, delete_sql: str, rows: Sequence[Sequence[Any]], excess: int
) -> int:
    """Delete the first ``rows`` (their key columns, then their size in bytes)
    until they hold ``excess`` bytes, with ``delete_sql`` taking a key; returns
    how many went."""
    doomed: list[tuple[Any, ...]] = []
    for *key, size in rows:
        doomed.append(tuple(key))
        excess -= int(size)
        if excess <= 0:
            break
    conn.executemany(delete_sql, doomed)
    return len(doomed)


def apply_retention(
    conn: sqlite3.Connection, *, retention_ms: int | None, retention_bytes: int | None
) -> int:
    """Delete chunks past the retention (inside the caller's write transaction);
    returns how many were deleted. Histograms and exemplars older than the
    time retention go too."""
    deleted = 0
    if retention_ms is not None:
        newest = newest_stored(conn)
        if newest is not None:
            floor = newest - retention_ms
            deleted += conn.execute("DELETE FROM chunks WHERE maxt < ?", (floor,)).rowcount
            deleted += delete_ranges_before(conn, floor)
            conn.execute("DELETE FROM histograms WHERE ts < ?", (floor,))
            conn.execute("DELETE FROM exemplars WHERE ts < ?", (floor,))
    if retention_bytes is not None:
        while (excess := excess_bytes(conn, retention_bytes)) > 0:
            # The oldest sealed rows first, then the oldest chunks, holding
            # about the excess (row overhead counted).
            sealed = [(key, size + 20) for key, size in oldest_block_rows(conn, 4096)]
            if sealed:
                deleted += shed(conn, "DELETE FROM blocks WHERE id = ?", sealed, excess)
                continue
            rows = conn.execute(
                "SELECT series_id, maxt, length(data) + 20 FROM chunks ORDER BY maxt LIMIT 4096"
            ).fetchall()
            if not rows:
                break
            deleted += shed(
                conn, "DELETE FROM chunks WHERE series_id = ? AND maxt = ?", rows, excess
            )
    return deleted
