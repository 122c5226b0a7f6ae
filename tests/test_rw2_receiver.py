"""The receiver side of remote write 2.0, case by case (spec: prometheus/docs
docs/specs/prw/remote_write_spec_2_0.md; PROTOCOL.md §2-3).

One table: each case is an HTTP request (headers + body built with
promwire.v2 / SymbolTable) and what must come back (status, the three
``X-Prometheus-Remote-Write-*-Written`` headers or their absence, words of the
body) and what the SQLite store must hold afterwards. Every case runs against
the handler directly and through the ASGI app under uvicorn. The last test
sends with promwire's own v2 client to ``promwire serve`` (Prometheus 2.42
cannot send v2).
"""

from __future__ import annotations

import http.client
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    STALE_NAN_BITS,
    Label,
    LabelMatcher,
    MatchType,
    MetricMetadata,
    MetricType,
    Query,
    Sample,
    StorageError,
    StorageOverloaded,
    TimeSeries,
    WriteRequest,
    encode,
    snappy,
    v2,
)
from promwire.client.writer import RemoteWriteClient, RemoteWriteError
from promwire.server.asgi import RemoteStorageApp as AsgiApp
from promwire.server.handlers import handle_write
from promwire.stores.protocol import WriteOutcome
from promwire.stores.sqlite import SQLiteStorage
from promwire.v2 import SymbolTable
from tests.test_asgi_wsgi import running

V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
V1 = "application/x-protobuf;proto=prometheus.WriteRequest"
WRITTEN = (v2.SAMPLES_WRITTEN, v2.HISTOGRAMS_WRITTEN, v2.EXEMPLARS_WRITTEN)
ALL = [LabelMatcher(MatchType.RE, "__name__", ".*")]


def hdr(content_type: str | None, encoding: str | None = "snappy") -> dict[str, str]:
    out = {}
    if content_type is not None:
        out["Content-Type"] = content_type
    if encoding is not None:
        out["Content-Encoding"] = encoding
    return out


# ------------------------------------------------------------- request builders


class Req:
    """Builds a v2 request with one symbol table; ``series(...)`` adds a TimeSeries."""

    def __init__(self) -> None:
        self.table = SymbolTable()
        self.timeseries: list[v2.TimeSeries] = []
        self.symbols: list[str] | None = None  # override the table

    def series(
        self,
        labels: dict[str, str] | None = None,
        samples: list[tuple[int, float]] | None = None,
        *,
        refs: list[int] | None = None,
        histograms: list[v2.Histogram] | None = None,
        exemplars: list[tuple[dict[str, str], float, int]] | None = None,
        metadata: v2.Metadata | None = None,
        start: int = 0,
    ) -> Req:
        self.timeseries.append(
            v2.TimeSeries(
                labels_refs=refs if refs is not None else self.table.refs(labels or {}),
                samples=[v2.Sample(v, t, start) for t, v in samples or []],
                histograms=list(histograms or []),
                exemplars=[v2.Exemplar(self.table.refs(lb), v, t) for lb, v, t in exemplars or []],
                metadata=metadata if metadata is not None else v2.Metadata(),
            )
        )
        return self

    def meta(self, kind: v2.MetricType, help: str, unit: str) -> v2.Metadata:
        return v2.Metadata(type=kind, help_ref=self.table.ref(help), unit_ref=self.table.ref(unit))

    def body(self) -> bytes:
        symbols = self.table.symbols if self.symbols is None else self.symbols
        return snappy.compress(encode(v2.Request(symbols=symbols, timeseries=self.timeseries)))


def hist(t: int, count: int = 3) -> v2.Histogram:
    return v2.Histogram(
        count_int=count,
        sum=1.5 * count,
        schema=1,
        zero_threshold=1e-128,
        zero_count_int=0,
        positive_spans=[v2.BucketSpan(0, 2)],
        positive_deltas=[1, count - 2],
        timestamp=t,
    )


def v1_body(*series: TimeSeries) -> bytes:
    return snappy.compress(encode(WriteRequest(list(series))))


UP = {"__name__": "up", "job": "a"}
DOWN = {"__name__": "down", "job": "b"}


def up(samples: list[tuple[int, float]]) -> Req:
    return Req().series(UP, samples)


def mixed() -> Req:
    r = Req()
    return r.series(UP, [(1, 1.0)], histograms=[hist(1)])


def partial() -> Req:
    r = Req()
    r.series(UP, [(1, 1.0), (2, 2.0)], exemplars=[({"trace_id": "t1"}, 1.0, 1)])
    r.series(refs=[1, 99], samples=[(5, 5.0)])  # bad ref: rejected whole
    r.series({"__name__": "h"}, histograms=[hist(10), hist(20)])
    r.series(DOWN, [(3, 3.0)], histograms=[hist(3)])  # both: rejected whole
    return r


def with_metadata() -> Req:
    r = Req()
    r.series(
        {"__name__": "req_total", "code": "200"},
        [(1, 1.0)],
        metadata=r.meta(v2.MetricType.METRIC_TYPE_COUNTER, "Requests served.", "requests"),
    )
    r.series({"__name__": "temp"}, [(1, 20.5)], metadata=v2.Metadata())  # empty: nothing
    return r


def bad_first_symbol() -> Req:
    r = up([(1, 1.0)])
    r.symbols = ["x", *r.table.symbols[1:]]
    return r


def empty_symbols_with_series() -> Req:
    r = Req()
    r.symbols = []
    return r.series(refs=[0, 0], samples=[(1, 1.0)])


def odd_refs() -> Req:
    r = up([(1, 1.0)])
    r.series(refs=[1], samples=[(1, 1.0)])
    return r


def exemplar_ref_out_of_range() -> Req:
    r = up([(1, 1.0)])
    r.timeseries.append(
        v2.TimeSeries(
            labels_refs=r.table.refs(DOWN),
            samples=[v2.Sample(2.0, 2)],
            exemplars=[v2.Exemplar([1, 500], 1.0, 2)],
        )
    )
    return r


def metadata_ref_out_of_range() -> Req:
    r = Req()
    return r.series(UP, [(1, 1.0)], metadata=v2.Metadata(type=2, help_ref=77))


def unsorted_labels_and_repeats() -> Req:
    r = Req()
    r.series({"job": "a", "__name__": "up"}, [(1, 1.0)])  # labels not sorted by name
    r.series(UP, [(2, 2.0)])  # the same series again in one request
    return r


def stale_marker() -> Req:
    stale = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
    return up([(1, 1.0), (2, stale)])


# --------------------------------------------------------------- expectations

Stored = dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]


def bits(v: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", v))[0])


def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def stored_samples(store: SQLiteStorage) -> Stored:
    out: Stored = {}
    for ts in store.process_query(None, Query(-(2**62), 2**62, ALL)).timeseries:
        if ts.samples:
            out[key({lb.name: lb.value for lb in ts.labels})] = [
                (s.timestamp, bits(s.value)) for s in ts.samples
            ]
    return out


def samples_of(labels: dict[str, str], *points: tuple[int, float]) -> Stored:
    return {key(labels): [(t, bits(v)) for t, v in points]}


@dataclass
class Case:
    name: str
    headers: dict[str, str]
    body: Callable[[], bytes]
    status: int
    written: tuple[int, int, int] | None  # None: the headers must be absent (v1)
    samples: Stored = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # store.counts() subset
    says: tuple[str, ...] = ()  # words the body must contain
    metadata: list[MetricMetadata] | None = None
    storage: str = "sqlite"  # or "v1-only", "failing", "overloaded"


CASES = [
    # --- negotiation (spec: Content-Type picks the message; 415 for anything else)
    Case(
        "v2 exact", hdr(V2), lambda: up([(1, 1.0)]).body(), 204, (1, 0, 0), samples_of(UP, (1, 1.0))
    ),
    Case(
        "v2 space after ; (promwire tolerates, Prometheus reads v1)",
        hdr("application/x-protobuf; proto=io.prometheus.write.v2.Request"),
        lambda: up([(1, 1.0)]).body(),
        204,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
    ),
    Case(
        "v2 spaces everywhere",
        hdr(" application/x-protobuf ; proto=io.prometheus.write.v2.Request ;x=y "),
        lambda: up([(1, 1.0)]).body(),
        204,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
    ),
    Case(
        "v1 bare media type",
        hdr("application/x-protobuf"),
        lambda: v1_body(TimeSeries([Label("__name__", "up")], [Sample(1.0, 1)])),
        204,
        None,
        samples_of({"__name__": "up"}, (1, 1.0)),
    ),
    Case(
        "v1 named",
        hdr(V1),
        lambda: v1_body(TimeSeries([Label("__name__", "up")], [Sample(1.0, 1)])),
        204,
        None,
        samples_of({"__name__": "up"}, (1, 1.0)),
    ),
    Case(
        "v1 without Content-Type",
        hdr(None),
        lambda: v1_body(TimeSeries([Label("__name__", "up")], [Sample(1.0, 1)])),
        204,
        None,
        samples_of({"__name__": "up"}, (1, 1.0)),
    ),
    Case(
        # The spec's warning: a v2 body read with the v1 schema is an empty request.
        "v2 body announced as v1 stores nothing",
        hdr("application/x-protobuf"),
        lambda: up([(1, 1.0)]).body(),
        204,
        None,
    ),
    Case(
        "unknown proto",
        hdr("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
        lambda: up([(1, 1.0)]).body(),
        415,
        None,
        says=("v3",),
    ),
    Case("other media type", hdr("application/json"), lambda: b"{}", 415, None),
    Case("malformed parameter", hdr("application/x-protobuf;proto"), lambda: b"", 415, None),
    Case("v2 gzip", hdr(V2, "gzip"), lambda: up([(1, 1.0)]).body(), 415, (0, 0, 0)),
    Case(
        "v2 missing Content-Encoding is snappy",
        hdr(V2, None),
        lambda: up([(1, 1.0)]).body(),
        204,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
    ),
    Case(
        "v2 refused by a v1-only storage",
        hdr(V2),
        lambda: up([(1, 1.0)]).body(),
        415,
        (0, 0, 0),
        storage="v1-only",
        says=("does not accept remote write v2",),
    ),
    # --- bodies that are not a v2 Request: nothing written
    Case("v2 bad snappy", hdr(V2), lambda: b"\xff\x00garbage", 400, (0, 0, 0)),
    Case("v2 bad protobuf", hdr(V2), lambda: snappy.compress(b"\x2a\x05\x0a"), 400, (0, 0, 0)),
    Case("v2 empty request", hdr(V2), lambda: snappy.compress(b""), 204, (0, 0, 0)),
    # --- symbol table
    Case(
        "symbols[0] not empty",
        hdr(V2),
        lambda: bad_first_symbol().body(),
        400,
        (0, 0, 0),
        says=("symbols[0]",),
    ),
    Case(
        "empty symbols, series referring to them",
        hdr(V2),
        lambda: empty_symbols_with_series().body(),
        400,
        (0, 0, 0),
        says=("out of range",),
    ),
    Case(
        "label ref out of range: that series rejected, others written",
        hdr(V2),
        lambda: up([(1, 1.0)]).series(refs=[1, 40], samples=[(1, 2.0)]).body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        says=("label ref 40 out of range", "rejected 1 samples"),
    ),
    Case(
        "odd labels_refs",
        hdr(V2),
        lambda: odd_refs().body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        says=("odd number",),
    ),
    Case(
        "exemplar label ref out of range",
        hdr(V2),
        lambda: exemplar_ref_out_of_range().body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        says=("exemplar #0",),
    ),
    Case(
        "metadata ref out of range",
        hdr(V2),
        lambda: metadata_ref_out_of_range().body(),
        400,
        (0, 0, 0),
        says=("help_ref 77",),
    ),
    # --- series content rules
    Case(
        "repeated label name",
        hdr(V2),
        lambda: up([(1, 1.0)]).series(refs=[1, 2, 1, 4], samples=[(1, 2.0)]).body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        says=("label name '__name__' appears twice",),
    ),
    Case(
        "empty label name",
        hdr(V2),
        lambda: up([(1, 1.0)]).series(refs=[1, 2, 0, 4], samples=[(1, 2.0)]).body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        says=("empty label name",),
    ),
    Case(
        "no __name__ is refused (as Prometheus' 2.0 receiver), the rest stored",
        hdr(V2),
        lambda: up([(1, 1.0)]).series({"job": "a"}, [(1, 1.0)]).body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        says=("series #1 {job='a'}: no metric name (__name__)",),
    ),
    Case(
        "series with both samples and histograms",
        hdr(V2),
        lambda: mixed().body(),
        400,
        (0, 0, 0),
        says=("both samples and histograms",),
    ),
    Case(
        "series without samples or histograms",
        hdr(V2),
        lambda: up([(1, 1.0)]).series(DOWN, exemplars=[({"trace_id": "x"}, 1.0, 5)]).body(),
        400,
        (1, 0, 0),
        samples_of(UP, (1, 1.0)),
        counts={"exemplars": 0},
        says=("no samples and no histograms",),
    ),
    Case(
        "out-of-order sample rejected, the rest kept",
        hdr(V2),
        lambda: up([(10, 1.0), (20, 2.0), (15, 9.0), (30, 3.0)]).body(),
        400,
        (3, 0, 0),
        samples_of(UP, (10, 1.0), (20, 2.0), (30, 3.0)),
        says=("out-of-order sample at 15",),
    ),
    Case(
        "duplicate timestamp, same value: written",
        hdr(V2),
        lambda: up([(10, 1.0), (10, 1.0)]).body(),
        204,
        (2, 0, 0),
        samples_of(UP, (10, 1.0)),
    ),
    Case(
        "duplicate timestamp, other value: rejected",
        hdr(V2),
        lambda: up([(10, 1.0), (10, 2.0)]).body(),
        400,
        (1, 0, 0),
        samples_of(UP, (10, 1.0)),
        says=("duplicate sample for timestamp 10",),
    ),
    Case(
        "exemplar without timestamp rejected, samples kept",
        hdr(V2),
        lambda: (
            Req()
            .series(
                UP, [(1, 1.0)], exemplars=[({"trace_id": "a"}, 1.0, 0), ({"trace_id": "b"}, 2.0, 1)]
            )
            .body()
        ),
        400,
        (1, 0, 1),
        samples_of(UP, (1, 1.0)),
        counts={"exemplars": 1},
        says=("1 exemplar(s) without a timestamp",),
    ),
    Case(
        "partial write: counts of what was written",
        hdr(V2),
        lambda: partial().body(),
        400,
        (2, 2, 1),
        samples_of(UP, (1, 1.0), (2, 2.0)),
        counts={"histograms": 2, "exemplars": 1},
        says=("rejected 2 samples, 1 histograms, 0 exemplars; 2 problem(s)",),
    ),
    Case(
        "histograms and exemplars",
        hdr(V2),
        lambda: (
            Req()
            .series(
                {"__name__": "h"},
                histograms=[hist(1), hist(2, 5)],
                exemplars=[({"trace_id": "z"}, 0.5, 2)],
            )
            .body()
        ),
        204,
        (0, 2, 1),
        counts={"histograms": 2, "exemplars": 1},
    ),
    Case(
        "metadata becomes v1 metric metadata",
        hdr(V2),
        lambda: with_metadata().body(),
        204,
        (2, 0, 0),
        {
            **samples_of({"__name__": "req_total", "code": "200"}, (1, 1.0)),
            **samples_of({"__name__": "temp"}, (1, 20.5)),
        },
        metadata=[MetricMetadata(MetricType.COUNTER, "req_total", "Requests served.", "requests")],
    ),
    Case(
        "start timestamps accepted (not stored by the v1 view)",
        hdr(V2),
        lambda: Req().series(UP, [(5000, 7.0)], start=1000).body(),
        204,
        (1, 0, 0),
        samples_of(UP, (5000, 7.0)),
    ),
    Case(
        "unsorted labels and a repeated series",
        hdr(V2),
        lambda: unsorted_labels_and_repeats().body(),
        204,
        (2, 0, 0),
        samples_of(UP, (1, 1.0), (2, 2.0)),
    ),
    Case(
        "stale marker kept bit for bit",
        hdr(V2),
        lambda: stale_marker().body(),
        204,
        (2, 0, 0),
        {key(UP): [(1, bits(1.0)), (2, STALE_NAN_BITS)]},
    ),
    # --- storage failures: nothing kept, all counts 0, retry is safe
    Case(
        "storage error is 500 with zero counts",
        hdr(V2),
        lambda: up([(1, 1.0)]).body(),
        500,
        (0, 0, 0),
        storage="failing",
    ),
    Case(
        "overloaded is 429 with zero counts",
        hdr(V2),
        lambda: up([(1, 1.0)]).body(),
        429,
        (0, 0, 0),
        storage="overloaded",
    ),
    Case(
        "v1 storage error has no counts",
        hdr(V1),
        lambda: v1_body(TimeSeries([Label("a", "b")], [Sample(1.0, 1)])),
        500,
        None,
        storage="failing",
    ),
]


class FailingSQLite(SQLiteStorage):
    """Fails inside the transaction, after inserting: the rollback must leave nothing."""

    def __init__(self, error: Exception) -> None:
        super().__init__(":memory:")
        self.error = error

    def _series_id(self, conn: Any, key: str, pairs: list[tuple[str, str]]) -> int:  # type: ignore[override]
        SQLiteStorage._series_id(conn, key, pairs)
        raise self.error


def make_store(kind: str) -> SQLiteStorage:
    if kind == "failing":
        return FailingSQLite(StorageError("disk full"))
    if kind == "overloaded":
        return FailingSQLite(StorageOverloaded("slow down", retry_after=2))
    store = SQLiteStorage(":memory:")
    if kind == "v1-only":
        store.accepted_protocols = ("v1",)  # type: ignore[misc]
    return store


def check(
    case: Case, status: int, headers: dict[str, str], text: str, store: SQLiteStorage
) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    assert status == case.status, text
    if case.written is None:
        assert not any(name.lower() in lower for name in WRITTEN), headers
    else:
        assert tuple(int(lower[name.lower()]) for name in WRITTEN) == case.written, text
    if status == 204:
        assert text == ""
    else:
        assert lower["content-type"] == "text/plain; charset=utf-8"
        assert text.strip()
    for word in case.says:
        assert word in text
    assert stored_samples(store) == case.samples
    counts = store.counts()
    for table, n in case.counts.items():
        assert counts[table] == n, table
    if case.written is not None and status >= 400 and case.written == (0, 0, 0):
        assert counts["samples"] == counts["histograms"] == counts["exemplars"] == 0
    if case.metadata is not None:
        assert store.metadata() == case.metadata
    if status == 429:
        assert lower["retry-after"] == "2"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_handler_with_sqlite(case: Case) -> None:
    store = make_store(case.storage)
    resp = handle_write(case.body(), case.headers, store)
    assert isinstance(resp.body, bytes)
    check(case, resp.status, dict(resp.headers), resp.body.decode(), store)


class Switch:
    """Forwards every attribute to the current storage, so one server serves every case."""

    def __init__(self) -> None:
        self.current: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)


@pytest.fixture(scope="module")
def asgi_server() -> Iterator[tuple[int, Switch]]:
    switch = Switch()
    with running("uvicorn", AsgiApp(switch)) as port:
        yield port, switch


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_through_asgi_under_uvicorn(case: Case, asgi_server: tuple[int, Switch]) -> None:
    port, switch = asgi_server
    store = switch.current = make_store(case.storage)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/api/v1/write", body=case.body(), headers=case.headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        check(case, resp.status, dict(resp.getheaders()), text, store)
    finally:
        conn.close()


# ---------------------------------------------------------- optional write_v2


class NativeV2(SQLiteStorage):
    """Takes v2 itself: keeps start timestamps, keeps at most 2 samples per request."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.starts: list[int] = []
        self.got: list[v2.Request] = []

    def write_v2(self, ctx: Any, request: v2.Request) -> WriteOutcome | None:
        self.got.append(request)
        samples = [s for ts in request.timeseries for s in ts.samples]
        self.starts += [s.start_timestamp for s in samples]
        if len(samples) <= 2:
            return None
        return WriteOutcome(2, 0, 0, [f"only 2 of {len(samples)} samples kept"])


def test_write_v2_gets_the_checked_request_and_reports_counts() -> None:
    store = NativeV2()
    ok = handle_write(Req().series(UP, [(5, 1.0)], start=2).body(), hdr(V2), store)
    assert (ok.status, ok.headers) == (204, v2.written_headers(1, 0, 0))
    assert store.starts == [2]  # what the v1 view would have lost
    assert store.counts()["samples"] == 0  # write() was not used
    # Bad series are taken out before write_v2 sees the request; its own problems add up.
    body = up([(1, 1.0), (2, 2.0), (3, 3.0)]).series(refs=[1, 50], samples=[(1, 1.0)]).body()
    resp = handle_write(body, hdr(V2), store)
    assert resp.status == 400
    assert dict(resp.headers)[v2.SAMPLES_WRITTEN] == "2"
    assert isinstance(resp.body, bytes)
    text = resp.body.decode()
    assert "label ref 50" in text and "only 2 of 3 samples kept" in text
    assert "rejected 2 samples" in text
    assert len(store.got[-1].timeseries) == 1


def test_problem_lists_are_capped() -> None:
    r = Req()
    for i in range(50):
        r.series(refs=[1, 1000 + i], samples=[(1, 1.0)])
    resp = handle_write(r.body(), hdr(V2), SQLiteStorage(":memory:"))
    assert resp.status == 400
    assert isinstance(resp.body, bytes)
    text = resp.body.decode()
    assert "50 problem(s)" in text and "... and 30 more" in text
    assert text.count("out of range") == 20


# ------------------------------------------- promwire's v2 client to promwire serve


def test_v2_client_against_promwire_serve(tmp_path: Path) -> None:
    from tests.test_serve_e2e import promwire_serve

    series = [
        TimeSeries(
            [Label("__name__", "rw2_e2e"), Label("i", str(i))],
            [Sample(i + j / 4, 1_000 + 1_000 * j) for j in range(50)],
        )
        for i in range(20)
    ]
    db = tmp_path / "v2.db"
    with promwire_serve(db) as (port, _):
        url = f"http://127.0.0.1:{port}/api/v1/write"
        with RemoteWriteClient(url, protocol="v2") as client:
            result = client.send(WriteRequest(series))  # converted with v2.from_v1
            assert result.status == 204
            assert result.written == {"samples": 1000, "histograms": 0, "exemplars": 0}
            # A partial write: the client raises (400, not retried) with the counts.
            r = Req().series({"__name__": "rw2_e2e", "i": "x"}, [(1, 1.0)])
            r.series(refs=[1, 99], samples=[(1, 1.0)])
            with pytest.raises(RemoteWriteError) as err:
                client.send(v2.Request(symbols=r.table.symbols, timeseries=r.timeseries))
            assert err.value.status == 400 and not err.value.retryable
            assert err.value.written == {"samples": 1, "histograms": 0, "exemplars": 0}
            assert "label ref 99" in str(err.value)
    with SQLiteStorage(db) as store:
        got = store.process_query(None, Query(0, 10**9, ALL)).timeseries
    want = sorted(series, key=lambda s: [(lb.name, lb.value) for lb in s.labels])
    want.append(TimeSeries([Label("__name__", "rw2_e2e"), Label("i", "x")], [Sample(1.0, 1)]))
    want.sort(key=lambda s: [(lb.name, lb.value) for lb in s.labels])
    assert got == want


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_adapters_413_still_carries_zero_counts_for_v2(server: str) -> None:
    from promwire.server.wsgi import RemoteStorageApp as WsgiApp

    store = SQLiteStorage(":memory:")
    app = (AsgiApp if server == "uvicorn" else WsgiApp)(store, max_body_size=16)
    body = up([(t, float(t)) for t in range(1, 50)]).body()
    assert len(body) > 16
    with running(server, app) as port:
        for content_type, counted in ((V2, True), (V1, False)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("POST", "/api/v1/write", body=body, headers=hdr(content_type))
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 413
                got = resp.getheader(v2.SAMPLES_WRITTEN)
                assert got == ("0" if counted else None)
            finally:
                conn.close()
    assert store.counts()["samples"] == 0
