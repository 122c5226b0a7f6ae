"""A remote storage on stdlib ``sqlite3``: small, durable, idempotent.

    storage = SQLiteStorage("metrics.db")
    app = promwire.server.asgi.RemoteStorageApp(storage)

What it guarantees:

* **Durable before the 204.** Every ``write`` is one transaction, committed
  before ``write`` returns. The database runs in WAL mode with
  ``synchronous=FULL`` by default: in WAL mode ``NORMAL`` only syncs at
  checkpoints, so the last commits can vanish on power loss, and Prometheus
  never resends a batch it got a 2xx for. ``FULL`` costs one fsync per commit,
  cheap next to a batch of up to thousands of samples. Pass
  ``synchronous="NORMAL"`` to trade that for speed (still safe against a
  crash of the process).
* **Idempotent.** Samples and histograms are unique per (series, timestamp)
  and exemplars per (series, timestamp, value, labels); inserts use
  ``ON CONFLICT DO NOTHING``, so a batch Prometheus retries after a 5xx adds
  nothing twice. A second value for an existing timestamp is ignored (first
  write wins), where Prometheus would answer 400 "duplicate sample".
* **Exact floats.** A sample's value is stored as its IEEE-754 bit pattern in
  an INTEGER column (SQLite REAL would canonicalise NaNs), so stale markers
  and NaN payloads come back bit for bit.
* Native histograms are stored as their encoded protobuf bytes, exemplars with
  their labels, metric metadata by family name (latest wins). Remote read
  returns samples and histograms; exemplars and metadata are readable through
  :meth:`SQLiteStorage.exemplars` and :meth:`SQLiteStorage.metadata`.
* **Remote write 2.0** arrives through the handlers' conversion to the v1
  view (``accepted_protocols`` is v1 and v2): what v1 cannot carry (start
  timestamps, metadata of series without ``__name__``) is not stored.
* **Streamed remote read** (:meth:`SQLiteStorage.process_query_chunks`) goes
  series by series: the matching label sets are listed and sorted first, then
  one series' samples are fetched at a time, so memory holds one series, not
  the answer. Native histograms are not streamed (promwire has no histogram
  chunk encoder); ask for SAMPLES to get them.
* Labels with an empty value are dropped on write (an empty value means
  "absent" in Prometheus); series are identified by their sorted label set.
* **Thread-safe.** Writes go through one connection behind a lock (SQLite has
  a single writer anyway); each reading thread gets its own connection,
  registered without that lock, so under WAL a read never waits for a write
  (not even for a write stuck behind another process' lock). An in-memory
  database (``":memory:"``) shares the writer connection instead, since
  every connection to ``:memory:`` is a separate database: there reads do
  wait for writes.
* **Bounded reads.** A read spends the request's
  :class:`~promwire.stores.protocol.ReadBudget` (``ctx.budget``) while it
  runs: samples are fetched in batches and counted before they become
  objects, every series checked against the matchers is counted, and the
  clock is checked in the Python loops and, through SQLite's progress
  handler, inside long SQL statements. A read over its budget stops there
  (400 for the counts, 503 for time).
* **Recovers from an unwritable file.** A write that fails in SQLite (the
  file read-only, the disk full, a lock held too long by another process) is
  a :class:`~promwire.errors.StorageError` (500: the sender retries), and the
  next write opens a fresh writer connection, so the store accepts writes
  again as soon as the cause is gone, without a restart (a connection opened
  on a read-only file stays read-only forever). The ``-wal``/``-shm`` files
  SQLite created while the database was read-only carry its mode of then;
  on reopening they are given the database file's current mode (SQLite's own
  rule for them), when this process owns them. :meth:`SQLiteStorage.check_writable`
  says whether a write can succeed now (``promwire serve`` prints it at startup).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.messages import (
    Exemplar,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    MetricMetadata,
    MetricType,
    Query,
    QueryResult,
    Sample,
    TimeSeries,
    WriteRequest,
)
from ..errors import StorageError
from .matchers import compile_matchers
from .protocol import BaseStorage, ReadBudget
from .regex import DEFAULT_MAX_REGEX_LENGTH

__all__ = ["SQLiteStorage"]

log = logging.getLogger("promwire")
T = TypeVar("T")

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# A double and an int64 sharing the same 8 bytes: the exact-bits conversion.
_d = struct.Struct("<d")
_q = struct.Struct("<q")


def _bits(value: float) -> int:
    return int(_q.unpack(_d.pack(value))[0])


def _float(bits: int) -> float:
    return float(_d.unpack(_q.pack(bits))[0])


_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY,
    labels TEXT NOT NULL UNIQUE            -- JSON [[name, value], ...] sorted by name
);
CREATE TABLE IF NOT EXISTS series_labels (
    series_id INTEGER NOT NULL REFERENCES series(id),
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (series_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_labels_by_pair ON series_labels(name, value);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    bits      INTEGER NOT NULL,            -- IEEE-754 bits as int64, NaN-exact
    PRIMARY KEY (series_id, ts)
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

_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Rows fetched (and counted against the read budget) at a time.
_BATCH = 4096
#: SQLite virtual machine steps between two looks at the read deadline.
_PROGRESS_STEPS = 10_000


def _labels_key(labels: Iterable[Label]) -> tuple[str, list[tuple[str, str]]]:
    pairs = sorted((lb.name, lb.value) for lb in labels if lb.value != "")
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":")), pairs


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


#: A label set larger than this (estimated bytes) is never kept in the series-id cache.
_MAX_CACHED_SERIES_KEY_BYTES = 16 * 1024


def _cached_key_bytes(labels: tuple[Label, ...]) -> int:
    """An upper estimate of the memory a cached label tuple keeps alive: the
    strings (4 bytes a character at most, plus their headers), the Label
    objects, the tuple and the dict slot."""
    return 120 + sum(200 + 4 * (len(lb.name) + len(lb.value)) for lb in labels)


class SQLiteStorage(BaseStorage):
    """A :class:`~promwire.stores.protocol.RemoteStorage` in one SQLite file.

    ``path`` is a file name (created if missing) or ``":memory:"``.
    ``synchronous`` is the SQLite ``PRAGMA synchronous`` level (see the module
    docstring for why ``FULL`` is the default). ``timeout`` is how long a
    connection waits for a lock held by another process before failing with a
    :class:`~promwire.errors.StorageError` (a 500, so the sender retries).
    ``max_cached_series`` (entries) and ``max_cached_series_bytes`` (an upper
    estimate of the memory held) bound the in-memory map from label sets to
    series ids (emptied when either is reached; it refills from the
    database); a label set over 16 KiB is never kept in it.
    ``max_regex_length`` is the longest regex matcher a read may use (400).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        synchronous: str = "FULL",
        timeout: float = 30.0,
        max_cached_series: int = 1_000_000,
        max_cached_series_bytes: int = 256 * 1024 * 1024,
        max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
    ) -> None:
        if synchronous.upper() not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {_SYNC_MODES}")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._timeout = timeout
        self._memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        # _lock: the writer connection (held for a whole write transaction).
        # _readers_lock: the set of reader connections only; readers never take _lock.
        self._lock = threading.Lock()
        self._readers_lock = threading.Lock()
        self._local = threading.local()
        # Weak: a reader dies with its thread (threading.local drops it), so a
        # server that starts a thread per connection does not pile them up.
        self._readers: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        # Set when a write failed in SQLite: the next write reopens the writer.
        self._writer_stale = False
        self._series_ids: dict[tuple[Label, ...], int] = {}
        self._max_cached_series = max_cached_series
        # The series-id cache is bounded by bytes too (an upper estimate of
        # the label tuples it keeps alive); a label set over 16 KiB is looked
        # up in SQLite every time rather than kept.
        self._max_cached_series_bytes = max_cached_series_bytes
        self._series_ids_bytes = 0
        # Longest regex matcher value accepted (characters); longer is refused (400).
        self._max_regex_length = max_regex_length
        self._closed = False

    # ---------------------------------------------------------------- connections

    def _connect(self, *, reader: bool = False) -> _Connection:
        # isolation_level=None: no implicit transactions, every BEGIN is ours.
        # check_same_thread=False: the writer moves between threads, always under _lock.
        conn = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        if reader:
            # The writer put the file in WAL mode; a reader changes nothing.
            conn.execute("PRAGMA query_only=ON")
            return conn
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    def _register(self, conn: _Connection) -> None:
        with self._readers_lock:
            if self._closed:
                conn.close()
                raise StorageError("storage is closed")
            self._readers.add(conn)

    def _writable(self) -> sqlite3.Connection:
        """The writer connection, reopened if the last write failed in SQLite (under _lock)."""
        if self._writer_stale and not self._memory:
            self._align_sidecar_modes()
            try:
                fresh = self._connect()
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite write failed: cannot reopen: {exc}") from exc
            self._writer.close()
            self._writer = fresh
            self._writer_stale = False
        return self._writer

    def _align_sidecar_modes(self) -> None:
        # SQLite creates -wal/-shm with the database file's mode: files made while
        # it was read-only stay read-only after it is writable again.
        try:
            mode = os.stat(self.path).st_mode & 0o777
            for suffix in ("-wal", "-shm"):
                side = self.path + suffix
                if os.path.exists(side) and os.stat(side).st_mode & 0o777 != mode:
                    os.chmod(side, mode)
        except OSError:
            pass  # not ours to change: the reopened connection will say what is wrong

    def check_writable(self) -> str | None:
        """``None`` if a write can succeed now, else why not (SQLite's message).

        Tries a write that is rolled back (nothing changes). A lock held by
        another connection is no reason (a write waits for it): then only the
        file's permissions are checked. A failure leaves the writer to be
        reopened by the next write, so the store recovers once the cause is
        gone; ``promwire serve`` prints the answer at startup.
        """
        with self._lock:
            if self._closed:
                return "storage is closed"
            try:
                conn = self._writable()
                conn.execute("PRAGMA busy_timeout=100")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                        conn.execute(f"PRAGMA user_version={version}")
                    finally:
                        conn.execute("ROLLBACK")
                finally:
                    conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            except StorageError as exc:
                return exc.message
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                    return _file_access_problem(self.path)
                self._writer_stale = not self._memory
                return str(exc)
        return None

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection holding a read transaction (one consistent snapshot)."""
        if self._closed:
            raise StorageError("storage is closed")
        if self._memory:
            with self._lock:
                yield self._writer
            return
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(reader=True)
            self._register(conn)
            self._local.conn = conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection. Later calls raise :class:`StorageError`."""
        with self._lock, self._readers_lock:
            self._closed = True
            for conn in list(self._readers):
                conn.close()
            self._readers.clear()
            self._writer.close()

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------------- write

    def write(self, ctx: Any, request: WriteRequest) -> None:
        """Store a write request in one committed transaction (see the module docstring)."""
        samples: list[tuple[int, int, int]] = []
        histograms: list[tuple[int, int, bytes]] = []
        exemplars: list[tuple[int, int, int, str]] = []
        with self._lock:
            if self._closed:
                raise StorageError("storage is closed")
            conn = self._writable()
            cached = self._series_ids
            new_ids: dict[tuple[Label, ...], int] = {}
            try:
                conn.execute("BEGIN IMMEDIATE")
                for ts in request.timeseries:
                    if not (ts.samples or ts.histograms or ts.exemplars):
                        continue
                    # Labels are frozen and the decoder hands out shared instances, so
                    # the label tuple itself is a cheap cache key; the canonical key
                    # (sorted, JSON) is only built for a series not seen before.
                    raw = tuple(ts.labels)
                    sid = cached.get(raw)
                    if sid is None:
                        sid = new_ids.get(raw)
                        if sid is None:
                            sid = new_ids[raw] = self._series_id(conn, *_labels_key(raw))
                    if ts.samples:
                        samples.extend((sid, s.timestamp, _bits(s.value)) for s in ts.samples)
                    if ts.histograms:
                        histograms.extend((sid, h.timestamp, encode(h)) for h in ts.histograms)
                    if ts.exemplars:
                        exemplars.extend(
                            (sid, e.timestamp, _bits(e.value), _labels_key(e.labels)[0])
                            for e in ts.exemplars
                        )
                conn.executemany(
                    "INSERT INTO samples VALUES (?, ?, ?) ON CONFLICT DO NOTHING", samples
                )
                conn.executemany(
                    "INSERT INTO histograms VALUES (?, ?, ?) ON CONFLICT DO NOTHING", histograms
                )
                conn.executemany(
                    "INSERT INTO exemplars VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", exemplars
                )
                conn.executemany(
                    "INSERT INTO metadata VALUES (?, ?, ?, ?) ON CONFLICT(metric_family_name) "
                    "DO UPDATE SET type=excluded.type, help=excluded.help, unit=excluded.unit",
                    [
                        (md.metric_family_name, int(md.type), md.help, md.unit)
                        for md in request.metadata
                    ],
                )
                conn.execute("COMMIT")
            except BaseException as exc:
                # Whatever failed (SQLite, an unencodable histogram, a cancelled
                # thread), nothing of this request may stay half-written.
                if isinstance(exc, sqlite3.Error) and not self._memory:
                    # Read-only file, full disk, lock held elsewhere: start the next
                    # write on a fresh connection (a read-only one stays read-only).
                    self._writer_stale = True
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._writer_stale = not self._memory  # nothing was committed anyway
                if isinstance(exc, sqlite3.Error | OverflowError):
                    raise StorageError(f"sqlite write failed: {exc}") from exc
                raise
            # Only now are the new series ids real: a rolled-back id must never be cached.
            added = 0
            for raw in list(new_ids):
                size = _cached_key_bytes(raw)
                if size > _MAX_CACHED_SERIES_KEY_BYTES:
                    del new_ids[raw]
                else:
                    added += size
            if (
                len(cached) + len(new_ids) > self._max_cached_series
                or self._series_ids_bytes + added > self._max_cached_series_bytes
            ):
                cached.clear()
                self._series_ids_bytes = 0
            cached.update(new_ids)
            self._series_ids_bytes += added

    def cached_series(self) -> tuple[int, int]:
        """Series ids held in memory: (entries, estimated bytes)."""
        return len(self._series_ids), self._series_ids_bytes

    @staticmethod
    def _series_id(conn: sqlite3.Connection, key: str, pairs: list[tuple[str, str]]) -> int:
        row = conn.execute("SELECT id FROM series WHERE labels = ?", (key,)).fetchone()
        if row is not None:
            return int(row[0])
        cur = conn.execute("INSERT INTO series(labels) VALUES (?)", (key,))
        sid = int(cur.lastrowid or 0)
        # A label name repeated in one set (invalid, but possible on the wire) keeps the first.
        conn.executemany(
            "INSERT INTO series_labels VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(sid, n, v) for n, v in pairs],
        )
        return sid

    # ----------------------------------------------------------------------- read

    @staticmethod
    def _candidates(
        conn: sqlite3.Connection, matchers: list[LabelMatcher], budget: ReadBudget | None
    ) -> Iterator[tuple[int, list[tuple[str, str]]]]:
        """Series possibly matching, narrowed in SQL by non-empty equality
        matchers, as ``(id, label pairs)``; each one counts against the budget."""
        sql = "SELECT id, labels FROM series"
        args: list[str] = []
        conds = []
        for m in matchers:
            if m.type == MatchType.EQ and m.value != "":
                conds.append(
                    "id IN (SELECT series_id FROM series_labels WHERE name = ? AND value = ?)"
                )
                args += [m.name, m.value]
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        cursor = conn.execute(sql, args)
        while rows := cursor.fetchmany(_BATCH):
            if budget is not None:
                budget.examine(len(rows))
            for sid, key in rows:
                yield int(sid), [(str(n), str(v)) for n, v in json.loads(key)]

    def _select(
        self,
        matchers: list[LabelMatcher],
        start: int,
        end: int,
        *,
        exemplars: bool,
        budget: ReadBudget | None = None,
    ) -> list[TimeSeries]:
        match = compile_matchers(matchers, max_regex_length=self._max_regex_length)
        start, end = max(start, _INT64_MIN), min(end, _INT64_MAX)
        out: list[tuple[list[tuple[str, str]], TimeSeries]] = []
        with self._reading() as conn, _deadline(conn, budget):
            for sid, pairs in self._candidates(conn, matchers, budget):
                if not match(dict(pairs)):
                    continue
                series = TimeSeries(labels=[Label(n, v) for n, v in pairs])
                rng = (sid, start, end)
                if exemplars:
                    series.exemplars = [
                        Exemplar(
                            labels=[Label(n, v) for n, v in json.loads(lbls)],
                            value=_float(bits),
                            timestamp=ts,
                        )
                        for ts, bits, lbls in conn.execute(
                            "SELECT ts, bits, labels FROM exemplars "
                            "WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                            rng,
                        )
                    ]
                    if not series.exemplars:
                        continue
                else:
                    series.samples = [
                        Sample(_float(bits), ts)
                        for ts, bits in _batches(
                            conn,
                            "SELECT ts, bits FROM samples "
                            "WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                            rng,
                            budget,
                        )
                    ]
                    series.histograms = [
                        decode(Histogram, data)
                        for (data,) in _batches(
                            conn,
                            "SELECT data FROM histograms "
                            "WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                            rng,
                            budget,
                        )
                    ]
                    if not (series.samples or series.histograms):
                        continue
                out.append((pairs, series))
        out.sort(key=lambda item: item[0])  # TSDB order: by label set
        return [series for _, series in out]

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        """Series matching ``query`` with their samples and histograms in
        ``[start_timestamp_ms, end_timestamp_ms]`` (inclusive), sorted by time;
        series sorted by label set; series without data in range are left out.
        Spends ``ctx.budget`` while reading (see the module docstring)."""
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        try:
            series = self._select(
                query.matchers,
                query.start_timestamp_ms,
                query.end_timestamp_ms,
                exemplars=False,
                budget=budget,
            )
        except sqlite3.Error as exc:
            raise _read_failure(exc, budget) from exc
        return QueryResult(timeseries=series)

    def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[TimeSeries]:
        """Stream the series of ``query`` one at a time, for a streamed remote read.

        Yields :class:`~promwire.codec.messages.TimeSeries` with float samples in
        ``[start_timestamp_ms, end_timestamp_ms]`` in time order, series
        sorted by label set, series without samples in range left out. Only
        one series' samples are in memory at a time. A file database reads
        through a connection of its own, holding one read transaction (a
        consistent snapshot) for the whole stream, so the iterator may be
        resumed on any thread; ``:memory:`` takes the writer lock per series
        instead (no snapshot across series). Series that also hold native
        histograms in range get a warning in the log: those are not streamed.
        The series examined and the time spent count against ``ctx.budget``
        (a stream has no sample limit).
        """
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        match = compile_matchers(query.matchers, max_regex_length=self._max_regex_length)
        start = max(query.start_timestamp_ms, _INT64_MIN)
        end = min(query.end_timestamp_ms, _INT64_MAX)
        with self._stream_reader(budget) as run:
            chosen = run(
                lambda conn: [
                    (pairs, sid)
                    for sid, pairs in self._candidates(conn, query.matchers, budget)
                    if match(dict(pairs))
                ]
            )
            chosen.sort()  # TSDB order: by label set
            with_histograms = 0
            for pairs, sid in chosen:
                rng = (sid, start, end)
                rows, has_histograms = run(partial(_series_rows, rng=rng))
                with_histograms += has_histograms
                if rows:
                    yield TimeSeries(
                        labels=[Label(n, v) for n, v in pairs],
                        samples=[Sample(_float(bits), ts) for ts, bits in rows],
                    )
            if with_histograms:
                log.warning(
                    "streamed remote read: native histograms of %d series not sent "
                    "(no histogram chunk encoder; ask for SAMPLES to get them)",
                    with_histograms,
                )

    @contextmanager
    def _stream_reader(
        self, budget: ReadBudget | None = None
    ) -> Iterator[Callable[[Callable[[sqlite3.Connection], T]], T]]:
        """A way to run reads for a long-lived stream: ``run(fn)`` calls ``fn(conn)``.

        SQLite errors become :class:`StorageError` (the budget's 503 when its
        time ran out). A file database gets a connection of its own (not the
        thread's: a stream is pulled from several threads and outlives any
        one request on them), closed at the end; ``:memory:`` borrows the
        writer under the lock for each call.
        """
        if self._closed:
            raise StorageError("storage is closed")
        conn: _Connection | None = None
        if not self._memory:
            try:
                conn = self._connect(reader=True)
                conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite read failed: {exc}") from exc
            self._register(conn)

        def run(fn: Callable[[sqlite3.Connection], T]) -> T:
            try:
                if conn is not None:
                    with _deadline(conn, budget):
                        return fn(conn)
                with self._lock:
                    if self._closed:
                        raise StorageError("storage is closed")
                    with _deadline(self._writer, budget):
                        return fn(self._writer)
            except sqlite3.Error as exc:
                raise _read_failure(exc, budget) from exc

        try:
            yield run
        finally:
            if conn is not None:
                with self._readers_lock:
                    self._readers.discard(conn)
                conn.close()  # ends the read transaction

    def exemplars(
        self,
        matchers: Iterable[LabelMatcher] = (),
        start: int = _INT64_MIN,
        end: int = _INT64_MAX,
    ) -> list[TimeSeries]:
        """Series (with ``exemplars`` filled) that have exemplars in ``[start, end]``."""
        return self._select(list(matchers), start, end, exemplars=True)

    def metadata(self) -> list[MetricMetadata]:
        """All metric metadata received, sorted by family name."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT metric_family_name, type, help, unit FROM metadata ORDER BY 1"
            ).fetchall()
        return [
            MetricMetadata(type=_metric_type(t), metric_family_name=n, help=h, unit=u)
            for n, t, h, u in rows
        ]

    def counts(self) -> dict[str, int]:
        """Row counts: series, samples, histograms, exemplars, metadata."""
        with self._reading() as conn:
            return {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("series", "samples", "histograms", "exemplars", "metadata")
            }


def _file_access_problem(path: str) -> str | None:
    """Why this process cannot write ``path`` and its directory, or ``None``."""
    if path == ":memory:" or path.startswith("file:"):
        return None
    for target in (path, os.path.dirname(os.path.abspath(path))):
        if not os.access(target, os.W_OK):
            return f"attempt to write a readonly database: no write access to {target}"
    return None


def _read_failure(exc: sqlite3.Error, budget: ReadBudget | None) -> Exception:
    """What a read failing in SQLite raises: the budget's 503 when its time ran
    out (the progress handler interrupted the statement), else a 500."""
    if budget is not None and budget.expired():
        return budget.timeout_error()
    return StorageError(f"sqlite read failed: {exc}")


@contextmanager
def _deadline(conn: sqlite3.Connection, budget: ReadBudget | None) -> Iterator[None]:
    """Interrupt SQL statements on ``conn`` once the budget's time is up."""
    if budget is None or budget.seconds is None:
        yield
        return
    conn.set_progress_handler(budget.expired, _PROGRESS_STEPS)
    try:
        yield
    finally:
        conn.set_progress_handler(None, 0)


def _batches(
    conn: sqlite3.Connection, sql: str, args: tuple[int, int, int], budget: ReadBudget | None
) -> Iterator[Any]:
    """The rows of ``sql``, fetched in batches each counted against the budget
    before the caller turns it into objects."""
    cursor = conn.execute(sql, args)
    while rows := cursor.fetchmany(_BATCH):
        if budget is not None:
            budget.take_samples(len(rows))
        yield from rows


def _series_rows(
    conn: sqlite3.Connection, rng: tuple[int, int, int]
) -> tuple[list[tuple[int, int]], bool]:
    """One series' ``(ts, bits)`` sample rows in range, and whether it has histograms there."""
    rows = conn.execute(
        "SELECT ts, bits FROM samples WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts", rng
    ).fetchall()
    has_histograms = (
        conn.execute(
            "SELECT 1 FROM histograms WHERE series_id = ? AND ts BETWEEN ? AND ? LIMIT 1", rng
        ).fetchone()
        is not None
    )
    return rows, has_histograms


def _metric_type(value: int) -> MetricType | int:
    try:
        return MetricType(value)
    except ValueError:
        return value
