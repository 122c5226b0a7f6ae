"""The receiver's series checks (promwire.codec.validation), rule by rule, and how the
write handlers apply them: 1.0 refuses the request whole, 2.0 refuses the series or
the histogram (a partial write), rc.3's created timestamp becomes the start timestamp.

The histogram rules are those of Prometheus' ``model/histogram`` ``Validate``
(docs/compliance.md): one table of histograms, each valid or with the words
of the problem it must be refused with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from promwire import (
    BucketSpan,
    Histogram,
    Label,
    Sample,
    TimeSeries,
    WriteRequest,
    encode,
    snappy,
    v2,
)
from promwire.codec.validation import histogram_problem, labels_problem
from promwire.server.handlers import handle_write
from promwire.stores.protocol import BaseStorage
from promwire.stores.sqlite import SQLiteStorage
from promwire.testing import valid_histograms

S = BucketSpan
NAN = math.nan
RW1 = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
RW2 = {"Content-Type": v2.CONTENT_TYPE_V2, "Content-Encoding": "snappy"}
T0 = 1_700_000_000_000


def h(**kw: Any) -> Histogram:
    """An integer histogram of schema 0; fields as given."""
    return Histogram(**{"count_int": 0, **kw})


def fh(**kw: Any) -> Histogram:
    """A float histogram."""
    return Histogram(**{"count_float": 0.0, **kw})


# Buckets 1, 3, 4, 7, 8 (23 observations) in two spans, as the compliance suite builds them.
POS = {"positive_spans": [S(0, 3), S(2, 2)], "positive_deltas": [1, 2, 1, 3, 1]}
CUSTOM = {
    "schema": -53,
    "custom_values": [0.1, 0.5, 1.0, 2.5, 5.0, 10.0],
    "positive_spans": [S(0, 6)],
    "positive_deltas": [2, 1, 2, 3, -1, -2],  # 2, 3, 5, 8, 7, 5: 30
    "count_int": 30,
}


@dataclass
class HCase:
    name: str
    histogram: Histogram
    problem: str | None  # words of the refusal; None: valid


HISTOGRAMS = [
    HCase("empty", h(), None),
    HCase("zero bucket only", h(count_int=1, zero_count_int=1), None),
    HCase("both sides and zero", h(count_int=27, zero_count_int=1, **POS,
          negative_spans=[S(0, 2)], negative_deltas=[1, 1]), None),
    HCase("count mismatch, finite sum", h(count_int=99, sum=1.0, **POS),
          "count 99 differs from the 23"),
    HCase("count above buckets, NaN sum", h(count_int=99, sum=NAN, **POS), None),
    HCase("count below buckets, NaN sum", h(count_int=5, sum=NAN, **POS),
          "count 5 is below the 23"),
    HCase("negative bucket from deltas", h(count_int=1, positive_spans=[S(0, 2)],
          positive_deltas=[1, -2]), "positive side: bucket 2 has count -1"),
    HCase("negative side negative", h(negative_spans=[S(0, 1)], negative_deltas=[-1]),
          "negative side: bucket 1 has count -1"),
    HCase("spans need more buckets", h(count_int=1, positive_spans=[S(0, 3)],
          positive_deltas=[1]), "spans need 3 buckets, 1 given"),
    HCase("second span with negative offset", h(count_int=2, positive_spans=[S(0, 1), S(-2, 1)],
          positive_deltas=[1, 0]), "span 2 has negative offset -2"),
    HCase("first span with negative offset", h(count_int=1, positive_spans=[S(-3, 1)],
          positive_deltas=[1]), None),
    HCase("schema -4", h(schema=-4), None),
    HCase("schema 8", h(schema=8), None),
    HCase("schema 9 (scaled down by Prometheus)", h(schema=9), None),
    HCase("schema 52", h(schema=52), None),
    HCase("schema 53", h(schema=53), "schema 53"),
    HCase("schema -5", h(schema=-5), "schema -5"),
    HCase("schema -52", h(schema=-52), "schema -52"),
    HCase("custom buckets", h(**CUSTOM), None),
    HCase("custom buckets, count mismatch", h(**{**CUSTOM, "count_int": 31}), "count 31 differs"),
    HCase("custom buckets, negative side", h(**CUSTOM, negative_spans=[S(0, 1)],
          negative_deltas=[1]), "custom buckets with a negative side"),
    HCase("custom buckets, zero count", h(**CUSTOM, zero_count_int=1), "zero bucket"),
    HCase("custom buckets, zero threshold", h(**CUSTOM, zero_threshold=0.001), "zero bucket"),
    HCase("custom bounds not increasing", h(**{**CUSTOM, "custom_values": [0.1, 0.1, 1, 2, 3, 4]}),
          "not increasing"),
    HCase("custom bound NaN", h(**{**CUSTOM, "custom_values": [0.1, NAN, 1, 2, 3, 4]}), "NaN"),
    HCase("custom bound +Inf last", h(**{**CUSTOM, "custom_values": [1, 2, 3, 4, 5, math.inf]}),
          "+Inf"),
    HCase("custom bounds too few for the spans", h(**{**CUSTOM, "custom_values": [1.0, 2.0]}),
          "2 custom bounds cannot cover"),
    HCase("custom buckets, first span negative offset",
          h(**{**CUSTOM, "positive_spans": [S(-1, 6)]}), "span 1 has negative offset -1"),
    HCase("exponential schema with custom bounds", h(custom_values=[1.0]),
          "custom bounds with exponential"),
    HCase("float", fh(count_float=3.0, zero_count_float=1.0, positive_spans=[S(0, 2)],
          positive_counts=[1.0, 1.0]), None),
    HCase("float, count not the sum (not checked)", fh(count_float=7.5, positive_spans=[S(0, 1)],
          positive_counts=[1.0]), None),
    HCase("float, negative bucket", fh(count_float=1.0, positive_spans=[S(0, 1)],
          positive_counts=[-1.0]), "positive side: bucket 1 has count -1.0"),
    HCase("float, negative count", fh(count_float=-1.0), "negative count"),
    HCase("float, negative zero count", fh(zero_count_float=-1.0), "zero count"),
    HCase("float, spans need more buckets", fh(negative_spans=[S(0, 2)], negative_counts=[1.0]),
          "negative side: spans need 2 buckets, 1 given"),
]  # fmt: skip


@pytest.mark.parametrize("case", HISTOGRAMS, ids=[c.name for c in HISTOGRAMS])
def test_histogram_rule(case: HCase) -> None:
    problem = histogram_problem(case.histogram)
    if case.problem is None:
        assert problem is None
    else:
        assert problem is not None and case.problem in problem, problem
    # v2's Histogram has the same fields: the same verdict.
    assert histogram_problem(v2.histogram_to_v2(case.histogram)) == problem


LABELS = [
    # (labels, problem over 1.0, problem over 2.0)
    ({}, "no labels", "no labels"),
    ({"__name__": ""}, "no label has a value", "no label has a value"),
    ({"job": "a"}, None, "no metric name (__name__)"),
    ({"__name__": "", "job": "a"}, None, "no metric name (__name__)"),
    ({"__name__": "up", "job": ""}, None, None),
    ({"__name__": "up", "": "x"}, None, "empty label name"),
    ({"__name__": "up", "job": "a"}, None, None),
]


@pytest.mark.parametrize(("labels", "v1", "v2rule"), LABELS, ids=[repr(x[0]) for x in LABELS])
def test_label_rule(labels: dict[str, str], v1: str | None, v2rule: str | None) -> None:
    label_list = [Label(n, v) for n, v in labels.items()]
    assert labels_problem(label_list) == v1
    assert labels_problem(label_list, v2_rules=True) == v2rule
    twice = [*label_list, Label("job", "b"), Label("job", "c")]
    assert "appears twice" in (labels_problem(twice) or "")


def test_v1_request_with_an_invalid_histogram_is_refused_whole(tmp_path: Path) -> None:
    bad = h(count_int=99, sum=1.0, timestamp=T0, **POS)
    request = WriteRequest(
        [
            TimeSeries([Label("__name__", "ok")], samples=[Sample(1.0, T0)]),
            TimeSeries([Label("__name__", "h"), Label("job", "x")], histograms=[bad]),
        ]
    )
    with SQLiteStorage(str(tmp_path / "db")) as store:
        resp = handle_write(snappy.compress(encode(request)), RW1, store)
        counts = store.counts()
    assert resp.status == 400
    text = bytes(resp.body).decode()
    assert "series #1 {__name__='h', job='x'}" in text
    assert f"invalid histogram at {T0}: count 99 differs from the 23" in text
    assert counts["samples"] == counts["histograms"] == counts["series"] == 0


def test_v2_refuses_the_invalid_histogram_and_keeps_the_rest(tmp_path: Path) -> None:
    table = v2.SymbolTable()
    good = v2.histogram_to_v2(h(count_int=23, sum=1.0, **POS))
    series = v2.TimeSeries(
        labels_refs=table.refs({"__name__": "h"}),
        histograms=[
            replace(good, timestamp=T0),
            replace(good, timestamp=T0 + 1, count_int=99),
            replace(good, timestamp=T0 + 2),
        ],
        exemplars=[v2.Exemplar(table.refs({"trace_id": "t"}), 1.0, T0)],
    )
    request = v2.Request(symbols=table.symbols, timeseries=[series])
    with SQLiteStorage(str(tmp_path / "db")) as store:
        resp = handle_write(snappy.compress(encode(request)), RW2, store)
        counts = store.counts()
    assert resp.status == 400
    text = bytes(resp.body).decode()
    assert f"series #0 {{__name__='h'}}: invalid histogram at {T0 + 1}: count 99" in text
    assert (v2.HISTOGRAMS_WRITTEN, "2") in resp.headers
    assert (v2.EXEMPLARS_WRITTEN, "1") in resp.headers
    assert counts["histograms"] == 2 and counts["exemplars"] == 1


def test_v2_series_whose_histograms_are_all_invalid_keeps_nothing(tmp_path: Path) -> None:
    table = v2.SymbolTable()
    bad = v2.histogram_to_v2(h(count_int=99, sum=1.0, timestamp=T0, **POS))
    request = v2.Request(
        symbols=table.symbols,
        timeseries=[
            v2.TimeSeries(
                labels_refs=table.refs({"__name__": "h"}),
                histograms=[bad],
                exemplars=[v2.Exemplar(table.refs({"trace_id": "t"}), 1.0, T0)],
            ),
            v2.TimeSeries(labels_refs=table.refs({"__name__": "ok"}), samples=[v2.Sample(1.0, T0)]),
        ],
    )
    with SQLiteStorage(str(tmp_path / "db")) as store:
        resp = handle_write(snappy.compress(encode(request)), RW2, store)
        counts = store.counts()
    assert resp.status == 400
    assert "rejected 0 samples, 1 histograms, 1 exemplars" in bytes(resp.body).decode()
    assert (v2.SAMPLES_WRITTEN, "1") in resp.headers
    assert (v2.EXEMPLARS_WRITTEN, "0") in resp.headers
    assert (counts["series"], counts["histograms"], counts["exemplars"]) == (1, 0, 0)


class Recorder(BaseStorage):
    """A storage with ``write_v2`` that keeps the checked requests it was given."""

    def __init__(self) -> None:
        self.requests: list[v2.Request] = []

    def write_v2(self, ctx: Any, request: v2.Request) -> None:
        self.requests.append(request)


def test_rc3_created_timestamp_becomes_the_start_timestamp() -> None:
    table = v2.SymbolTable()
    hist = v2.histogram_to_v2(h(count_int=1, zero_count_int=1))
    request = v2.Request(
        symbols=table.symbols,
        timeseries=[
            v2.TimeSeries(
                labels_refs=table.refs({"__name__": "c_total"}),
                samples=[v2.Sample(1.0, T0), v2.Sample(2.0, T0 + 1, start_timestamp=T0 - 5)],
                created_timestamp=T0 - 3_600_000,
            ),
            v2.TimeSeries(
                labels_refs=table.refs({"__name__": "h"}),
                histograms=[replace(hist, timestamp=T0)],
                created_timestamp=T0 - 60_000,
            ),
            v2.TimeSeries(labels_refs=table.refs({"__name__": "g"}), samples=[v2.Sample(3.0, T0)]),
        ],
    )
    raw = encode(request)
    assert b"\x30" in raw  # field 6, as rc.3 senders put it
    store = Recorder()
    resp = handle_write(snappy.compress(raw), RW2, store)
    assert resp.status == 204
    (got,) = store.requests
    counter, histogram, gauge = got.timeseries
    assert [s.start_timestamp for s in counter.samples] == [T0 - 3_600_000, T0 - 5]
    assert [x.start_timestamp for x in histogram.histograms] == [T0 - 60_000]
    assert [s.start_timestamp for s in gauge.samples] == [0]
    assert gauge is request.timeseries[2] or gauge == request.timeseries[2]


def test_the_histogram_check_takes_columnar_series() -> None:
    """The same 1.0 check for a columnar write path (SeriesColumns has labels and histograms)."""
    from array import array

    from promwire.codec.columns import SeriesColumns
    from promwire.codec.validation import check_histograms
    from promwire.errors import DecodeError

    good = SeriesColumns((Label("__name__", "h"),), array("q"), array("d"), [h(**CUSTOM)], [])
    bad = SeriesColumns((Label("__name__", "h2"),), array("q"), array("d"), [h(count_int=3)], [])
    check_histograms([good])
    with pytest.raises(DecodeError, match=r"series #1 \{__name__='h2'\}: invalid histogram"):
        check_histograms([good, bad])


@settings(max_examples=300, deadline=None)
@given(histogram=valid_histograms())
def test_the_valid_histograms_strategy_makes_valid_histograms(histogram: Histogram) -> None:
    """promwire.testing.valid_histograms (used by prometheus_write_requests) passes the rule."""
    assert histogram_problem(histogram) is None
