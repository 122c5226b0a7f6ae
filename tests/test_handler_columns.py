"""handle_write dispatches to a storage's write_columns (v1, and v2 without write_v2)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from hypothesis import given, settings

import promwire as p
from promwire import v2
from promwire.server.handlers import handle_write, handle_write_async
from promwire.stores.protocol import RequestContext
from promwire.testing import canonical, prometheus_write_requests

V1 = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
V2 = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
}
NOW = 1795582338992


class ColumnStore:
    """Takes columns; ``write`` only ever sees metadata."""

    def __init__(self) -> None:
        self.series: list[p.SeriesColumns] = []
        self.writes: list[p.WriteRequest] = []

    def write_columns(self, ctx: Any, series: list[p.SeriesColumns]) -> None:
        assert isinstance(ctx, RequestContext)
        self.series.extend(series)

    def write(self, ctx: Any, request: p.WriteRequest) -> None:
        self.writes.append(request)


class AsyncColumnStore(ColumnStore):
    async def write_columns(self, ctx: Any, series: list[p.SeriesColumns]) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.series.extend(series)


class ObjectStore:
    """A user's storage with ``write`` only: must keep getting WriteRequest objects."""

    def __init__(self) -> None:
        self.writes: list[p.WriteRequest] = []

    def write(self, ctx: Any, request: p.WriteRequest) -> None:
        self.writes.append(request)


def _flat(series: list[Any]) -> list[Any]:
    """(labels, timestamps, value bits, exemplars+histograms) of series objects or columns."""
    out = []
    for s in series:
        if isinstance(s, p.SeriesColumns):
            ts, vals = list(s.timestamps), list(s.values)
        else:
            ts, vals = [x.timestamp for x in s.samples], [x.value for x in s.samples]
        extra = canonical(p.TimeSeries([], [], s.exemplars, s.histograms))
        out.append((list(s.labels), ts, struct.pack(f"<{len(vals)}d", *vals), extra))
    return out


@settings(max_examples=60, deadline=None)
@given(req=prometheus_write_requests())
def test_v1_columns_carry_what_write_gets(req: p.WriteRequest) -> None:
    body = p.snappy.compress(p.encode(req))
    cols, objs = ColumnStore(), ObjectStore()
    r1 = handle_write(body, V1, cols)
    r2 = handle_write(body, V1, objs)
    assert r1.status == r2.status
    if r1.status != 204:
        assert r1.body == r2.body  # the same refusal, nothing stored
        assert not cols.series and not cols.writes
        return
    got = [] if not objs.writes else objs.writes[0].timeseries
    assert _flat(cols.series) == _flat(got)
    # metadata still goes to write(), alone
    want_md = objs.writes[0].metadata if objs.writes else []
    assert [w.metadata for w in cols.writes] == ([want_md] if want_md else [])
    assert all(not w.timeseries for w in cols.writes)


def test_v2_goes_to_write_columns_with_sorted_labels() -> None:
    req = v2.Request(
        ["", "z", "1", "__name__", "up", "a", "2"],
        [
            v2.TimeSeries([3, 4, 1, 2, 5, 6], [v2.Sample(1.0, NOW), v2.Sample(2.0, NOW + 1)]),
            v2.TimeSeries([3, 4, 1, 99], [v2.Sample(1.0, NOW)]),  # bad ref: partial write
        ],
    )
    store = ColumnStore()
    resp = handle_write(p.snappy.compress(p.encode(req)), V2, store)
    assert resp.status == 400  # the partial write is reported ...
    assert ("X-Prometheus-Remote-Write-Samples-Written", "2") in resp.headers
    [sc] = store.series  # ... and the good series stored, in columns
    assert [(lb.name, lb.value) for lb in sc.labels] == [("__name__", "up"), ("a", "2"), ("z", "1")]
    assert list(sc.timestamps) == [NOW, NOW + 1] and list(sc.values) == [1.0, 2.0]


def test_storage_with_write_v2_keeps_getting_v2() -> None:
    class Both(ColumnStore):
        def __init__(self) -> None:
            super().__init__()
            self.v2: list[v2.Request] = []

        def write_v2(self, ctx: Any, request: v2.Request) -> None:
            self.v2.append(request)

    req = v2.Request(["", "__name__", "up"], [v2.TimeSeries([1, 2], [v2.Sample(1.0, NOW)])])
    store = Both()
    assert handle_write(p.snappy.compress(p.encode(req)), V2, store).status == 204
    assert len(store.v2) == 1 and not store.series


@pytest.mark.parametrize(
    ("limits", "what"),
    [
        ({"max_series": 1}, "max_series"),
        ({"max_samples": 2}, "max_samples"),
        ({"max_labels_per_series": 1}, "max_labels_per_series"),
        ({"max_label_bytes": 3}, "max_label_bytes"),
    ],
)
def test_limits_refuse_before_storing(limits: dict[str, int], what: str) -> None:
    samples = [p.Sample(1.0, NOW + k) for k in range(3)]
    req = p.WriteRequest(
        [
            p.TimeSeries([p.Label("__name__", "up"), p.Label("job", "long")], samples),
            p.TimeSeries([p.Label("__name__", "up")], samples[:1]),
        ]
    )
    store = ColumnStore()
    resp = handle_write(p.snappy.compress(p.encode(req)), V1, store, **limits)
    assert resp.status == 400 and what.encode() in resp.body
    assert not store.series


def test_bad_label_set_and_damaged_body_are_400() -> None:
    dup = p.WriteRequest([p.TimeSeries([p.Label("a", "1"), p.Label("a", "2")], [])])
    store = ColumnStore()
    resp = handle_write(p.snappy.compress(p.encode(dup)), V1, store)
    assert resp.status == 400 and b"series #0" in resp.body
    resp = handle_write(p.snappy.compress(b"\x0a\x05\x0a\x03"), V1, store)
    assert resp.status == 400
    assert not store.series


def test_invalid_native_histogram_is_refused_on_the_columnar_path() -> None:
    # count 99 while the buckets hold 1+3+4+7+8 = 23 and the sum is finite
    bad = p.Histogram(
        count_int=99,
        sum=1.0,
        timestamp=NOW,
        positive_spans=[p.BucketSpan(0, 3), p.BucketSpan(2, 2)],
        positive_deltas=[1, 2, 1, 3, 1],
    )
    req = p.WriteRequest(
        [
            p.TimeSeries([p.Label("__name__", "ok")], [p.Sample(1.0, NOW)]),
            p.TimeSeries([p.Label("__name__", "h")], histograms=[bad]),
        ]
    )
    store = ColumnStore()
    resp = handle_write(p.snappy.compress(p.encode(req)), V1, store)
    assert resp.status == 400 and b"count 99" in resp.body and b"series #1" in resp.body
    assert not store.series  # v1 has no partial writes: nothing of the request is kept


def test_storage_failure_is_5xx() -> None:
    class Failing(ColumnStore):
        def write_columns(self, ctx: Any, series: list[p.SeriesColumns]) -> None:
            raise p.StorageError("disk full")

    req = p.WriteRequest([p.TimeSeries([p.Label("__name__", "up")], [p.Sample(1.0, NOW)])])
    resp = handle_write(p.snappy.compress(p.encode(req)), V1, Failing())
    assert resp.status == 500


def test_async_handler_awaits_async_write_columns() -> None:
    req = p.WriteRequest(
        [p.TimeSeries([p.Label("__name__", "up")], [p.Sample(1.5, NOW), p.Sample(2.5, NOW + 1)])],
        [p.MetricMetadata(p.MetricType.GAUGE, "up", "h", "")],
    )
    store = AsyncColumnStore()
    resp = asyncio.run(handle_write_async(p.snappy.compress(p.encode(req)), V1, store))
    assert resp.status == 204
    [sc] = store.series
    assert list(sc.values) == [1.5, 2.5]
    assert store.writes[0].metadata == req.metadata
