"""The SQLite store's file format: tables, its version, and the migration from version 1.

``PRAGMA user_version`` holds the format: 0 with a ``samples`` table is the
row-per-sample format of promwire <= 0.x ("version 1"), 2 is the chunked
format described in docs/storage.md. Opening a version-1 file migrates it in
one transaction (its samples cut into chunks, its label rows turned into
postings); a file of a newer format, or an SQLite file with foreign tables,
is refused with a one-line message (:class:`FormatError`).
"""

from __future__ import annotations

import sqlite3
from hashlib import blake2b

from ..errors import StorageError
from .sqlite_chunks import cut_groups, encode_groups

__all__ = ["FORMAT_VERSION", "FormatError", "label_hash", "prepare"]

FORMAT_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('head_samples', 0);
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY,
    hash   INTEGER NOT NULL,               -- label_hash(labels): the lookup key
    labels TEXT NOT NULL                   -- JSON [[name, value], ...] sorted by name
);
CREATE INDEX IF NOT EXISTS series_by_hash ON series(hash);
CREATE TABLE IF NOT EXISTS postings (
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    PRIMARY KEY (name, value, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS label_values (
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, value)
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
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    mint      INTEGER NOT NULL,
    maxt      INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    data      BLOB NOT NULL                -- a Prometheus XOR chunk
);
CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks(series_id, maxt);
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

_V1_TABLES = {"series", "series_labels", "samples", "histograms", "exemplars", "metadata"}


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
        return False  # nothing to do: no need to wait for another writer's lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = _tables(conn)
        migrated = False
        if version > FORMAT_VERSION:
            raise FormatError(
                f"{path} holds promwire storage format {version}, newer than this promwire "
                f"reads ({FORMAT_VERSION}): upgrade promwire to open it"
            )
        if version == 0 and "samples" in tables:
            if not tables <= _V1_TABLES:
                raise FormatError(
                    f"{path} has tables promwire did not create ({sorted(tables - _V1_TABLES)}): "
                    "not a promwire database; use another --db file"
                )
            conn.execute("ALTER TABLE series RENAME TO series_v1")  # gains a hash column
            _create(conn)
            _migrate_v1(conn)
            migrated = True
        elif version == 0 and tables:
            raise FormatError(
                f"{path} is an SQLite database promwire did not create "
                f"(tables {sorted(tables)[:5]}): use another --db file"
            )
        else:
            _create(conn)
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return migrated


def label_hash(key: str) -> int:
    """The 64-bit key of a series' canonical label JSON (a short index instead of
    the whole text; equal hashes are told apart by comparing the text)."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Version 1 (one row per sample) to chunks, inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO series(id, hash, labels) VALUES (?, ?, ?)",
        [
            (int(i), label_hash(str(k)), str(k))
            for i, k in conn.execute("SELECT id, labels FROM series_v1")
        ],
    )
    conn.execute("DROP TABLE series_v1")
    conn.execute("INSERT OR IGNORE INTO postings SELECT name, value, series_id FROM series_labels")
    conn.execute(
        "INSERT OR IGNORE INTO label_values SELECT DISTINCT name, value FROM series_labels"
    )
    current: int | None = None
    ts: list[int] = []
    bits: list[int] = []

    def flush() -> None:
        if current is None or not ts:
            return
        groups, _ = cut_groups(ts, None)
        conn.executemany(
            "INSERT INTO chunks(series_id, mint, maxt, n, data) VALUES (?, ?, ?, ?, ?)",
            [(current, *chunk) for chunk in encode_groups(ts, bits, groups)],
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


def _create(conn: sqlite3.Connection) -> None:
    # One statement at a time: executescript would commit the open transaction first.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            conn.execute(statement)
