"""decode_columns / encode_columns agree with decode / encode, for v1 and v2, good and bad input."""

from __future__ import annotations

import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire as p
from promwire import v2
from promwire.codec.columnar import decode_read_columns
from promwire.codec.decoder import clear_caches
from promwire.errors import DecodeError, EncodeError
from promwire.testing import canonical, mutations, prometheus_write_requests, write_requests
from promwire.testing import v2 as v2st

NOW = 1795582338992


def _bits(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def _same(cols: list[p.SeriesColumns], req: p.WriteRequest) -> None:
    assert len(cols) == len(req.timeseries)
    for sc, ts in zip(cols, req.timeseries, strict=True):
        assert list(sc.labels) == ts.labels
        assert isinstance(sc.timestamps, array) and sc.timestamps.typecode == "q"
        assert isinstance(sc.values, array) and sc.values.typecode == "d"
        assert list(sc.timestamps) == [s.timestamp for s in ts.samples]
        assert sc.values.tobytes() == _bits([s.value for s in ts.samples])  # bit-exact
        # exemplars and histograms compared by float bits (NaN != NaN)
        got = canonical(p.TimeSeries([], [], sc.exemplars, sc.histograms))
        assert got == canonical(p.TimeSeries([], [], ts.exemplars, ts.histograms))


def _runs() -> p.WriteRequest:
    """Long runs of the 18-byte sample shape, with near misses inside and after them."""
    labels = [p.Label("__name__", "m"), p.Label("job", "j")]
    nan = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    run = [p.Sample(float(k) - 50.5, NOW + 15_000 * k) for k in range(300)]
    odd = list(run)
    odd[100] = p.Sample(0.0, NOW)  # 9-byte record inside a run
    odd[150] = p.Sample(-0.0, NOW + 1)
    odd[200] = p.Sample(nan, 1 << 42)  # 7-byte varint
    odd[250] = p.Sample(1.0, -5)  # 10-byte varint
    odd[251] = p.Sample(1.0, (1 << 35) - 1)  # 5-byte varint
    odd[252] = p.Sample(1.0, 1 << 35)  # smallest 6-byte one
    odd[253] = p.Sample(1.0, (1 << 42) - 1)  # largest
    ex = p.Exemplar([p.Label("trace_id", "abc")], 2.0, NOW)
    return p.WriteRequest(
        [
            p.TimeSeries(labels, run),
            p.TimeSeries(labels, odd, [ex]),
            p.TimeSeries(labels, run[:2], [ex], [p.Histogram(count_int=3, timestamp=NOW)]),
            p.TimeSeries(labels, [p.Sample(1.5, NOW)]),
            p.TimeSeries(labels, [p.Sample(0.0, NOW)]),
            p.TimeSeries([], []),
        ],
        [p.MetricMetadata(p.MetricType.COUNTER, "m", "help", "")],
    )


@pytest.mark.parametrize("warm", [False, True])
def test_runs_and_near_misses_match_decode(warm: bool) -> None:
    req = _runs()
    raw = p.encode(req)
    clear_caches()
    if warm:
        p.decode(p.WriteRequest, raw)
    cols = p.decode_columns(raw)
    _same(cols, p.decode(p.WriteRequest, raw))
    # the same content written back from columns is the same bytes (no metadata in columns)
    assert p.encode_columns(cols) == p.encode(p.WriteRequest(req.timeseries))


@settings(max_examples=150, deadline=None)
@given(req=st.one_of(prometheus_write_requests(), write_requests()), warm=st.booleans())
def test_v1_matches_decode_and_encode(req: p.WriteRequest, warm: bool) -> None:
    raw = p.encode(req)
    if not warm:
        clear_caches()
    cols = p.decode_columns(raw)
    _same(cols, p.decode(p.WriteRequest, raw))
    series = p.decode(p.WriteRequest, raw).timeseries
    assert p.encode_columns(cols) == p.encode(p.WriteRequest(series))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_damaged_v1_same_error_contract(data: st.DataObject) -> None:
    raw = p.encode(data.draw(prometheus_write_requests()))
    bad = data.draw(mutations(raw))
    try:
        want = p.decode(p.WriteRequest, bad)
    except DecodeError:
        with pytest.raises(DecodeError):
            p.decode_columns(bad)
        return
    _same(p.decode_columns(bad), want)


@settings(max_examples=100, deadline=None)
@given(req=v2st.valid_requests())
def test_v2_matches_to_v1(req: v2.Request) -> None:
    raw = p.encode(req)
    cols = p.decode_columns(raw, v2.Request)
    _same(cols, v2.to_v1(p.decode(v2.Request, raw)))
    # and the handler's conversion of a decoded request gives the same columns
    again = v2.columnar.request_columns(p.decode(v2.Request, raw))
    _same(again, v2.to_v1(p.decode(v2.Request, raw)))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_v2_same_error_contract(data: st.DataObject) -> None:
    bad = data.draw(mutations(p.encode(data.draw(v2st.valid_requests()))))
    try:
        want = v2.to_v1(p.decode(v2.Request, bad))
    except DecodeError:
        with pytest.raises(DecodeError):
            p.decode_columns(bad, v2.Request)
        return
    _same(p.decode_columns(bad, v2.Request), want)


def test_v2_encode_equals_encode_of_from_v1() -> None:
    req = _runs()
    req.metadata = []
    cols = p.decode_columns(p.encode(req))
    raw = p.encode_columns(cols, v2.Request)
    assert raw == p.encode(v2.from_v1(req))
    _same(p.decode_columns(raw, v2.Request), req)


def test_v2_bad_ref_is_a_decode_error() -> None:
    raw = p.encode(v2.Request(["", "a"], [v2.TimeSeries([1, 7], [v2.Sample(1.0, NOW)])]))
    with pytest.raises(DecodeError, match="out of range"):
        p.decode_columns(raw, v2.Request)


def test_encode_refuses_ragged_columns() -> None:
    sc = p.SeriesColumns((p.Label("a", "b"),), array("q", [1, 2]), array("d", [1.0]))
    with pytest.raises(EncodeError, match="differ"):
        p.encode_columns([sc])
    with pytest.raises(EncodeError):
        p.encode_columns([sc], v2.Request)


def test_unknown_message_class() -> None:
    with pytest.raises(TypeError):
        p.decode_columns(b"", p.ReadRequest)


def _read_response(req: p.WriteRequest) -> p.ReadResponse:
    half = len(req.timeseries) // 2
    return p.ReadResponse(
        [
            p.QueryResult(req.timeseries[:half]),
            p.QueryResult([]),
            p.QueryResult(req.timeseries[half:]),
        ]
    )


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_read_response_columns_match_decode(data: st.DataObject) -> None:
    raw = p.encode(_read_response(data.draw(prometheus_write_requests())))
    if data.draw(st.booleans()):
        raw = data.draw(mutations(raw))
    try:
        want = p.decode(p.ReadResponse, raw)
    except DecodeError:
        with pytest.raises(DecodeError):
            decode_read_columns(raw)
        return
    got = decode_read_columns(raw)
    assert len(got) == len(want.results)
    for cols, result in zip(got, want.results, strict=True):
        _same(cols, p.WriteRequest(result.timeseries))
