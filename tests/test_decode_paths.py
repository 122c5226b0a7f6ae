"""The decoder's shortcuts agree with upb, cold and warm.

promwire.decode takes shortcuts that depend on what its caches hold (a
series whose label block is cached and whose only sample is an 18-byte or a
9-byte record is decoded without scanning its labels). Every path must give
what upb gives for the same bytes, whatever the cache state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire as p
from promwire.codec.decoder import _DECODERS, _make_generic, clear_caches, set_cache_limits
from promwire.codec.encoder import _make_generic as _make_generic_encoder
from promwire.codec.fields import SCHEMAS
from promwire.codec.wire import varint
from promwire.errors import DecodeError, EncodeError
from promwire.testing import canonical, histograms, mutations, prometheus_write_requests
from tests.oracle import ORACLE, from_oracle, to_oracle

NOW = 1795582338992


def _upb(raw: bytes) -> p.WriteRequest:
    result: p.WriteRequest = from_oracle(p.WriteRequest, ORACLE[p.WriteRequest].FromString(raw))
    return result


def _shapes() -> bytes:
    """One request holding every sample shape the shortcuts look for, and near misses."""
    labels = [p.Label("__name__", "m"), p.Label("job", "j")]
    series = [
        p.TimeSeries(labels, [p.Sample(1.5, NOW)]),  # 12 10 09 <8> 10 <6>
        p.TimeSeries(labels, [p.Sample(0.0, NOW)]),  # 12 07 10 <6>
        p.TimeSeries(labels, [p.Sample(-0.0, NOW)]),  # value written: 18 bytes
        p.TimeSeries(labels, [p.Sample(2.5, 5)]),  # short timestamp
        p.TimeSeries(labels, [p.Sample(0.0, 5)]),
        p.TimeSeries(labels, [p.Sample(2.5, -NOW)]),  # 10-byte varint
        p.TimeSeries(labels, [p.Sample(2.5, 1 << 42)]),  # 7-byte varint
        p.TimeSeries(labels, [p.Sample(1.0, NOW), p.Sample(0.0, NOW + 1), p.Sample(2.0, NOW + 2)]),
        p.TimeSeries(
            labels, [p.Sample(1.0, NOW)], [p.Exemplar([p.Label("trace_id", "t")], 1.0, NOW)]
        ),
        p.TimeSeries(labels, [], [], [p.Histogram(count_int=0, zero_count_int=0, timestamp=NOW)]),
        p.TimeSeries(labels, [], [p.Exemplar([p.Label("trace_id", "t")], 1.0, NOW)]),
        p.TimeSeries(  # sample + exemplar + histogram: not the sample+exemplar shortcut
            labels,
            [p.Sample(1.0, NOW)],
            [p.Exemplar([p.Label("trace_id", "t")], 1.0, NOW)],
            [p.Histogram(count_int=1, timestamp=NOW)],
        ),
        p.TimeSeries(  # an exemplar of 128 bytes or more: a 2-byte length
            labels, [p.Sample(1.0, NOW)], [p.Exemplar([p.Label("trace_id", "t" * 130)], 1.0, NOW)]
        ),
        p.TimeSeries(labels, [], [p.Exemplar([p.Label("trace_id", "t" * 130)], 1.0, NOW)]),
        p.TimeSeries(  # labels that hold the bytes the shortcuts search for
            [p.Label("a", "\x12\x10\x09" + "x" * 13), p.Label("b" * 26, "\x1a" * 26)],
            [p.Sample(1.0, NOW)],
            [p.Exemplar([p.Label("trace_id", "\x12\x10\x09")], 1.0, NOW)],
        ),
        p.TimeSeries(
            [p.Label("a", "\x12\x10\x09" + "x" * 13), p.Label("b" * 26, "\x1a" * 26)],
            [],
            [p.Exemplar([p.Label("trace_id", "\x1a")], 1.0, NOW)],
        ),
        p.TimeSeries([p.Label("__name__", "x" * 200)], [p.Sample(3.0, NOW)]),  # 2-byte lengths
        p.TimeSeries([], [p.Sample(3.0, NOW)]),
    ]
    return p.encode(p.WriteRequest(series))


@pytest.fixture
def small_caches() -> Iterator[None]:
    yield
    set_cache_limits()


def _captures(fixtures_dir: Path) -> list[bytes]:
    files = sorted(fixtures_dir.glob("rw_sender/*.bin"))
    return [p.snappy.decompress(f.read_bytes()) for f in files]


def test_cold_warm_and_uncached_decodes_agree_with_upb(fixtures_dir: Path) -> None:
    for raw in [_shapes(), *_captures(fixtures_dir)]:
        want = canonical(_upb(raw))
        clear_caches()
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # cold
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # warm: shortcuts taken
        set_cache_limits(pairs_bytes=0, blocks_bytes=0)
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # no caches at all
        set_cache_limits()


@settings(max_examples=60, deadline=None)
@given(prometheus_write_requests())
def test_prometheus_shaped_requests_decode_twice_like_upb(req: p.WriteRequest) -> None:
    raw = p.encode(req)
    want = canonical(_upb(raw))
    assert canonical(p.decode(p.WriteRequest, raw)) == want
    assert canonical(p.decode(p.WriteRequest, raw)) == want


# Label values made of the bytes the series shortcuts search for (12 10 09, 1a),
# and lengths of 16 and 26 (which write those bytes as length prefixes).
_TRICKY = st.sampled_from(["", "\x12\x10\x09", "\x1a", "\x1a" * 26, "y" * 16, "\t" * 16, "z" * 26])


@st.composite
def _exemplar_series(draw: st.DrawFn) -> p.WriteRequest:
    """Series of a few label sets: a sample and an exemplar, an exemplar alone, and near misses."""
    value = st.one_of(_TRICKY, st.text(max_size=30))
    pool = [
        [p.Label(n, draw(value)) for n in sorted(draw(st.sets(_TRICKY | st.text(), max_size=4)))]
        for _ in range(draw(st.integers(1, 3)))
    ]
    exemplar = st.builds(
        p.Exemplar,
        st.lists(st.builds(p.Label, value, value), max_size=2),
        st.floats(allow_nan=False),
        st.sampled_from([NOW, 0, -1, 5]),
    )
    sample = st.builds(p.Sample, st.floats(allow_nan=False), st.sampled_from([NOW, 0, -1, 5]))
    series = []
    for _ in range(draw(st.integers(1, 8))):
        samples = draw(st.lists(sample, max_size=2))
        exemplars = draw(st.lists(exemplar, min_size=1, max_size=2))
        series.append(p.TimeSeries(list(draw(st.sampled_from(pool))), samples, exemplars))
    return p.WriteRequest(series)


@settings(max_examples=80, deadline=None)
@given(_exemplar_series())
def test_series_with_exemplars_decode_like_upb_cold_warm_and_uncached(
    req: p.WriteRequest,
) -> None:
    raw = to_oracle(req).SerializeToString()
    want = canonical(_upb(raw))
    clear_caches()
    assert canonical(p.decode(p.WriteRequest, raw)) == want  # cold
    assert canonical(p.decode(p.WriteRequest, raw)) == want  # warm: shortcuts taken
    set_cache_limits(pairs_bytes=0, blocks_bytes=0)
    try:
        assert canonical(p.decode(p.WriteRequest, raw)) == want
    finally:
        set_cache_limits()


def test_tiny_caches_keep_results_exact(small_caches: None, fixtures_dir: Path) -> None:
    set_cache_limits(pairs_bytes=900, blocks_bytes=2000)  # a few entries
    for raw in _captures(fixtures_dir) * 2:
        assert canonical(p.decode(p.WriteRequest, raw)) == canonical(_upb(raw))


# ---------------------------------------------------------------- native histograms

_generic_histogram = _make_generic(p.Histogram)
_ONEOFS = {"count_int", "count_float", "zero_count_int", "zero_count_float"}


def _same_histogram(got: p.Histogram, raw: bytes) -> None:
    """``got`` is what upb and the generic decoder read from ``raw``."""
    assert canonical(got) == canonical(
        from_oracle(p.Histogram, ORACLE[p.Histogram].FromString(raw))
    )
    generic = _generic_histogram(raw, 0, len(raw))
    assert canonical(got) == canonical(generic)
    # canonical() equates enum members with their numbers (so does the oracle
    # copy): the generic decoder tells whether a member or an int is due
    assert type(got.reset_hint) is type(generic.reset_hint)


def _outcome(fn: Callable[[bytes, int, int], p.Histogram], buf: bytes, end: int) -> object:
    """What ``fn`` makes of ``buf[:end]``: the histogram (comparable form) or "error"."""
    try:
        h = fn(buf, 0, end)
    except (DecodeError, IndexError):  # IndexError: a read past the buffer (decode() maps it)
        return "error"
    return (canonical(h), type(h.reset_hint))


@settings(max_examples=80, deadline=None)
@given(st.lists(histograms(), min_size=1, max_size=3))
def test_histograms_decode_like_upb_cold_warm_and_uncached(hs: list[p.Histogram]) -> None:
    req = p.WriteRequest([p.TimeSeries([p.Label("__name__", "h")], [], [], hs)])
    raw = to_oracle(req).SerializeToString()  # bytes laid out by upb
    want = canonical(_upb(raw))
    clear_caches()
    assert canonical(p.decode(p.WriteRequest, raw)) == want  # cold
    assert canonical(p.decode(p.WriteRequest, raw)) == want  # warm
    set_cache_limits(pairs_bytes=0, blocks_bytes=0)
    try:
        assert canonical(p.decode(p.WriteRequest, raw)) == want  # no caches
    finally:
        set_cache_limits()
    for h in hs:
        one = to_oracle(h).SerializeToString()
        _same_histogram(p.decode(p.Histogram, one), one)


def _field_records(h: p.Histogram) -> list[bytes]:
    """One wire record per field of ``h`` that is written at all (upb's bytes)."""
    out = []
    for name in (spec.name for spec in SCHEMAS[p.Histogram]):
        value = getattr(h, name)
        if name in _ONEOFS and value is None:
            continue
        record = to_oracle(p.Histogram(**{name: value})).SerializeToString()
        if record:
            out.append(record)
    return out


@settings(max_examples=80, deadline=None)
@given(histograms(), st.data())
def test_histograms_in_any_field_order_or_repeated_decode_like_upb(
    h: p.Histogram, data: st.DataObject
) -> None:
    """Fields out of order, written twice (merge, oneof switching), unknown
    fields between them: the fast decoder must fall back and agree with upb."""
    records = _field_records(h)
    if records:
        records = data.draw(st.permutations(records))
        extra = data.draw(st.lists(st.sampled_from(records), max_size=2))
        for r in extra:
            records.insert(data.draw(st.integers(0, len(records))), r)
    if data.draw(st.booleans()):
        records.insert(data.draw(st.integers(0, len(records))), b"\xa8\x06\x01")  # field 101
    raw = b"".join(records)
    _same_histogram(p.decode(p.Histogram, raw), raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x08\x00\x11" + bytes(8),  # both count members: the double wins
        b"\x30\x05\x39" + bytes(8) + b"\x30\x06",  # and back to the int
        b"\x20\x83\x80\x80\x80\x10",  # schema beyond 32 bits: truncated to sint32
        b"\x20\xff\xff\xff\xff\x0f",  # sint32 minimum
        b"\x70\x81\x80\x80\x80\x10",  # reset_hint 2**32 + 1 -> int32 1 -> a member
        b"\x70\x09",  # reset_hint unknown to this version: stays an int
        b"\x70\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # negative enum number
        b"\x78\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # timestamp -1
        b"\x78\xb0\xcd\x84\xf8\xa0\x34",  # 6-byte timestamp
        b"\x78\x05",  # short timestamp at the very end of the buffer
        b"\x48\x03\x48\x04\x4a\x01\x05",  # unpacked deltas, then packed ones
        b"\x4a\x03\x80\x01\x03\x62\x00",  # a 2-byte delta; an empty packed record
        b"\x51" + bytes(8) + b"\x52\x08" + bytes(8),  # an unpacked count
        b"\x6a\x80\x01" + bytes(128),  # 16 counts: a 2-byte length
        b"\x82\x01\x08" + bytes(8) + b"\x82\x01\x00",  # custom_values written twice
        b"\x42\x04\x08\x01\x10\x02\x42\x00\x5a\x02\x10\x03",  # several spans
        b"\x19" + bytes(8) + b"\x19" + b"\xff" * 8,  # a field written twice: the last wins
        b"\x08\x01\x82\x02\x00",  # unknown field 32 (a two-byte tag that is not 16's)
    ],
)
def test_unusual_histogram_layouts_decode_like_upb(raw: bytes) -> None:
    _same_histogram(p.decode(p.Histogram, raw), raw)
    # the same bytes inside a series, followed by more data in the buffer
    series = p.encode(p.TimeSeries([p.Label("a", "b")], [p.Sample(1.0, NOW)]))
    body = series + b"\x22" + varint(len(raw)) + raw + b"\x12\x00"
    request = b"\x0a" + varint(len(body)) + body
    assert canonical(p.decode(p.WriteRequest, request * 2)) == canonical(_upb(request * 2))


@settings(max_examples=150, deadline=None)
@given(histograms().map(lambda h: to_oracle(h).SerializeToString()).flatmap(mutations))
def test_damaged_histograms_fail_or_decode_like_the_generic_decoder(raw: bytes) -> None:
    """Wherever the fast path gives up, the generic decoder has the last word."""
    fast = _DECODERS[p.Histogram]
    assert _outcome(fast, raw, len(raw)) == _outcome(_generic_histogram, raw, len(raw))
    # inside a longer buffer, where a read past the message's end still finds bytes
    padded = raw + b"\x08\x08\x08"
    assert _outcome(fast, padded, len(raw)) == _outcome(_generic_histogram, padded, len(raw))


# ------------------------------------------------------- the histogram encoder's path

_generic_histogram_encoder = _make_generic_encoder(p.Histogram)


def _encoded_or_error(fn: Callable[[p.Histogram], bytes], h: p.Histogram) -> object:
    try:
        return fn(h)
    except EncodeError as exc:
        return f"error: {exc}"


@settings(max_examples=100, deadline=None)
@given(histograms())
def test_histograms_encode_like_upb(h: p.Histogram) -> None:
    raw = p.encode(h)
    assert raw == to_oracle(h).SerializeToString()
    assert raw == _generic_histogram_encoder(h)
    series = p.TimeSeries([p.Label("a", "b")], [], [], [h, h])
    assert p.encode(series) == to_oracle(series).SerializeToString()


@pytest.mark.parametrize(
    "changes",
    [
        {"count_int": 1, "count_float": 1.0},  # both members of a oneof
        {"zero_count_int": 0, "zero_count_float": 0.0},
        {"count_int": -1},
        {"count_int": 1 << 64},
        {"count_int": True},
        {"count_float": 1},  # an int where a double goes: encoded, by the generic path
        {"sum": 2},
        {"sum": None},
        {"sum": "1"},
        {"schema": 1 << 31},
        {"schema": -(1 << 31)},
        {"schema": True},
        {"negative_deltas": [1, True]},
        {"negative_deltas": [1 << 63]},
        {"negative_deltas": [-(1 << 63), (1 << 63) - 1, 64, -65, 63, -64]},
        {"positive_counts": [1.0, 2]},
        {"positive_counts": [1.0, False]},
        {"custom_values": [1.0, "x"]},
        {"positive_spans": [p.BucketSpan(1, 2), p.Label("a", "b")]},
        {"positive_spans": [p.BucketSpan(1 << 31, 2)]},
        {"negative_spans": [p.BucketSpan(True, 2)]},
        {"reset_hint": -1},
        {"reset_hint": 7},
        {"reset_hint": 1 << 31},
        {"reset_hint": p.ResetHint.GAUGE},
        {"reset_hint": 1.0},
        {"timestamp": -1},
        {"timestamp": 1 << 63},
        {"sum": -0.0, "zero_threshold": float("nan")},
    ],
)
def test_unusual_histogram_values_encode_like_the_generic_encoder(
    changes: dict[str, object],
) -> None:
    h = p.Histogram(count_int=3, sum=1.5, schema=-2, negative_deltas=[1, -1])
    for name, value in changes.items():
        setattr(h, name, value)
    got = _encoded_or_error(p.encode, h)
    assert got == _encoded_or_error(_generic_histogram_encoder, h)
    if isinstance(got, bytes):
        assert got == to_oracle(h).SerializeToString()
