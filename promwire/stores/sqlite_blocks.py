"""Sealed chunks in the SQLite store: one row per series and 2-hour range.

The ``chunks`` table (:mod:`.sqlite_chunks`) keys each chunk by ``(series_id,
maxt)``; every compaction adds a chunk to every active series, in the middle
of that B-tree, so its pages split and stay about 10% empty, and each chunk
row pays its own key. Once a 2-hour range (``CHUNK_RANGE_MS``) has ended,
no in-order sample can reach it any more, and its chunks move to ``blocks``
(:func:`seal`), like Prometheus' head becomes a block:

* ``blocks`` is a rowid table whose id is the key ``(range, series_id,
  part)`` in one integer (:func:`block_key`). Sealing a range inserts its rows
  in ascending id order after every older range, so SQLite appends them to
  the last page and leaves the pages full (a rowid table's append path).
* a row holds up to about 1 KiB of one series' chunks from one range, each
  as ``varint(len(data)) varint(maxt - mint) data`` (:func:`pack_rows`): the
  count and oldest timestamp are in the chunk's own header. A range's chunks
  of one series that need more rows take parts 0, 1, ... (at most 256); what
  does not fit, and a series id or range outside the key's bits, stays in
  ``chunks``. Readers always look in both tables.

A graceful close seals every range, the current one too, so a stopped store's
file is compact. A write that reaches a sealed range again (out-of-order
samples, or the current range after a restart) first moves that series' rows
of those ranges back to ``chunks`` (:func:`unseal`), where the compaction
merges as before; the next seal moves them back. So a series' chunks of one
range are always all in one of the two tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import pairwise

from ..codec.wire import read_varint, zigzag_decode
from ..errors import StorageError

__all__ = [
    "BLOCKS_SCHEMA",
    "ROW_BYTES",
    "block_key",
    "block_span",
    "blocks_chunk_counts",
    "delete_ranges_before",
    "newest_in_blocks",
    "oldest_block_rows",
    "pack_rows",
    "seal",
    "series_blocks",
    "split_key",
    "unpack_row",
    "unseal",
]

BLOCKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    id   INTEGER PRIMARY KEY,              -- block_key(range, series_id, part)
    data BLOB NOT NULL                     -- chunks: varint len, varint maxt - mint, bytes
)"""

#: A row's chunk bytes stop growing past this: small rows waste little at the
#: end of a page (a row that does not fit starts the next one).
ROW_BYTES = 1024

_RANGE_MS = 2 * 60 * 60 * 1000  # CHUNK_RANGE_MS (sqlite_chunks imports this module)
_PART_BITS = 8
_SID_BITS = 33
_RANGE_BIAS = 1 << 21  # ranges -2**21 .. 2**21 - 1: 478 years either side of 1970
_SID_SHIFT = _PART_BITS
_RANGE_SHIFT = _PART_BITS + _SID_BITS
_PARTS = 1 << _PART_BITS
_RANGE_STEP = 1 << _RANGE_SHIFT


def block_key(rng: int, sid: int, part: int = 0) -> int | None:
    """The row id of ``part`` of series ``sid``'s chunks in 2-hour range ``rng``
    (``t // CHUNK_RANGE_MS``); ``None`` when they do not fit the key's bits."""
    if not (-_RANGE_BIAS <= rng < _RANGE_BIAS and 0 <= sid < 1 << _SID_BITS and 0 <= part < _PARTS):
        return None
    return ((rng + _RANGE_BIAS) << _RANGE_SHIFT) | (sid << _SID_SHIFT) | part


def split_key(key: int) -> tuple[int, int, int]:
    """``(range, series_id, part)`` of a row id."""
    return (
        (key >> _RANGE_SHIFT) - _RANGE_BIAS,
        (key >> _SID_SHIFT) & ((1 << _SID_BITS) - 1),
        key & (_PARTS - 1),
    )


def _range_key(rng: int) -> int:
    """The first row id of range ``rng``, clamped to the key's ranges."""
    rng = min(max(rng, -_RANGE_BIAS), _RANGE_BIAS)
    return (rng + _RANGE_BIAS) << _RANGE_SHIFT


def pack_rows(chunks: Sequence[tuple[int, int, bytes]]) -> list[bytes]:
    """Rows for one series' chunks ``(mint, maxt, data)`` of one range, in time order."""
    rows: list[bytes] = []
    row = bytearray()
    for mint, maxt, data in chunks:
        if row and len(row) + len(data) > ROW_BYTES:
            rows.append(bytes(row))
            row = bytearray()
        _varint(row, len(data))
        _varint(row, maxt - mint)
        row += data
    if row:
        rows.append(bytes(row))
    return rows


def _varint(out: bytearray, v: int) -> None:
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def unpack_row(blob: bytes) -> list[tuple[int, int, int, bytes]]:
    """A row's chunks as ``(mint, maxt, count, data)``."""
    out: list[tuple[int, int, int, bytes]] = []
    pos = 0
    end = len(blob)
    try:
        while pos < end:
            size, pos = read_varint(blob, pos)
            span, pos = read_varint(blob, pos)
            data = blob[pos : pos + size]
            pos += size
            if len(data) != size or size < 3:
                raise ValueError("a chunk past the row's end")
            mint = zigzag_decode(read_varint(data, 2)[0])
            out.append((mint, mint + span, (data[0] << 8) | data[1], data))
    except Exception as exc:  # a DecodeError or the ValueError above: the file is damaged
        raise StorageError(f"damaged promwire database: an unreadable block row ({exc})") from exc
    return out


def block_span(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """The oldest and newest sealed range, or ``None`` when nothing is sealed."""
    lo, hi = conn.execute("SELECT min(id), max(id) FROM blocks").fetchone()
    if lo is None:
        return None
    return split_key(int(lo))[0], split_key(int(hi))[0]


# The rows of one series in ranges lo..hi: a range is one probe of the row id
# index (the CTE walks the ranges in order, CROSS JOIN keeps it the outer loop).
_SERIES_ROWS = """
WITH RECURSIVE r(k) AS (SELECT ? UNION ALL SELECT k + ? FROM r WHERE k < ?)
SELECT b.data FROM r CROSS JOIN blocks AS b WHERE b.id BETWEEN r.k AND r.k + ?
"""
# The newest row of one series, walking the ranges from hi down to lo.
_NEWEST_ROW = """
WITH RECURSIVE r(k) AS (SELECT ? UNION ALL SELECT k - ? FROM r WHERE k > ?)
SELECT (SELECT data FROM blocks WHERE id BETWEEN r.k AND r.k + ? ORDER BY id DESC LIMIT 1)
AS d FROM r WHERE d IS NOT NULL LIMIT 1
"""


def _walk(sid: int, lo: int, hi: int, span: tuple[int, int] | None) -> tuple[int, int] | None:
    """First and last row-id base of series ``sid`` over ranges ``lo..hi``
    clamped to the sealed ``span``; ``None`` when nothing can be there."""
    if span is None or not 0 <= sid < 1 << _SID_BITS:
        return None
    lo, hi = max(lo, span[0]), min(hi, span[1])
    if lo > hi:
        return None
    base = sid << _SID_SHIFT
    return _range_key(lo) | base, _range_key(hi) | base


def series_blocks(
    conn: sqlite3.Connection, sid: int, lo: int, hi: int, span: tuple[int, int] | None
) -> list[tuple[int, int, int, bytes]]:
    """Series ``sid``'s sealed chunks in ranges ``lo..hi``, ``(mint, maxt, count,
    data)`` in time order (``span``: :func:`block_span`)."""
    walk = _walk(sid, lo, hi, span)
    if walk is None:
        return []
    out: list[tuple[int, int, int, bytes]] = []
    for (blob,) in conn.execute(_SERIES_ROWS, (walk[0], _RANGE_STEP, walk[1], _PARTS - 1)):
        out += unpack_row(bytes(blob))
    return out


def newest_in_blocks(
    conn: sqlite3.Connection, sid: int, lo: int, span: tuple[int, int] | None
) -> int | None:
    """The newest sealed timestamp of series ``sid`` in ranges from ``lo`` on."""
    walk = _walk(sid, lo, span[1] if span else lo, span)
    if walk is None:
        return None
    row = conn.execute(_NEWEST_ROW, (walk[1], _RANGE_STEP, walk[0], _PARTS - 1)).fetchone()
    if row is None:
        return None
    return max(maxt for _, maxt, _, _ in unpack_row(bytes(row[0])))


def unseal(conn: sqlite3.Connection, sid: int, lo: int, span: tuple[int, int] | None) -> int:
    """Move series ``sid``'s rows of ranges ``lo`` and later back to ``chunks``
    (inside the caller's write transaction); returns how many chunks moved."""
    walk = _walk(sid, lo, span[1] if span else lo, span)
    if walk is None:
        return 0
    ids: list[int] = []
    chunks: list[tuple[int, int, bytes]] = []
    for key, blob in conn.execute(
        _SERIES_ROWS.replace("SELECT b.data", "SELECT b.id, b.data"),
        (walk[0], _RANGE_STEP, walk[1], _PARTS - 1),
    ):
        ids.append(int(key))
        chunks += [(sid, maxt, data) for _, maxt, _, data in unpack_row(bytes(blob))]
    if ids:
        conn.executemany("DELETE FROM blocks WHERE id = ?", [(k,) for k in ids])
        conn.executemany("INSERT INTO chunks(series_id, maxt, data) VALUES (?, ?, ?)", chunks)
    return len(chunks)


def seal(conn: sqlite3.Connection, before: int | None) -> int:
    """Move the chunks of every range ending at or before ``before`` (a range
    boundary; ``None``: every range) from ``chunks`` to ``blocks``, inside the
    caller's write transaction. Returns how many chunks moved."""
    if before is None:
        cur = conn.execute("SELECT series_id, maxt, data FROM chunks")
    else:
        cur = conn.execute("SELECT series_id, maxt, data FROM chunks WHERE maxt < ?", (before,))
    groups: dict[tuple[int, int], list[tuple[int, int, bytes]]] = {}
    for sid, maxt, blob in cur:
        data = bytes(blob)
        maxt = int(maxt)
        # A chunk never spans a range boundary: its newest sample names its range.
        mint = zigzag_decode(read_varint(data, 2)[0]) if len(data) > 2 else maxt
        groups.setdefault((maxt // _RANGE_MS, int(sid)), []).append((mint, maxt, data))
    if not groups:
        return 0
    span = block_span(conn)
    rows: list[tuple[int, bytes]] = []
    moved: list[tuple[int, int]] = []
    for (rng, sid), chunks in sorted(groups.items()):
        if block_key(rng, sid) is None:
            continue  # outside the key's bits: stays in chunks
        chunks.sort(key=lambda c: c[1])
        if span is not None and rng <= span[1]:
            chunks = _merge_sealed(conn, sid, rng, chunks)
        packed = pack_rows(chunks)
        if len(packed) > _PARTS:
            continue  # more than 256 rows of one series in 2 hours: stays in chunks
        rows += [(block_key(rng, sid, p) or 0, blob) for p, blob in enumerate(packed)]
        moved += [(sid, maxt) for _, maxt, _ in chunks]
    conn.executemany("INSERT INTO blocks(id, data) VALUES (?, ?)", rows)
    conn.executemany("DELETE FROM chunks WHERE series_id = ? AND maxt = ?", moved)
    return len(moved)


def _merge_sealed(
    conn: sqlite3.Connection, sid: int, rng: int, chunks: list[tuple[int, int, bytes]]
) -> list[tuple[int, int, bytes]]:
    """``chunks`` together with rows of the same series and range already sealed
    (only a file written by a promwire that did not unseal first can hold
    both); the sealed rows are deleted, their chunks returned with the new ones."""
    first = block_key(rng, sid) or 0
    found = conn.execute(
        "SELECT id, data FROM blocks WHERE id BETWEEN ? AND ?", (first, first + _PARTS - 1)
    ).fetchall()
    if not found:
        return chunks
    conn.execute("DELETE FROM blocks WHERE id BETWEEN ? AND ?", (first, first + _PARTS - 1))
    merged = {maxt: (mint, maxt, data) for mint, maxt, data in chunks}
    for _, blob in found:
        for mint, maxt, _, data in unpack_row(bytes(blob)):
            merged.setdefault(maxt, (mint, maxt, data))
    out = sorted(merged.values(), key=lambda c: c[1])
    for a, b in pairwise(out):
        if b[0] <= a[1]:
            raise StorageError(
                f"damaged promwire database: series {sid} has overlapping chunks in range {rng}"
            )
    return out


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


def blocks_chunk_counts(conn: sqlite3.Connection) -> Iterable[int]:
    """The sample count of every sealed chunk."""
    for (blob,) in conn.execute("SELECT data FROM blocks"):
        for _, _, n, _ in unpack_row(bytes(blob)):
            yield n
