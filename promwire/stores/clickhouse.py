"""A remote storage on ClickHouse, one server or a sharded, replicated cluster.

    storage = ClickHouseStorage.from_url("clickhouse://127.0.0.1:8123/metrics?cluster=prod")
    app = promwire.server.asgi.RemoteStorageApp(storage)

It speaks ClickHouse's HTTP interface with the standard library
(:mod:`promwire.stores._clickhouse_http`, rows as ``RowBinary``), so the core
stays dependency-free, and it works with ClickHouse 18.16 (Debian 12) as with
current releases: only SQL both understand is used. Receivers hold no state
but a cache of series already written, so any number of them can write into
one cluster behind a load balancer (docs/scaling.md).

The schema (``TABLES`` in :mod:`promwire.stores._clickhouse_sql`):

* ``series (tenant, fingerprint, label_names, label_values)`` ordered by
  ``(tenant, fingerprint)``: one row per label set. The fingerprint is a
  64-bit BLAKE2b hash of the sorted label set (labels with an empty value
  dropped, as Prometheus does), computed by the receiver, so every receiver
  gives a series the same fingerprint without asking anyone.
* ``samples (tenant, fingerprint, ts, value Float64)`` ordered by
  ``(tenant, fingerprint, ts)``: a series' samples lie together in time order,
  which is how a read wants them, and compress well.
* ``histograms (..., ts, data)``: native histograms as their protobuf bytes
  (lossless, every field kept); ``exemplars (..., ts, id, value, labels)``;
  ``metadata (tenant, family, type, help, unit, received)``, the latest
  ``received`` winning.
* On a cluster each is a ``<name>_local`` table on every node plus a
  ``Distributed`` table ``<name>`` **sharded by the fingerprint**, so a series
  row, its samples, histograms and exemplars all live on one shard: a read
  joins nothing across shards, and each shard answers for its own series.
  With replicas the local tables are ``ReplicatedReplacingMergeTree``
  (ZooKeeper path ``/clickhouse/tables/{shard}/<database>/<table>``; the
  nodes' ``shard``/``replica`` macros fill it in).
* ``tenant`` (``ctx.tenant``; ``''`` for the default tenant) leads every
  sorting key, and every read filters on it: tenants never see each other
  (``native_tenancy = True``: promwire's tenant wrapper is not needed).
  Metadata is kept per tenant too.

Exact values: a value travels as its 8 IEEE-754 bytes in ``RowBinary`` both
ways and is stored as ``Float64`` untouched, so NaN payloads and the stale
marker come back bit for bit (tests check it on both releases).

Idempotence: an identical resend (Prometheus retrying after a 5xx) inserts
identical blocks, which the replicated engine recognises by their checksum and
drops (the last 100 blocks per table); and in any case every key is a
``ReplacingMergeTree`` key, and **reads deduplicate** with ``GROUP BY``
(``any()`` of identical rows) rather than trusting merges, which happen
whenever ClickHouse likes. ``GROUP BY`` rather than ``FINAL``: it runs on the
shards and merges there (two-level aggregation through ``Distributed``), reads
only the key range asked for, and means the same in every release. A second,
different value at an existing timestamp is not refused (Prometheus would
answer 400): one of the two is returned.

Consistency: every query asks for ``load_balancing=in_order``, so writes and
reads through a ``Distributed`` table go to the first live replica of each
shard and a read sees every write acknowledged before it; only while that
replica is down, and after its restart until it has caught up, can a read
miss the newest rows (the other replica may not have fetched them yet); a
row is never returned twice.

Durability and failures: inserts into a ``Distributed`` table are synchronous
(``insert_distributed_sync=1``), so the 204 goes out only once every shard
has the rows (on one replica; ``insert_quorum=N`` asks for N). An unreachable
node or shard, ZooKeeper trouble or a replica turned read-only is a
:class:`~promwire.errors.StorageError` with status 503, anything else
ClickHouse refuses a 500: the sender retries either. A write that fails may
have stored some of its blocks; the retry stores the rest, and the ones
already there are deduplicated. Writes go series rows first, so a stored
sample always has its series.

Reads: matchers become SQL over the ``series`` table
(:mod:`promwire.stores._clickhouse_sql`: values as escaped literals,
regexes through RE2's ``match()``, anchored), then every series found is
checked again with promwire's own matchers (Prometheus semantics exactly,
whatever the server's RE2 version), then its samples are fetched in batches
of series. Streamed remote read (:meth:`ClickHouseStorage.process_query_chunks`)
fetches one batch of series' samples at a time; native histograms are not
streamed (ask for SAMPLES to get them). SAMPLES reads go through
:meth:`ClickHouseStorage.process_query_columns`: the RowBinary rows are cut
into ``array`` columns with strided slices, no object per sample.
"""

from __future__ import annotations

import hashlib
import math
import struct
import sys
import threading
import time
import urllib.parse
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..codec.columns import SeriesColumns, time_series_of
from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.messages import (
    Exemplar,
    Histogram,
    Label,
    LabelMatcher,
    MetricMetadata,
    MetricType,
    Query,
    QueryResult,
    Sample,
    TimeSeries,
    WriteRequest,
)
from ..errors import StorageError
from ._clickhouse_http import ClickHouseHTTP, SQLClient
from ._clickhouse_sql import IDENTIFIER, literal, matchers_condition, schema_statements
from ._rowbinary import RowReader, string, strings
from .matchers import compile_matchers
from .protocol import BaseStorage, ReadBudget
from .regex import DEFAULT_MAX_REGEX_LENGTH

__all__ = ["ClickHouseStorage"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_U64 = struct.Struct("<Q")
_TS_VALUE = struct.Struct("<qd")  # a sample row's tail: ts Int64, value Float64
_SAMPLE_ROW = struct.Struct("<Qqd")  # what a sample read answers: fingerprint, ts, value
_I64 = struct.Struct("<q")
_EXEMPLAR = struct.Struct("<qQd")  # an exemplar row's ts, id, value
_META = struct.Struct("<i")


def _pairs(labels: Iterable[Label]) -> tuple[tuple[str, str], ...]:
    """The label set as a series is identified: sorted by name, empty values dropped."""
    return tuple(sorted((lb.name, lb.value) for lb in labels if lb.value != ""))


def fingerprint(pairs: Sequence[tuple[str, str]]) -> int:
    """The 64-bit fingerprint of a sorted label set (BLAKE2b of name/value bytes;
    0xFF, which UTF-8 never contains, separates them)."""
    h = hashlib.blake2b(digest_size=8)
    for name, value in pairs:
        h.update(name.encode() + b"\xff" + value.encode() + b"\xff")
    return int.from_bytes(h.digest(), "little")


def _exemplar_id(ex: Exemplar) -> int:
    h = hashlib.blake2b(_TS_VALUE.pack(0, ex.value), digest_size=8)
    for name, value in _pairs(ex.labels):
        h.update(name.encode() + b"\xff" + value.encode() + b"\xff")
    return int.from_bytes(h.digest(), "little")


def _hosts(text: str) -> list[tuple[str, int]]:
    hosts = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"ClickHouse address must be HOST:PORT, got {item[:100]!r}")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


class ClickHouseStorage(BaseStorage):
    """A :class:`~promwire.stores.protocol.RemoteStorage` in a ClickHouse database.

    ``hosts``: ``"HOST:PORT"`` of ClickHouse's HTTP interface, several
    separated by commas (tried in order when one cannot be reached), or
    ``(host, port)`` pairs. ``database`` is created if missing, and the tables
    in it (``create_schema=False`` to leave the schema alone). ``cluster``
    names a cluster of the server's ``remote_servers``: local tables on every
    node plus ``Distributed`` ones, replicated when the cluster has replicas.
    ``insert_quorum`` (ClickHouse's setting) makes a write wait for that many
    replicas. ``timeout`` bounds each wait for ClickHouse (seconds).
    ``max_regex_length`` is the longest regex matcher a read may use (400).
    ``max_cached_series`` (entries) and ``max_cached_series_bytes`` (an
    upper estimate of memory) bound what this process remembers of series
    already written (it only saves re-hashing labels and re-sending series
    rows; emptied when full). ``read_batch_series``: series whose samples one
    read query fetches (a streamed read fetches a tenth of that at a time). ``client``
    replaces the HTTP client (anything with its ``query`` and ``close``; the
    tests run the same SQL in-process on a current release through ``chdb``).
    """

    #: Tenants are kept apart by the store itself (the ``tenant`` column), so
    #: ``serve --tenant-header`` uses it as is (no tenant label added).
    native_tenancy = True

    def __init__(
        self,
        hosts: str | Sequence[tuple[str, int]] = "127.0.0.1:8123",
        database: str = "promwire",
        *,
        cluster: str | None = None,
        user: str = "default",
        password: str = "",
        insert_quorum: int | None = None,
        timeout: float = 30.0,
        create_schema: bool = True,
        max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
        max_cached_series: int = 1_000_000,
        max_cached_series_bytes: int = 256 * 1024 * 1024,
        read_batch_series: int = 1000,
        client: SQLClient | None = None,
    ) -> None:
        if not IDENTIFIER.match(database):
            raise ValueError(f"database name must match {IDENTIFIER.pattern}: {database[:80]!r}")
        if cluster is not None and not IDENTIFIER.match(cluster):
            raise ValueError(f"cluster name must match {IDENTIFIER.pattern}: {cluster[:80]!r}")
        self.database = database
        self.cluster = cluster
        self.client: SQLClient = client or ClickHouseHTTP(
            _hosts(hosts) if isinstance(hosts, str) else hosts,
            user=user,
            password=password,
            timeout=timeout,
        )
        # in_order: a Distributed table writes to and reads from the first live
        # replica of each shard, so a read sees the writes acknowledged before it
        # (another replica may still be fetching them) unless that replica is down.
        self._read_settings: dict[str, str | int | float] = {"load_balancing": "in_order"}
        self._insert_settings: dict[str, str | int | float] = {"load_balancing": "in_order"}
        if cluster:
            self._insert_settings["insert_distributed_sync"] = 1
        if insert_quorum:
            self._insert_settings["insert_quorum"] = insert_quorum
        self._max_regex_length = max_regex_length
        self._max_cached_series = max_cached_series
        self._max_cached_series_bytes = max_cached_series_bytes
        self._keys_bytes = 0
        self._batch = read_batch_series
        self._known: set[tuple[str, int]] = set()
        self._keys: dict[tuple[Label, ...], tuple[int, bytes, tuple[tuple[str, str], ...]]] = {}
        self._lock = threading.Lock()
        self.replicated = False
        if create_schema:
            self.create_schema()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ClickHouseStorage:
        """A store from ``clickhouse://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/DATABASE
        [?cluster=NAME&insert_quorum=N]`` (the HTTP port); ``options`` as keywords."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "clickhouse":
            raise ValueError(f"not a clickhouse:// URL: {url[:100]!r}")
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        query = dict(urllib.parse.parse_qsl(parts.query))
        unknown = set(query) - {"cluster", "insert_quorum"}
        if unknown:
            raise ValueError(f"unknown clickhouse:// parameter(s): {', '.join(sorted(unknown))}")
        quorum = query.get("insert_quorum")
        if quorum is not None and not quorum.isdigit():
            raise ValueError("insert_quorum must be a number")
        return cls(
            hostlist,
            parts.path.strip("/") or "promwire",
            cluster=query.get("cluster") or None,
            user=urllib.parse.unquote(user) or "default",
            password=urllib.parse.unquote(password),
            insert_quorum=int(quorum) if quorum else None,
            **options,
        )

    # ------------------------------------------------------------------ schema

    def _table(self, name: str) -> str:
        return f"{self.database}.{name}"

    def create_schema(self) -> None:
        """Create the database and tables where missing (on every node of the cluster)."""
        if self.cluster:
            answer = self.client.query(
                "SELECT count(), max(replica_num) FROM system.clusters "
                f"WHERE cluster = {literal(self.cluster)} FORMAT TSV"
            )
            nodes, replicas = (int(x) for x in answer.split())
            if not nodes:
                raise ValueError(f"ClickHouse knows no cluster {self.cluster!r} (remote_servers)")
            self.replicated = replicas > 1
        exists = self.client.query(f"EXISTS TABLE {self._table('metadata')} FORMAT TSV")
        if exists.strip() == b"1":
            return
        for statement in schema_statements(self.database, self.cluster, self.replicated):
            self.client.query(statement, settings={"distributed_ddl_task_timeout": 120})

    def check_writable(self) -> str | None:
        """``None`` when ClickHouse answers, else why not (``promwire serve`` prints it)."""
        try:
            self.client.query(f"SELECT count() FROM {self._table('metadata')} FORMAT TSV")
        except StorageError as exc:
            return exc.message
        return None

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ writes

    def _series_key(
        self, labels: tuple[Label, ...]
    ) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        """(fingerprint, the series row's label columns in RowBinary, sorted pairs), cached."""
        key = self._keys.get(labels)
        if key is None:
            pairs = _pairs(labels)
            names = [n for n, _ in pairs]
            values = [v for _, v in pairs]
            key = (fingerprint(pairs), strings(names) + strings(values), pairs)
            size = 200 + 2 * len(key[1])  # an upper estimate of the entry's memory
            if (
                len(self._keys) >= self._max_cached_series
                or self._keys_bytes + size > self._max_cached_series_bytes
            ):
                self._keys.clear()
                self._keys_bytes = 0
            self._keys[labels] = key
            self._keys_bytes += size
        return key

    def _insert(self, table: str, columns: str, rows: list[bytes]) -> None:
        if rows:
            self.client.query(
                f"INSERT INTO {self._table(table)} ({columns}) FORMAT RowBinary",
                b"".join(rows),
                self._insert_settings,
            )

    def _write(
        self,
        tenant: str,
        items: Iterable[
            tuple[
                tuple[Label, ...],
                Iterable[int],
                Iterable[float],
                Sequence[Histogram],
                Sequence[Exemplar],
            ]
        ],
        metadata: Sequence[MetricMetadata] = (),
    ) -> None:
        t = string(tenant)
        series: list[bytes] = []
        samples: list[bytes] = []
        histograms: list[bytes] = []
        exemplars: list[bytes] = []
        new: list[tuple[str, int]] = []
        known = self._known
        seen: set[tuple[str, int]] = set()  # a series sent twice in one request: one row
        for labels, timestamps, values, hists, exs in items:
            fp, label_columns, _ = self._series_key(labels)
            prefix = t + _U64.pack(fp)
            if (tenant, fp) not in known and (tenant, fp) not in seen:
                series.append(prefix + label_columns)
                new.append((tenant, fp))
                seen.add((tenant, fp))
            # A series' sample rows in one join: every row is the prefix then ts and
            # value, so joining the packed (ts, value) pairs with the prefix and
            # putting one prefix in front gives them all (no per-sample frame).
            tails = list(map(_TS_VALUE.pack, timestamps, values))
            if tails:
                samples.append(prefix + prefix.join(tails))
            for h in hists:
                histograms.append(prefix + _I64.pack(h.timestamp) + string(encode(h)))
            for ex in exs:
                pairs = _pairs(ex.labels)
                exemplars.append(
                    prefix
                    + _EXEMPLAR.pack(ex.timestamp, _exemplar_id(ex), ex.value)
                    + strings([n for n, _ in pairs])
                    + strings([v for _, v in pairs])
                )
        # Series first: a stored sample always has its series row.
        self._insert("series", "tenant, fingerprint, label_names, label_values", series)
        self._insert("samples", "tenant, fingerprint, ts, value", samples)
        self._insert("histograms", "tenant, fingerprint, ts, data", histograms)
        self._insert(
            "exemplars", "tenant, fingerprint, ts, id, value, label_names, label_values", exemplars
        )
        if metadata:
            now = _I64.pack(time.time_ns() // 1_000_000)
            self._insert(
                "metadata",
                "tenant, family, type, help, unit, received",
                [
                    t
                    + string(m.metric_family_name)
                    + _META.pack(int(m.type))
                    + string(m.help)
                    + string(m.unit)
                    + now
                    for m in metadata
                ],
            )
        with self._lock:
            if len(known) + len(new) > self._max_cached_series:
                known.clear()
            known.update(new)

    def write(self, ctx: Any, request: WriteRequest) -> None:
        """Store a remote write request (samples, histograms, exemplars, metadata)."""
        self._write(
            getattr(ctx, "tenant", None) or "",
            (
                (
                    tuple(ts.labels),
                    [s.timestamp for s in ts.samples],
                    [s.value for s in ts.samples],
                    ts.histograms,
                    ts.exemplars,
                )
                for ts in request.timeseries
            ),
            request.metadata,
        )

    def write_columns(self, ctx: Any, series: Sequence[SeriesColumns]) -> None:
        """Store columnar series (the storage protocol's optional fast path)."""
        self._write(
            getattr(ctx, "tenant", None) or "",
            ((s.labels, s.timestamps, s.values, s.histograms, s.exemplars) for s in series),
        )

    # ------------------------------------------------------------------ reads

    def _select(self, sql: str, budget: ReadBudget | None) -> bytes:
        settings = dict(self._read_settings)
        if budget is not None and budget.seconds is not None:
            settings["max_execution_time"] = max(1, math.ceil(budget.seconds))
        return self.client.query(sql + " FORMAT RowBinary", settings=settings)

    def _series(
        self, tenant: str, matchers: Sequence[LabelMatcher], budget: ReadBudget | None
    ) -> list[tuple[tuple[tuple[str, str], ...], int]]:
        """The matching series as (sorted pairs, fingerprint), sorted by label set."""
        match = compile_matchers(matchers, max_regex_length=self._max_regex_length)
        where = matchers_condition(matchers)
        reader = RowReader(
            self._select(
                "SELECT fingerprint, any(label_names), any(label_values) "
                f"FROM {self._table('series')} WHERE tenant = {literal(tenant)} AND {where} "
                "GROUP BY fingerprint"
                # Over the series limit is refused anyway: fetch no more than one past it.
                + (f" LIMIT {budget.max_series + 1}" if budget and budget.max_series else ""),
                budget,
            )
        )
        found = []
        while reader.more():
            fp = reader.u64()
            pairs = tuple(zip(reader.texts(), reader.texts(), strict=True))
            found.append((pairs, fp))
        if budget is not None:
            budget.examine(len(found))
        # Prometheus' semantics exactly, whatever the server's RE2 makes of an edge case.
        chosen = [(pairs, fp) for pairs, fp in found if match(dict(pairs))]
        chosen.sort()
        return chosen

    def _range(self, tenant: str, fps: Sequence[int], query: Query) -> str:
        start = max(query.start_timestamp_ms, _INT64_MIN)
        end = min(query.end_timestamp_ms, _INT64_MAX)
        return (
            f"tenant = {literal(tenant)} AND fingerprint IN ({','.join(map(str, fps))}) "
            f"AND ts >= {start} AND ts <= {end}"
        )

    @staticmethod
    def _limit(budget: ReadBudget | None, count: bool = True) -> str:
        """``LIMIT`` one past what the budget still allows: an answer over it is
        refused anyway, so ClickHouse never sends (nor promwire holds) more."""
        if budget is None or not count or budget.max_samples is None:
            return ""
        return f" LIMIT {max(0, budget.max_samples - budget.samples) + 1}"

    def _sample_rows(
        self,
        tenant: str,
        fps: Sequence[int],
        query: Query,
        budget: ReadBudget | None,
        count: bool,
    ) -> bytes:
        """The RowBinary rows (fingerprint, ts, value) of the series ``fps`` in
        range, by fingerprint then time; counted against the budget."""
        data = self._select(
            f"SELECT fingerprint, ts, any(value) FROM {self._table('samples')} "
            f"WHERE {self._range(tenant, fps, query)} "
            "GROUP BY fingerprint, ts ORDER BY fingerprint, ts" + self._limit(budget, count),
            budget,
        )
        if budget is not None and count:
            budget.take_samples(len(data) // _SAMPLE_ROW.size)
        return data

    def _samples(
        self,
        tenant: str,
        fps: Sequence[int],
        query: Query,
        budget: ReadBudget | None,
        *,
        count: bool = True,
    ) -> dict[int, list[Sample]]:
        data = self._sample_rows(tenant, fps, query, budget, count)
        out: dict[int, list[Sample]] = {}
        for fp, ts, value in _SAMPLE_ROW.iter_unpack(data):
            got = out.get(fp)
            if got is None:
                got = out[fp] = []
            got.append(Sample(value, ts))
        return out

    def _sample_columns(
        self, tenant: str, fps: Sequence[int], query: Query, budget: ReadBudget | None
    ) -> dict[int, tuple[array[int], array[float]]]:
        """:meth:`_samples` as ``array('q')`` timestamps and ``array('d')`` values."""
        data = self._sample_rows(tenant, fps, query, budget, True)
        n = len(data) // _SAMPLE_ROW.size
        # Fixed-size rows: byte k of every row's fingerprint, timestamp and value
        # is one strided slice; eight of them make a column, no object per row.
        columns = []
        for base in (0, 8, 16):
            col = bytearray(8 * n)
            for k in range(8):
                col[k::8] = data[base + k : _SAMPLE_ROW.size * n : _SAMPLE_ROW.size]
            columns.append(col)
        fp_col: array[int] = array("Q", bytes(columns[0]))
        ts: array[int] = array("q", bytes(columns[1]))
        vs: array[float] = array("d", bytes(columns[2]))
        if sys.byteorder != "little":  # RowBinary is little-endian
            for column in (fp_col, ts, vs):
                column.byteswap()
        out: dict[int, tuple[array[int], array[float]]] = {}
        for fp in fps:  # the rows come by fingerprint: each series is one slice
            lo, hi = bisect_left(fp_col, fp), bisect_right(fp_col, fp)
            if lo < hi:
                out[fp] = (ts[lo:hi], vs[lo:hi])
        return out

    def _histograms(
        self, tenant: str, fps: Sequence[int], query: Query, budget: ReadBudget | None
    ) -> dict[int, list[Histogram]]:
        reader = RowReader(
            self._select(
                f"SELECT fingerprint, ts, any(data) FROM {self._table('histograms')} "
                f"WHERE {self._range(tenant, fps, query)} "
                "GROUP BY fingerprint, ts ORDER BY fingerprint, ts" + self._limit(budget),
                budget,
            )
        )
        rows = []
        while reader.more():
            fp = reader.u64()
            reader.i64()
            rows.append((fp, reader.raw()))
        if budget is not None:
            budget.take_samples(len(rows))
        out: dict[int, list[Histogram]] = {}
        for fp, data in rows:
            out.setdefault(fp, []).append(decode(Histogram, data))
        return out

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        """Series matching ``query`` with samples and histograms in
        ``[start_timestamp_ms, end_timestamp_ms]``, sorted by time; series sorted
        by label set; series without data in range left out:
        :meth:`process_query_columns` with a ``Sample`` per sample."""
        return QueryResult(
            timeseries=[*map(time_series_of, self.process_query_columns(ctx, query))]
        )

    def process_query_columns(self, ctx: Any, query: Query) -> list[SeriesColumns]:
        """:meth:`process_query` as columns (``array('q')`` timestamps,
        ``array('d')`` values read straight from the RowBinary answer), for a
        SAMPLES read without a ``Sample`` object per sample."""
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        tenant = getattr(ctx, "tenant", None) or ""
        chosen = self._series(tenant, query.matchers, budget)
        out: list[SeriesColumns] = []
        for i in range(0, len(chosen), self._batch):
            batch = chosen[i : i + self._batch]
            fps = [fp for _, fp in batch]
            samples = self._sample_columns(tenant, fps, query, budget)
            histograms = self._histograms(tenant, fps, query, budget)
            for pairs, fp in batch:
                s, h = samples.get(fp), histograms.get(fp)
                if s or h:
                    ts, vs = s or (array("q"), array("d"))
                    labels = tuple(Label(n, v) for n, v in pairs)
                    out.append(SeriesColumns(labels, ts, vs, h or [], []))
        return out

    def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[TimeSeries]:
        """Stream the series of ``query`` sorted by label set, float samples
        only, fetching one batch of series' samples at a time (promwire cuts
        them into XOR chunks). The time spent counts against ``ctx.budget``."""
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        tenant = getattr(ctx, "tenant", None) or ""
        chosen = self._series(tenant, query.matchers, budget)
        step = max(1, self._batch // 10)  # smaller batches: the first frame leaves sooner
        for i in range(0, len(chosen), step):
            batch = chosen[i : i + step]
            if budget is not None:
                budget.check_time()
            # A stream has no sample limit: the budget's clock only.
            samples = self._samples(tenant, [fp for _, fp in batch], query, budget, count=False)
            for pairs, fp in batch:
                s = samples.get(fp)
                if s:
                    yield TimeSeries(labels=[Label(n, v) for n, v in pairs], samples=s)

    # ------------------------------------------------------------------ inspection

    def exemplars(
        self,
        matchers: Iterable[LabelMatcher] = (),
        start: int = _INT64_MIN,
        end: int = _INT64_MAX,
        *,
        tenant: str | None = None,
    ) -> list[TimeSeries]:
        """Series (with ``exemplars`` filled) that have exemplars in ``[start, end]``."""
        t = tenant or ""
        chosen = self._series(t, list(matchers), None)
        out = []
        for i in range(0, len(chosen), self._batch):
            batch = chosen[i : i + self._batch]
            query = Query(start_timestamp_ms=start, end_timestamp_ms=end)
            reader = RowReader(
                self._select(
                    "SELECT fingerprint, ts, id, any(value), any(label_names), "
                    f"any(label_values) FROM {self._table('exemplars')} "
                    f"WHERE {self._range(t, [fp for _, fp in batch], query)} "
                    "GROUP BY fingerprint, ts, id ORDER BY fingerprint, ts, id",
                    None,
                )
            )
            found: dict[int, list[Exemplar]] = {}
            while reader.more():
                fp, ts = reader.u64(), reader.i64()
                reader.u64()
                value = reader.f64()
                labels = [Label(n, v) for n, v in zip(reader.texts(), reader.texts(), strict=True)]
                found.setdefault(fp, []).append(Exemplar(labels, value, ts))
            for pairs, fp in batch:
                if fp in found:
                    out.append(
                        TimeSeries(labels=[Label(n, v) for n, v in pairs], exemplars=found[fp])
                    )
        return out

    def metadata(self, *, tenant: str | None = None) -> list[MetricMetadata]:
        """The latest metadata received per metric family, sorted by family name."""
        reader = RowReader(
            self._select(
                "SELECT family, argMax(type, received), argMax(help, received), "
                f"argMax(unit, received) FROM {self._table('metadata')} "
                f"WHERE tenant = {literal(tenant or '')} GROUP BY family ORDER BY family",
                None,
            )
        )
        out = []
        while reader.more():
            family = reader.text()
            kind = _META.unpack_from(reader.data, reader.pos)[0]
            reader.pos += _META.size
            out.append(
                MetricMetadata(
                    type=_metric_type(kind),
                    metric_family_name=family,
                    help=reader.text(),
                    unit=reader.text(),
                )
            )
        return out

    def counts(self, *, tenant: str | None = None, distinct: bool = True) -> dict[str, int]:
        """Rows per table for ``tenant``: distinct keys (what reads see), or with
        ``distinct=False`` the rows stored now (duplicates not merged yet included)."""
        out = {}
        keys = {
            "series": "fingerprint",
            "samples": "fingerprint, ts",
            "histograms": "fingerprint, ts",
            "exemplars": "fingerprint, ts, id",
            "metadata": "family",
        }
        for table, key in keys.items():
            what = f"uniqExact({key})" if distinct else "count()"
            answer = self.client.query(
                f"SELECT {what} FROM {self._table(table)} "
                f"WHERE tenant = {literal(tenant or '')} FORMAT TSV"
            )
            out[table] = int(answer)
        return out


def _metric_type(value: int) -> MetricType | int:
    try:
        return MetricType(value)
    except ValueError:
        return value
