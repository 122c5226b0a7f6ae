"""A remote storage on stdlib ``sqlite3``: compressed chunks, durable, idempotent.

    storage = SQLiteStorage("metrics.db")
    app = promwire.server.asgi.RemoteStorageApp(storage)

The file format is described in docs/storage.md; in short, float samples
arrive in a **head** of one row per write request (:mod:`.sqlite_head`) and
are compacted into Prometheus **XOR chunks** of up to 120 samples
(:mod:`.sqlite_chunks`); series are found through **postings**
(:mod:`.sqlite_index`). What it guarantees:

* **Durable before the 204.** Every write is one transaction, committed
  before ``write`` returns. The database runs in WAL mode with
  ``synchronous=FULL`` by default: in WAL mode ``NORMAL`` only syncs at
  checkpoints, so the last commits can vanish on power loss, and Prometheus
  never resends a batch it got a 2xx for. Pass ``synchronous="NORMAL"`` to
  trade that for speed (still safe against a crash of the process). The
  compaction moves samples from the head to chunks in a transaction of its
  own, so a crash at any point loses nothing acknowledged.
* **Idempotent.** A sample is identified by (series, timestamp): a batch
  resent after a 5xx adds nothing (the first value written for a timestamp
  wins, in the head, in the compaction and in reads). Histograms and
  exemplars keep their ``ON CONFLICT DO NOTHING`` rows.
* **Out of order.** A sample older than the series' newest *compacted*
  sample is accepted and merged into its chunk when it is at most
  ``out_of_order_window`` seconds older (default 3600); an older one makes
  the request a 400 (nothing of it kept), as Prometheus answers samples out
  of bounds.
* **Exact floats.** Values travel as their IEEE-754 bit patterns end to end
  (head arrays and XOR chunks), so stale markers and NaN payloads come back bit
  for bit.
* Native histograms arrive as head rows (their encoded protobuf bytes) and
  are compacted into Prometheus' HISTOGRAM / FLOAT_HISTOGRAM chunks, each
  verified to give back every histogram bit for bit (what a chunk cannot
  give back stays a row: :mod:`.sqlite_histograms`); exemplars are kept with
  their labels, metric metadata by family name (latest wins). Remote read
  returns samples and histograms; exemplars and metadata are readable
  through :meth:`SQLiteStorage.exemplars` and :meth:`SQLiteStorage.metadata`.
* **Remote write 2.0** arrives through the handlers' conversion to the v1
  view (``accepted_protocols`` is v1 and v2); :meth:`SQLiteStorage.write_columns`
  is the write path without per-sample objects.
* **Streamed remote read** (:meth:`SQLiteStorage.process_query_chunks`)
  sends stored chunks as they are; only a chunk cut by the range's ends, and
  samples still in the head, are (re-)encoded. One series at a time is in
  memory. Native histograms are streamed as Prometheus' histogram chunks:
  stored ones inside the range as they are, the rest cut by
  :func:`~promwire.chunks.histogram_cut.cut_histogram_chunks`.
* **Retention** (``retention`` seconds, ``retention_bytes``) deletes whole
  chunks at each compaction; SQLite reuses the freed pages.
* Labels with an empty value are dropped on write (an empty value means
  "absent" in Prometheus); series are identified by their sorted label set.
* **Several processes** may open one file (``serve --workers``): every
  change is an SQLite transaction (writers wait up to ``timeout`` for one
  another), and what a process caches is immutable (series ids, head
  records by id) or a lower bound (a series' newest compacted sample).
* **Thread-safe.** Writes go through one connection behind a lock; each
  reading thread gets its own connection, so under WAL a read never waits for
  a write. An in-memory database (``":memory:"``) shares the writer
  connection instead: there reads do wait for writes.
* **Bounded reads.** A read spends the request's
  :class:`~promwire.stores.protocol.ReadBudget` (``ctx.budget``) while it
  runs: series examined, samples counted before they become objects, and the
  clock (also inside long SQL statements, through SQLite's progress handler).
* **Recovers from an unwritable file.** A write that fails in SQLite (the
  file read-only, the disk full, a lock held too long by another process) is
  a :class:`~promwire.errors.StorageError` (500: the sender retries), and the
  next write opens a fresh writer connection. :meth:`SQLiteStorage.check_writable`
  says whether a write can succeed now (``promwire serve`` prints it at startup).
* **Old files.** A file of promwire's earlier formats (1: one row per sample;
  2: JSON label sets and a chunk index) is migrated on open; a newer format
  or a foreign SQLite file is refused with a one-line
  :class:`~promwire.stores.sqlite_schema.FormatError`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
import threading
import weakref
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, cast

from ..chunks.streamed import EncodedSeries
from ..chunks.xor import decode_xor_bits
from ..codec.columns import ColumnBatch, SeriesColumns, time_series_of
from ..codec.encoder import encode
from ..codec.messages import (
    Chunk,
    ChunkedSeries,
    Exemplar,
    Histogram,
    Label,
    LabelMatcher,
    MetricMetadata,
    MetricType,
    Query,
    QueryResult,
    TimeSeries,
    WriteRequest,
)
from ..errors import StorageError, StorageRejected
from .protocol import BaseStorage, ReadBudget
from .regex import DEFAULT_MAX_REGEX_LENGTH
from .sqlite_blocks import RunCache, SealedView, block_span, newest_in_blocks
from .sqlite_chunks import (
    CHUNK_RANGE_MS,
    CompactionPlan,
    DecodedChunks,
    apply_compaction,
    apply_retention,
    chunk_rows,
    compact,
    plan_compaction,
    plan_is_current,
    stored_chunks,
)
from .sqlite_head import HeadCache, RecordBuilder
from .sqlite_histograms import (
    compact_histograms,
    count_histograms,
    note_head_histograms,
    series_histograms,
)
from .sqlite_index import add_series, select_series
from .sqlite_schema import prepare
from .sqlite_streamed import any_histograms, series_chunks, series_encoded
from .sqlite_writer_lock import WriterLock

__all__ = ["SQLiteStorage"]

log = logging.getLogger("promwire")
T = TypeVar("T")
#: What a streamed read makes of one series: chunks, or chunks in wire form.
S = TypeVar("S", list[Chunk], EncodedSeries)

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# A double and an int64 sharing the same 8 bytes: the exact-bits conversion.
_d = struct.Struct("<d")
_q = struct.Struct("<q")
_Q = struct.Struct("<Q")


def _bits(value: float) -> int:
    return int(_q.unpack(_d.pack(value))[0])


def _float(bits: int) -> float:
    return float(_d.unpack(_q.pack(bits))[0])


_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: The page size of a new file: chunks of a few hundred bytes waste less of a
#: 16 KiB page than of a 4 KiB one, and a chunk of 1 KiB never overflows it.
PAGE_SIZE = 16384
#: SQLite virtual machine steps between two looks at the read deadline.
_PROGRESS_STEPS = 10_000
#: The head is compacted once this many samples per series on average were
#: written since the last compaction (what that one kept does not count).
_HEAD_SAMPLES_PER_SERIES = 150
#: ... and at least this many in all.
_HEAD_MIN_SAMPLES = 4096


def _labels_key(labels: Iterable[Label]) -> tuple[str, list[tuple[str, str]]]:
    pairs = sorted((lb.name, lb.value) for lb in labels if lb.value != "")
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":")), pairs


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


#: Memory of one entry of the batch path's map (dict slot, key int, pair), at most.
_BLOCK_ENTRY_BYTES = 160

#: A label set larger than this (estimated bytes) is never kept in the series-id cache.
_MAX_CACHED_SERIES_KEY_BYTES = 16 * 1024


def _cached_key_bytes(labels: tuple[Label, ...]) -> int:
    """An upper estimate of the memory a cached label tuple keeps alive: the
    strings (4 bytes a character at most, plus their headers), the Label
    objects, the tuple and the dict slot."""
    return 120 + sum(200 + 4 * (len(lb.name) + len(lb.value)) for lb in labels)


# One series of a write: labels, its number of float samples, histograms, exemplars.
_Item = tuple[tuple[Label, ...], int, Sequence[Histogram], Sequence[Exemplar]]


def _head_due(conn: sqlite3.Connection, head_total: int | None = None) -> bool:
    """Whether the samples and histograms written since the last compaction
    (``head_total``; read from ``meta`` when not given) make the head due."""
    if head_total is None:
        head_total = int(
            conn.execute(
                "SELECT coalesce(sum(value), 0) FROM meta "
                "WHERE key IN ('head_samples', 'head_histograms')"
            ).fetchone()[0]
        )
    return head_total >= _HEAD_MIN_SAMPLES and head_total >= (
        _HEAD_SAMPLES_PER_SERIES
        * int(conn.execute("SELECT coalesce(max(id), 0) FROM series").fetchone()[0])
    )


class SQLiteStorage(BaseStorage):
    """A :class:`~promwire.stores.protocol.RemoteStorage` in one SQLite file.

    ``path`` is a file name (created if missing) or ``":memory:"``.
    ``synchronous`` is the SQLite ``PRAGMA synchronous`` level (see the module
    docstring for why ``FULL`` is the default). ``timeout`` is how long a
    connection waits for a lock held by another process or thread before
    failing with a :class:`~promwire.errors.StorageError` (a 500, so the
    sender retries). ``max_cached_series`` (entries) and
    ``max_cached_series_bytes`` (an upper estimate of the memory held) bound
    the in-memory map from label sets to series ids (emptied when either is
    reached; it refills from the database); a label set over 16 KiB is never
    kept in it. ``max_regex_length`` is the longest regex matcher a read may
    use (400). ``out_of_order_window`` (seconds) is how much older than a
    series' newest compacted sample a sample may be and still be accepted.
    ``retention`` (seconds) and ``retention_bytes`` bound what is kept
    (``None``: forever / no bound); see docs/storage.md.
    ``max_sealed_cache_bytes`` bounds the chunk bytes of sealed ranges a
    read keeps for the next one (:class:`~.sqlite_blocks.RunCache`; 0 keeps
    none); docs/storage.md lists every read cache and its bound.
    ``compact_in_background``: a write that makes the head due for
    compaction starts it on a thread of its own and returns (``serve`` does
    this); by default that write returns once the compaction is done. Either
    way the cutting and encoding are done outside the write lock, so other
    writes go on meanwhile; :meth:`close` waits for a running compaction.
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
        out_of_order_window: float = 3600.0,
        retention: float | None = None,
        retention_bytes: int | None = None,
        max_sealed_cache_bytes: int = 64 << 20,
        compact_in_background: bool = False,
    ) -> None:
        if synchronous.upper() not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {_SYNC_MODES}")
        if out_of_order_window < 0:
            raise ValueError("out_of_order_window must be >= 0")
        if retention is not None and retention <= 0:
            raise ValueError("retention must be > 0 seconds")
        if retention_bytes is not None and retention_bytes <= 0:
            raise ValueError("retention_bytes must be > 0")
        if max_sealed_cache_bytes < 0:
            raise ValueError("max_sealed_cache_bytes must be >= 0")
        self.path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._timeout = timeout
        self._memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        #: reads check ctx.budget's clock and take no lock a write holds
        #: (a file database: a connection of their own; see the protocol)
        self.checks_read_deadline = not self._memory
        self._ooo_ms = int(out_of_order_window * 1000)
        self._retention_ms = None if retention is None else int(retention * 1000)
        self._retention_bytes = retention_bytes
        # _lock: the writer connection (held for a whole write transaction).
        # _readers_lock: the set of reader connections only; readers never take _lock.
        self._lock = threading.Lock()
        self._readers_lock = threading.Lock()
        #: held by the one thread planning a compaction outside ``_lock``
        self._planning = threading.Lock()
        self._compact_in_background = compact_in_background
        self._local = threading.local()
        # Weak: a reader dies with its thread (threading.local drops it), so a
        # server that starts a thread per connection does not pile them up.
        self._readers: weakref.WeakSet[_Connection] = weakref.WeakSet()
        # Idle connections of ended streams (no transaction open), reused by the
        # next stream: opening one costs about a millisecond (file, schema, WAL index).
        self._idle_streams: list[_Connection] = []
        self._writer = self._connect()
        # Orders writers of several processes (serve --workers); see the module.
        self._writer_lock = WriterLock(None if self._memory else self.path)
        try:
            migrated = prepare(self._writer, self.path)
            if migrated and not self._memory:
                self._vacuum_migrated()
        except BaseException:
            self._writer.close()
            raise
        # Set when a write failed in SQLite: the next write reopens the writer.
        self._writer_stale = False
        # ids of a label tuple -> (series id, the tuple itself, kept alive).
        self._series_ids: dict[tuple[int, ...], tuple[int, tuple[Label, ...]]] = {}
        # The same entries by label values (the tuples are shared, not copied).
        self._series_by_value: dict[tuple[Label, ...], int] = {}
        # id() of a label tuple of the decoder's block cache -> (series id, the
        # tuple, kept alive): the batch path's key (see _ingest_batch).
        self._series_by_block: dict[int, tuple[int, tuple[Label, ...]]] = {}
        self._max_cached_series = max_cached_series
        # The series-id cache is bounded by bytes too (an upper estimate of
        # the label tuples it keeps alive); a label set over 16 KiB is looked
        # up in SQLite every time rather than kept.
        self._max_cached_series_bytes = max_cached_series_bytes
        self._series_ids_bytes = 0
        # Series id -> its newest compacted timestamp as last seen: a lower
        # bound (chunks only grow forward), enough to refuse too-old samples.
        self._sealed: dict[int, int] = {}
        self._head = HeadCache()
        self._decoded = DecodedChunks()
        self._runs = RunCache(max_bytes=max_sealed_cache_bytes)
        # Longest regex matcher value accepted (characters); longer is refused (400).
        self._max_regex_length = max_regex_length
        self._closed = False

    def _vacuum_migrated(self) -> None:
        """Rewrite a just-migrated file compactly, with the page size and
        auto-vacuum mode of a new one (the page size can only change outside
        WAL mode: when another process holds the file, it stays as it was)."""
        conn = self._writer
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        try:
            if conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0].lower() == "delete":
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        except sqlite3.Error as exc:
            log.warning("migrated file keeps its page size: %s", exc)
        try:
            conn.execute("VACUUM")
        finally:
            conn.execute("PRAGMA journal_mode=WAL")

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
            # Only a new file takes it (before WAL mode touches it); then close()
            # can give freed pages back. Not even tried on an existing file: the
            # pragma would wait for another writer's lock or fail on a read-only file.
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,):
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
        """Flush the head into chunks, give freed pages back to the file system,
        and close every connection. Later calls raise :class:`StorageError`."""
        # A compaction under way finishes first; none starts from now on.
        with self._planning:
            with self._lock:
                if not self._closed and not self._memory:
                    self._shrink_on_close()
            with self._lock, self._readers_lock:
                self._closed = True
                for conn in list(self._readers):
                    conn.close()
                self._readers.clear()
                self._idle_streams.clear()
                self._writer.close()
                self._writer_lock.close()

    def _shrink_on_close(self) -> None:
        self._compact_locked(flush=True)
        try:
            conn = self._writable()
            # Another process still using the file (serve --workers) must not hold
            # this one's exit for the whole timeout: the shrinking is optional.
            conn.execute("PRAGMA busy_timeout=2000")
            conn.executescript("PRAGMA incremental_vacuum;")  # execute() frees one page only
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, StorageError) as exc:  # another process may be busy: fine
            log.warning("not shrunk on close: %s", exc)

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
        items: list[_Item] = []
        stamps: list[int] = []
        values: list[float] = []
        add_t, add_v = stamps.append, values.append
        for ts in request.timeseries:
            if not (ts.samples or ts.histograms or ts.exemplars):
                continue
            for sample in ts.samples:
                add_t(sample.timestamp)
                add_v(sample.value)
            items.append((tuple(ts.labels), len(ts.samples), ts.histograms, ts.exemplars))
        try:
            flat_ts = array("q", stamps)
            flat_bits = array("d", values).tobytes()
        except (OverflowError, TypeError) as exc:
            raise StorageError(f"sqlite write failed: {exc}") from exc
        self._ingest(items, flat_ts, flat_bits, request.metadata)

    def write_columns(self, ctx: Any, series: Sequence[SeriesColumns]) -> None:
        """Store columnar series (labels plus timestamp and value arrays) in one
        committed transaction: the write path without per-sample objects.
        A :class:`~promwire.codec.columns.ColumnBatch` is read as its flat
        columns, with no object per series."""
        if type(series) is ColumnBatch:
            self._ingest_batch(series)
            return
        items: list[_Item] = []
        flat_ts = array("q")
        flat_values = array("d")
        for s in series:
            if len(s.timestamps) != len(s.values):
                raise StorageError("write_columns: timestamps and values differ in length")
            if not (len(s.timestamps) or s.histograms or s.exemplars):
                continue
            flat_ts.extend(s.timestamps)
            flat_values.extend(s.values)
            items.append((s.labels, len(s.timestamps), s.histograms, s.exemplars))
        self._ingest(items, flat_ts, flat_values.tobytes(), ())

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer, under ``_lock`` (held by the caller):
        committed on success; on any failure rolled back whole and, for an
        SQLite failure, a :class:`StorageError` (the sender retries)."""
        if self._closed:
            raise StorageError("storage is closed")
        conn = self._writable()
        with self._writer_lock.held(self._timeout):
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._failed(conn, exc)
                if isinstance(exc, sqlite3.Error | OverflowError):
                    raise StorageError(f"sqlite write failed: {exc}") from exc
                raise

    def _failed(self, conn: sqlite3.Connection, exc: BaseException) -> None:
        """Roll back a failed write transaction; an SQLite failure (read-only
        file, full disk, lock held elsewhere) makes the next write start on a
        fresh connection (a read-only one stays read-only)."""
        # Whatever failed (SQLite, an unencodable histogram, a cancelled
        # thread), nothing of it may stay half-written.
        if isinstance(exc, sqlite3.Error) and not self._memory:
            self._writer_stale = True
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._writer_stale = not self._memory  # nothing was committed anyway

    def _sid(
        self,
        conn: sqlite3.Connection,
        raw: tuple[Label, ...],
        new_ids: dict[tuple[int, ...], tuple[int, tuple[Label, ...]]],
    ) -> int:
        """The series id of ``raw``, created if new (inside the write transaction)."""
        # The decoder hands out shared, immutable Label instances, so the ids of
        # a label tuple are a cheap key (hashing Labels is not); the cache keeps
        # the tuple alive, so those ids cannot be reused. A fresh tuple of equal
        # labels (a v2 request, a decoder whose caches were reset) is found by
        # value instead, before SQL.
        key = tuple(map(id, raw))
        hit = self._series_ids.get(key) or new_ids.get(key)
        if hit is not None:
            return hit[0]
        found = self._series_by_value.get(raw)
        if found is not None:
            return found
        changes = conn.total_changes
        sid = self._series_id(conn, *_labels_key(raw))
        if conn.total_changes != changes:
            # A new series has nothing compacted: no need to look (a rolled-back
            # id is only ever given to another new series).
            self._sealed[sid] = _INT64_MIN
        new_ids[key] = (sid, raw)
        return sid

    def _bound(self, conn: sqlite3.Connection, sid: int) -> int:
        """The series' newest compacted timestamp (a lower bound, cached)."""
        bound = self._sealed.get(sid)
        if bound is None:
            row = conn.execute(
                "SELECT max(maxt) FROM chunks WHERE series_id = ?", (sid,)
            ).fetchone()
            bound = _INT64_MIN if row[0] is None else int(row[0])
            # The newest two sealed ranges (one probe for a series written
            # lately). A series silent for longer gets a lower bound, which
            # only lets more out-of-order samples in: never a wrong refusal, and
            # a restart after a crash does not walk every range of every series.
            span = block_span(conn)
            if span is not None and (bound == _INT64_MIN or bound // CHUNK_RANGE_MS <= span[1]):
                lo = span[1] - 1
                if bound != _INT64_MIN:
                    lo = max(lo, bound // CHUNK_RANGE_MS)
                sealed = newest_in_blocks(conn, sid, lo, span)
                if sealed is not None and sealed > bound:
                    bound = sealed
            self._sealed[sid] = bound
        return bound

    def _ingest_batch(self, batch: ColumnBatch) -> None:
        """:meth:`_ingest` for a batch: per series one dict lookup, the rest in bulk."""
        labels = batch.labels
        new_ids: dict[tuple[int, ...], tuple[int, tuple[Label, ...]]] = {}
        # The batch's label tuples come from the decoder's block cache, one
        # shared tuple per label block: its id() is the key (the dict keeps the
        # tuple alive, so the id cannot be reused while it is in there).
        by_block = self._series_by_block
        with self._lock:
            with self._transaction() as conn:
                sids = [hit[0] if hit else -1 for hit in map(by_block.get, map(id, labels))]
                missed = [i for i, sid in enumerate(sids) if sid < 0] if -1 in sids else []
                for i in missed:
                    sids[i] = self._sid(conn, labels[i], new_ids)
                self._check_batch_age(conn, batch, sids)
                record = RecordBuilder.of(
                    array("q", sids), batch.offsets, batch.timestamps, batch.values.tobytes()
                )
                due = self._add_rows(conn, record, [], [], ())
            self._remember(new_ids)
            for i in missed:  # committed: now the ids are real
                by_block[id(labels[i])] = (sids[i], labels[i])
            # The tuples are those of the other maps (or the decoder's); an
            # entry itself (dict slot, pair) is counted against the byte bound.
            self._series_ids_bytes += _BLOCK_ENTRY_BYTES * len(missed)
        if due:
            self._compact_due()

    def _check_batch_age(
        self, conn: sqlite3.Connection, batch: ColumnBatch, sids: list[int]
    ) -> None:
        """Refuse (400) a batch holding a sample older than its series allow;
        one comparison for the whole batch when its oldest sample is recent."""
        sealed = self._sealed
        bounds = list(map(sealed.get, sids))
        if None in bounds:
            bounds = [self._bound(conn, sid) for sid in sids]
        top = max(cast(list[int], bounds), default=_INT64_MIN)
        ts = batch.timestamps
        if top == _INT64_MIN or not ts or min(ts) >= top - self._ooo_ms:
            return
        offsets = batch.offsets
        for i, bound in enumerate(cast(list[int], bounds)):
            self._check_age(batch.labels[i], ts, offsets[i], offsets[i + 1], bound)

    def _check_age(
        self, labels: Sequence[Label], ts: array[int], a: int, b: int, bound: int
    ) -> None:
        """Refuse (400) the series whose samples are ``ts[a:b]`` when one is
        older than the out-of-order window before ``bound``, its newest
        compacted sample."""
        if bound == _INT64_MIN or b <= a:
            return
        oldest = ts[a] if b - a == 1 else min(ts[a:b])
        if oldest < bound - self._ooo_ms:
            raise StorageRejected(_too_old(labels, oldest, bound, self._ooo_ms))

    def _ingest(
        self,
        items: Sequence[_Item],
        flat_ts: array[int],
        flat_bits: bytes,
        metadata: Sequence[MetricMetadata],
    ) -> None:
        """Write series ``items`` whose float samples are consecutive runs of
        ``flat_ts`` and ``flat_bits`` (8 bytes a value), in item order."""
        histograms: list[tuple[int, int, bytes]] = []
        exemplars: list[tuple[int, int, int, str]] = []
        sids = array("q")
        offsets = array("q", [0])
        new_ids: dict[tuple[int, ...], tuple[int, tuple[Label, ...]]] = {}
        pos = 0
        with self._lock:
            with self._transaction() as conn:
                for raw, n, hists, exs in items:
                    sid = self._sid(conn, raw, new_ids)
                    if n:
                        self._check_age(raw, flat_ts, pos, pos + n, self._bound(conn, sid))
                        pos += n
                        sids.append(sid)
                        offsets.append(pos)
                    if hists:
                        histograms.extend((sid, h.timestamp, encode(h)) for h in hists)
                    if exs:
                        exemplars.extend(
                            (sid, e.timestamp, _bits(e.value), _labels_key(e.labels)[0])
                            for e in exs
                        )
                record = RecordBuilder.of(sids, offsets, flat_ts, flat_bits)
                due = self._add_rows(conn, record, histograms, exemplars, metadata)
            self._remember(new_ids)
        if due:
            self._compact_due()

    def _add_rows(
        self,
        conn: sqlite3.Connection,
        record: RecordBuilder,
        histograms: list[tuple[int, int, bytes]],
        exemplars: list[tuple[int, int, int, str]],
        metadata: Sequence[MetricMetadata],
    ) -> bool:
        """Insert a write's head record and other rows; whether the head is due
        for compaction."""
        head_total = 0
        if len(record):
            conn.execute(
                "INSERT INTO head(n, sids, offsets, ts, bits) VALUES (?, ?, ?, ?, ?)",
                record.row(),
            )
            head_total = int(
                conn.execute(
                    "UPDATE meta SET value = value + ? WHERE key = 'head_samples' RETURNING value",
                    (len(record),),
                ).fetchone()[0]
            )
        if histograms:
            added = conn.executemany(
                "INSERT INTO histograms VALUES (?, ?, ?) ON CONFLICT DO NOTHING", histograms
            ).rowcount
            head_total += note_head_histograms(conn, max(added, 0))
        if exemplars:
            conn.executemany(
                "INSERT INTO exemplars VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", exemplars
            )
        if metadata:
            conn.executemany(
                "INSERT INTO metadata VALUES (?, ?, ?, ?) ON CONFLICT(metric_family_name) "
                "DO UPDATE SET type=excluded.type, help=excluded.help, unit=excluded.unit",
                [(md.metric_family_name, int(md.type), md.help, md.unit) for md in metadata],
            )
        return _head_due(conn, head_total)

    def _remember(self, new_ids: dict[tuple[int, ...], tuple[int, tuple[Label, ...]]]) -> None:
        # Only now are the new series ids real: a rolled-back id must never be cached.
        cached = self._series_ids
        added = 0
        for key, (_, raw) in list(new_ids.items()):
            size = _cached_key_bytes(raw)
            if size > _MAX_CACHED_SERIES_KEY_BYTES:
                del new_ids[key]
            else:
                added += size
        if (
            len(cached) + len(new_ids) > self._max_cached_series
            or self._series_ids_bytes + added > self._max_cached_series_bytes
            or len(self._series_by_block) > self._max_cached_series
        ):
            cached.clear()
            self._series_by_value.clear()
            self._series_by_block.clear()
            self._series_ids_bytes = 0
        if len(self._sealed) > self._max_cached_series:
            self._sealed.clear()
        cached.update(new_ids)
        self._series_by_value.update((raw, sid) for sid, raw in new_ids.values())
        self._series_ids_bytes += added

    def cached_series(self) -> tuple[int, int]:
        """Series ids held in memory: (entries, estimated bytes)."""
        return len(self._series_ids), self._series_ids_bytes

    @staticmethod
    def _series_id(conn: sqlite3.Connection, key: str, pairs: list[tuple[str, str]]) -> int:
        """The id of the series with label ``pairs`` (``key``: their canonical JSON,
        :func:`_labels_key`), created inside the caller's write transaction if new."""
        return add_series(conn, key, pairs)

    # ----------------------------------------------------------------- compaction

    def compact(self, *, flush: bool = False) -> None:
        """Move the head's complete chunks into the chunks table now (``flush``:
        every sample, partial chunks too) and apply the retention. Writes do
        this by themselves as the head grows; :meth:`close` flushes."""
        with self._lock:
            if self._closed:
                raise StorageError("storage is closed")
            self._compact_locked(flush=flush, strict=True)

    def _compact_due(self) -> None:
        """The compaction a write found due, after its commit and outside
        ``_lock``: the cutting and encoding (most of the work) from a read
        snapshot while other writes go on, then a short write transaction
        that applies it, or compacts there and then if a compaction ran
        meanwhile (another process's) or samples reach a sealed range. One
        thread plans at a time; a write that finds one planning leaves it
        the work. ``:memory:`` (one connection) compacts under the lock."""
        if self._memory:
            with self._lock:
                if not self._closed:
                    self._compact_locked(flush=False)
            return
        if not self._planning.acquire(blocking=False):
            return  # another thread is planning one: it will do
        if self._compact_in_background:
            threading.Thread(
                target=self._plan_and_compact, name="promwire-compaction", daemon=True
            ).start()
        else:
            self._plan_and_compact()

    def _plan_and_compact(self) -> None:
        """:meth:`_compact_due`'s work; releases ``_planning`` at the end."""
        try:
            with self._writer_lock.planning() as ours:
                if ours:  # else another process is planning one: its plan will do
                    self._plan_and_apply()
        except Exception:  # on a thread of its own nobody else would hear of it
            log.exception("compaction failed (the head keeps the samples)")
        finally:
            self._planning.release()

    def _plan_and_apply(self) -> None:
        plan: CompactionPlan | None = None
        try:
            with self._stream_reader() as run:
                plan = run(
                    partial(
                        plan_compaction,
                        cache=self._head,
                        ooo_window_ms=self._ooo_ms,
                        retention_ms=self._retention_ms,
                        may_unseal=False,
                        share_gil=True,
                    )
                )
        except StorageError as exc:  # SQLite failed: compact in the transaction instead
            log.debug("compaction not planned outside the write lock: %s", exc)
        with self._lock:
            if not self._closed:
                self._compact_locked(flush=False, plan=plan)

    def _compact_locked(
        self, *, flush: bool, strict: bool = False, plan: CompactionPlan | None = None
    ) -> None:
        with self._writer_lock.held(self._timeout):
            self._compact_in_order(flush=flush, strict=strict, plan=plan)

    def _compact_in_order(
        self, *, flush: bool, strict: bool, plan: CompactionPlan | None = None
    ) -> None:
        conn = self._writable()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if plan is not None and plan_is_current(conn, plan):
                result = apply_compaction(conn, plan)
            elif plan is not None and not _head_due(conn):
                conn.execute("ROLLBACK")  # another process compacted meanwhile: enough
                return
            else:
                result = compact(
                    conn,
                    self._head,
                    ooo_window_ms=self._ooo_ms,
                    flush=flush,
                    retention_ms=self._retention_ms,
                )
            compact_histograms(
                conn,
                ooo_window_ms=self._ooo_ms,
                flush=flush,
                retention_ms=self._retention_ms,
                retention_bytes=self._retention_bytes,
            )
            if self._retention_ms is not None or self._retention_bytes is not None:
                apply_retention(
                    conn, retention_ms=self._retention_ms, retention_bytes=self._retention_bytes
                )
            conn.execute("COMMIT")
        except (sqlite3.Error, StorageError) as exc:
            self._failed(conn, exc)
            if strict:
                raise StorageError(f"sqlite compaction failed: {exc}") from exc
            # The samples are safe in the head; the next write tries again.
            log.warning("compaction failed (the head keeps the samples): %s", exc)
            return
        for sid, maxt in result.sealed.items():
            if maxt > self._sealed.get(sid, _INT64_MIN):
                self._sealed[sid] = maxt

    # ----------------------------------------------------------------------- read

    def _series_samples(
        self,
        conn: sqlite3.Connection,
        sid: int,
        start: int,
        end: int,
        head: tuple[list[int], list[int]] | None,
        budget: ReadBudget | None,
        sealed: SealedView,
    ) -> tuple[array[int], array[float]]:
        """Series ``sid``'s samples in ``[start, end]`` as ``array('q')``
        timestamps and ``array('d')`` values (bit for bit): only the chunks
        overlapping the range are decoded, straight into arrays."""
        ts: array[int] = array("q")
        values: array[float] = array("d")
        for mint, maxt, n, data in chunk_rows(conn, sid, start, end, sealed):
            if budget is not None and mint >= start and maxt <= end:
                budget.take_samples(n)
            t, v = self._decoded.decode(data)  # shared arrays: only read, sliced, copied
            if mint < start or maxt > end:
                lo, hi = bisect_left(t, start), bisect_right(t, end)
                t, v = t[lo:hi], v[lo:hi]
                if budget is not None:
                    budget.take_samples(len(t))
            ts += t  # array to array: one copy in C
            values += v
        if head is not None and head[0]:
            hts, hbits = head
            lo, hi = bisect_left(hts, start), bisect_right(hts, end)
            if lo < hi:
                if budget is not None:
                    budget.take_samples(hi - lo)
                if not ts or hts[lo] > ts[-1]:
                    ts.extend(hts[lo:hi])
                    values.frombytes(array("Q", hbits[lo:hi]).tobytes())  # the bits, as doubles
                else:  # out-of-order samples waiting in the head: the stored ones win
                    merged = dict(zip(hts[lo:hi], hbits[lo:hi], strict=True))
                    merged.update(zip(ts, array("Q", values.tobytes()), strict=True))
                    keys = sorted(merged)
                    ts = array("q", keys)
                    values = array("d", array("Q", [merged[t] for t in keys]).tobytes())
        return ts, values

    def _exemplar_series(
        self, matchers: list[LabelMatcher], start: int, end: int
    ) -> list[TimeSeries]:
        """The series matching ``matchers`` that hold exemplars in ``[start, end]``,
        with those exemplars only."""
        start, end = max(start, _INT64_MIN), min(end, _INT64_MAX)
        out: list[TimeSeries] = []
        with self._reading() as conn:
            for pairs, sid in select_series(conn, matchers, None, self._max_regex_length):
                found = [
                    Exemplar(
                        labels=[Label(n, v) for n, v in json.loads(lbls)],
                        value=_float(bits),
                        timestamp=ts,
                    )
                    for ts, bits, lbls in conn.execute(
                        "SELECT ts, bits, labels FROM exemplars "
                        "WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                        (sid, start, end),
                    )
                ]
                if found:
                    out.append(TimeSeries(labels=[Label(n, v) for n, v in pairs], exemplars=found))
        return out

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        """Series matching ``query`` with their samples and histograms in
        ``[start_timestamp_ms, end_timestamp_ms]`` (inclusive), sorted by time;
        series sorted by label set; series without data in range are left out.
        Spends ``ctx.budget`` while reading (see the module docstring).
        :meth:`process_query_columns` with a ``Sample`` per sample."""
        return QueryResult(
            timeseries=[*map(time_series_of, self.process_query_columns(ctx, query))]
        )

    def process_query_columns(self, ctx: Any, query: Query) -> list[SeriesColumns]:
        """:meth:`process_query` as columns, for a SAMPLES read without a
        ``Sample`` object: per series its labels, ``array('q')`` timestamps,
        ``array('d')`` values (bit for bit) and histograms. The same series,
        order, range and budget as :meth:`process_query`."""
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        start = max(query.start_timestamp_ms, _INT64_MIN)
        end = min(query.end_timestamp_ms, _INT64_MAX)
        out: list[SeriesColumns] = []
        try:
            with self._reading() as conn, _deadline(conn, budget):
                chosen = select_series(conn, query.matchers, budget, self._max_regex_length)
                head = self._head.view(conn)
                in_head = head.samples_of(sid for _, sid in chosen) if head else {}
                sealed = self._runs.view(conn)
                for pairs, sid in chosen:
                    if budget is not None:
                        budget.check_time()
                    stamps, values = self._series_samples(
                        conn, sid, start, end, in_head.get(sid), budget, sealed
                    )
                    hists = series_histograms(
                        conn, sid, start, end, None if budget is None else budget.take_samples
                    )
                    if not (stamps or hists):
                        continue
                    out.append(
                        SeriesColumns(
                            tuple(Label(n, v) for n, v in pairs), stamps, values, hists, []
                        )
                    )
        except sqlite3.Error as exc:
            raise _read_failure(exc, budget) from exc
        return out

    def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[ChunkedSeries]:
        """Stream the series of ``query`` one at a time, for a streamed remote read.

        Yields :class:`~promwire.codec.messages.ChunkedSeries` of XOR chunks
        with the float samples in ``[start_timestamp_ms, end_timestamp_ms]``,
        series sorted by label set, series without samples in range left out.
        Every stored chunk overlapping the range is sent as it is, samples
        outside the range included (Prometheus 2.42's rule: clients filter by
        time); head samples are cut like Prometheus' head over the whole head,
        the closed groups overlapping the range sent whole and the open one
        trimmed to it (see :mod:`.sqlite_streamed`). Only one series is in
        memory at a time. A file database reads through a connection of its
        own, holding one read transaction (a consistent snapshot) for the
        whole stream, so the iterator may be resumed on any thread; ``:memory:`` takes the writer
        lock per series instead. Native histograms in range become HISTOGRAM /
        FLOAT_HISTOGRAM chunks beside the XOR ones (chunks in time order); a
        series whose stored histograms cannot be encoded as chunks (written
        before they were validated) gets a warning in the log and its floats
        only. The series
        examined and the time spent count against ``ctx.budget``.
        """
        for labels, (chunks, _) in self._streamed(ctx, query, series_chunks):
            yield ChunkedSeries(labels=list(labels), chunks=chunks)

    def process_query_encoded(self, ctx: Any, query: Query) -> Iterator[EncodedSeries]:
        """:meth:`process_query_chunks` with every series' chunks already in
        wire form (what a streamed read sends; see
        :class:`~promwire.chunks.streamed.EncodedSeries`): a sealed range is
        encoded the first time it is read and its records kept with its
        decoded chunks (:class:`~.sqlite_blocks.RecordRun`), so reading it
        again joins bytes. The streamed handler prefers this method."""
        for labels, (series, _) in self._streamed(ctx, query, series_encoded):
            yield EncodedSeries(labels, series.pieces, series.sizes)

    def _streamed(
        self, ctx: Any, query: Query, shape: Callable[..., tuple[S, bool]]
    ) -> Iterator[tuple[tuple[Label, ...], tuple[S, bool]]]:
        """Each series of ``query`` that has something in range, with what
        ``shape`` (:func:`~.sqlite_streamed.series_chunks` or
        :func:`~.sqlite_streamed.series_encoded`) makes of it."""
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        start = max(query.start_timestamp_ms, _INT64_MIN)
        end = min(query.end_timestamp_ms, _INT64_MAX)
        with self._stream_reader(budget) as run:
            chosen = run(
                lambda conn: select_series(conn, query.matchers, budget, self._max_regex_length)
            )
            head = run(self._head.view)
            sealed = run(self._runs.view)
            histograms = run(any_histograms)
            with_histograms = 0
            # The head's samples of many series are found in one pass, a batch at a time.
            step = 256
            for first in range(0, len(chosen), step):
                batch = chosen[first : first + step]
                in_head = head.samples_of(sid for _, sid in batch) if head else {}
                for pairs, sid in batch:
                    if budget is not None:
                        budget.check_time()
                    shaped = run(
                        partial(
                            shape,
                            sid=sid,
                            start=start,
                            end=end,
                            head=in_head.get(sid),
                            sealed=sealed,
                            histograms=histograms,
                        )
                    )
                    with_histograms += shaped[1]
                    if _has_chunks(shaped[0]):
                        yield tuple(Label(n, v) for n, v in pairs), shaped
            if with_histograms:
                log.warning(
                    "streamed remote read: native histograms of %d series not sent "
                    "(they cannot be encoded as histogram chunks; ask for SAMPLES to get them)",
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
            with self._readers_lock:
                conn = self._idle_streams.pop() if self._idle_streams else None
            try:
                if conn is None:
                    conn = self._connect(reader=True)
                    self._register(conn)
                conn.execute("BEGIN")
            except sqlite3.Error as exc:
                if conn is not None:
                    with self._readers_lock:
                        self._readers.discard(conn)
                    conn.close()
                raise StorageError(f"sqlite read failed: {exc}") from exc

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
                self._end_stream(conn)

    def _end_stream(self, conn: _Connection) -> None:
        """End a stream's read transaction; keep its connection for the next
        stream (up to 4 idle), else close it."""
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            keep = False
        else:
            keep = True
        with self._readers_lock:
            if keep and not self._closed and len(self._idle_streams) < 4:
                self._idle_streams.append(conn)
                return
            self._readers.discard(conn)
        conn.close()

    def exemplars(
        self,
        matchers: Iterable[LabelMatcher] = (),
        start: int = _INT64_MIN,
        end: int = _INT64_MAX,
    ) -> list[TimeSeries]:
        """Series (with ``exemplars`` filled) that have exemplars in ``[start, end]``."""
        return self._exemplar_series(list(matchers), start, end)

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
        """What is stored: series, samples (distinct, head and chunks together),
        histograms, exemplars, metadata."""
        with self._reading() as conn:
            out = {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("series", "exemplars", "metadata")
            }
            out["histograms"] = count_histograms(conn)
            samples = sum(n for _, _, _, n, _ in stored_chunks(conn))
            view = self._head.view(conn)
            for sid, (ts, _) in view.samples_of(
                {sid for rec in view.records for sid in rec.series_ids()}
            ).items():
                if not ts:
                    continue
                stored: set[int] = set()
                for _, _, _, data in chunk_rows(conn, sid, ts[0], ts[-1]):
                    stored.update(decode_xor_bits(data)[0])
                samples += sum(1 for t in ts if t not in stored)
            out["samples"] = samples
        return out

    def disk_usage(self) -> int:
        """Bytes the database uses on disk: the file and its ``-wal`` file."""
        if self._memory:
            return 0
        total = 0
        for suffix in ("", "-wal"):
            with suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total


def _too_old(labels: Sequence[Label], t: int, bound: int, window_ms: int) -> str:
    key = _labels_key(labels)[0]
    if len(key) > 200:
        key = key[:200] + "..."
    return (
        f"out of bounds: sample at {t} is older than the out-of-order window "
        f"({window_ms // 1000} s) before the series' newest stored sample ({bound}): {key}"
    )


def _has_chunks(shaped: list[Chunk] | EncodedSeries) -> bool:
    return bool(shaped.sizes if isinstance(shaped, EncodedSeries) else shaped)


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


def _metric_type(value: int) -> MetricType | int:
    try:
        return MetricType(value)
    except ValueError:
        return value
