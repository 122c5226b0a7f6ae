"""Data and matchers the ClickHouse store is checked with, on 18.16 and on chdb alike."""

from __future__ import annotations

import struct
from typing import Any

from promwire.codec import snappy
from promwire.codec.encoder import encode
from promwire.codec.messages import (
    STALE_NAN_BITS,
    Exemplar,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    MetricMetadata,
    MetricType,
    Query,
    QueryResult,
    ReadRequest,
    Sample,
    TimeSeries,
    WriteRequest,
)
from promwire.codec.wire import double_bits
from promwire.server.handlers import handle_read
from promwire.stores._clickhouse_sql import matchers_condition
from promwire.stores._rowbinary import RowReader
from promwire.stores.clickhouse import ClickHouseStorage
from promwire.stores.matchers import matches
from promwire.stores.protocol import BaseStorage, RequestContext

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
PAYLOAD_BITS = 0xFFF8_0000_DEAD_BEEF
PAYLOAD_NAN = struct.unpack("<d", struct.pack("<Q", PAYLOAD_BITS))[0]

# Label values that would break a pasted-in literal or a careless regex translation.
HOSTILE = ["it's", "back\\slash", "nul\x00byte", "new\nline", "é", "'; DROP TABLE x; --", ""]

MATCHERS = (
    [LabelMatcher(MatchType.EQ, "v", value) for value in HOSTILE]
    + [LabelMatcher(MatchType.NEQ, "v", value) for value in HOSTILE]
    + [
        LabelMatcher(MatchType.RE, "v", "new.line"),  # . must not match \n (Go's RE2)
        LabelMatcher(MatchType.RE, "v", "(?s)new.line"),
        LabelMatcher(MatchType.RE, "v", "."),  # one character, not one byte
        LabelMatcher(MatchType.RE, "v", "it|back.*"),  # anchored around the alternation
        LabelMatcher(MatchType.RE, "v", ""),
        LabelMatcher(MatchType.NRE, "v", ".*'.*"),
        LabelMatcher(MatchType.RE, "nothere", ".*"),
        LabelMatcher(MatchType.EQ, "nothere", ""),
        LabelMatcher(MatchType.RE, "v", "(a+)+b"),
    ]
)
NAME = LabelMatcher(MatchType.EQ, "__name__", "m")


def request() -> WriteRequest:
    """Series with hostile label values and exact-bits values, a histogram, an
    exemplar with a NaN payload, and metadata."""
    series = [
        TimeSeries(
            labels=[Label("__name__", "m"), Label("v", value), Label("i", str(i))],
            samples=[Sample(1.5, 1000), Sample(STALE, 2000), Sample(PAYLOAD_NAN, 3000)],
        )
        for i, value in enumerate(HOSTILE)
    ]
    series.append(
        TimeSeries(
            labels=[Label("__name__", "h")],
            histograms=[
                Histogram(
                    count_float=2.5, sum=-1.0, schema=3, timestamp=1500, positive_counts=[1.0]
                )
            ],
            exemplars=[Exemplar([Label("trace_id", "abc")], PAYLOAD_NAN, 1500)],
        )
    )
    meta = MetricMetadata(type=MetricType.GAUGE, metric_family_name="m", help="h'\\", unit="s")
    return WriteRequest(timeseries=series, metadata=[meta])


def query(*matchers: LabelMatcher) -> Query:
    return Query(start_timestamp_ms=0, end_timestamp_ms=10_000, matchers=list(matchers))


def check_round_trip(store: ClickHouseStorage) -> None:
    """Write :func:`request` twice (a retry) and read everything back exactly once."""
    ctx = RequestContext()
    store.write(ctx, request())
    store.write(ctx, request())
    result = store.process_query(ctx, query(NAME))
    assert len(result.timeseries) == len(HOSTILE)
    for ts in result.timeseries:
        assert [double_bits(s.value) for s in ts.samples] == [
            double_bits(1.5),
            STALE_NAN_BITS,
            PAYLOAD_BITS,
        ]
        assert [s.timestamp for s in ts.samples] == [1000, 2000, 3000]
    (h,) = store.process_query(ctx, query(LabelMatcher(MatchType.EQ, "__name__", "h"))).timeseries
    assert h.histograms == request().timeseries[-1].histograms
    (ex,) = store.exemplars([LabelMatcher(MatchType.EQ, "__name__", "h")])
    assert double_bits(ex.exemplars[0].value) == PAYLOAD_BITS
    assert ex.exemplars[0].labels == [Label("trace_id", "abc")]
    assert store.metadata() == [request().metadata[0]]
    streamed = list(store.process_query_chunks(ctx, query(NAME)))
    assert [ts.labels for ts in streamed] == [ts.labels for ts in result.timeseries]
    assert all(
        [double_bits(s.value) for s in a.samples] == [double_bits(s.value) for s in b.samples]
        for a, b in zip(streamed, result.timeseries, strict=True)
    )


def check_columns(store: ClickHouseStorage) -> None:
    """``process_query_columns`` holds what ``process_query`` holds, bit for bit,
    and a SAMPLES read through the handler answers the object path's bytes."""
    ctx = RequestContext()
    store.write(ctx, request())
    for q in (
        query(NAME),
        query(LabelMatcher(MatchType.EQ, "__name__", "h")),
        query(LabelMatcher(MatchType.RE, "__name__", ".+")),
        Query(start_timestamp_ms=1500, end_timestamp_ms=2500, matchers=[NAME]),
    ):
        objects = store.process_query(ctx, q).timeseries
        columns = store.process_query_columns(ctx, q)
        assert objects, q
        assert [list(sc.labels) for sc in columns] == [ts.labels for ts in objects]
        for sc, ts in zip(columns, objects, strict=True):
            assert list(sc.timestamps) == [s.timestamp for s in ts.samples]
            assert [double_bits(v) for v in sc.values] == [double_bits(s.value) for s in ts.samples]
            assert sc.histograms == ts.histograms
        body = snappy.compress(encode(ReadRequest(queries=[q])))
        by_columns = handle_read(body, {}, store)
        by_objects = handle_read(body, {}, _ObjectsOnly(store))
        assert by_columns.status == 200
        assert by_columns.body == by_objects.body


class _ObjectsOnly(BaseStorage):
    def __init__(self, inner: ClickHouseStorage) -> None:
        self.inner = inner

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        return self.inner.process_query(ctx, query)


def check_matcher(store: ClickHouseStorage, matcher: LabelMatcher) -> None:
    """The store, and its SQL condition alone, select what Prometheus selects."""
    store.write(RequestContext(), request())
    got = {
        tuple((lb.name, lb.value) for lb in ts.labels)
        for ts in store.process_query(RequestContext(), query(NAME, matcher)).timeseries
    }
    expected = {
        tuple(sorted((lb.name, lb.value) for lb in ts.labels if lb.value))
        for ts in request().timeseries[:-1]
        if matches([matcher], {lb.name: lb.value for lb in ts.labels if lb.value})
    }
    assert got == expected
    assert sql_selected(store, [NAME, matcher]) == expected


def sql_selected(store: ClickHouseStorage, matchers: list[LabelMatcher]) -> set[tuple[Any, ...]]:
    """The label sets the SQL condition alone selects (without promwire's re-check)."""
    reader = RowReader(
        store.client.query(
            f"SELECT any(label_names), any(label_values) FROM {store.database}.series "
            f"WHERE tenant = '' AND {matchers_condition(matchers)} GROUP BY fingerprint "
            "FORMAT RowBinary"
        )
    )
    out = set()
    while reader.more():
        out.add(tuple(sorted(zip(reader.texts(), reader.texts(), strict=True))))
    return out


def check_tenants(store: ClickHouseStorage) -> None:
    """Tenants see only their own series; ``write_columns`` writes like ``write``."""
    from array import array

    from promwire.codec.columns import SeriesColumns

    a, b = RequestContext(tenant="a"), RequestContext(tenant="b")
    labels = (Label("__name__", "t"),)
    store.write_columns(a, [SeriesColumns(labels, array("q", [1, 2]), array("d", [1.0, 2.0]))])
    store.write_columns(b, [SeriesColumns(labels, array("q", [1]), array("d", [9.0]))])
    q = query(LabelMatcher(MatchType.EQ, "__name__", "t"))
    assert [s.value for s in store.process_query(a, q).timeseries[0].samples] == [1.0, 2.0]
    assert [s.value for s in store.process_query(b, q).timeseries[0].samples] == [9.0]
    assert store.process_query(RequestContext(), q).timeseries == []
    streamed = list(store.process_query_chunks(a, q))
    assert [s.value for s in streamed[0].samples] == [1.0, 2.0]


def check_budget(store: ClickHouseStorage) -> None:
    """A read over its series or sample budget stops with the 400 of the budget."""
    import pytest

    from promwire.errors import LimitExceeded
    from promwire.stores.protocol import ReadBudget

    store.write(RequestContext(), request())
    with pytest.raises(LimitExceeded) as raised:
        store.process_query(RequestContext(budget=ReadBudget(max_series=2)), query(NAME))
    assert raised.value.status == 400
    with pytest.raises(LimitExceeded):
        store.process_query(RequestContext(budget=ReadBudget(max_samples=5)), query(NAME))
    fits = store.process_query(RequestContext(budget=ReadBudget(max_series=100)), query(NAME))
    assert len(fits.timeseries) == len(HOSTILE)
