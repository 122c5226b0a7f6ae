"""Native histograms at rest in the SQLite store: histogram chunks, losslessly.

A series' histograms arrive as rows of the ``histograms`` table (their
protobuf bytes, ``promwire.encode(Histogram)``; first write of a timestamp
wins): that table is the histogram **head**. The compaction
(:func:`compact_histograms`, run in the same transaction as the float
compaction) moves complete chunks of a series' histograms into the
``histogram_chunks`` table, one row per chunk keyed ``(series_id, maxt)``:
``data`` is a ``HISTOGRAM`` or ``FLOAT_HISTOGRAM`` chunk laid out bit for bit
as Prometheus' appender writes it (:mod:`promwire.chunks.histogram`,
:mod:`promwire.chunks.float_histogram`), ``encoding`` says which, and
``extra`` is what such a chunk cannot say (``NULL`` when nothing).

**The lossless rule.** A read must give back every histogram exactly as it
was written (its ``encode()`` bytes equal), so histograms are never
*recoded*: a chunk holds histograms that all have the same schema, zero
threshold and spans as its first one, and a new chunk starts whenever the
next histogram differs in any of them, in flavour (integer / float), after a
stale marker, at a counter reset (a count or bucket going down, or the hint
YES: a chunk's later samples read back as "not a reset", which must be
true), between gauge and counter hints, after 120 histograms, at a 2-hour
boundary (``CHUNK_RANGE_MS``, like the XOR chunks) and past Prometheus' size
target (2 KiB once at least 10 histograms are in). What the chunk format
cannot say goes to ``extra`` (:func:`_extra_for`): each histogram's reset
hint when it is not the one the chunk decodes to (Prometheus' senders mark
every counter histogram UNKNOWN; a chunk decodes its later samples as NO),
whether its count or zero count was absent rather than 0 (a oneof field a
sender may leave out), and the bucket bounds of custom-bucket histograms
(schema -53, which a chunk has no room for; all of a chunk's share them).

Every chunk is **verified** before it is stored: it is decoded (with its
``extra``) and each histogram compared with the one it was built from (the
head row's, decoded): every field equal, floats bit for bit, integer and
float fields not mixed (:func:`_exact`), so a read of the chunk gives back
exactly what a read of the row gives back. (It compared the protobuf bytes
of both before: as strict, ten times the cost.) A histogram that does not
come back exactly (a zero threshold of
-0.0, which a chunk writes as 0; integer and float oneofs mixed, such as an
integer count beside a float zero count; a float histogram carrying integer
deltas) stays a head row - the fallback - and the others are chunked around
it; later compactions leave such a row (and the chunks around it) alone.
Reads merge chunks and head rows by time (a stored chunk wins a timestamp
sent twice: it was there first), so every histogram is found whether it is
chunked or not.

A histogram resent after it was chunked becomes a head row again for a
while; the next compaction sees its timestamp in a chunk and deletes it
(one that no chunk could hold anyway is simply left: reads prefer the
chunk's). An out-of-order histogram (older than the series' newest chunk)
makes the compaction decode the chunks from its time on, merge and re-cut
them; one that could not be chunked anyway is left as a row without
touching them.
"""

from __future__ import annotations

import sqlite3
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import ge

from ..chunks.bitstream import BitReader
from ..chunks.float_histogram import decode_float_histogram_chunk, encode_float_histogram_chunk
from ..chunks.histogram import decode_histogram_chunk, encode_histogram_chunk
from ..chunks.histogram_cut import cut_histogram_chunks
from ..chunks.histogram_fast import HistogramColumns, decode_columns, histograms_of
from ..chunks.histogram_layout import (
    STALE_NAN_BITS,
    CounterResetHeader,
    header_for_hint,
    read_layout,
)
from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.messages import Chunk, ChunkEncoding, Histogram, ResetHint
from ..errors import DecodeError, EncodeError, StorageError
from .fifo_cache import FifoCache
from .sqlite_blocks import block_span
from .sqlite_chunks import CHUNK_RANGE_MS, excess_bytes, newest_stored, range_end, shed

__all__ = [
    "DECODED_HISTOGRAMS",
    "HISTOGRAM_CHUNKS_SCHEMA",
    "DecodedHistogramChunks",
    "HistogramCompaction",
    "compact_histograms",
    "count_histograms",
    "histogram_chunk_mint",
    "note_head_histograms",
    "series_histogram_chunks",
    "series_histograms",
]

#: The table of histogram chunks (appended to the store's schema), and the
#: head's histogram count (the compaction trigger counts it with the floats).
HISTOGRAM_CHUNKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS histogram_chunks (
    series_id INTEGER NOT NULL,
    maxt      INTEGER NOT NULL,            -- its newest histogram; count and oldest are in data
    encoding  INTEGER NOT NULL,            -- ChunkEncoding: 2 HISTOGRAM, 3 FLOAT_HISTOGRAM
    data      BLOB NOT NULL,               -- the chunk, as Prometheus lays it out
    extra     BLOB,                        -- NULL, or what data cannot say (hints, absent counts)
    PRIMARY KEY (series_id, maxt)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('head_histograms', 0);
"""

#: At most this many histograms a chunk (Prometheus' head aims for 120).
HISTOGRAMS_PER_CHUNK = 120
#: A chunk is cut once it holds this many bytes (Prometheus: 2 x its 1 KiB target) ...
_CUT_BYTES = 2048
#: ... and at least this many histograms.
_MIN_HISTOGRAMS = 10

# extra: one byte per histogram (or one for all): the hint, and two "absent" flags.
_HINT_MASK = 0b0011
_COUNT_ABSENT = 0b0100
_ZERO_ABSENT = 0b1000
_ALL_SAME = 0x80
_HINTS = [ResetHint(i) for i in range(4)]

_MINT_PREFIX = 128
_d = struct.Struct("<d")
_Q = struct.Struct("<Q")


def _sum_bits(h: Histogram) -> int:
    try:
        return int(_Q.unpack(_d.pack(h.sum))[0])
    except struct.error:
        return -1  # not a float: the encoder refuses it, verification keeps it a row


def _zt_bits(h: Histogram) -> int:
    try:
        return int(_Q.unpack(_d.pack(h.zero_threshold))[0])
    except struct.error:
        return -1


# ----------------------------------------------------------------------------- at rest


def _first_time(data: bytes) -> tuple[int, bool]:
    """The first timestamp after the layout, and whether it lies inside ``data``."""
    r = BitReader(data, 24)
    read_layout(r)
    t = r.varbit_int()
    return t, r.pos <= r.size


def histogram_chunk_mint(data: bytes) -> int:
    """The oldest timestamp of a stored histogram chunk (after its layout)."""
    try:
        # It lies near the start: a prefix is read first (cutting all of a
        # chunk into the reader's words costs more), all of it if need be.
        try:
            t, inside = _first_time(data[:_MINT_PREFIX])
        except DecodeError:
            inside = False
        if not inside and len(data) > _MINT_PREFIX:
            t, inside = _first_time(data)
    except (DecodeError, IndexError, ValueError) as exc:
        raise StorageError("damaged promwire database: an unreadable histogram chunk") from exc
    if not inside:
        raise StorageError("damaged promwire database: a truncated histogram chunk")
    return t


class DecodedHistogramChunks:
    """Recently read ``HISTOGRAM`` chunks, decoded into columns
    (:class:`~promwire.chunks.histogram_fast.HistogramColumns`), keyed by their
    bytes: decoding is a pure function of them, so an entry is never stale,
    whichever store or process rewrote what. A hit still builds new
    ``Histogram`` objects (callers may change them), skipping the bit-level
    decoding. At most ``max_histograms`` histograms are kept (~0.7 KB each
    with 15 buckets: ~22 MB at the default), the oldest entries dropped
    first; thread-safe. Chunks the fast decoder leaves to the generic one
    (stale markers, more than 256 buckets) are not kept."""

    def __init__(self, max_histograms: int = 32_768) -> None:
        #: columns by chunk bytes, weighed in histograms
        self.cache: FifoCache[bytes, HistogramColumns] = FifoCache(max_histograms)

    def decode(self, data: bytes) -> list[Histogram]:
        """``decode_histogram_chunk(data)``, from the columns kept when possible."""
        hit = self.cache.get(data)
        if hit is not None:
            return histograms_of(hit)
        cols = decode_columns(data)
        if cols is None:
            return decode_histogram_chunk(data)
        self.cache.put(data, cols, len(cols))
        return histograms_of(cols)

    def clear(self) -> None:
        """Forget every entry (a cold read's timing, tests)."""
        self.cache.clear()


#: The cache of every store in this process (reads only: the compaction does not fill it).
DECODED_HISTOGRAMS = DecodedHistogramChunks()


def _decode_chunk(
    encoding: int, data: bytes, extra: bytes | None, cache: DecodedHistogramChunks | None = None
) -> list[Histogram]:
    """The histograms of a stored chunk, exactly as written (``extra`` applied);
    ``cache`` (reads) keeps integer chunks' columns."""
    try:
        if encoding == ChunkEncoding.FLOAT_HISTOGRAM:
            out = decode_float_histogram_chunk(data)
        elif encoding == ChunkEncoding.HISTOGRAM:
            out = decode_histogram_chunk(data) if cache is None else cache.decode(data)
        else:
            raise StorageError(f"damaged promwire database: histogram chunk encoding {encoding}")
    except DecodeError as exc:
        raise StorageError(f"damaged promwire database: a histogram chunk: {exc}") from exc
    return _with_extra(out, extra)


def _with_extra(hs: list[Histogram], extra: bytes | None) -> list[Histogram]:
    """``hs`` (just decoded, changed in place) with ``extra`` applied."""
    if not extra:
        return hs
    blob = bytes(extra)
    n = len(hs)
    if blob[0] & _ALL_SAME:
        flags, rest = bytes([blob[0] & ~_ALL_SAME]) * n, blob[1:]
    else:
        flags, rest = blob[:n], blob[n:]
    if len(flags) != n or len(rest) % 8:
        raise StorageError("damaged promwire database: a histogram chunk's extra")
    bounds = list(struct.unpack(f"<{len(rest) // 8}d", rest))
    if n and not bounds and flags[0] < 4 and flags.count(flags[0]) == n:
        hint = _HINTS[flags[0]]  # the common case: one hint for all, nothing absent
        for h in hs:
            h.reset_hint = hint
        return hs
    for h, f in zip(hs, flags, strict=True):
        _apply(h, f)
        if bounds and not _stale(h):
            h.custom_values = list(bounds)
    return hs


def _apply(h: Histogram, flags: int) -> None:
    h.reset_hint = _HINTS[flags & _HINT_MASK]
    if flags & _COUNT_ABSENT:
        h.count_int = None
    if flags & _ZERO_ABSENT:
        h.zero_count_int = h.zero_count_float = None


def _flags(h: Histogram) -> int:
    """A histogram's byte of ``extra``: its hint and which counts were absent."""
    flags = int(h.reset_hint) & _HINT_MASK
    if h.count_int is None and h.count_float is None:
        flags |= _COUNT_ABSENT
    if h.zero_count_int is None and h.zero_count_float is None:
        flags |= _ZERO_ABSENT
    return flags


def _extra_for(wanted: Sequence[Histogram], decoded: Sequence[Histogram]) -> bytes | None:
    """``extra`` for a chunk of ``wanted`` that decodes to ``decoded``: ``None``
    when the chunk says it all. Else the flags - one byte when every
    histogram has the same (``0x80`` set), else one byte per histogram -
    followed by the custom bucket bounds of a custom-bucket chunk (schema
    -53: a chunk has no room for them), as little-endian doubles."""
    want = bytes(map(_flags, wanted))
    bounds = next((h.custom_values for h in wanted if h.custom_values and not _stale(h)), [])
    if not bounds and want == bytes(map(_flags, decoded)):
        return None
    head = bytes([want[0] | _ALL_SAME]) if want.count(want[0]) == len(want) else want
    try:
        return head + struct.pack(f"<{len(bounds)}d", *bounds)
    except struct.error:
        return head  # not floats: the verification keeps those histograms rows


# ----------------------------------------------------------------------------- cutting


@dataclass(slots=True)
class _Item:
    """A histogram being compacted: where it is now (and its row's bytes)."""

    ts: int
    h: Histogram
    raw: bytes | None  # the head row's data; None for one decoded from a stored chunk
    in_chunk: bool  # decoded from a stored chunk (not a head row)


def _stale(h: Histogram) -> bool:
    return _sum_bits(h) == STALE_NAN_BITS


def _gauge(h: Histogram) -> bool:
    return int(h.reset_hint) == ResetHint.GAUGE


def _buckets(h: Histogram) -> list[float] | list[int]:
    if h.is_float:
        return [*h.positive_counts, *h.negative_counts]
    return [*accumulate(h.positive_deltas), *accumulate(h.negative_deltas)]


def _counts(h: Histogram) -> tuple[float, float]:
    if h.is_float:
        return float(h.count_float or 0.0), float(h.zero_count_float or 0.0)
    return float(h.count_int or 0), float(h.zero_count_int or 0)


def _fits(
    first: Histogram,
    last: Histogram,
    h: Histogram,
    memo: dict[int, list[float] | list[int]] | None = None,
) -> bool:
    """Whether ``h`` may follow ``last`` in a chunk starting with ``first``
    without recoding and without a counter reset inside the chunk."""
    if h.is_float != first.is_float or _gauge(h) != _gauge(first):
        return False
    if _stale(h):
        return True
    if _stale(last) or _stale(first):
        return False
    if (
        h.schema != first.schema
        or _zt_bits(h) != _zt_bits(first)
        or h.positive_spans != first.positive_spans
        or h.negative_spans != first.negative_spans
        or h.custom_values != first.custom_values
    ):
        return False
    if _gauge(h):
        return True
    if int(h.reset_hint) == ResetHint.YES:
        return False
    (c, z), (lc, lz) = _counts(h), _counts(last)
    if c < lc or z < lz:
        return False
    if memo is None:
        memo = {}
    for x in (h, last):
        if id(x) not in memo:
            memo[id(x)] = _buckets(x)
    return all(map(ge, memo[id(h)], memo[id(last)]))


def _cut(items: Sequence[_Item]) -> list[tuple[int, int]]:
    """Index ranges of the *runs* of ``items`` (sorted by time): histograms
    that may share chunks by the lossless rule, within one 2-hour range. A
    run is then cut into chunks by count and size (:func:`_build`)."""
    runs: list[tuple[int, int]] = []
    lo = 0
    n = len(items)
    memo: dict[int, list[float] | list[int]] = {}  # absolute buckets by id(histogram)
    while lo < n:
        first = items[lo].h
        end = range_end(items[lo].ts)
        hi = lo + 1
        while hi < n and items[hi].ts < end and _fits(first, items[hi - 1].h, items[hi].h, memo):
            hi += 1
        runs.append((lo, hi))
        lo = hi
    return runs


def _encode(hs: Sequence[Histogram], cut_bytes: int | None = None) -> tuple[int, bytes]:
    header = CounterResetHeader(header_for_hint(int(hs[0].reset_hint)))
    if hs[0].is_float:
        data = encode_float_histogram_chunk(
            hs, header=header, cut_bytes=cut_bytes, cut_min=_MIN_HISTOGRAMS
        )
        return ChunkEncoding.FLOAT_HISTOGRAM, data
    data = encode_histogram_chunk(hs, header=header, cut_bytes=cut_bytes, cut_min=_MIN_HISTOGRAMS)
    return ChunkEncoding.HISTOGRAM, data


def _encode_capped(hs: Sequence[Histogram]) -> tuple[int, int, bytes]:
    """The longest prefix of ``hs`` Prometheus' size rule lets into one chunk:
    ``(n, encoding, data)``. The head cuts before appending once the chunk
    holds >= 2 KiB and >= 10 histograms, so ``n`` is the smallest count >= 10
    whose chunk reaches 2 KiB (or all of ``hs``): the encoder stops there
    (one pass, the count is in the chunk's header). Raises :class:`EncodeError`."""
    enc, data = _encode(hs, _CUT_BYTES)
    return (data[0] << 8) | data[1], enc, data


@dataclass(slots=True)
class _Built:
    maxt: int
    encoding: int
    data: bytes
    extra: bytes | None
    items: list[_Item]


def _verify(part: Sequence[_Item], enc: int, data: bytes) -> tuple[set[int], bytes | None]:
    """Decode a chunk built of ``part`` and compare: the indexes of the
    histograms that do not come back exactly (:func:`_exact`), and the extra
    the chunk needs."""
    everything = set(range(len(part)))
    try:
        back = _decode_chunk(enc, data, None)
    except StorageError:
        return everything, None
    if len(back) != len(part):
        return everything, None
    extra = _extra_for([it.h for it in part], back)
    _with_extra(back, extra)
    return {
        i for i, (h, it) in enumerate(zip(back, part, strict=True)) if not _exact(h, it.h)
    }, extra


def _float_key(v: object) -> object:
    """A float as its bit pattern (``-0.0``, NaN payloads told apart); others as they are."""
    return _Q.unpack(_d.pack(v))[0] if type(v) is float else v


def _floats_key(vs: list[float]) -> object:
    """Floats (of promwire's decoders) as their bit patterns."""
    if not vs:
        return b""
    try:
        return struct.pack(f"<{len(vs)}d", *vs)
    except struct.error:
        return vs


def _key(h: Histogram) -> tuple[object, ...]:
    """Every field of ``h``, floats as bit patterns, each with its type: two
    histograms with equal keys encode to the same bytes."""
    return (
        type(h.count_int),
        h.count_int,
        _float_key(h.count_float),
        _float_key(h.sum),
        type(h.schema),
        h.schema,
        _float_key(h.zero_threshold),
        type(h.zero_count_int),
        h.zero_count_int,
        _float_key(h.zero_count_float),
        h.negative_spans,
        h.negative_deltas,  # ints: both sides come from promwire's decoders
        _floats_key(h.negative_counts),
        h.positive_spans,
        h.positive_deltas,
        _floats_key(h.positive_counts),
        int(h.reset_hint),
        type(h.timestamp),
        h.timestamp,
        _floats_key(h.custom_values),
    )


def _exact(back: Histogram, want: Histogram) -> bool:
    """Whether a histogram decoded from a chunk is exactly ``want`` (the head
    row's histogram, or one decoded from a stored chunk): every field equal,
    floats bit for bit, ints and floats not mixed. A read then gives back what
    reading the row gives back; this replaces re-encoding both and comparing
    the bytes (as strict, and ~10x cheaper)."""
    return _key(back) == _key(want)


def _encodes_alone(h: Histogram) -> bool:
    try:
        _encode([h])
    except EncodeError:
        return False
    return True


def _build(items: list[_Item], rejected: list[_Item], keep_tail: bool = False) -> list[_Built]:
    """Chunks of a run of ``items`` (see :func:`_cut`): at most 120 histograms
    each, cut by Prometheus' size rule, each verified: decoded with its extra,
    every histogram must be exactly the one it came from. Those that do not
    go to ``rejected`` (they stay head rows); the others are cut again without
    them. ``keep_tail``: the last chunk is left out unless it is full (the
    run's range is still open: it stays in the head and may grow)."""
    out: list[_Built] = []
    pending = items
    while pending:
        window = pending[:HISTOGRAMS_PER_CHUNK]
        extra = None
        data = b""
        enc = -1
        try:
            n, enc, data = _encode_capped([it.h for it in window])
        except EncodeError:  # some histogram cannot be encoded at all: find it
            n = len(window)
        if keep_tail and n == len(pending) and n < HISTOGRAMS_PER_CHUNK:
            break
        part = pending[:n]
        if enc < 0:
            bad = {i for i, it in enumerate(part) if not _encodes_alone(it.h)} or set(range(n))
        else:
            bad, extra = _verify(part, enc, data)
        if not bad:
            out.append(_Built(part[-1].ts, enc, data, extra, part))
            pending = pending[n:]
            continue
        rejected.extend(part[i] for i in sorted(bad))
        rest = [it for i, it in enumerate(part) if i not in bad] + pending[n:]
        # Without the rejected ones the runs may differ: cut the rest again.
        runs = _cut(rest)
        for k, (lo, hi) in enumerate(runs):
            out.extend(_build(rest[lo:hi], rejected, keep_tail and k == len(runs) - 1))
        break
    return out


def _representable(it: _Item) -> bool:
    """Whether a histogram alone would come back exactly from a chunk."""
    rejected: list[_Item] = []
    _build([it], rejected)
    return not rejected


# ----------------------------------------------------------------------------- compaction


@dataclass(slots=True)
class HistogramCompaction:
    """What one histogram compaction did."""

    series: int = 0
    chunks_written: int = 0
    chunks_rewritten: int = 0
    histograms_sealed: int = 0  # head rows that went into chunks
    duplicates_dropped: int = 0  # head rows whose timestamp a chunk already held
    kept_unverified: int = 0  # complete, but kept as rows: a chunk would not give them back exactly
    left_alone: int = 0  # older rows no chunk can hold, found again (not counted as head)
    retention_deleted: int = 0
    rejected: list[tuple[int, int]] = field(default_factory=list)  # (series, ts) of those


def note_head_histograms(conn: sqlite3.Connection, n: int) -> int:
    """Add ``n`` new head histograms to the count; the count after it."""
    row = conn.execute(
        "UPDATE meta SET value = value + ? WHERE key = 'head_histograms' RETURNING value", (n,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _chunk_rows(
    conn: sqlite3.Connection, sid: int, since: int
) -> list[tuple[int, int, bytes, bytes | None]]:
    return [
        (int(maxt), int(enc), bytes(data), None if extra is None else bytes(extra))
        for maxt, enc, data, extra in conn.execute(
            "SELECT maxt, encoding, data, extra FROM histogram_chunks "
            "WHERE series_id = ? AND maxt >= ? ORDER BY maxt",
            (sid, since),
        )
    ]


def compact_histograms(
    conn: sqlite3.Connection,
    *,
    ooo_window_ms: int,
    flush: bool = False,
    retention_ms: int | None = None,
    retention_bytes: int | None = None,
) -> HistogramCompaction:
    """Move complete chunks of the head's histograms into ``histogram_chunks``
    and apply the retention to them, inside the caller's write transaction.

    A series' last chunk stays in the head unless it is full (120 histograms,
    or 2 KiB), its 2-hour range has ended (the newest head histogram is past
    its end plus the out-of-order window) or ``flush`` is set. A series' last chunk that is not
    full is merged with new histograms of its range; chunks an out-of-order
    histogram falls into are decoded, merged and cut again.
    """
    result = HistogramCompaction()
    newest = conn.execute("SELECT max(ts) FROM histograms").fetchone()[0]
    if newest is not None:
        cutoff = None if flush else int(newest) - ooo_window_ms
        sids = [int(s) for (s,) in conn.execute("SELECT DISTINCT series_id FROM histograms")]
        for sid in sids:
            _compact_series(conn, sid, cutoff, result)
        # Like the float head's count: rows written since this compaction
        # (rows it kept, for good or until their chunk closes, do not count).
        conn.execute("UPDATE meta SET value = 0 WHERE key = 'head_histograms'")
    if retention_ms is not None or retention_bytes is not None:
        result.retention_deleted = _retention(conn, retention_ms, retention_bytes)
    return result


def _compact_series(
    conn: sqlite3.Connection, sid: int, cutoff: int | None, result: HistogramCompaction
) -> None:
    rows = [
        (int(t), bytes(d))
        for t, d in conn.execute(
            "SELECT ts, data FROM histograms WHERE series_id = ? ORDER BY ts", (sid,)
        )
    ]
    if not rows:
        return
    result.series += 1
    last = conn.execute(
        "SELECT maxt, encoding, data, extra FROM histogram_chunks "
        "WHERE series_id = ? ORDER BY maxt DESC LIMIT 1",
        (sid,),
    ).fetchone()
    items = [_Item(t, _decode_row(d), d, False) for t, d in rows]
    merge: list[tuple[int, int, bytes, bytes | None]] = []
    decoded: dict[int, list[Histogram]] = {}
    if last is not None and items[0].ts <= last[0]:
        # Rows at or before the newest chunk: resent ones are dropped, the
        # others merged into the chunks from their time on. A row no chunk
        # would give back exactly stays a row and touches no chunk.
        before = [it for it in items if it.ts <= last[0]]
        late = [it for it in before if _representable(it)]
        result.left_alone += len(before) - len(late)
        items = [it for it in items if it.ts > last[0]]
        if late:
            old = _chunk_rows(conn, sid, late[0].ts)
            stored: set[int] = set()
            for maxt, enc, data, extra in old:
                hs = decoded[maxt] = _decode_chunk(enc, data, extra)
                stored.update(h.timestamp for h in hs)
            dups = [it.ts for it in late if it.ts in stored]
            conn.executemany(
                "DELETE FROM histograms WHERE series_id = ? AND ts = ?", [(sid, t) for t in dups]
            )
            result.duplicates_dropped += len(dups)
            late = [it for it in late if it.ts not in stored]
            if late:
                merge = [c for c in old if c[0] >= late[0].ts]
                items = late + items
    if last is not None and not merge and items:
        newest = (int(last[0]), int(last[1]), bytes(last[2]), _opt(last[3]))
        if _continues(newest, items[0]):  # in order, continuing the last chunk
            merge = [newest]
    for maxt, enc, data, extra in merge:
        hs = decoded.get(maxt) or _decode_chunk(enc, data, extra)
        items.extend(_Item(h.timestamp, h, None, True) for h in hs)
    if not items:
        return
    items.sort(key=lambda it: it.ts)
    runs = _cut(items)
    # The last run's last chunk may still grow while its 2-hour range is open.
    open_range = cutoff is not None and range_end(items[runs[-1][0]].ts) > cutoff
    rejected: list[_Item] = []
    built: list[_Built] = []
    for k, (lo, hi) in enumerate(runs):
        built.extend(_build(items[lo:hi], rejected, open_range and k == len(runs) - 1))
    if merge:
        conn.executemany(
            "DELETE FROM histogram_chunks WHERE series_id = ? AND maxt = ?",
            [(sid, c[0]) for c in merge],
        )
        result.chunks_rewritten += len(merge)
    conn.executemany(
        "INSERT INTO histogram_chunks(series_id, maxt, encoding, data, extra) "
        "VALUES (?, ?, ?, ?, ?)",
        [(sid, b.maxt, b.encoding, b.data, b.extra) for b in built],
    )
    result.chunks_written += len(built)
    chunked = [it for b in built for it in b.items]
    conn.executemany(
        "DELETE FROM histograms WHERE series_id = ? AND ts = ?",
        [(sid, it.ts) for it in chunked if not it.in_chunk],
    )
    result.histograms_sealed += sum(1 for it in chunked if not it.in_chunk)
    # Histograms of a rewritten chunk that are not in a new one go back to the head.
    sealed = {it.ts for it in chunked}
    conn.executemany(
        "INSERT INTO histograms VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [(sid, it.ts, encode(it.h)) for it in items if it.in_chunk and it.ts not in sealed],
    )
    result.kept_unverified += len(rejected)
    result.rejected.extend((sid, it.ts) for it in rejected)


def _continues(chunk: tuple[int, int, bytes, bytes | None], it: _Item) -> bool:
    """Whether ``it`` would join the stored chunk (not full by count or size,
    same 2-hour range, fits after its last histogram): then the chunk is merged."""
    maxt, enc, data, extra = chunk
    n = (data[0] << 8) | data[1]
    if n >= HISTOGRAMS_PER_CHUNK or range_end(maxt) != range_end(it.ts):
        return False
    if len(data) >= _CUT_BYTES and n >= _MIN_HISTOGRAMS:
        return False  # closed by size
    hs = _decode_chunk(enc, data, extra)
    return _fits(hs[0], hs[-1], it.h)


def _opt(blob: object) -> bytes | None:
    return None if blob is None else bytes(blob)  # type: ignore[call-overload]


def _decode_row(data: bytes) -> Histogram:
    try:
        return decode(Histogram, data)
    except Exception as exc:  # a DecodeError: the row was written by encode()
        raise StorageError(f"damaged promwire database: a histogram row: {exc}") from exc


def _retention(
    conn: sqlite3.Connection, retention_ms: int | None, retention_bytes: int | None
) -> int:
    """Delete histogram chunks (and head rows) past the retention: by time,
    those older than the newest sample or histogram stored minus the
    retention; by size, the oldest histogram chunks older than every float
    chunk while the used pages exceed the bound (the float retention that
    runs next deletes float chunks for the rest)."""
    deleted = 0
    if retention_ms is not None:
        newest = max(
            (
                int(v)
                for (v,) in (
                    (newest_stored(conn),),
                    conn.execute("SELECT max(maxt) FROM histogram_chunks").fetchone(),
                    conn.execute("SELECT max(ts) FROM histograms").fetchone(),
                )
                if v is not None
            ),
            default=None,
        )
        if newest is not None:
            floor = newest - retention_ms
            deleted += conn.execute(
                "DELETE FROM histogram_chunks WHERE maxt < ?", (floor,)
            ).rowcount
            conn.execute("DELETE FROM histograms WHERE ts < ?", (floor,))
    if retention_bytes is not None:
        oldest_float = conn.execute("SELECT min(maxt) FROM chunks").fetchone()[0]
        span = block_span(conn)
        if span is not None:  # sealed floats: the oldest range's start bounds them
            sealed = span[0] * CHUNK_RANGE_MS
            oldest_float = sealed if oldest_float is None else min(int(oldest_float), sealed)
        while (excess := excess_bytes(conn, retention_bytes)) > 0:
            rows = conn.execute(
                "SELECT series_id, maxt, length(data) + coalesce(length(extra), 0) + 24 "
                "FROM histogram_chunks WHERE maxt < ? ORDER BY maxt LIMIT 4096",
                ((1 << 63) - 1 if oldest_float is None else int(oldest_float),),
            ).fetchall()
            if not rows:
                break
            deleted += shed(
                conn, "DELETE FROM histogram_chunks WHERE series_id = ? AND maxt = ?", rows, excess
            )
    return deleted


# ----------------------------------------------------------------------------- reads


def _stored_in(
    conn: sqlite3.Connection, sid: int, start: int, end: int
) -> list[tuple[int, int, int, bytes, bytes | None]]:
    """Series ``sid``'s histogram chunks overlapping ``[start, end]``:
    ``(mint, maxt, encoding, data, extra)`` in time order."""
    out = []
    cur = conn.execute(
        "SELECT maxt, encoding, data, extra FROM histogram_chunks "
        "WHERE series_id = ? AND maxt >= ? ORDER BY maxt",
        (sid, start),
    )
    try:
        for maxt, enc, blob, extra in cur:
            data = bytes(blob)
            mint = histogram_chunk_mint(data)
            if mint > end:
                break
            out.append((mint, int(maxt), int(enc), data, _opt(extra)))
    finally:
        cur.close()
    return out


def _head_rows(conn: sqlite3.Connection, sid: int, start: int, end: int) -> list[Histogram]:
    return [
        _decode_row(bytes(data))
        for (data,) in conn.execute(
            "SELECT data FROM histograms WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
            (sid, start, end),
        )
    ]


def _merge(chunked: list[Histogram], rows: list[Histogram]) -> list[Histogram]:
    """Both sorted lists as one, by time; a chunk's histogram wins a timestamp."""
    if not rows:
        return chunked
    if not chunked or rows[0].timestamp > chunked[-1].timestamp:
        return chunked + rows
    by_ts = {h.timestamp: h for h in rows}
    by_ts.update((h.timestamp, h) for h in chunked)
    return [by_ts[t] for t in sorted(by_ts)]


def _in_range(hs: list[Histogram], start: int, end: int) -> list[Histogram]:
    stamps = [h.timestamp for h in hs]
    return hs[bisect_left(stamps, start) : bisect_right(stamps, end)]


def series_histograms(
    conn: sqlite3.Connection,
    sid: int,
    start: int,
    end: int,
    take: Callable[[int], object] | None = None,
) -> list[Histogram]:
    """Series ``sid``'s histograms in ``[start, end]``, in time order, exactly
    as written: its chunks' and its head rows' merged. ``take(n)`` is called
    with the count before the histograms are decoded into objects (a read
    budget)."""
    chunked: list[Histogram] = []
    for _, _, enc, data, extra in _stored_in(conn, sid, start, end):
        if take is not None:
            take((data[0] << 8) | data[1])
        chunked.extend(_decode_chunk(enc, data, extra, DECODED_HISTOGRAMS))
    rows = _head_rows(conn, sid, start, end)
    if take is not None and rows:
        take(len(rows))
    return _merge(_in_range(chunked, start, end), rows)


def series_histogram_chunks(
    conn: sqlite3.Connection, sid: int, start: int, end: int
) -> list[Chunk]:
    """Series ``sid``'s histograms in ``[start, end]`` as histogram chunks, for
    a streamed read: a stored chunk inside the range is sent as it is (the
    flags of its ``extra``, per-histogram hints and absent counts, are what a
    chunk stream cannot carry either); a stored chunk the range cuts, one
    with custom bucket bounds (as before chunks were stored: a chunk stream
    has no room for them either), and head rows are cut into chunks like
    Prometheus' head
    (:func:`~promwire.chunks.histogram_cut.cut_histogram_chunks`). When head
    rows fall inside the stored chunks' time span, everything is decoded,
    merged and cut again (chunks of a series must not overlap). Raises
    :class:`EncodeError` when a histogram cannot be put in a chunk."""
    stored = _stored_in(conn, sid, start, end)
    rows = _head_rows(conn, sid, start, end)
    if rows and stored and rows[0].timestamp <= stored[-1][1]:
        merged = _merge(
            _in_range(
                [h for c in stored for h in _decode_chunk(c[2], c[3], c[4], DECODED_HISTOGRAMS)],
                start,
                end,
            ),
            rows,
        )
        return cut_histogram_chunks(merged)
    out: list[Chunk] = []
    for mint, maxt, enc, data, extra in stored:
        if start <= mint and maxt <= end and not _has_bounds(data, extra):
            out.append(Chunk(mint, maxt, ChunkEncoding(enc), data))  # as stored
        else:
            part = _in_range(_decode_chunk(enc, data, extra, DECODED_HISTOGRAMS), start, end)
            if part:
                out.extend(cut_histogram_chunks(part))
    if rows:
        out.extend(cut_histogram_chunks(rows))
    return out


def _has_bounds(data: bytes, extra: bytes | None) -> bool:
    """Whether ``extra`` holds custom bucket bounds (after its flags)."""
    if not extra:
        return False
    flags = 1 if extra[0] & _ALL_SAME else (data[0] << 8) | data[1]
    return len(extra) > flags


def count_histograms(conn: sqlite3.Connection) -> int:
    """Distinct histograms stored: in chunks, plus head rows whose timestamp no
    chunk of their series holds."""
    total = sum(
        (bytes(head)[0] << 8) | bytes(head)[1]
        for (head,) in conn.execute("SELECT substr(data, 1, 2) FROM histogram_chunks")
    )
    total += int(conn.execute("SELECT count(*) FROM histograms").fetchone()[0])
    # Head rows that may repeat a chunked histogram: those not after their series' last chunk.
    suspects: dict[int, list[int]] = {}
    for sid, ts in conn.execute(
        "SELECT h.series_id, h.ts FROM histograms h WHERE h.ts <= "
        "(SELECT max(maxt) FROM histogram_chunks c WHERE c.series_id = h.series_id)"
    ):
        suspects.setdefault(int(sid), []).append(int(ts))
    for sid, stamps in suspects.items():
        have = {
            h.timestamp
            for _, _, enc, data, extra in _stored_in(conn, sid, min(stamps), max(stamps))
            for h in _decode_chunk(enc, data, extra)
        }
        total -= sum(1 for t in stamps if t in have)
    return total
