"""Remote write 2.0 wire codec against protobuf's own (upb) implementation, both ways.

Plus golden byte strings from PROTOCOL.md §2, rc.3's ``created_timestamp``
field, round trips and damaged input.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire
from promwire import DecodeError, WriteRequest, decode, encode, from_dict, to_dict, v2
from promwire.codec.fields import SCHEMAS
from promwire.testing import canonical
from promwire.testing.v2 import MESSAGE_CLASSES, messages, requests, timeseries
from tests.oracle import IMPLEMENTATION, has_group
from tests.oracle_v2 import CLASSES, LEGACY, ORACLE, from_oracle, to_oracle

CLASS_IDS = [c.__name__ for c in MESSAGE_CLASSES]

# PROTOCOL.md §2.2: {__name__="up", job="x"} 1.0 @1000, metadata type GAUGE.
EXAMPLE_50 = bytes.fromhex(
    "2200 2208 5f5f6e616d655f5f 2202 7570 2203 6a6f62 2201 78"
    " 2a18 0a04 01020304 120c 09 000000000000f03f 10e807 2a02 0802"
)


def test_oracle_is_upb_and_matches_the_field_tables() -> None:
    assert IMPLEMENTATION == "upb"
    assert set(ORACLE) == {*MESSAGE_CLASSES, v2.BucketSpan}
    for cls, pb_cls in ORACLE.items():
        fields = [(f.name, f.number) for f in pb_cls.DESCRIPTOR.fields]
        assert fields == [(spec.name, spec.number) for spec in SCHEMAS[cls]]


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_equals_upb(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    assert encode(msg) == to_oracle(msg).SerializeToString()


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_decode_of_upb_bytes(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    raw = to_oracle(msg).SerializeToString()
    ours = decode(cls, raw)
    assert canonical(ours) == canonical(from_oracle(cls, ORACLE[cls].FromString(raw)))
    assert canonical(ours) == canonical(msg)
    assert encode(ours) == raw


@settings(max_examples=60, deadline=None)
@given(req=requests())
def test_json_mapping_equals_upb(req: v2.Request) -> None:
    from google.protobuf.json_format import MessageToDict, ParseDict

    # keep_nan_bits=False: protobuf's own JSON (every NaN "NaN").
    as_dict = to_dict(req, keep_nan_bits=False)
    assert as_dict == MessageToDict(to_oracle(req), preserving_proto_field_name=True)
    theirs = ParseDict(as_dict, CLASSES["Request"]())
    assert encode(from_dict(v2.Request, as_dict)) == theirs.SerializeToString()
    # The default form keeps NaN bits ("NaN:0x..."): back to the very same bytes.
    assert encode(from_dict(v2.Request, to_dict(req))) == encode(req)


# ------------------------------------------------------------------------------ golden


def test_protocol_example_50_bytes() -> None:
    assert len(EXAMPLE_50) == 50
    req = decode(v2.Request, EXAMPLE_50)
    assert req == v2.Request(
        symbols=["", "__name__", "up", "job", "x"],
        timeseries=[
            v2.TimeSeries(
                labels_refs=[1, 2, 3, 4],
                samples=[v2.Sample(1.0, 1000)],
                metadata=v2.Metadata(type=v2.MetricType.METRIC_TYPE_GAUGE),
            )
        ],
    )
    assert encode(req) == EXAMPLE_50
    assert CLASSES["Request"].FromString(EXAMPLE_50).SerializeToString() == EXAMPLE_50


def test_protocol_example_built_with_symbol_table() -> None:
    table = v2.SymbolTable()
    series = v2.TimeSeries(
        labels_refs=table.refs([promwire.Label("__name__", "up"), promwire.Label("job", "x")]),
        samples=[v2.Sample(1.0, 1000)],
        metadata=v2.Metadata(type=v2.MetricType.METRIC_TYPE_GAUGE),
    )
    assert encode(v2.Request(symbols=table.symbols, timeseries=[series])) == EXAMPLE_50


def test_v1_and_v2_bodies_decode_as_empty_messages_of_the_other_kind() -> None:
    # Request fields 1-3 are reserved: only Content-Type tells the two apart.
    assert decode(WriteRequest, EXAMPLE_50) == WriteRequest()
    v1_body = encode(v2.to_v1(decode(v2.Request, EXAMPLE_50)))
    assert decode(v2.Request, v1_body) == v2.Request()


def test_histogram_start_timestamp_uses_two_byte_tag() -> None:
    h = v2.Histogram(count_int=0, start_timestamp=5)
    raw = encode(h)
    assert raw == bytes.fromhex("0800 880105")
    assert raw == to_oracle(h).SerializeToString()
    assert decode(v2.Histogram, raw) == h
    neg = encode(v2.Histogram(start_timestamp=-1))
    assert neg == bytes.fromhex("8801 ffffffffffffffffff01")


def test_sample_start_timestamp() -> None:
    raw = encode(v2.Sample(1.0, 1000, 999))
    assert raw == bytes.fromhex("09000000000000f03f 10e807 18e707")
    assert decode(v2.Sample, raw).start_timestamp == 999


def test_metadata_presence() -> None:
    # Present but empty metadata is `2a 00` (what Prometheus sends); absent is nothing.
    present = v2.TimeSeries(metadata=v2.Metadata())
    assert encode(present) == b"\x2a\x00"
    assert encode(present) == to_oracle(present).SerializeToString()
    assert decode(v2.TimeSeries, b"\x2a\x00").metadata == v2.Metadata()
    assert decode(v2.TimeSeries, b"").metadata is None
    assert encode(v2.TimeSeries()) == b""
    # Two metadata records merge, as protobuf does.
    merged = decode(v2.TimeSeries, bytes.fromhex("2a02 0801 2a02 1803"))
    assert merged.metadata == v2.Metadata(type=1, help_ref=3)


def test_rc3_created_timestamp_is_read_and_written_back() -> None:
    # rc.3 (Prometheus v2.54-v3.8) sent TimeSeries.created_timestamp as field 6.
    pb = LEGACY["TimeSeries"](labels_refs=[1, 2], created_timestamp=1_700_000_000_000)
    pb.samples.add(value=2.0, timestamp=5)
    pb.metadata.SetInParent()
    raw = pb.SerializeToString()
    assert b"\x30" in raw
    ts = decode(v2.TimeSeries, raw)
    assert ts == v2.TimeSeries(
        labels_refs=[1, 2],
        samples=[v2.Sample(2.0, 5)],
        metadata=v2.Metadata(),
        created_timestamp=1_700_000_000_000,
    )
    assert encode(ts) == raw
    # Unset (0) is not written: what promwire builds itself is rc.4.
    assert b"\x30" not in encode(v2.TimeSeries(labels_refs=[1, 2], samples=[v2.Sample(2.0, 5)]))
    negative = decode(v2.TimeSeries, encode(v2.TimeSeries(created_timestamp=-5)))
    assert negative.created_timestamp == -5


def test_enum_names_are_v2_names() -> None:
    h = v2.Histogram(count_float=0.0, reset_hint=v2.ResetHint.RESET_HINT_GAUGE)
    assert to_dict(h) == {"count_float": 0.0, "reset_hint": "RESET_HINT_GAUGE"}
    assert v2.Histogram.ResetHint is v2.ResetHint
    assert v2.Metadata.MetricType.METRIC_TYPE_STATESET == 7
    assert decode(v2.Metadata, b"\x08\x63").type == 99  # unknown number kept


def test_unpacked_labels_refs_are_accepted() -> None:
    # Unpacked encoding of a packed field (protobuf parsers must accept both).
    raw = bytes.fromhex("0801 0802 0a02 0304")
    assert decode(v2.TimeSeries, raw).labels_refs == [1, 2, 3, 4]
    assert CLASSES["TimeSeries"].FromString(raw).labels_refs == [1, 2, 3, 4]


def test_uint32_refs_truncate_like_upb() -> None:
    raw = bytes.fromhex("0a05 ffffffff1f")  # 2**36 - 1 in a uint32 field
    assert decode(v2.TimeSeries, raw).labels_refs == list(
        CLASSES["TimeSeries"].FromString(raw).labels_refs
    )


# -------------------------------------------------------------------------- round trips


@settings(max_examples=60, deadline=None)
@given(req=requests())
def test_request_round_trip(req: v2.Request) -> None:
    raw = encode(req)
    back = decode(v2.Request, raw)
    assert canonical(back) == canonical(req)
    assert encode(back) == raw


@settings(max_examples=60, deadline=None)
@given(
    ts=timeseries(),
    unknown=st.sampled_from([b"\x38\x05", b"\x3a\x01x", b"\x45abcd", b"\xf8\x7f\x01"]),
)
def test_unknown_fields_skipped_anywhere(ts: v2.TimeSeries, unknown: bytes) -> None:
    raw = encode(ts)
    # Unknown fields before, and after, the known ones.
    assert canonical(decode(v2.TimeSeries, unknown + raw)) == canonical(ts)
    assert canonical(decode(v2.TimeSeries, raw + unknown)) == canonical(ts)


# --------------------------------------------------------------------------- bad input


@st.composite
def _damaged(draw: st.DrawFn) -> bytes:
    buf = bytearray(encode(draw(requests())))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("flip", "truncate", "insert", "set")))
        if op == "insert" or not buf:
            at = draw(st.integers(0, len(buf)))
            buf[at:at] = draw(st.binary(min_size=1, max_size=4))
            continue
        at = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del buf[at:]
        else:
            buf[at] = draw(st.sampled_from((0x00, 0x7F, 0x80, 0xFF, 0x03, 0x04, 0x06, 0x07)))
    return bytes(buf)


@settings(max_examples=150, deadline=None)
@given(raw=st.one_of(_damaged(), st.binary(max_size=64)))
def test_damaged_input_raises_only_decode_error(raw: bytes) -> None:
    try:
        theirs = from_oracle(v2.Request, CLASSES["Request"].FromString(raw))
    except Exception:
        theirs = None
    try:
        ours = decode(v2.Request, raw)  # any exception but DecodeError fails the test
    except DecodeError:
        ours = None
    # Whatever upb accepts, promwire accepts and reads the same way, but for
    # groups (wire types 3/4), which promwire refuses anywhere (PROTOCOL.md §0)
    # and upb skips in unknown fields.
    if theirs is not None:
        if ours is None and has_group(v2.Request, raw, 0, len(raw)):
            return
        assert ours is not None
        assert canonical(ours) == canonical(theirs)
    # (The converse does not hold yet: promwire.decode skips a field whose number
    # is above 2**29 - 1, e.g. tag `80 80 80 80 10`, where upb rejects it.)
    if ours is not None:
        try:
            v2.validate(ours)
            v2.to_v1(ours)
        except DecodeError:
            pass


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("2a05 0a03 0102"),  # packed refs run past their record
        bytes.fromhex("2a02 0a05"),  # packed record longer than the series
        bytes.fromhex("22 02 ff fe"),  # symbol not UTF-8
        bytes.fromhex("2a 0b 0a 0a ffffffffffffffffffff"),  # 11-byte varint
        bytes.fromhex("2a 03 1a 01 88"),  # truncated tag inside a histogram
        bytes.fromhex("2b"),  # group start
        bytes.fromhex("00 00"),  # field number 0
    ],
)
def test_malformed_examples(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(v2.Request, raw)
    with pytest.raises(Exception):  # noqa: B017 - upb agrees it is invalid
        CLASSES["Request"].FromString(raw)


@pytest.mark.parametrize(
    ("msg", "needle"),
    [
        (v2.TimeSeries(labels_refs=[-1]), "out of range for uint32"),
        (v2.TimeSeries(labels_refs=[1 << 32]), "out of range for uint32"),
        (v2.Exemplar(labels_refs=[1 << 32]), "out of range for uint32"),
        (v2.Metadata(help_ref=-1), "out of range for uint32"),
        (v2.Histogram(count_int=1, count_float=1.0), "more than one member of oneof 'count'"),
        (v2.Histogram(start_timestamp=1 << 63), "out of range for int64"),
        (v2.Sample(start_timestamp=-(1 << 63) - 1), "out of range for int64"),
        (v2.Sample(value="1"), "expected float"),  # type: ignore[arg-type]
        (v2.Request(symbols=[b"x"]), "expected str"),  # type: ignore[list-item]
        (v2.Request(symbols=["\ud800"]), "not encodable as UTF-8"),
        (v2.TimeSeries(metadata=5), "cannot encode"),  # type: ignore[arg-type]
    ],
)
def test_encode_errors_are_promwire_errors(msg: Any, needle: str) -> None:
    with pytest.raises(promwire.EncodeError, match=needle):
        encode(msg)
