"""v2 Request <-> v1 WriteRequest conversion."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
    Label,
    MetricMetadata,
    MetricType,
    WriteRequest,
    decode,
    encode,
    snappy,
    v2,
)
from promwire.codec import messages as m
from promwire.testing import canonical, exemplars, histograms, samples, texts
from promwire.testing.v2 import valid_requests
from tests.oracle_v2 import CLASSES, from_oracle


def test_to_v1_resolves_everything() -> None:
    t = v2.SymbolTable()
    req = v2.Request(
        symbols=t.symbols,
        timeseries=[
            v2.TimeSeries(
                labels_refs=t.refs({"__name__": "http_requests_total", "code": "200"}),
                samples=[v2.Sample(1.0, 1000, start_timestamp=500)],
                exemplars=[v2.Exemplar(t.refs({"trace_id": "abc"}), 1.0, 999)],
                metadata=v2.Metadata(
                    type=v2.MetricType.METRIC_TYPE_COUNTER,
                    help_ref=t.ref("Requests."),
                    unit_ref=t.ref("requests"),
                ),
            ),
            v2.TimeSeries(
                labels_refs=t.refs({"__name__": "latency", "le": ""}),
                histograms=[
                    v2.Histogram(
                        count_float=0.0,
                        reset_hint=v2.ResetHint.RESET_HINT_GAUGE,
                        start_timestamp=7,
                        positive_spans=[v2.BucketSpan(-2, 1)],
                        positive_counts=[3.0],
                    )
                ],
                metadata=v2.Metadata(),
            ),
        ],
    )
    w = v2.to_v1(decode(v2.Request, encode(req)))
    assert w == WriteRequest(
        timeseries=[
            m.TimeSeries(
                labels=[Label("__name__", "http_requests_total"), Label("code", "200")],
                samples=[m.Sample(1.0, 1000)],
                exemplars=[m.Exemplar([Label("trace_id", "abc")], 1.0, 999)],
            ),
            m.TimeSeries(
                labels=[Label("__name__", "latency"), Label("le", "")],
                histograms=[
                    m.Histogram(
                        count_float=0.0,
                        reset_hint=m.ResetHint.GAUGE,
                        positive_spans=[m.BucketSpan(-2, 1)],
                        positive_counts=[3.0],
                    )
                ],
            ),
        ],
        metadata=[
            MetricMetadata(MetricType.COUNTER, "http_requests_total", "Requests.", "requests")
        ],
    )


def test_to_v1_shares_label_objects_within_a_request() -> None:
    t = v2.SymbolTable()
    refs = t.refs({"__name__": "up", "job": "x"})
    req = v2.Request(symbols=t.symbols, timeseries=[v2.TimeSeries(refs), v2.TimeSeries(refs)])
    a, b = v2.to_v1(req).timeseries
    assert a.labels == b.labels
    assert all(x is y for x, y in zip(a.labels, b.labels, strict=True))


def test_to_v1_metadata_first_non_empty_per_name_wins() -> None:
    t = v2.SymbolTable()
    series = [
        v2.TimeSeries(labels_refs=t.refs({"__name__": "a"}), metadata=v2.Metadata()),
        v2.TimeSeries(labels_refs=t.refs({"__name__": "a", "x": "1"}), metadata=v2.Metadata(2)),
        v2.TimeSeries(labels_refs=t.refs({"__name__": "a", "x": "2"}), metadata=v2.Metadata(1)),
        v2.TimeSeries(labels_refs=t.refs({"job": "no-name"}), metadata=v2.Metadata(1)),
        v2.TimeSeries(labels_refs=t.refs({"__name__": "b"}), metadata=v2.Metadata(99)),
    ]
    w = v2.to_v1(v2.Request(symbols=t.symbols, timeseries=series))
    assert w.metadata == [MetricMetadata(MetricType.GAUGE, "a"), MetricMetadata(99, "b")]


def test_from_v1_attaches_metadata_by_family_name() -> None:
    w = WriteRequest(
        timeseries=[
            m.TimeSeries(
                labels=[Label("__name__", "up"), Label("job", "x")], samples=[m.Sample(1.0, 1)]
            ),
            m.TimeSeries(labels=[Label("__name__", "other")], samples=[m.Sample(2.0, 1)]),
        ],
        metadata=[
            MetricMetadata(MetricType.GAUGE, "up", "Up.", ""),
            MetricMetadata(MetricType.COUNTER, "unmatched", "Lost.", ""),
        ],
    )
    req = v2.from_v1(w)
    v2.validate(req)
    assert req.symbols == ["", "__name__", "up", "job", "x", "Up.", "other"]
    assert req.timeseries[0].metadata == v2.Metadata(v2.MetricType.METRIC_TYPE_GAUGE, 5, 0)
    assert req.timeseries[1].metadata == v2.Metadata()
    back = v2.to_v1(req)
    assert back.timeseries == w.timeseries
    assert back.metadata == w.metadata[:1]  # "unmatched" has no series to ride on


def test_from_v1_metadata_only_request_is_empty() -> None:
    w = WriteRequest(metadata=[MetricMetadata(MetricType.GAUGE, "up", "Up.", "")])
    assert v2.from_v1(w) == v2.Request(symbols=[""])


@st.composite
def _v1_requests(draw: st.DrawFn) -> WriteRequest:
    """v1 requests whose metadata v2 can carry: one entry per distinct series name."""
    names = draw(st.lists(texts(), min_size=0, max_size=3, unique=True))
    series = []
    for _ in range(draw(st.integers(0, 4))):
        lbls = draw(st.lists(st.builds(Label, texts(), texts()), max_size=3))
        if names and draw(st.booleans()):
            lbls = [Label("__name__", draw(st.sampled_from(names))), *lbls]
        series.append(
            m.TimeSeries(
                labels=lbls,
                samples=draw(st.lists(samples(), max_size=2)),
                exemplars=draw(st.lists(exemplars(), max_size=2)),
                histograms=draw(st.lists(histograms(), max_size=1)),
            )
        )
    used: list[str] = []
    for ts in series:
        for lb in ts.labels:
            if lb.name == "__name__" and lb.value and lb.value not in used:
                used.append(lb.value)
                break
    metadata = [
        MetricMetadata(
            type=draw(st.sampled_from(list(MetricType)[1:])),
            metric_family_name=name,
            help=draw(texts()),
            unit=draw(texts()),
        )
        for name in used
        if draw(st.booleans())
    ]
    return WriteRequest(timeseries=series, metadata=metadata)


def _first_name(ts: m.TimeSeries) -> str | None:
    return next((lb.value for lb in ts.labels if lb.name == "__name__"), None)


@settings(max_examples=60, deadline=None)
@given(w=_v1_requests())
def test_v1_to_v2_to_v1_round_trip(w: WriteRequest) -> None:
    req = v2.from_v1(w)
    v2.validate(req)
    raw = encode(req)
    back = v2.to_v1(decode(v2.Request, raw))
    assert canonical(back.timeseries) == canonical(w.timeseries)
    # Metadata comes back for names whose *first* __name__ label matches (order of first use).
    assert sorted(canonical(back.metadata)) == sorted(canonical(w.metadata))


def _strip_start(req: v2.Request) -> v2.Request:
    for ts in req.timeseries:
        for s in ts.samples:
            s.start_timestamp = 0
        for h in ts.histograms:
            h.start_timestamp = 0
    return req


@settings(max_examples=60, deadline=None)
@given(req=valid_requests())
def test_v2_to_v1_to_v2_keeps_the_resolved_view(req: v2.Request) -> None:
    once = v2.to_v1(req)
    again = v2.from_v1(once)
    v2.validate(again)
    twice = v2.to_v1(again)
    # The series (labels, samples, exemplars, histograms) survive exactly...
    assert canonical(twice.timeseries) == canonical(once.timeseries)
    assert canonical(twice.metadata) == canonical(once.metadata)
    # ...and only start timestamps are lost on the way.
    stripped = _strip_start(decode(v2.Request, encode(req)))
    for a, b in zip(stripped.timeseries, again.timeseries, strict=True):
        assert canonical(a.samples) == canonical(b.samples)
        assert canonical(a.histograms) == canonical(b.histograms)
        assert v2.resolve_labels(req.symbols, a.labels_refs) == v2.resolve_labels(
            again.symbols, b.labels_refs
        )


def test_histogram_conversion_keeps_oneof_presence_and_unknown_hint() -> None:
    h = v2.Histogram(count_float=0.0, zero_count_float=-0.0, reset_hint=42, sum=math.inf)
    back = v2.histogram_to_v2(v2.histogram_to_v1(h))
    assert canonical(back) == canonical(h)
    assert v2.histogram_to_v1(h).is_float
    assert v2.histogram_to_v1(h).reset_hint == 42


# ----------------------------------------------------------------- real Prometheus data


def _capture(fixtures_dir: Path, name: str) -> WriteRequest:
    body = (fixtures_dir / "rw_sender" / name).read_bytes()
    return decode(WriteRequest, snappy.decompress(body))


@pytest.mark.parametrize(
    "name",
    [
        "A_01_first_request.bin",
        "A_03_with_exemplars_and_native_histogram.bin",
        "A_11_largest_uncompressed.bin",
    ],
)
def test_real_v1_captures_survive_v2(fixtures_dir: Path, name: str) -> None:
    w = _capture(fixtures_dir, name)
    assert w.timeseries
    req = v2.from_v1(w)
    raw = encode(req)
    # upb reads our v2 bytes the same way, and re-serializes them identically.
    pb = CLASSES["Request"].FromString(raw)
    assert pb.SerializeToString() == raw
    assert canonical(from_oracle(v2.Request, pb)) == canonical(req)
    back = v2.to_v1(decode(v2.Request, raw))
    assert canonical(back.timeseries) == canonical(w.timeseries)
    assert v2.count_request(req) == v2.count_request(w)
    # v2 is smaller: every repeated label string is sent once.
    assert len(raw) < len(encode(w))


def test_real_metadata_rides_on_family_series(fixtures_dir: Path) -> None:
    series = _capture(fixtures_dir, "A_01_first_request.bin").timeseries
    metadata = _capture(fixtures_dir, "A_04_metadata_only.bin").metadata
    assert metadata
    req = v2.from_v1(WriteRequest(timeseries=series, metadata=metadata))
    v2.validate(req)
    back = v2.to_v1(req)
    names = {lb.value for ts in series for lb in ts.labels if lb.name == "__name__"}
    families = {md.metric_family_name: md for md in metadata}
    # Each series gets its family's metadata: its own name, or the name
    # without the suffix its family's type gives it (summary x -> x_count, x_sum).
    typed = {n for n in names if v2.convert.family_metadata(n, families) is not None}
    assert any(n.endswith("_count") for n in typed)  # the summaries of the capture
    for ts, out in zip(series, req.timeseries, strict=True):
        name = next(lb.value for lb in ts.labels if lb.name == "__name__")
        md = v2.convert.family_metadata(name, families)
        assert out.metadata is not None
        assert int(out.metadata.type) == (int(md.type) if md else 0), name
    # Back in v1, metadata is keyed by family again: exactly the families seen.
    got = {md.metric_family_name: md for md in back.metadata}
    expected = [v2.convert.family_metadata(n, families) for n in typed]
    assert set(got) == {md.metric_family_name for md in expected if md}
    for name, md in got.items():
        assert md == families[name]


def test_to_v1_keeps_label_order_unless_asked_to_sort() -> None:
    t = v2.SymbolTable()
    refs = t.refs({"job": "x", "__name__": "up", "a": "1"})
    req = v2.Request(symbols=t.symbols, timeseries=[v2.TimeSeries(refs, [v2.Sample(1.0, 1)])])
    as_sent = [Label("job", "x"), Label("__name__", "up"), Label("a", "1")]
    assert v2.to_v1(req).timeseries[0].labels == as_sent
    assert v2.to_v1(req, sort_labels=True).timeseries[0].labels == sorted(
        as_sent, key=lambda lb: lb.name
    )
