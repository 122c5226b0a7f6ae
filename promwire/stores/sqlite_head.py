"""The head of the SQLite store: recent float samples as compact per-request records.

Each remote write request adds **one** row to the ``head`` table (its
``write`` transaction, committed with ``synchronous=FULL`` before the 204),
holding the request's float samples as four little-endian int64 arrays::

    sids     one series id per segment (a segment: one series' samples of the request)
    offsets  where each segment starts in ts/bits, plus the total (len = segments + 1)
    ts       timestamps (ms), in the order the request carried them
    bits     IEEE-754 bit patterns of the values (NaN payloads kept)

Records are immutable: the compaction (:mod:`.sqlite_chunks`) deletes the
records it turned into chunks and writes what it kept back as one new record;
ids come from ``AUTOINCREMENT`` and are never reused. So a record read once
can be cached by id in any process (:class:`HeadCache`), the cache checked
against the ids a read transaction sees.

A series' samples in the head are the union of its segments; when one
timestamp appears twice (a resent batch), the record written first wins.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import lt

from .fifo_cache import FifoCache

__all__ = ["HeadCache", "HeadRecord", "HeadView", "RecordBuilder", "first_wins"]

_BIG_ENDIAN = sys.byteorder == "big"


def _to_le(arr: array[int]) -> bytes:
    if _BIG_ENDIAN:  # the file format is little-endian everywhere
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _from_le(typecode: str, data: bytes) -> array[int]:
    arr = array(typecode)
    arr.frombytes(data)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr


@dataclass(frozen=True, slots=True)
class HeadRecord:
    """One head row, decoded (see the module docstring)."""

    sids: bytes  # little-endian int64 per segment, searched with bytes.find
    offsets: array[int]
    ts: array[int]
    bits: array[int]

    @classmethod
    def from_row(cls, sids: bytes, offsets: bytes, ts: bytes, bits: bytes) -> HeadRecord:
        return cls(
            sids if not _BIG_ENDIAN else _to_le(_from_le("q", sids)),
            _from_le("q", offsets),
            _from_le("q", ts),
            _from_le("Q", bits),
        )

    def segments(self, sid: int) -> list[int]:
        """Indexes of the segments of series ``sid``."""
        key = sid.to_bytes(8, "little", signed=True)
        found = []
        pos = self.sids.find(key)
        while pos >= 0:
            if pos % 8 == 0:  # an aligned hit is a whole id, not the middle of two
                found.append(pos >> 3)
            pos = self.sids.find(key, pos + 1)
        return found

    def series_ids(self) -> array[int]:
        return _from_le("q", self.sids)


class RecordBuilder:
    """The arrays of one head record, filled series by series."""

    __slots__ = ("bits", "offsets", "sids", "ts")

    def __init__(self) -> None:
        self.sids = array("q")
        self.offsets = array("q", [0])
        self.ts = array("q")
        self.bits = array("Q")

    @classmethod
    def of(
        cls, sids: array[int], offsets: array[int], ts: array[int], value_bits: bytes
    ) -> RecordBuilder:
        """A record from ready arrays (``value_bits``: the values' 8-byte patterns)."""
        rec = cls()
        rec.sids, rec.offsets, rec.ts = sids, offsets, ts
        rec.bits.frombytes(value_bits)
        return rec

    def add_bits(self, sid: int, timestamps: Sequence[int], bits: Sequence[int]) -> None:
        self.sids.append(sid)
        self.ts.extend(timestamps)
        self.bits.extend(bits)
        self.offsets.append(len(self.ts))

    def __len__(self) -> int:
        return len(self.ts)

    def row(self) -> tuple[int, bytes, bytes, bytes, bytes]:
        """``(n, sids, offsets, ts, bits)`` as stored in the ``head`` table."""
        return (
            len(self.ts),
            _to_le(self.sids),
            _to_le(self.offsets),
            _to_le(self.ts),
            _to_le(self.bits),
        )


def first_wins(
    parts: Iterable[tuple[Sequence[int], Sequence[int]]],
) -> tuple[list[int], list[int]]:
    """Samples of several sources (earliest written first) merged in time order;
    for a timestamp present twice the earlier source's value is kept."""
    runs = [(ts, bits) for ts, bits in parts if ts]
    # Fast path, in-order writes: each run strictly increasing and starting
    # after the one before ends; laid end to end they are the answer.
    # (map over a C function: no Python frame a pair.)
    newest = None
    for ts, _ in runs:
        if (newest is not None and ts[0] <= newest) or not all(map(lt, ts, ts[1:])):
            break
        newest = ts[-1]
    else:
        out_ts: list[int] = []
        out_bits: list[int] = []
        for ts, bits in runs:
            out_ts.extend(ts)
            out_bits.extend(bits)
        return out_ts, out_bits
    merged: dict[int, int] = {}
    for ts, bits in runs:
        for t, b in zip(ts, bits, strict=True):
            merged.setdefault(t, b)
    keys = sorted(merged)
    return keys, [merged[t] for t in keys]


#: The most samples a store keeps merged (:attr:`HeadCache.merged`): about 20 MB.
MERGED_SAMPLES = 1 << 18

#: series id and the ids of the head records it is in -> its merged samples
Merged = FifoCache[tuple[int, ...], tuple[list[int], list[int]]]


def _merged(
    memo: Merged | None,
    key: tuple[int, ...],
    parts: Sequence[tuple[Sequence[int], Sequence[int]]],
) -> tuple[list[int], list[int]]:
    """:func:`first_wins` of ``parts``, remembered in ``memo`` under ``key``."""
    if memo is None:
        return first_wins(parts)
    hit = memo.get(key)
    if hit is None:
        hit = first_wins(parts)
        memo.put(key, hit, len(hit[0]) or 1)
    return hit


class HeadView:
    """The head as one read transaction sees it: its records in id order
    (``ids``: theirs; what a compaction kept has a negative id, so it comes
    first, before every record written since it was planned)."""

    __slots__ = ("ids", "merged", "records")

    def __init__(
        self, records: list[HeadRecord], ids: list[int] | None = None, merged: Merged | None = None
    ) -> None:
        self.records = records
        self.ids = ids if ids is not None else []
        #: the store's memo of merged series (None, or no ids: none)
        self.merged = merged if ids else None

    def __bool__(self) -> bool:
        return bool(self.records)

    def samples(self, sid: int) -> tuple[list[int], list[int]]:
        """Series ``sid``'s head samples, in time order, first write winning
        (shared lists, see :attr:`HeadCache.merged`: the caller must not
        change them)."""
        parts = []
        key = [sid]
        ids = self.ids
        for k, rec in enumerate(self.records):
            for i in rec.segments(sid):
                lo, hi = rec.offsets[i], rec.offsets[i + 1]
                parts.append((rec.ts[lo:hi], rec.bits[lo:hi]))
                key.append(ids[k] if ids else 0)
        return _merged(self.merged, tuple(key), parts)

    def samples_of(self, sids: Iterable[int]) -> dict[int, tuple[list[int], list[int]]]:
        """:meth:`samples` for many series at once (one pass over the head when
        there are many, a search per series when there are few)."""
        wanted = set(sids)
        if len(wanted) <= 32:
            return {sid: self.samples(sid) for sid in wanted}
        parts: dict[int, list[tuple[Sequence[int], Sequence[int]]]] = {}
        keys: dict[int, list[int]] = {}
        ids = self.ids or [0] * len(self.records)
        for rec, rid in zip(self.records, ids, strict=True):
            offsets, ts, bits = rec.offsets, rec.ts, rec.bits
            for i, sid in enumerate(rec.series_ids()):
                if sid in wanted:
                    lo, hi = offsets[i], offsets[i + 1]
                    parts.setdefault(sid, []).append((ts[lo:hi], bits[lo:hi]))
                    keys.setdefault(sid, [sid]).append(rid)
        return {sid: _merged(self.merged, tuple(keys[sid]), p) for sid, p in parts.items()}

    def by_series(self) -> dict[int, tuple[array[int], array[int]]]:
        """Every series' head samples, concatenated in record order (unsorted,
        duplicates kept: :func:`first_wins` settles them), for the compaction.
        Arrays, not lists: 16 bytes a sample while the whole head is regrouped."""
        fast = self._by_series_scrapes()
        return fast if fast is not None else self._by_series_any()

    def _by_series_any(self) -> dict[int, tuple[array[int], array[int]]]:
        """:meth:`by_series` for any records: segment by segment."""
        parts: dict[int, tuple[array[int], array[int]]] = {}
        for rec in self.records:
            _append_segments(parts, rec)
        return parts

    def _by_series_scrapes(self) -> dict[int, tuple[array[int], array[int]]] | None:
        """:meth:`by_series` when the head is mostly scrapes (records of one
        sample a series, in shapes that repeat), else None.

        A sender (a Prometheus shard) sends the same series in the same order
        request after request, so its records share their ``sids`` bytes. The
        K records of one such shape laid end to end are a K x n matrix, and a
        series' samples are one column of it: a strided slice (``cat[i::n]``)
        in C instead of K appends in Python. Record order is kept within a
        column. The other records (what the last compaction kept, a backlog
        of several samples a series, a shape seen once) are taken segment by
        segment and go before the column: allowed when each of them precedes
        every scrape of its series. A series in two shapes, or in another
        record after its scrapes (whose order would mix), goes the general way.
        """
        records = self.records
        shapes: dict[bytes, list[HeadRecord]] = {}
        for rec in records:
            if len(rec.ts) * 8 == len(rec.sids):
                shapes.setdefault(rec.sids, []).append(rec)
        parts: dict[int, tuple[array[int], array[int]]] = {}
        first_scrape: dict[int, int] = {}  # series -> id() of the first record of its shape
        total = 0
        for recs in shapes.values():
            if len(recs) < 2:
                continue
            order = recs[0].series_ids()
            n = len(order)
            total += n
            cat_ts = array("q")
            cat_bits = array("Q")
            for rec in recs:
                cat_ts.extend(rec.ts)
                cat_bits.extend(rec.bits)
            for i, sid in enumerate(order):
                parts[sid] = (cat_ts[i::n], cat_bits[i::n])
            first_scrape.update(dict.fromkeys(order, id(recs[0])))
        if not total or len(parts) != total:
            return None  # no repeated shape; or a series repeated in a record, or in two shapes
        lead: dict[int, tuple[array[int], array[int]]] = {}
        seen: set[int] = set()  # id() of the scrape-shape first records passed so far
        for rec in records:
            if len(rec.ts) * 8 == len(rec.sids) and len(shapes[rec.sids]) >= 2:
                seen.add(id(rec))  # in a column
                continue
            if seen and any(first_scrape.get(sid) in seen for sid in rec.series_ids()):
                return None  # after a scrape of its series: order would mix
            _append_segments(lead, rec)
        for sid, (ts, bits) in lead.items():
            column = parts.get(sid)
            if column is not None:
                ts.extend(column[0])
                bits.extend(column[1])
            parts[sid] = (ts, bits)
        return parts


def _append_segments(parts: dict[int, tuple[array[int], array[int]]], rec: HeadRecord) -> None:
    """Add each segment of ``rec`` to the end of its series' arrays in ``parts``."""
    offsets, ts, bits = rec.offsets, rec.ts, rec.bits
    for i, sid in enumerate(rec.series_ids()):
        lo, hi = offsets[i], offsets[i + 1]
        got = parts.get(sid)
        if got is None:
            parts[sid] = got = (array("q"), array("Q"))
        got[0].extend(ts[lo:hi])
        got[1].extend(bits[lo:hi])


class HeadCache:
    """Decoded head records by id, shared by the threads of one process.

    Only immutable facts are kept (a record never changes once written, and
    its id is never reused), and each read asks the database which ids exist
    in its own transaction, so a cache can never show a record another
    process already compacted away. Records gone from the table are dropped.
    """

    def __init__(self) -> None:
        self._records: dict[int, HeadRecord] = {}
        self._lock = threading.Lock()
        #: A series' head samples merged (:func:`first_wins`), by the series id
        #: and the ids of the head records it is in: records never change and
        #: their ids are never reused (in one file: a memo per store), so an
        #: entry cannot go stale, and a series read again before the next
        #: write to it costs a lookup; its lists are then the same objects,
        #: which lets :mod:`.sqlite_streamed` keep their chunk groups too. At
        #: most :data:`MERGED_SAMPLES` samples, oldest dropped first.
        self.merged: Merged = FifoCache(MERGED_SAMPLES)

    def view(self, conn: sqlite3.Connection) -> HeadView:
        """The head as ``conn``'s current transaction sees it."""
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM head ORDER BY id")]
        with self._lock:
            known = dict(self._records)
        missing = [i for i in ids if i not in known]
        fresh: dict[int, HeadRecord] = {}
        for start in range(0, len(missing), 500):
            batch = missing[start : start + 500]
            marks = ",".join("?" * len(batch))
            for rid, sids, offsets, ts, bits in conn.execute(
                f"SELECT id, sids, offsets, ts, bits FROM head WHERE id IN ({marks})", batch
            ):
                fresh[int(rid)] = HeadRecord.from_row(sids, offsets, ts, bits)
        known.update(fresh)
        ids = [i for i in ids if i in known]
        records = [known[i] for i in ids]
        with self._lock:
            self._records.update(fresh)
            if ids and len(self._records) > len(ids):
                live = set(ids)
                # Compacted records (and kept ones, which have negative ids):
                # no transaction started from now on can see them. An id past
                # the newest here may be a newer transaction's record: kept.
                for rid in [r for r in self._records if r < ids[-1] and r not in live]:
                    del self._records[rid]
            elif not ids:
                self._records.clear()
        return HeadView(records, ids, self.merged)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
        self.merged.clear()
