"""Wire primitives (promwire.codec.wire) and the encoder's refusals (EncodeError)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings

from promwire import EncodeError, PromwireError, encode
from promwire.codec import messages as m
from promwire.codec.fields import SCHEMAS, WIRE_TYPE, Kind
from promwire.codec.wire import (
    I32,
    I64,
    LEN,
    MASK64,
    VARINT,
    double_bits,
    pack_double,
    read_varint,
    skip_field,
    tag,
    to_int32,
    to_int64,
    unpack_double,
    varint,
    zigzag_decode,
    zigzag_encode,
)
from promwire.errors import DecodeError
from promwire.testing import doubles, int64s, sint32s, uint64s

# ------------------------------------------------------------------------ varints

VARINTS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (150, "9601"),  # the protobuf documentation's example
    (300, "ac02"),
    (16383, "ff7f"),
    (16384, "808001"),
    ((1 << 35) - 1, "ffffffff7f"),
    (1 << 35, "808080808001"),
    ((1 << 63) - 1, "ffffffffffffffff7f"),
    (1 << 63, "80808080808080808001"),
    (MASK64, "ffffffffffffffffff01"),
]


@pytest.mark.parametrize(("value", "hexdata"), VARINTS, ids=[str(v) for v, _ in VARINTS])
def test_varint_vectors(value: int, hexdata: str) -> None:
    raw = bytes.fromhex(hexdata)
    assert varint(value) == raw
    assert read_varint(raw, 0) == (value, len(raw))
    # reading at an offset, with bytes after it
    assert read_varint(b"\xaa" + raw + b"\x01", 1) == (value, len(raw) + 1)


@settings(max_examples=300, deadline=None)
@given(value=uint64s())
def test_varint_round_trip(value: int) -> None:
    raw = varint(value)
    assert read_varint(raw, 0) == (value, len(raw))
    assert len(raw) == max(1, math.ceil(value.bit_length() / 7))
    assert all(b & 0x80 for b in raw[:-1]) and raw[-1] < 0x80


def test_varint_refuses_out_of_range() -> None:
    for bad in (-1, 1 << 64, -(1 << 63)):
        with pytest.raises(EncodeError):
            varint(bad)


def test_read_varint_errors() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        read_varint(b"", 0)
    with pytest.raises(DecodeError, match="truncated"):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(DecodeError, match="10 bytes"):
        read_varint(b"\xff" * 10 + b"\x01", 0)
    with pytest.raises(DecodeError):
        read_varint(b"\x80" * 11, 0)


def test_read_varint_tenth_byte_keeps_64_bits() -> None:
    # Bits beyond 64 in the tenth byte are dropped (as protobuf does).
    assert read_varint(b"\xff" * 9 + b"\x7f", 0) == (MASK64, 10)
    assert read_varint(b"\x80" * 9 + b"\x02", 0) == (0, 10)


# -------------------------------------------------------------- signed conversions

ZIGZAG = [(0, 0), (-1, 1), (1, 2), (-2, 3), (2, 4), (2147483647, 4294967294)]
ZIGZAG += [(-2147483648, 4294967295), ((1 << 63) - 1, MASK64 - 1), (-(1 << 63), MASK64)]


@pytest.mark.parametrize(("n", "z"), ZIGZAG)
def test_zigzag_vectors(n: int, z: int) -> None:
    assert zigzag_encode(n) == z
    assert zigzag_decode(z) == n


@given(n=int64s())
def test_zigzag_round_trip(n: int) -> None:
    z = zigzag_encode(n)
    assert 0 <= z <= MASK64
    assert zigzag_decode(z) == n
    assert z == (2 * n if n >= 0 else -2 * n - 1)


@given(n=sint32s())
def test_zigzag_32_equals_64_in_range(n: int) -> None:
    assert zigzag_encode(n) <= 0xFFFFFFFF


@given(n=int64s())
def test_to_int64(n: int) -> None:
    assert to_int64(n & MASK64) == n


def test_to_int32_truncates() -> None:
    assert to_int32(MASK64) == -1
    assert to_int32(0xFFFFFFFF) == -1
    assert to_int32((1 << 32) + 5) == 5
    assert to_int32(0x80000000) == -(1 << 31)
    assert to_int32(0x7FFFFFFF) == (1 << 31) - 1


# ----------------------------------------------------------------------- doubles


@settings(max_examples=300, deadline=None)
@given(x=doubles())
def test_double_bits_survive_pack_unpack(x: float) -> None:
    raw = pack_double(x)
    assert raw == struct.pack("<Q", double_bits(x))
    y = unpack_double(raw, 0)[0]
    assert double_bits(y) == double_bits(x)


def test_stale_nan_bits() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", m.STALE_NAN_BITS))[0]
    assert double_bits(stale) == 0x7FF0000000000002
    assert pack_double(stale) == bytes.fromhex("020000000000f07f")
    assert double_bits(-0.0) == 1 << 63


# ---------------------------------------------------------------------- tags, skip


def test_tags() -> None:
    assert tag(1, LEN) == b"\x0a"
    assert tag(2, VARINT) == b"\x10"
    assert tag(1, I64) == b"\x09"
    assert tag(16, LEN) == b"\x82\x01"
    assert tag(17, VARINT) == b"\x88\x01"
    assert tag(1000, VARINT) == b"\xc0\x3e"
    assert tag((1 << 29) - 1, I32) == b"\xfd\xff\xff\xff\x0f"


def test_schema_wire_types() -> None:
    # Every field's wire type follows from its kind; field numbers are unique and sorted.
    for cls, specs in SCHEMAS.items():
        numbers = [s.number for s in specs]
        assert numbers == sorted(set(numbers)), cls
        for spec in specs:
            if spec.kind == Kind.DOUBLE:
                assert WIRE_TYPE[spec.kind] == I64
            elif spec.kind in (Kind.STRING, Kind.BYTES, Kind.MESSAGE):
                assert WIRE_TYPE[spec.kind] == LEN
            else:
                assert WIRE_TYPE[spec.kind] == VARINT
            assert spec.packed == (
                spec.repeated and spec.kind not in (Kind.STRING, Kind.BYTES, Kind.MESSAGE)
            )


def test_skip_field() -> None:
    buf = bytes.fromhex("9601 0000000000000000 03616263 01020304 ff")
    assert skip_field(buf, 0, len(buf), VARINT) == 2
    assert skip_field(buf, 2, len(buf), I64) == 10
    assert skip_field(buf, 10, len(buf), LEN) == 14
    assert skip_field(buf, 14, len(buf), I32) == 18
    for wt in (3, 4, 6, 7):
        with pytest.raises(DecodeError, match="wire type"):
            skip_field(buf, 0, len(buf), wt)
    # past the end of the enclosing message, even with bytes left in the buffer
    with pytest.raises(DecodeError):
        skip_field(buf, 2, 9, I64)
    with pytest.raises(DecodeError):
        skip_field(buf, 10, 13, LEN)
    with pytest.raises(DecodeError):
        skip_field(buf, 14, 17, I32)


# ------------------------------------------------------------------ encode errors

TOO_BIG_U64 = 1 << 64
BAD_VALUES: list[tuple[str, Any]] = [
    # out of range
    ("int64_too_big", m.Sample(timestamp=1 << 63)),
    ("int64_too_small", m.Sample(timestamp=-(1 << 63) - 1)),
    ("uint64_negative", m.Histogram(count_int=-1)),
    ("uint64_too_big", m.Histogram(zero_count_int=TOO_BIG_U64)),
    ("sint32_too_big", m.Histogram(schema=1 << 31)),
    ("sint32_too_small", m.BucketSpan(offset=-(1 << 31) - 1)),
    ("uint32_negative", m.BucketSpan(length=-1)),
    ("uint32_too_big", m.BucketSpan(length=1 << 32)),
    ("sint64_too_big_packed", m.Histogram(positive_deltas=[0, 1 << 63])),
    ("enum_too_big", m.MetricMetadata(type=1 << 31)),
    ("enum_too_small", m.LabelMatcher(type=-(1 << 31) - 1)),
    ("enum_repeated_too_big", m.ReadRequest(accepted_response_types=[1 << 40])),
    ("query_index_too_big", m.ChunkedReadResponse(query_index=1 << 63)),
    ("chunk_time_too_big", m.Chunk(min_time_ms=1 << 64)),
    ("hints_too_big", m.Query(hints=m.ReadHints(step_ms=1 << 70))),
    # wrong types
    ("timestamp_float", m.Sample(timestamp=1.5)),  # type: ignore[arg-type]
    ("timestamp_str", m.Sample(timestamp="1")),  # type: ignore[arg-type]
    ("timestamp_none", m.Sample(timestamp=None)),  # type: ignore[arg-type]
    ("value_str", m.Sample(value="1.0")),  # type: ignore[arg-type]
    ("value_none", m.Sample(value=None)),  # type: ignore[arg-type]
    ("value_bool", m.Exemplar(value=True)),
    ("count_float_str", m.Histogram(count_float="0")),  # type: ignore[arg-type]
    ("label_name_bytes", m.Label(name=b"a")),  # type: ignore[arg-type]
    ("label_value_int", m.Label(value=1)),  # type: ignore[arg-type]
    ("chunk_data_str", m.Chunk(data="abc")),  # type: ignore[arg-type]
    ("by_int", m.ReadHints(by=1)),  # type: ignore[arg-type]
    ("schema_bool", m.Histogram(schema=True)),
    ("grouping_int", m.ReadHints(grouping=[1])),  # type: ignore[list-item]
    ("counts_str", m.Histogram(positive_counts=["1"])),  # type: ignore[list-item]
    ("lone_surrogate", m.Label(name="\ud800")),
    ("series_label_tuple", m.TimeSeries(labels=[("a", "b")])),  # type: ignore[list-item]
    ("series_sample_wrong_class", m.TimeSeries(samples=[m.Label()])),  # type: ignore[list-item]
    ("request_series_none", m.WriteRequest(timeseries=[None])),  # type: ignore[list-item]
    ("hints_wrong_class", m.Query(hints=m.Label())),  # type: ignore[arg-type]
    (
        "deep_bad_sample",
        m.ReadResponse([m.QueryResult([m.TimeSeries(samples=[m.Sample(timestamp=1 << 64)])])]),
    ),
    ("deep_bad_histogram", m.WriteRequest([m.TimeSeries(histograms=[m.Histogram(count_int=-5)])])),
    # a sub-message of another class with look-alike fields
    ("matcher_as_exemplar_label", m.Exemplar(labels=[m.LabelMatcher(name="a")])),  # type: ignore[list-item]
    ("write_request_as_result", m.ReadResponse([m.WriteRequest()])),  # type: ignore[list-item]
    ("query_as_hints", m.Query(hints=m.Query())),  # type: ignore[arg-type]
    ("series_as_chunked_series", m.ChunkedReadResponse([m.TimeSeries()])),  # type: ignore[list-item]
    # the TimeSeries hot path checks classes too (an Exemplar has value and timestamp)
    (
        "exemplar_as_sample",
        m.TimeSeries(samples=[m.Exemplar([], 1.0, 1795582338992)]),  # type: ignore[list-item]
    ),
    ("sample_as_exemplar", m.TimeSeries(exemplars=[m.Sample(1.0, 2)])),  # type: ignore[list-item]
    ("sample_as_histogram", m.TimeSeries(histograms=[m.Sample()])),  # type: ignore[list-item]
    ("matcher_as_series_label", m.TimeSeries([m.LabelMatcher(name="a")])),  # type: ignore[list-item]
    ("huge_int_as_double", m.Sample(value=1 << 2000)),
    # both members of a oneof
    ("both_counts", m.Histogram(count_int=0, count_float=0.0)),
    ("both_zero_counts", m.Histogram(zero_count_int=1, zero_count_float=1.0)),
    ("both_counts_nested", m.TimeSeries(histograms=[m.Histogram(count_int=1, count_float=2.0)])),
]


@pytest.mark.parametrize("msg", [b[1] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_encode_error(msg: Any) -> None:
    with pytest.raises(EncodeError) as info:
        encode(msg)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PromwireError)
    assert info.value.status == 500


def test_encode_refuses_non_messages() -> None:
    for bad in (None, 1, "x", b"", {"timeseries": []}):
        with pytest.raises(EncodeError):
            encode(bad)


def test_encode_accepts_ints_for_doubles_and_edges_of_every_range() -> None:
    # An int is a valid double value (written as its float); range ends are accepted.
    assert encode(m.Sample(value=1)) == encode(m.Sample(value=1.0))
    encode(m.Sample(timestamp=(1 << 63) - 1))
    encode(m.Sample(timestamp=-(1 << 63)))
    encode(m.Histogram(count_int=(1 << 64) - 1, schema=-(1 << 31), positive_deltas=[-(1 << 63)]))
    encode(m.BucketSpan(offset=(1 << 31) - 1, length=(1 << 32) - 1))
    encode(m.MetricMetadata(type=-(1 << 31)))
    encode(m.Chunk(data=bytearray(b"x")))
    assert encode(m.Chunk(data=memoryview(b"xy"))) == encode(m.Chunk(data=b"xy"))
