"""The fast decode path of integer histogram chunks (``chunks/histogram_fast.py``)
against the generic one, the decoded-chunk cache, the encoders' size cut, and
the compaction's exact comparison.

Every case runs both decoders on the same bytes: the fast path must take the
chunks it is meant for (``decode_fast`` not None) and give exactly what the
generic decoder gives (and what was encoded); on anything else it must step
aside, so that ``decode_histogram_chunk`` raises or returns what the generic
decoder does.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwire import BucketSpan, Histogram, ResetHint
from promwire.chunks import histogram_fast
from promwire.chunks.float_histogram import (
    decode_float_histogram_chunk,
    encode_float_histogram_chunk,
)
from promwire.chunks.histogram import (
    _decode_generic,
    decode_histogram_chunk,
    encode_histogram_chunk,
)
from promwire.chunks.histogram_fast import MAX_FAST_BUCKETS, decode_columns, decode_fast
from promwire.chunks.histogram_layout import STALE_NAN_BITS, CounterResetHeader
from promwire.errors import DecodeError
from promwire.stores.sqlite_histograms import DecodedHistogramChunks, _exact

from .test_histogram_chunks import _expected, _wire, int_chunks

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
HYP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _generic(data: bytes) -> list[Histogram]:
    return _decode_generic(data, (data[0] << 8) | data[1], CounterResetHeader(data[2] >> 6))


def _series(
    deltas: list[list[int]],
    *,
    sums: list[float] | None = None,
    times: list[int] | None = None,
    counts: list[int] | None = None,
    neg: int = 0,
) -> list[Histogram]:
    """Histograms with one positive span over the first buckets and ``neg``
    negative buckets (the last ``neg`` of each delta list)."""
    n = len(deltas)
    width = len(deltas[0])
    pos = width - neg
    return [
        Histogram(
            count_int=(counts or list(range(n)))[i],
            zero_count_int=i * 3,
            sum=(sums or [float(i) * 1.5 for i in range(n)])[i],
            schema=3,
            zero_threshold=2.0**-128,
            positive_spans=[BucketSpan(-2, pos)] if pos else [],
            positive_deltas=deltas[i][:pos],
            negative_spans=[BucketSpan(1, neg)] if neg else [],
            negative_deltas=deltas[i][pos:],
            timestamp=(times or [1_700_000_000_000 + 15_000 * i for i in range(n)])[i],
        )
        for i in range(n)
    ]


def _ramp(n: int, width: int, step: int) -> list[list[int]]:
    """Bucket deltas whose delta-of-deltas over time are ``step``-sized."""
    return [[(k + 1) * step * i * i - k for k in range(width)] for i in range(n)]


# Each varbit width of a bucket's delta-of-delta, both ends of it.
_WIDTH_EDGES = [
    0,
    1,
    -1,
    4,
    5,
    -3,
    -4,
    32,
    33,
    -31,
    -32,
    256,
    257,
    -255,
    -256,
    2048,
    2049,
    -2047,
    -2048,
    131072,
    131073,
    -131071,
    -131072,
    1 << 24,
    (1 << 24) + 1,
    -(1 << 24) + 1,
    -(1 << 24),
    1 << 55,
    (1 << 55) + 1,
    -(1 << 55) + 1,
    -(1 << 55),
    I64_MAX,
    I64_MIN,
]


def _dod_series(dods: list[int]) -> list[list[int]]:
    """One bucket whose delta-of-deltas are ``dods`` (int64-wrapped deltas)."""
    out = [[7]]
    d = 0
    for dod in dods:
        d = ((d + dod - I64_MIN) % (1 << 64)) + I64_MIN
        v = ((out[-1][0] + d - I64_MIN) % (1 << 64)) + I64_MIN
        out.append([v])
    return out


CASES: dict[str, list[Histogram]] = {
    "one histogram": _series([[1, 2, 3]]),
    "no buckets": _series([[] for _ in range(5)]),
    "small dods": _series(_ramp(30, 12, 1)),
    "larger dods": _series(_ramp(30, 12, 700)),
    "negative buckets too": _series(_ramp(20, 8, 3), neg=3),
    "negative buckets only": _series(_ramp(20, 4, 3), neg=4),
    "every varbit width": _series(_dod_series(_WIDTH_EDGES)),
    "the same histogram again": _series([[5, -1, 2]] * 40, sums=[3.25] * 40),
    "sum windows: repeat, reuse, new, all 64 bits": _series(
        [[1]] * 6, sums=[1.0, 1.0, 1.5, 1.75, -1.75, float.fromhex("0x1.0000000000001p+0")]
    ),
    "NaN sums with payloads (not stale)": _series(
        [[1]] * 3,
        sums=[
            struct.unpack("<d", struct.pack("<Q", b))[0]
            for b in (0x7FF8000000000001, 0x7FF0000000000003, 0xFFF8000000000000)
        ],
    ),
    "infinite and zero sums": _series([[1]] * 4, sums=[0.0, -0.0, math.inf, -math.inf]),
    "timestamps wrapping int64": _series([[1]] * 4, times=[I64_MAX - 5, I64_MIN + 3, 0, I64_MAX]),
    "counts wrapping uint64": _series([[1]] * 4, counts=[(1 << 64) - 1, 0, (1 << 64) - 2, 5]),
    "120 histograms, 20 buckets": _series(_ramp(120, 20, 9)),
}


@pytest.mark.parametrize("header", list(CounterResetHeader))
@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_takes_the_common_case_and_matches_the_generic_one(
    name: str, header: CounterResetHeader
) -> None:
    hs = CASES[name]
    data = encode_histogram_chunk(hs, header=header)
    fast = decode_fast(data)
    assert fast is not None, "the fast path left a common-case chunk to the generic one"
    want = [_wire(h) for h in _expected(hs, int(header))]
    assert [_wire(h) for h in fast] == want
    assert [_wire(h) for h in _generic(data)] == want
    back = _generic(data)  # the objects too (types, hints, spans; floats bit for bit):
    assert len(fast) == len(back) and all(map(_exact, fast, back))
    assert [type(h.count_int) for h in fast] == [int] * len(hs)
    assert encode_histogram_chunk(fast, header=header) == data


def test_fast_path_steps_aside_for_stale_markers_and_huge_layouts() -> None:
    stale = Histogram(count_int=0, zero_count_int=0, sum=STALE)
    with_stale = _series(_ramp(5, 3, 1))
    with_stale.append(Histogram(count_int=0, zero_count_int=0, sum=STALE, timestamp=1 << 42))
    wide = _series([[1] * (MAX_FAST_BUCKETS + 1)] * 3)
    for empty in (b"", b"\x00\x00", encode_histogram_chunk([]), bytes([0, 0, 0x40])):
        assert decode_fast(empty) is None and decode_columns(empty) is None
    for hs in (with_stale, [stale], [stale, stale], wide):
        data = encode_histogram_chunk(hs)
        assert decode_fast(data) is None
        assert [_wire(h) for h in decode_histogram_chunk(data)] == [
            _wire(h) for h in _generic(data)
        ]


def test_cut_chunks_raise_as_the_generic_decoder_does() -> None:
    data = encode_histogram_chunk(CASES["every varbit width"])
    for end in range(3, len(data)):
        cut = data[:end]
        try:
            want: object = [_wire(h) for h in _generic(cut)]
        except DecodeError:
            want = DecodeError
        fast = decode_fast(cut)
        assert fast is None or [_wire(h) for h in fast] == want
        try:
            got: object = [_wire(h) for h in decode_histogram_chunk(cut)]
        except DecodeError:
            got = DecodeError
        assert got == want


def test_corrupt_sum_windows_raise_as_the_generic_decoder_does() -> None:
    data = encode_histogram_chunk(_series([[1, 2]] * 4, sums=[1.0, 3.0, -7.25, 1e300]))
    bits = bin(int.from_bytes(data, "big") | (1 << (len(data) * 8)))[3:]
    window = "11" + "11111" + "101000"  # a new window: 31 leading + 40 significant bits
    raised = 0
    for at in range(24, len(bits) - len(window)):
        bad = int(bits[:at] + window + bits[at + len(window) :], 2).to_bytes(len(data), "big")
        try:
            want: object = [_wire(h) for h in _generic(bad)]
        except DecodeError:
            want = DecodeError
            raised += 1
        try:
            got: object = [_wire(h) for h in decode_histogram_chunk(bad)]
        except DecodeError:
            got = DecodeError
        assert got == want, at
    assert raised > 0


@HYP
@given(int_chunks(), st.integers(0, 3))
def test_any_chunk_decodes_the_same_both_ways(hs: list[Histogram], header: int) -> None:
    data = encode_histogram_chunk(hs, header=header)
    fast = decode_fast(data)
    stale = any(struct.pack("<d", h.sum) == struct.pack("<Q", STALE_NAN_BITS) for h in hs)
    assert (fast is None) == stale  # the strategy's layouts are small
    if fast is not None:
        assert [_wire(h) for h in fast] == [_wire(h) for h in _generic(data)]
        assert [_wire(h) for h in fast] == [_wire(h) for h in _expected(hs, header)]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=3, max_size=120))
def test_any_bytes_decode_or_raise_as_the_generic_decoder_does(data: bytes) -> None:
    data = bytes([0, data[0] % 8 + 1]) + data[2:]
    try:
        want: object = [_wire(h) for h in _generic(data)]
    except DecodeError:
        want = DecodeError
    fast = decode_fast(data)
    assert fast is None or [_wire(h) for h in fast] == want


def test_token_values_follow_the_varbit_table() -> None:
    values = histogram_fast._Values()
    assert values["0"] == 0
    assert values["10100"] == 4 and values["10101"] == -3 and values["10111"] == -1
    assert values["110" + "100000"] == 32 and values["110" + "100001"] == -31
    assert values["11111111" + "1" * 64] == -1
    assert values["11111111" + "0" + "1" * 63] == I64_MAX
    assert values["11111111" + "1" + "0" * 63] == I64_MIN
    assert values["11111110" + "1" + "0" * 55] == 1 << 55
    assert values["11111110" + "1" + "0" * 54 + "1"] == -(1 << 55) + 1


def test_token_dict_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(histogram_fast, "MAX_TOKENS", 4)
    values = histogram_fast._Values()
    for v in range(8):
        assert values["11110" + format(v, "012b")] == v
        assert len(values) <= 4


# ----------------------------------------------------------------------------- the cache


def test_cache_gives_new_equal_histograms_and_stays_bounded() -> None:
    cache = DecodedHistogramChunks(max_histograms=50)
    a = encode_histogram_chunk(CASES["small dods"])  # 30 histograms
    b = encode_histogram_chunk(CASES["negative buckets too"])  # 20
    c = encode_histogram_chunk(CASES["larger dods"])  # 30
    first = cache.decode(a)
    again = cache.decode(a)
    assert again == first == _generic(a)
    assert all(x is not y for x, y in zip(first, again, strict=True))
    again[0].positive_deltas.append(99)  # a caller's change stays its own
    again[1].reset_hint = ResetHint.YES
    assert cache.decode(a) == first
    cache.decode(b)
    assert cache.cache.weight == 50
    cache.decode(c)  # a (the oldest) goes
    assert cache.cache.weight == 50 and a not in cache.cache and c in cache.cache
    assert cache.decode(c) == _generic(c)
    stale = encode_histogram_chunk([Histogram(count_int=0, zero_count_int=0, sum=STALE)])
    assert [_wire(h) for h in cache.decode(stale)] == [_wire(h) for h in _generic(stale)]
    assert stale not in cache.cache
    assert cache.decode(encode_histogram_chunk([])) == []
    cache.clear()
    assert cache.cache.weight == 0 and not len(cache.cache)


def test_columns_hold_what_the_histograms_are_built_from() -> None:
    data = encode_histogram_chunk(CASES["negative buckets too"])
    cols = decode_columns(data)
    assert cols is not None and len(cols) == 20
    hs = _generic(data)
    assert list(cols.timestamps) == [h.timestamp for h in hs]
    assert [list(p) for p in cols.positive] == [h.positive_deltas for h in hs]
    assert [list(n) for n in cols.negative] == [h.negative_deltas for h in hs]


# ----------------------------------------------------------------------------- the size cut


@pytest.mark.parametrize("cut_min", [1, 10, 50])
def test_encoders_stop_at_the_size_cut_like_a_prefix(cut_min: int) -> None:
    hs = CASES["120 histograms, 20 buckets"]
    sizes: list[int] = []
    whole = encode_histogram_chunk(hs, byte_sizes=sizes)
    k = next(i + 1 for i, n in enumerate(sizes) if i + 1 >= cut_min and n >= 600)
    got = encode_histogram_chunk(hs, cut_bytes=600, cut_min=cut_min)
    assert got == encode_histogram_chunk(hs[:k]) and got != whole
    assert (got[0] << 8) | got[1] == k
    assert encode_histogram_chunk(hs, cut_bytes=1 << 20) == whole
    floats = [
        Histogram(
            count_float=float(h.count_int or 0),
            zero_count_float=1.0,
            sum=h.sum,
            schema=h.schema,
            positive_spans=h.positive_spans,
            positive_counts=[float(v) * 0.5 for v in h.positive_deltas],
            timestamp=h.timestamp,
        )
        for h in hs
    ]
    fsizes: list[int] = []
    fwhole = encode_float_histogram_chunk(floats, byte_sizes=fsizes)
    fk = next(i + 1 for i, n in enumerate(fsizes) if i + 1 >= cut_min and n >= 900)
    fgot = encode_float_histogram_chunk(floats, cut_bytes=900, cut_min=cut_min)
    assert fgot == encode_float_histogram_chunk(floats[:fk]) and fgot != fwhole
    assert len(decode_float_histogram_chunk(fgot)) == fk


# ----------------------------------------------------------------------------- verification


def _base() -> Histogram:
    return Histogram(
        count_int=10,
        sum=2.5,
        schema=1,
        zero_threshold=0.001,
        zero_count_int=1,
        positive_spans=[BucketSpan(0, 2)],
        positive_deltas=[4, 1],
        negative_spans=[BucketSpan(1, 1)],
        negative_deltas=[4],
        timestamp=5,
    )


def _changed(field: str, value: object) -> Histogram:
    h = _base()
    setattr(h, field, value)
    return h


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("count_int", 11),
        ("count_int", None),
        ("count_int", 10.0),
        ("count_float", 10.0),
        ("sum", 2.5000000000000004),
        ("schema", 2),
        ("zero_threshold", 0.0),
        ("zero_count_int", None),
        ("zero_count_float", 1.0),
        ("positive_spans", [BucketSpan(1, 2)]),
        ("positive_deltas", [4, 2]),
        ("negative_spans", [BucketSpan(0, 1)]),
        ("negative_deltas", [3]),
        ("positive_counts", [1.0]),
        ("negative_counts", [1.0]),
        ("reset_hint", ResetHint.NO),
        ("timestamp", 6),
        ("custom_values", [1.0]),
    ],
)
def test_exact_tells_every_field_apart(field: str, value: object) -> None:
    assert _exact(_base(), _base())
    assert not _exact(_changed(field, value), _base())
    assert not _exact(_base(), _changed(field, value))


def test_exact_compares_floats_bit_for_bit() -> None:
    nan1 = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    nan2 = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000002))[0]
    assert not _exact(_changed("zero_threshold", -0.0), _changed("zero_threshold", 0.0))
    assert _exact(_changed("sum", nan1), _changed("sum", nan1))
    assert not _exact(_changed("sum", nan1), _changed("sum", nan2))
    assert not _exact(_changed("custom_values", [-0.0]), _changed("custom_values", [0.0]))
    assert _exact(_changed("custom_values", [nan1]), _changed("custom_values", [nan1]))
