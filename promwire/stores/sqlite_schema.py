"""The SQLite store's file format: tables, its version, and the migrations to it.

``PRAGMA user_version`` holds the format: 0 with a ``samples`` table is the
row-per-sample format of promwire <= 0.x ("version 1"), 2 the first chunked
format (JSON label sets, a posting row per label, a chunk row with its own id
and an index), 3 a symbol table, label sets and postings as varint blobs and
chunks keyed by series and time, 4 format 3 plus the ``blocks`` table of
sealed ranges (:mod:`.sqlite_blocks`) and a counter of its changes
(triggers, added to a file that lacks them when it is opened), 5 the current
one described in docs/storage.md: format 4 with a pack's directory in
varints (about 3 bytes a series instead of 6). Opening a version-1, -2, -3
or -4 file migrates it in one transaction (a failure leaves it as it was);
a file of a newer format, or an SQLite file with foreign tables, is refused
with a one-line message (:class:`FormatError`).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from itertools import pairwise

from ..errors import StorageError
from .sqlite_blocks import BLOCKS_SCHEMA, GENERATION_SCHEMA, pack_series, seal, split_key
from .sqlite_chunks import cut_groups, encode_groups
from .sqlite_histograms import HISTOGRAM_CHUNKS_SCHEMA
from .sqlite_index import add_series, label_hash, posting_pairs, write_postings

__all__ = ["FORMAT_VERSION", "FormatError", "label_hash", "prepare"]

FORMAT_VERSION = 5

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('head_samples', 0);
CREATE TABLE IF NOT EXISTS symbols (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE              -- every distinct label name and value, once
);
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY,
    hash   INTEGER NOT NULL,               -- label_hash(canonical JSON): the lookup key
    labels BLOB NOT NULL                   -- varint symbol ids: name, value, name, value, ...
);
CREATE INDEX IF NOT EXISTS series_by_hash ON series(hash);
CREATE TABLE IF NOT EXISTS postings (
    name  INTEGER NOT NULL,                -- symbol ids of the label pair
    value INTEGER NOT NULL,
    first INTEGER NOT NULL,                -- the block's first series id
    ids   BLOB NOT NULL,                   -- the next ones, as varint deltas
    PRIMARY KEY (name, value, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postings_new (
    name      INTEGER NOT NULL,
    value     INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    PRIMARY KEY (name, value, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS head (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    n       INTEGER NOT NULL,
    sids    BLOB NOT NULL,
    offsets BLOB NOT NULL,
    ts      BLOB NOT NULL,
    bits    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    series_id INTEGER NOT NULL,
    maxt      INTEGER NOT NULL,            -- its newest sample; count and oldest are in data
    data      BLOB NOT NULL,               -- a Prometheus XOR chunk
    PRIMARY KEY (series_id, maxt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS histograms (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    data      BLOB NOT NULL,               -- promwire.encode(Histogram)
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exemplars (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    bits      INTEGER NOT NULL,
    labels    TEXT NOT NULL,
    PRIMARY KEY (series_id, ts, bits, labels)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metadata (
    metric_family_name TEXT PRIMARY KEY,
    type               INTEGER NOT NULL,
    help               TEXT NOT NULL,
    unit               TEXT NOT NULL
);
"""
    + BLOCKS_SCHEMA
    + ";\n"
    + HISTOGRAM_CHUNKS_SCHEMA
)

_V3_TABLES = {
    "meta",
    "symbols",
    "series",
    "postings",
    "postings_new",
    "head",
    "chunks",
    "histograms",
    "exemplars",
    "metadata",
}
_V4_TABLES = _V3_TABLES | {"blocks", "histogram_chunks"}
_V1_TABLES = {"series", "series_labels", "samples", "histograms", "exemplars", "metadata"}
_V2_TABLES = {
    "meta",
    "series",
    "postings",
    "label_values",
    "head",
    "chunks",
    "histograms",
    "exemplars",
    "metadata",
}


class FormatError(StorageError):
    """The file holds a format this version cannot open (the message says what to do)."""


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {
        str(r[0])
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(r[0]).startswith("sqlite_")
    }


def prepare(conn: sqlite3.Connection, path: str) -> bool:
    """Create, check or migrate the schema on the writer ``conn``; returns
    whether a migration ran (the caller then vacuums the file)."""
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) == FORMAT_VERSION:
        if not _has_generation(conn):  # its triggers dropped (format 4 began without them)
            conn.execute("BEGIN IMMEDIATE")
            try:
                _add_generation(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return False  # nothing else to do: no need to wait for another writer's lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == FORMAT_VERSION:  # another process migrated it while this one waited
            conn.execute("COMMIT")
            return False
        tables = _tables(conn)
        migrated = False  # the file's chunks to seal (formats 1-3)
        repacked = False  # format 4's packs given format 5's directory
        if version > FORMAT_VERSION:
            raise FormatError(
                f"{path} holds promwire storage format {version}, newer than this promwire "
                f"reads ({FORMAT_VERSION}): upgrade promwire to open it"
            )
        if version == 0 and "samples" in tables:
            _check_tables(path, tables, _V1_TABLES)
            conn.execute("ALTER TABLE series RENAME TO series_v1")
            _create(conn)
            _migrate_v1(conn)
            migrated = True
        elif version == 2:
            _check_tables(path, tables, _V2_TABLES)
            if not {"series", "chunks"} <= tables:
                raise FormatError(
                    f"{path} holds promwire storage format 2 without its series or chunks "
                    "table (a damaged file): not migrated"
                )
            _migrate_v2(conn)
            migrated = True
        elif version == 3:
            _check_tables(path, tables, _V3_TABLES)
            if not {"series", "chunks", "meta"} <= tables:
                raise FormatError(
                    f"{path} holds promwire storage format 3 without its series, chunks or "
                    "meta table (a damaged file): not migrated"
                )
            # The blocks and histogram_chunks tables; the histogram rows are
            # the histogram head now.
            _create(conn)
            migrated = True
        elif version == 4:
            _check_tables(path, tables, _V4_TABLES)
            if not {"series", "chunks", "meta", "blocks"} <= tables:
                raise FormatError(
                    f"{path} holds promwire storage format 4 without its series, chunks, meta "
                    "or blocks table (a damaged file): not migrated"
                )
            _create(conn)  # a format-4 file from before histogram chunks lacks their table
            _repack_v4(conn, path)
            repacked = True
        elif version == 0 and tables:
            raise FormatError(
                f"{path} is an SQLite database promwire did not create "
                f"(tables {sorted(tables)[:5]}): use another --db file"
            )
        elif version != 0:
            raise FormatError(
                f"{path} holds promwire storage format {version}, which no promwire "
                "wrote: not a promwire database; use another --db file"
            )
        else:
            _create(conn)
        if migrated:
            # Every chunk of the old file into blocks, range by range (the
            # index, for the migration only, finds each range's chunks).
            conn.execute("CREATE INDEX chunks_by_maxt ON chunks(maxt)")
            seal(conn, None)
            conn.execute("DROP INDEX chunks_by_maxt")
        _add_generation(conn)
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return migrated or repacked


def _check_tables(path: str, tables: set[str], known: set[str]) -> None:
    if not tables <= known:
        raise FormatError(
            f"{path} has tables promwire did not create ({sorted(tables - known)}): "
            "not a promwire database; use another --db file"
        )


def _add_series(conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
    """Series ``(id, JSON labels)`` of an old file, under their old ids (head
    records, histograms and exemplars refer to them), with their postings. The
    lookup hash is taken of the label set written canonically (sorted, compact
    JSON, as the write path spells it), whatever spacing the old text had, so
    a write of the same labels finds the migrated series."""
    postings: dict[tuple[int, int], list[int]] = {}
    for sid, old in sorted(rows):
        try:
            pairs = sorted((str(n), str(v)) for n, v in json.loads(old))
        except (ValueError, TypeError) as exc:
            raise FormatError(f"series {sid} has unreadable labels ({exc}): not migrated") from exc
        key = json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))
        add_series(conn, key, pairs, postings=False, sid=sid)
        (labels,) = conn.execute("SELECT labels FROM series WHERE id = ?", (sid,)).fetchone()
        for pair in posting_pairs(bytes(labels)):
            postings.setdefault(pair, []).append(sid)
    for (n, v), sids in sorted(postings.items()):
        write_postings(conn, n, v, sids)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Version 1 (one row per sample) to chunks, inside the caller's transaction."""
    _add_series(
        conn, [(int(i), str(k)) for i, k in conn.execute("SELECT id, labels FROM series_v1")]
    )
    conn.execute("DROP TABLE series_v1")
    current: int | None = None
    ts: list[int] = []
    bits: list[int] = []

    def flush() -> None:
        if current is None or not ts:
            return
        groups, _ = cut_groups(ts, None)
        conn.executemany(
            "INSERT INTO chunks(series_id, maxt, data) VALUES (?, ?, ?)",
            [(current, maxt, data) for _, maxt, _, data in encode_groups(ts, bits, groups)],
        )

    # The cursor over the old table stays open while chunks are written (another table).
    for sid, t, b in conn.execute("SELECT series_id, ts, bits FROM samples ORDER BY series_id, ts"):
        if sid != current:
            flush()
            current, ts, bits = sid, [], []
        ts.append(t)
        bits.append(b & 0xFFFFFFFFFFFFFFFF)  # version 1 stored the bits as int64
    flush()
    conn.execute("DROP TABLE samples")
    conn.execute("DROP TABLE series_labels")


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Version 2 (JSON labels, posting rows, chunk ids) to 3, inside the caller's
    transaction. Series ids, head records, histograms, exemplars and metadata
    stay as they are; chunk bytes are copied unchanged."""
    conn.execute("DROP INDEX IF EXISTS series_by_hash")
    conn.execute("DROP INDEX IF EXISTS chunks_by_series")
    conn.execute("ALTER TABLE series RENAME TO series_v2")
    conn.execute("ALTER TABLE chunks RENAME TO chunks_v2")
    conn.execute("DROP TABLE IF EXISTS postings")  # rebuilt from the label sets
    conn.execute("DROP TABLE IF EXISTS label_values")
    _create(conn)
    _add_series(
        conn, [(int(i), str(k)) for i, k in conn.execute("SELECT id, labels FROM series_v2")]
    )
    conn.execute("DROP TABLE series_v2")
    clash = conn.execute(
        "SELECT series_id, maxt FROM chunks_v2 GROUP BY series_id, maxt HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if clash is not None:
        raise FormatError(
            f"series {clash[0]} has two chunks ending at {clash[1]} (a damaged file): not migrated"
        )
    conn.execute(
        "INSERT INTO chunks(series_id, maxt, data) "
        "SELECT series_id, maxt, data FROM chunks_v2 ORDER BY series_id, maxt"
    )
    conn.execute("DROP TABLE chunks_v2")


def _has_generation(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'blocks_%'"
    ).fetchone()
    return bool(row[0] == 3)


def _add_generation(conn: sqlite3.Connection) -> None:
    """The counter of changes to ``blocks`` (:data:`~.sqlite_blocks.GENERATION_SCHEMA`)."""
    for statement in GENERATION_SCHEMA:
        conn.execute(statement)


def _create(conn: sqlite3.Connection) -> None:
    # One statement at a time: executescript would commit the open transaction first.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            conn.execute(statement)


_U16 = struct.Struct("<H")


def _v4_pack_entries(blob: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """A format-4 pack's ``(series id, records)`` and its "continued" flag:
    ``u16 n`` (top bit: continued), ``n`` ``u32`` ids, ``n + 1`` ``u16``
    offsets. Raises ``ValueError`` unless the directory is whole, its ids
    ascending and its offsets running from its end to the pack's."""
    try:
        (n,) = _U16.unpack_from(blob)
        continued = bool(n & 0x8000)
        n &= 0x7FFF
        sids = struct.unpack_from(f"<{n}I", blob, 2)
        offsets = struct.unpack_from(f"<{n + 1}H", blob, 2 + 4 * n)
    except struct.error as exc:
        raise ValueError(str(exc)) from exc
    if offsets[0] != 2 + 6 * n + 2 or offsets[-1] != len(blob):
        raise ValueError(f"offsets {offsets[0]}..{offsets[-1]} in a pack of {len(blob)} bytes")
    if any(a >= b for a, b in pairwise(sids)) or any(a > b for a, b in pairwise(offsets)):
        raise ValueError("series ids or offsets out of order")
    return [(sid, blob[offsets[i] : offsets[i + 1]]) for i, sid in enumerate(sids)], continued


def _repack_v4(conn: sqlite3.Connection, path: str) -> None:
    """Every pack row of a format-4 file rewritten in place, inside the
    caller's transaction: the same key and entries, format 5's directory
    (own rows are chunk records alone, the same in both formats). Rows are
    read a batch at a time, so memory stays small whatever the file holds."""
    after = -1
    while True:
        rows = conn.execute(
            "SELECT id, data FROM blocks WHERE id > ? ORDER BY id LIMIT 256", (after,)
        ).fetchall()
        if not rows:
            return
        for key, data in rows:
            if split_key(int(key))[1]:
                continue  # an own row
            try:
                entries, continued = _v4_pack_entries(bytes(data))
            except ValueError as exc:
                raise FormatError(
                    f"{path}: the format-4 pack {int(key)} is unreadable ({exc}), a damaged "
                    "file: not migrated"
                ) from exc
            conn.execute(
                "UPDATE blocks SET data = ? WHERE id = ?",
                (pack_series(entries, continued=continued), int(key)),
            )
        after = int(rows[-1][0])
