"""The ClickHouse store's SQL on a current ClickHouse release, in-process through chdb.

The cluster tests (test_clickhouse_cluster.py) run on Debian's ClickHouse
18.16; these run the same store, statement for statement, on the ClickHouse
chdb embeds (26.x), so the SQL is proven on both ends of the range.
"""

from __future__ import annotations

import struct
from array import array
from pathlib import Path
from typing import Any

import pytest

from promwire.codec.columns import SeriesColumns
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
    Sample,
    TimeSeries,
    WriteRequest,
)
from promwire.codec.wire import double_bits
from promwire.errors import StorageRejected
from promwire.stores._clickhouse_sql import matchers_condition
from promwire.stores._rowbinary import RowReader
from promwire.stores.clickhouse import ClickHouseStorage
from promwire.stores.matchers import matches
from promwire.stores.protocol import RequestContext
from tests.support.chdb_client import ChdbClient

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
PAYLOAD_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_DEAD_BEEF))[0]

# Label values that would break a pasted-in literal or a careless regex translation.
HOSTILE = ["it's", "back\\slash", "nul\x00byte", "new\nline", "é", "'; DROP TABLE x; --", ""]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClickHouseStorage:
    path = tmp_path_factory.mktemp("chdb")
    return ClickHouseStorage(database="promwire", client=ChdbClient(Path(path)))


def _request() -> WriteRequest:
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


def _query(*matchers: LabelMatcher) -> Query:
    return Query(start_timestamp_ms=0, end_timestamp_ms=10_000, matchers=list(matchers))


def test_round_trip_is_bit_exact_and_resends_are_not_read_twice(store: ClickHouseStorage) -> None:
    ctx = RequestContext()
    store.write(ctx, _request())
    store.write(ctx, _request())  # a retry: nothing may come back twice
    result = store.process_query(ctx, _query(LabelMatcher(MatchType.EQ, "__name__", "m")))
    assert len(result.timeseries) == len(HOSTILE)
    for ts in result.timeseries:
        assert [double_bits(s.value) for s in ts.samples] == [
            double_bits(1.5),
            STALE_NAN_BITS,
            0xFFF8_0000_DEAD_BEEF,
        ]
        assert [s.timestamp for s in ts.samples] == [1000, 2000, 3000]
    (h,) = store.process_query(ctx, _query(LabelMatcher(MatchType.EQ, "__name__", "h"))).timeseries
    assert h.histograms == _request().timeseries[-1].histograms
    (ex,) = store.exemplars([LabelMatcher(MatchType.EQ, "__name__", "h")])
    assert double_bits(ex.exemplars[0].value) == 0xFFF8_0000_DEAD_BEEF
    assert ex.exemplars[0].labels == [Label("trace_id", "abc")]
    assert store.metadata() == [_request().metadata[0]]


@pytest.mark.parametrize(
    "matcher",
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
    ],
    ids=repr,
)
def test_matchers_select_what_prometheus_selects(
    store: ClickHouseStorage, matcher: LabelMatcher
) -> None:
    store.write(RequestContext(), _request())
    name = LabelMatcher(MatchType.EQ, "__name__", "m")
    got = {
        tuple((lb.name, lb.value) for lb in ts.labels)
        for ts in store.process_query(RequestContext(), _query(name, matcher)).timeseries
    }
    expected = {
        tuple(sorted((lb.name, lb.value) for lb in ts.labels if lb.value))
        for ts in _request().timeseries[:-1]
        if matches([matcher], {lb.name: lb.value for lb in ts.labels if lb.value})
    }
    assert got == expected
    assert sql_selected(store, [name, matcher]) == expected


def sql_selected(store: ClickHouseStorage, matchers: list[LabelMatcher]) -> set[tuple[Any, ...]]:
    """The label sets the SQL condition alone selects (without promwire's re-check)."""
    reader = RowReader(
        store.client.query(
            "SELECT any(label_names), any(label_values) FROM promwire.series "
            f"WHERE tenant = '' AND {matchers_condition(matchers)} GROUP BY fingerprint "
            "FORMAT RowBinary"
        )
    )
    out = set()
    while reader.more():
        out.add(tuple(zip(reader.texts(), reader.texts(), strict=True)))
    return out


def test_tenants_are_kept_apart_and_columns_write(store: ClickHouseStorage) -> None:
    a, b = RequestContext(tenant="a"), RequestContext(tenant="b")
    labels = (Label("__name__", "t"),)
    store.write_columns(a, [SeriesColumns(labels, array("q", [1, 2]), array("d", [1.0, 2.0]))])
    store.write_columns(b, [SeriesColumns(labels, array("q", [1]), array("d", [9.0]))])
    q = _query(LabelMatcher(MatchType.EQ, "__name__", "t"))
    assert [s.value for s in store.process_query(a, q).timeseries[0].samples] == [1.0, 2.0]
    assert [s.value for s in store.process_query(b, q).timeseries[0].samples] == [9.0]
    assert store.process_query(RequestContext(), q).timeseries == []
    streamed = list(store.process_query_chunks(a, q))
    assert [s.value for s in streamed[0].samples] == [1.0, 2.0]


def test_an_invalid_regex_is_refused_before_any_sql(store: ClickHouseStorage) -> None:
    with pytest.raises(StorageRejected):
        store.process_query(RequestContext(), _query(LabelMatcher(MatchType.RE, "v", "(a")))
