"""Sealed chunks in the SQLite store: packed rows per 2-hour range.

The ``chunks`` table (:mod:`.sqlite_chunks`) keys each chunk by ``(series_id,
maxt)``; every compaction adds a chunk to every active series, in the middle
of that B-tree, so its pages split and stay about 10% empty, and every chunk
pays a row of its own. Once a 2-hour range (``CHUNK_RANGE_MS``) has ended, no
in-order sample can reach it any more, and :func:`seal` moves its chunks to
``blocks``, the way Prometheus' head becomes a block:

* ``blocks`` is a rowid table; the id packs ``(range, kind, series_id,
  part)`` into one integer (:func:`pack_key`, :func:`own_key`), so a range's
  rows are contiguous and ranges follow each other in time order.
* the first seal of a range writes **packs** (kind 0): each holds the
  chunks of consecutive series, as many as fit one page, keyed by its first
  series id. A pack (format 5, :func:`pack_series`) is a directory, then
  each series' chunk records one after the other: ``u16 n`` (little-endian;
  its top bit: the first series began in the pack before), the first series
  id as a varint, the other ``n - 1`` ids as varints of their gap less one
  (ascending ids: a run of consecutive ids is zero bytes), then the ``n``
  entries' lengths as varints written plane by plane: the first byte of
  every length, then the second bytes of those that have one, and so on
  (as small as varints, but a read of one entry sums two slices in C
  instead of parsing every length before it). A pack fills its page, and
  sealing a range appends its packs after every older range (SQLite's
  append path), so the pages are full and a series costs about 3 bytes of
  directory (one for its id, two for its length) instead of a row (format
  4's directory: ``n`` ``u32`` ids and ``n + 1`` ``u16`` offsets, 6 bytes
  a series; :mod:`.sqlite_schema` rewrites such packs when it opens one).
* a chunk record is ``varint(len(data))``, its newest timestamp as a
  zigzag varint of the difference from ``mint + (count - 1) * first
  interval`` (one byte for a regular scrape), then ``data``: the count,
  oldest timestamp and first interval are in the chunk's own first bytes.
* a series found in no pack of a range has **own rows** (kind 1), parts 0,
  1, ...: a series too big for a pack, and any series sealed into a range
  that already has rows (see below). What fits neither (more than 64 own
  rows, a series id past 2**34, a range 478 years from 1970) stays in
  ``chunks``; readers always look in both tables.

A graceful close seals every range, the current one too, so a stopped store's
file is compact. A write that reaches a sealed range again (out-of-order
samples, or the current range after a restart) first moves that series'
chunks of those ranges back to ``chunks`` (:func:`unseal`: its entry leaves
the pack, which is rewritten once for all the series of one compaction), and
the compaction merges as before. The next seal of that range gives them own
rows: packs of a range come from one seal only, so the pack holding a series
is always the one with the greatest key at or below it. A series' chunks of
one range are all in one place: a pack, its own rows, or ``chunks``.
"""

from __future__ import annotations

import sqlite3
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import accumulate, groupby
from operator import add

from ..chunks.streamed import EncodedSeries
from ..codec.messages import Chunk, ChunkEncoding
from ..codec.wire import read_varint, zigzag_decode, zigzag_encode
from ..errors import DecodeError, StorageError
from .fifo_cache import FifoCache

__all__ = [
    "BLOCKS_SCHEMA",
    "GENERATION_SCHEMA",
    "OWN_ROW_BYTES",
    "RecordRun",
    "RunCache",
    "SealedView",
    "Walk",
    "block_span",
    "delete_ranges_before",
    "newest_in_blocks",
    "newest_sealed",
    "oldest_block_rows",
    "own_key",
    "pack_key",
    "pack_series",
    "records",
    "seal",
    "sealed_chunks",
    "series_runs",
    "split_key",
    "unpack_records",
    "unseal",
]

BLOCKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    id   INTEGER PRIMARY KEY,              -- pack_key(range, first series) or own_key(...)
    data BLOB NOT NULL                     -- a pack, or one series' chunk records
)"""

#: A counter of changes to ``blocks``, kept by SQLite itself (triggers, so
#: whichever program changes the table counts): what a reader remembers from
#: ``blocks`` is good as long as the counter it read with has not moved.
GENERATION_SCHEMA = [
    "INSERT OR IGNORE INTO meta VALUES ('blocks_generation', 0)",
    *(
        f"CREATE TRIGGER IF NOT EXISTS blocks_{event.lower()} AFTER {event} ON blocks "
        "BEGIN UPDATE meta SET value = value + 1 WHERE key = 'blocks_generation'; END"
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
]

#: An own row's chunk records stop growing past this (a row that does not fit
#: the rest of a page starts the next one: small rows waste little).
OWN_ROW_BYTES = 1024

_RANGE_MS = 2 * 60 * 60 * 1000  # CHUNK_RANGE_MS (sqlite_chunks imports this module)
_PART_BITS = 6
_SID_BITS = 34
_RANGE_BIAS = 1 << 21  # ranges -2**21 .. 2**21 - 1: 478 years either side of 1970
_SID_SHIFT = _PART_BITS
_KIND_SHIFT = _PART_BITS + _SID_BITS
_RANGE_SHIFT = _KIND_SHIFT + 1
_PARTS = 1 << _PART_BITS
_RANGE_STEP = 1 << _RANGE_SHIFT
_MAX_SID = (1 << min(_SID_BITS, 32)) - 1  # a pack holds u32 series ids
_CONTINUED = 0x8000  # in a pack's u16 count: its first series began in the pack before


def _fits(rng: int, sid: int) -> bool:
    return -_RANGE_BIAS <= rng < _RANGE_BIAS and 0 <= sid <= _MAX_SID


def _key(rng: int, kind: int, sid: int, part: int) -> int:
    return (
        ((rng + _RANGE_BIAS) << _RANGE_SHIFT) | (kind << _KIND_SHIFT) | (sid << _SID_SHIFT) | part
    )


def pack_key(rng: int, sid: int) -> int:
    """The row id of range ``rng``'s pack starting at series ``sid``."""
    return _key(rng, 0, sid, 0)


def own_key(rng: int, sid: int, part: int) -> int:
    """The row id of ``part`` of series ``sid``'s own rows in range ``rng``."""
    return _key(rng, 1, sid, part)


def split_key(key: int) -> tuple[int, bool, int, int]:
    """``(range, is_own_row, series_id, part)`` of a row id."""
    return (
        (key >> _RANGE_SHIFT) - _RANGE_BIAS,
        bool((key >> _KIND_SHIFT) & 1),
        (key >> _SID_SHIFT) & ((1 << _SID_BITS) - 1),
        key & (_PARTS - 1),
    )


def _range_key(rng: int) -> int:
    """The first row id of range ``rng``, clamped to the key's ranges."""
    return (min(max(rng, -_RANGE_BIAS), _RANGE_BIAS) + _RANGE_BIAS) << _RANGE_SHIFT


# ------------------------------------------------------------------ row bytes


def _varint(out: bytearray, v: int) -> None:
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _predicted_maxt(data: bytes) -> tuple[int, int]:
    """``(mint, the newest timestamp if every interval were the first)`` of an
    XOR chunk: its count, oldest time and first interval are all in its first
    bytes (a varint, 8 bytes of value, then the interval as a byte-aligned
    uvarint), so a regular scrape's newest time costs one byte to store."""
    n = (data[0] << 8) | data[1]
    zz, pos = read_varint(data, 2)
    mint = zigzag_decode(zz)
    if n < 2:
        return mint, mint
    delta, _ = read_varint(data, pos + 8)
    return mint, mint + (n - 1) * delta


def records(chunks: Iterable[tuple[int, bytes]]) -> bytes:
    """Chunk records of ``(maxt, data)`` chunks: ``varint(len(data))``,
    the zigzag varint of ``maxt`` minus its prediction, ``data``."""
    out = bytearray()
    for maxt, data in chunks:
        _varint(out, len(data))
        _varint(out, zigzag_encode(maxt - _predicted_maxt(data)[1]))
        out += data
    return bytes(out)


def unpack_records(blob: bytes) -> list[tuple[int, int, int, bytes]]:
    """Chunk records as ``(mint, maxt, count, data)``."""
    out: list[tuple[int, int, int, bytes]] = []
    pos = 0
    end = len(blob)
    try:
        while pos < end:
            size, pos = read_varint(blob, pos)
            miss = blob[pos]
            if miss < 0x80:  # the usual one byte: a regular scrape's newest time
                pos += 1
            else:
                miss, pos = read_varint(blob, pos)
            start = pos
            pos += size
            if pos > end or size < 3:
                raise ValueError("a chunk past the row's end")
            data = blob[start:pos]
            mint, predicted = _predicted_maxt(data)
            out.append((mint, predicted + zigzag_decode(miss), (data[0] << 8) | data[1], data))
    except (DecodeError, IndexError, ValueError) as exc:
        raise StorageError(f"damaged promwire database: an unreadable block row ({exc})") from exc
    return out


#: What a chunk of a :class:`RecordRun` holds besides its bytes, at most:
#: its tuple, times and count, and its record's prefix once made.
_CHUNK_OVERHEAD = 320


class RecordRun:
    """One row's (or one pack entry's) chunks, unpacked once: ``chunks`` as
    :func:`unpack_records` gives them, and on demand their records in a
    streamed answer (:meth:`wire`), so a range read again is bytes joined.
    ``size``: the memory it holds, an upper estimate."""

    __slots__ = ("_wire", "chunks", "size")

    def __init__(self, chunks: tuple[tuple[int, int, int, bytes], ...], size: int) -> None:
        self.chunks = chunks
        self.size = size
        self._wire: tuple[tuple[bytes, ...], tuple[int, ...]] | None = None

    def wire(self) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        """The chunks as :class:`~promwire.chunks.streamed.EncodedSeries`
        pieces and sizes (XOR chunks; made once: threads racing here make
        equal values)."""
        wire = self._wire
        if wire is None:
            encoded = EncodedSeries.of(
                (),
                [Chunk(mint, maxt, ChunkEncoding.XOR, data) for mint, maxt, _, data in self.chunks],
            )
            wire = self._wire = (encoded.pieces, encoded.sizes)
        return wire


@lru_cache(maxsize=4096)
def _cached_records(blob: bytes) -> RecordRun:
    """:func:`unpack_records`, remembered for the last 4,096 distinct record
    runs (a pure function of the bytes, so never stale, whichever process
    rewrote what): a dashboard reads the same ranges again. A run is one
    series' chunks of one range, about 1 KiB at a 15 s scrape and at most
    half a page (8 KiB): 4-32 MiB in all, plus ~60 bytes a chunk once its
    records were made for a streamed read."""
    chunks = tuple(unpack_records(blob))
    return RecordRun(chunks, len(blob) + _CHUNK_OVERHEAD * len(chunks))


def _varint_size(v: int) -> int:
    """How many bytes :func:`_varint` writes for ``v`` (>= 0)."""
    return (v.bit_length() + 6) // 7 or 1


def pack_series(entries: Sequence[tuple[int, bytes]], *, continued: bool = False) -> bytes:
    """A pack of ``(series_id, records)``, series ids strictly ascending in
    ``0 .. 2**32 - 1``; ``continued``: the first series' older chunks end
    the pack before (the count's top bit). See the module docstring."""
    n = len(entries)
    if n >= _CONTINUED:
        raise ValueError(f"a pack holds at most {_CONTINUED - 1} series, not {n}")
    out = bytearray((n | (_CONTINUED if continued else 0)).to_bytes(2, "little"))
    prev = -1
    for sid, _ in entries:
        if not prev < sid <= _MAX_SID:
            raise ValueError(f"series id {sid} after {prev} in a pack")
        _varint(out, sid if prev < 0 else sid - prev - 1)
        prev = sid
    # The lengths' varints plane by plane: every first byte, then the second
    # bytes of those with one, ... (a read of one entry sums two slices).
    plane = []
    for _, rec in entries:
        size = bytearray()
        _varint(size, len(rec))
        plane.append(size)
    while plane:
        out += bytes(size[0] for size in plane)
        plane = [size[1:] for size in plane if len(size) > 1]
    return b"".join((out, *(rec for _, rec in entries)))


def _damaged(exc: Exception) -> StorageError:
    return StorageError(f"damaged promwire database: an unreadable pack ({exc})")


def _pack_ids(blob: bytes) -> tuple[range | list[int], int, bool]:
    """A pack's series ids (a ``range`` when consecutive), where its lengths
    start, and its "continued" flag. The usual gaps (under 128 ids) are
    summed by C loops, not byte by byte."""
    n = blob[0] | (blob[1] << 8)
    continued = bool(n & _CONTINUED)
    n &= _CONTINUED - 1
    if not n:
        return [], 2, continued
    first, pos = read_varint(blob, 2)
    gaps = blob[pos : pos + n - 1]
    sids: range | list[int]
    if gaps.count(0) == n - 1:  # consecutive ids: the usual pack
        sids = range(first, first + n)
        pos += n - 1
    elif len(gaps) == n - 1 and gaps.isascii():  # one byte a gap
        sids = list(map(add, accumulate(gaps, initial=first), range(n)))
        pos += n - 1
    else:
        sid = first
        sids = [sid]
        for _ in range(n - 1):
            gap, pos = read_varint(blob, pos)
            sid += gap + 1
            sids.append(sid)
    if sids[-1] > _MAX_SID:
        raise ValueError(f"series id {sids[-1]}")
    return sids, pos, continued


# Translation tables: a byte's low 7 bits; a varint byte's top bit deleted
# (what is left: the bytes with no next one).
_LOW7 = bytes.maketrans(bytes(range(256)), bytes(range(128)) * 2)
_GOES_ON = bytes(range(128, 256))


def _pack_find(blob: bytes, sid: int) -> tuple[int, int, int, int, bool] | None:
    """Where series ``sid``'s records are in a pack: ``(index, start, end,
    the pack's count, continued)``, or ``None`` when the pack does not hold
    it. What a read of one series needs: the entries' lengths before it are
    summed over two slices of the length planes by C loops (lengths of one or
    two bytes: entries of a page up to 16 KiB; else :func:`_pack_directory`)."""
    try:
        sids, pos, continued = _pack_ids(blob)
        n = len(sids)
        if isinstance(sids, range):
            i = sid - sids.start
            if not 0 <= i < n:
                return None
        else:
            i = bisect_left(sids, sid)
            if i == n or sids[i] != sid:
                return None
        firsts = blob[pos : pos + n]
        twos = n - len(firsts.translate(None, _GOES_ON))  # lengths of two bytes or more
        seconds = blob[pos + n : pos + n + twos]
        if len(firsts) < n or len(seconds) < twos or not seconds.isascii():
            _, offsets, _ = _pack_directory(blob)  # lengths of three bytes (or damage)
            return i, offsets[i], offsets[i + 1], n, continued
        k = i - len(firsts[:i].translate(None, _GOES_ON))  # seconds before entry i
        start = sum(firsts[:i].translate(_LOW7)) + 128 * sum(seconds[:k])
        length = firsts[i]
        if length >= 0x80:
            length = (length & 0x7F) | (seconds[k] << 7)
            k += 1
        rest = sum(firsts[i + 1 :].translate(_LOW7)) + 128 * sum(seconds[k:])
        head = pos + n + twos  # where the records start
        if head + start + length + rest != len(blob):
            raise ValueError(f"entries end past or before the pack's {len(blob)} bytes")
    except (DecodeError, IndexError, ValueError) as exc:
        raise _damaged(exc) from exc
    return i, head + start, head + start + length, n, continued


def _pack_directory(blob: bytes) -> tuple[list[int], list[int], bool]:
    """A pack's series ids, the offsets of their records (``n + 1``: the
    last is the pack's end), and whether its first series continues."""
    try:
        sids, pos, continued = _pack_ids(blob)
        n = len(sids)
        plane = blob[pos : pos + n]
        if len(plane) < n:
            raise ValueError("the lengths past the pack's end")
        pos += n
        sizes = list(plane.translate(_LOW7))
        more = [j for j, byte in enumerate(plane) if byte >= 0x80]
        shift = 7
        while more:  # the next plane: a byte for each length that goes on
            if shift > 28:
                raise ValueError("an entry length over 5 bytes")
            plane = blob[pos : pos + len(more)]
            if len(plane) < len(more):
                raise ValueError("the lengths past the pack's end")
            pos += len(more)
            for j, byte in zip(more, plane, strict=True):
                sizes[j] |= (byte & 0x7F) << shift
            more = [j for j, byte in zip(more, plane, strict=True) if byte >= 0x80]
            shift += 7
        offsets = list(accumulate(sizes, initial=pos))
        if offsets[-1] != len(blob):
            raise ValueError(f"entries end at {offsets[-1]}, the pack at {len(blob)}")
    except (DecodeError, IndexError, ValueError) as exc:
        raise _damaged(exc) from exc
    return list(sids), offsets, continued


def _pack_entries(blob: bytes) -> list[tuple[int, bytes]]:
    sids, offsets, _ = _pack_directory(blob)
    return [(sid, blob[offsets[i] : offsets[i + 1]]) for i, sid in enumerate(sids)]


# ---------------------------------------------------------------------- reads


def block_span(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """The oldest and newest sealed range, or ``None`` when nothing is sealed."""
    lo, hi = conn.execute("SELECT min(id), max(id) FROM blocks").fetchone()
    if lo is None:
        return None
    return split_key(int(lo))[0], split_key(int(hi))[0]


class RunCache:
    """Series' sealed record runs by ``(series id, first range, last range)``,
    remembered while ``blocks`` does not change (its generation, see
    :data:`GENERATION_SCHEMA`): a dashboard reading the same series again
    skips the walk over the ranges (one lookup instead of a query row, a pack
    directory and a cache probe per range). Shared by a store's threads;
    bounded by ``max_bytes`` of records held (the runs stay alive while an
    entry holds them) and ``max_entries``, oldest entries dropped first. A
    reader whose snapshot is older than the cache's generation goes without.
    """

    def __init__(self, max_bytes: int = 64 << 20, max_entries: int = 65536) -> None:
        self._generation = -1
        self._lock = threading.Lock()
        #: key -> (walk, the generation it was read in), weighed in bytes
        self.cache: FifoCache[tuple[int, int, int], tuple[Walk, int]] = FifoCache(
            max_bytes, max_entries
        )

    def view(self, conn: sqlite3.Connection) -> SealedView:
        """What ``conn``'s snapshot has sealed, read through this cache."""
        lo, hi, generation = conn.execute(_VIEW).fetchone()
        span = None if lo is None else (split_key(int(lo))[0], split_key(int(hi))[0])
        return SealedView(span, None if generation is None else int(generation), self)

    def get(self, generation: int, key: tuple[int, int, int]) -> Walk | None:
        hit = self.cache.get(key)
        return hit[0] if hit is not None and hit[1] == generation else None

    def put(self, generation: int, key: tuple[int, int, int], walk: Walk) -> None:
        with self._lock:
            if generation != self._generation:
                if generation < self._generation:
                    return  # an older snapshot's: not what the cache holds now
                self.cache.clear()
                self._generation = generation
            if key not in self.cache:
                self.cache.put(key, (walk, generation), walk.size)


_VIEW = (
    "SELECT (SELECT min(id) FROM blocks), (SELECT max(id) FROM blocks), "
    "(SELECT value FROM meta WHERE key = 'blocks_generation')"
)


class SealedView:
    """The sealed ranges as one read transaction sees them: ``span`` (see
    :func:`block_span`) and the ``generation`` of ``blocks``, with the
    store's :class:`RunCache` (``None``: no caching; a file without the
    generation counter is read without it)."""

    __slots__ = ("cache", "generation", "span")

    def __init__(
        self, span: tuple[int, int] | None, generation: int | None, cache: RunCache | None
    ) -> None:
        self.span = span
        self.generation = generation
        self.cache = cache if generation is not None else None

    @classmethod
    def uncached(cls, conn: sqlite3.Connection) -> SealedView:
        """``conn``'s sealed ranges, read without a cache."""
        return cls(block_span(conn), None, None)

    def walk(self, conn: sqlite3.Connection, sid: int, lo: int, hi: int) -> Walk:
        """:func:`series_runs`, from the cache when this generation has them."""
        cache = self.cache
        if cache is None or self.generation is None:
            return Walk(tuple(series_runs(conn, sid, lo, hi, self.span)))
        key = (sid, lo, hi)
        walk = cache.get(self.generation, key)
        if walk is None:
            walk = Walk(tuple(series_runs(conn, sid, lo, hi, self.span)))
            cache.put(self.generation, key, walk)
        return walk


class Walk:
    """A series' sealed record runs over a walk of ranges, in time order, and
    the records of a stretch of them joined once (:meth:`wire`): only the
    first and last range of a read can reach outside its time range, so the
    runs wholly inside are one of four stretches."""

    __slots__ = ("_joined", "runs", "size")

    def __init__(self, runs: tuple[RecordRun, ...]) -> None:
        self.runs = runs
        self.size = sum(run.size for run in runs)
        self._joined: dict[tuple[int, int], tuple[tuple[bytes, ...], tuple[int, ...]]] = {}

    def wire(self, first: int, stop: int) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        """:meth:`RecordRun.wire` of ``runs[first:stop]``, joined."""
        joined = self._joined.get((first, stop))
        if joined is None:
            pieces: list[bytes] = []
            sizes: list[int] = []
            for run in self.runs[first:stop]:
                more, lengths = run.wire()
                pieces += more
                sizes += lengths
            joined = (tuple(pieces), tuple(sizes))
            if len(self._joined) < 8:  # a few stretches are what reads ask for
                self._joined[first, stop] = joined
        return joined


def _clamp(lo: int, hi: int, sid: int, span: tuple[int, int] | None) -> tuple[int, int] | None:
    if span is None or not 0 <= sid <= _MAX_SID:
        return None
    lo, hi = max(lo, span[0]), min(hi, span[1])
    return (lo, hi) if lo <= hi else None


# Per range (the CTE walks them in order; CROSS JOIN keeps it the outer loop):
# the series' own rows, and the pack with the greatest key at or below it.
_OWN_ROWS = """
WITH RECURSIVE r(k) AS (SELECT ? UNION ALL SELECT k + ? FROM r WHERE k < ?)
SELECT b.data FROM r CROSS JOIN blocks AS b WHERE b.id BETWEEN r.k AND r.k + ?
"""
_PACKS = """
WITH RECURSIVE r(k) AS (SELECT ? UNION ALL SELECT k + ? FROM r WHERE k < ?)
SELECT r.k, (SELECT data FROM blocks WHERE id BETWEEN r.k - ? AND r.k ORDER BY id DESC LIMIT 1)
FROM r
"""
_PACK_BEFORE = "SELECT id, data FROM blocks WHERE id >= ? AND id < ? ORDER BY id DESC LIMIT 1"


def _packed(
    conn: sqlite3.Connection, key: int, blob: bytes | None, sid: int
) -> tuple[bytes, list[int]]:
    """Series ``sid``'s records in the packs of one range and those packs'
    ids, given the pack ``blob`` with the greatest key at or below ``key``
    (its ``pack_key``): when that pack starts with the series, the series'
    older chunks may end the pack before it."""
    if blob is None:
        return b"", []
    place = _pack_find(blob, sid)
    if place is None:
        return b"", []
    i, start, end, _, continued = place
    found = blob[start:end]
    if i or not continued:
        return found, [-1]
    # A continued pack is keyed by the series it continues: ``key`` itself.
    row = conn.execute(_PACK_BEFORE, (key - (sid << _SID_SHIFT), key)).fetchone()
    if row is not None:
        before = bytes(row[1])
        prior = _pack_find(before, sid)
        if prior is not None and prior[0] == prior[3] - 1:  # its last series
            return before[prior[1] : prior[2]] + found, [-1, int(row[0])]
    # Its start went with the pack before (retention by size deletes packs
    # oldest first): the rest is no longer readable, so it is gone too.
    return b"", []


def series_runs(
    conn: sqlite3.Connection, sid: int, lo: int, hi: int, span: tuple[int, int] | None
) -> list[RecordRun]:
    """Series ``sid``'s sealed chunks in ranges ``lo..hi`` as record runs in
    time order (``span``: :func:`block_span`); no run is empty."""
    walk = _clamp(lo, hi, sid, span)
    if walk is None:
        return []
    lo, hi = walk
    out: list[RecordRun] = []
    step = _RANGE_STEP
    for key, blob in conn.execute(
        _PACKS, (pack_key(lo, sid), step, pack_key(hi, sid), sid << _SID_SHIFT)
    ).fetchall():
        if blob is not None:
            found, _ = _packed(conn, int(key), bytes(blob), sid)
            if found:
                out.append(_cached_records(found))
    packed = len(out)
    for (blob,) in conn.execute(
        _OWN_ROWS, (own_key(lo, sid, 0), step, own_key(hi, sid, 0), _PARTS - 1)
    ):
        run = _cached_records(bytes(blob))
        if run.chunks:
            out.append(run)
    if packed and len(out) > packed:  # some ranges packed, some not: time order
        out.sort(key=lambda run: run.chunks[0][1])
    return out


def _range_chunks(
    conn: sqlite3.Connection, rng: int, sid: int
) -> tuple[list[tuple[int, int, int, bytes]], list[int], list[int]]:
    """Series ``sid``'s chunks in range ``rng``: the chunks, its own rows' ids,
    and the ids of the packs holding it."""
    own = conn.execute(
        "SELECT id, data FROM blocks WHERE id BETWEEN ? AND ?",
        (own_key(rng, sid, 0), own_key(rng, sid, _PARTS - 1)),
    ).fetchall()
    if own:
        chunks = [c for _, blob in own for c in unpack_records(bytes(blob))]
        return chunks, [int(k) for k, _ in own], []
    key = pack_key(rng, sid)
    row = conn.execute(_PACK_BEFORE, (pack_key(rng, 0), key + 1)).fetchone()
    if row is None:
        return [], [], []
    found, packs = _packed(conn, key, bytes(row[1]), sid)
    if not found:
        return [], [], []
    return unpack_records(found), [], [int(row[0]), *packs[1:]]


def newest_in_blocks(
    conn: sqlite3.Connection, sid: int, lo: int, span: tuple[int, int] | None
) -> int | None:
    """The newest sealed timestamp of series ``sid`` in ranges from ``lo`` on
    (the ranges are walked newest first: one probe for a series written lately)."""
    walk = _clamp(lo, span[1] if span else lo, sid, span)
    if walk is None:
        return None
    for rng in range(walk[1], walk[0] - 1, -1):
        chunks, _, _ = _range_chunks(conn, rng, sid)
        if chunks:
            return max(maxt for _, maxt, _, _ in chunks)
    return None


def newest_sealed(conn: sqlite3.Connection) -> int | None:
    """The newest timestamp in the newest sealed row (the newest range's last
    row: within one range of the newest sealed sample)."""
    row = conn.execute("SELECT id, data FROM blocks ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    blob = bytes(row[1])
    if split_key(int(row[0]))[1]:
        return max(maxt for _, maxt, _, _ in unpack_records(blob))
    entries = _pack_entries(blob)
    if _pack_directory(blob)[2] and entries:  # its first entry began in the pack before
        sid = entries[0][0]
        found, _ = _packed(conn, pack_key(split_key(int(row[0]))[0], sid), blob, sid)
        entries[0] = (sid, found)
    return max((maxt for _, rec in entries for _, maxt, _, _ in unpack_records(rec)), default=None)


# --------------------------------------------------------------------- writes


def unseal(conn: sqlite3.Connection, wants: dict[int, int], span: tuple[int, int] | None) -> int:
    """Move the chunks of each series ``sid`` of ``wants`` in ranges from
    ``wants[sid]`` on back to ``chunks`` (inside the caller's write
    transaction); each pack touched is rewritten once. Returns how many
    chunks moved."""
    moved: list[tuple[int, int, bytes]] = []
    own: list[tuple[int]] = []
    leaving: dict[int, set[int]] = {}
    for sid, lo in sorted(wants.items()):
        walk = _clamp(lo, span[1] if span else lo, sid, span)
        if walk is None:
            continue
        for rng in range(walk[0], walk[1] + 1):
            chunks, own_ids, packs = _range_chunks(conn, rng, sid)
            moved += [(sid, maxt, data) for _, maxt, _, data in chunks]
            own += [(k,) for k in own_ids]
            for pack in packs:
                leaving.setdefault(pack, set()).add(sid)
    for pack, sids in leaving.items():
        (blob,) = conn.execute("SELECT data FROM blocks WHERE id = ?", (pack,)).fetchone()
        old = bytes(blob)
        kept = [(s, rec) for s, rec in _pack_entries(old) if s not in sids]
        if kept:
            # Still continued only when the continued series stayed.
            continued = _pack_directory(old)[2] and kept[0][0] == split_key(pack)[2]
            conn.execute(
                "UPDATE blocks SET data = ? WHERE id = ?",
                (pack_series(kept, continued=continued), pack),
            )
        else:
            conn.execute("DELETE FROM blocks WHERE id = ?", (pack,))
    conn.executemany("DELETE FROM blocks WHERE id = ?", own)
    conn.executemany("INSERT INTO chunks(series_id, maxt, data) VALUES (?, ?, ?)", moved)
    return len(moved)


def seal(conn: sqlite3.Connection, before: int | None) -> int:
    """Move the chunks of every range ending at or before ``before`` (a range
    boundary; ``None``: every range) from ``chunks`` to ``blocks``, inside the
    caller's write transaction, one range at a time (memory: a pack and one
    series' chunks). Returns how many chunks moved."""
    where, args = ("", ()) if before is None else (" WHERE maxt < ?", (before,))
    ranges = {int(t) // _RANGE_MS for (t,) in conn.execute("SELECT maxt FROM chunks" + where, args)}
    # The most a row keeps on its page: SQLite's local payload limit for a
    # table leaf (page size - 35) less the record's 4-byte header.
    capacity = min(int(conn.execute("PRAGMA page_size").fetchone()[0]) - 40, 65000)
    return sum(
        _seal_range(conn, rng, capacity)
        for rng in sorted(ranges)
        if -_RANGE_BIAS <= rng < _RANGE_BIAS  # else outside the key's bits: stays in chunks
    )


def _seal_range(conn: sqlite3.Connection, rng: int, capacity: int) -> int:
    fresh = (
        conn.execute(
            "SELECT 1 FROM blocks WHERE id >= ? AND id < ? LIMIT 1",
            (_range_key(rng), _range_key(rng + 1)),
        ).fetchone()
        is None
    )
    packer = _Packer(rng, capacity)
    kept: list[tuple[int, int, bytes]] = []  # what fits no row: back into chunks
    moved = 0
    insert = "INSERT INTO blocks(id, data) VALUES (?, ?)"
    cur = conn.execute(
        "SELECT series_id, maxt, data FROM chunks WHERE maxt >= ? AND maxt < ? "
        "ORDER BY series_id, maxt",
        (rng * _RANGE_MS, (rng + 1) * _RANGE_MS),
    )
    for sid, rows in groupby(cur, key=lambda row: int(row[0])):
        chunks = [(int(maxt), bytes(blob)) for _, maxt, blob in rows]
        rec = records(chunks) if fresh and sid <= _MAX_SID else b""
        if rec and len(rec) <= capacity // 2:
            packer.add(sid, rec)
        else:
            own = _own_rows(chunks) if sid <= _MAX_SID else []
            if not own or len(own) > _PARTS:  # more than 64 own rows in 2 hours
                kept += [(sid, maxt, data) for maxt, data in chunks]
                continue
            conn.executemany(insert, [(own_key(rng, sid, p), b) for p, b in enumerate(own)])
        moved += len(chunks)
        if len(packer.rows) >= 16:  # full packs go in as they come, in key order
            conn.executemany(insert, packer.rows)
            packer.rows.clear()
    conn.executemany(insert, packer.finish())
    conn.execute(
        "DELETE FROM chunks WHERE maxt >= ? AND maxt < ?", (rng * _RANGE_MS, (rng + 1) * _RANGE_MS)
    )
    conn.executemany("INSERT INTO chunks(series_id, maxt, data) VALUES (?, ?, ?)", kept)
    return moved


class _Packer:
    """Packs of one range, filled to ``capacity`` (to the byte, but for a
    length varint's boundary): the bytes of a series' records that do not fit
    the rest of a pack go on at the start of the next one (so a series is in
    at most two packs: its entry is at most half a pack; a reader joins the
    two parts before parsing them). ``size`` counts the pack's bytes so far,
    its directory's varints included."""

    def __init__(self, rng: int, capacity: int) -> None:
        self.rng = rng
        self.capacity = capacity
        self.rows: list[tuple[int, bytes]] = []
        self.entries: list[tuple[int, bytes]] = []
        self.size = 2  # the count
        self.continued = False

    def add(self, sid: int, rec: bytes) -> None:
        entries = self.entries
        room = self.capacity - self.size - self._id_size(sid)
        if len(rec) + _varint_size(len(rec)) > room:
            # The longest part whose length varint and bytes fill the room.
            part = room - _varint_size(max(room, 0))
            if part + 1 + _varint_size(part + 1) <= room:
                part += 1
            split = part > 0
            if split:
                entries.append((sid, rec[:part]))
                rec = rec[part:]
            self._close()
            self.continued = split
        self._append(sid, rec)

    def _id_size(self, sid: int) -> int:
        """The bytes of ``sid`` in the directory: its gap from the last id, less one."""
        entries = self.entries
        return _varint_size(sid - entries[-1][0] - 1 if entries else sid)

    def _append(self, sid: int, rec: bytes) -> None:
        self.size += self._id_size(sid) + _varint_size(len(rec)) + len(rec)
        self.entries.append((sid, rec))

    def _close(self) -> None:
        if self.entries:
            pack = pack_series(self.entries, continued=self.continued)
            self.rows.append((pack_key(self.rng, self.entries[0][0]), pack))
        self.entries, self.size, self.continued = [], 2, False

    def finish(self) -> list[tuple[int, bytes]]:
        self._close()
        return self.rows


def _own_rows(chunks: Sequence[tuple[int, bytes]]) -> list[bytes]:
    rows: list[bytes] = []
    start = 0
    size = 0
    for i, (_, data) in enumerate(chunks):
        if i > start and size + len(data) > OWN_ROW_BYTES:
            rows.append(records(chunks[start:i]))
            start, size = i, 0
        size += len(data)
    if start < len(chunks):
        rows.append(records(chunks[start:]))
    return rows


# ------------------------------------------------------------------ retention


def delete_ranges_before(conn: sqlite3.Connection, floor: int) -> int:
    """Delete the sealed rows of every range that ends at or before ``floor``."""
    return int(
        conn.execute("DELETE FROM blocks WHERE id < ?", (_range_key(floor // _RANGE_MS),)).rowcount
    )


def oldest_block_rows(conn: sqlite3.Connection, limit: int) -> list[tuple[int, int]]:
    """The oldest sealed rows: ``(id, bytes)``, oldest range first."""
    return [
        (int(k), int(n))
        for k, n in conn.execute(
            "SELECT id, length(data) FROM blocks ORDER BY id LIMIT ?", (limit,)
        )
    ]


def sealed_chunks(conn: sqlite3.Connection) -> Iterator[tuple[int, int, int, int, bytes]]:
    """Every sealed chunk: ``(series_id, mint, maxt, count, data)``, by range."""
    held: tuple[int, bytes] | None = None  # a pack's last entry: it may go on
    for key, blob in conn.execute("SELECT id, data FROM blocks ORDER BY id"):
        data = bytes(blob)
        _, own, sid, _ = split_key(int(key))
        entries = [(sid, data)] if own else _pack_entries(data)
        if not own and _pack_directory(data)[2] and entries:
            if held is not None and held[0] == entries[0][0]:
                entries[0] = (held[0], held[1] + entries[0][1])  # one entry in two packs
                held = None
            else:  # its start went with a pack retention deleted: gone too
                entries.pop(0)
        if held is not None:
            entries.insert(0, held)
            held = None
        if not own and entries:
            held = entries.pop()
        for s, rec in entries:
            for mint, maxt, n, chunk in unpack_records(rec):
                yield s, mint, maxt, n, chunk
    if held is not None:
        for mint, maxt, n, chunk in unpack_records(held[1]):
            yield held[0], mint, maxt, n, chunk
