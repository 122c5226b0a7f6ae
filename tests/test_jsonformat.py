"""to_dict / from_dict: proto3 JSON, checked against protobuf's own json_format."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import DecodeError, encode, from_dict, to_dict
from promwire.codec import messages as m
from promwire.codec.messages import STALE_NAN_BITS
from promwire.codec.wire import double_bits
from promwire.testing import MESSAGE_CLASSES, canonical, messages
from tests.cases import CASES, Case
from tests.oracle import ORACLE, from_oracle, to_oracle

CLASS_IDS = [c.__name__ for c in MESSAGE_CLASSES]


def _nan_blind(value: Any) -> Any:
    """canonical() with every NaN the same: JSON has a single NaN."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "double":
        bits = value[1]
        is_nan = (bits >> 52) & 0x7FF == 0x7FF and bits & ((1 << 52) - 1)
        return ("double", "NaN") if is_nan else value
    if isinstance(value, (list, tuple)):
        return type(value)(_nan_blind(v) for v in value)
    return value


def _nan_text_blind(value: Any, oracle: Any) -> Any:
    """A to_dict() result with each "NaN:0x..." written "NaN" where protobuf's
    dict ``oracle`` has "NaN" (a double with its bits); a label value that
    merely looks like one (hypothesis finds "NaN:0x") is left as it is."""
    if isinstance(value, str) and value.startswith("NaN:0x") and oracle == "NaN":
        return "NaN"
    if isinstance(value, list) and isinstance(oracle, list) and len(value) == len(oracle):
        return [_nan_text_blind(v, o) for v, o in zip(value, oracle, strict=True)]
    if isinstance(value, dict) and isinstance(oracle, dict):
        return {k: _nan_text_blind(v, oracle.get(k)) for k, v in value.items()}
    return value


def _protobuf_dict(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(
        to_oracle(msg), preserving_proto_field_name=True
    )
    return out


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_round_trip(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    d = to_dict(msg)
    back = from_dict(cls, d)
    assert type(back) is cls
    # Bit-exact: NaN payloads and the stale marker survive ("NaN:0x...").
    assert canonical(back) == canonical(msg)
    assert encode(back) == encode(msg)
    # Plain JSON: no NaN/Infinity literals, survives a text round trip.
    text = json.dumps(d, allow_nan=False)
    assert canonical(from_dict(cls, json.loads(text))) == canonical(msg)
    # Without the NaN bits, only NaN payloads may differ.
    blind = from_dict(cls, to_dict(msg, keep_nan_bits=False))
    assert _nan_blind(canonical(blind)) == _nan_blind(canonical(msg))


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_to_dict_equals_protobuf_message_to_dict(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    _same_as_protobuf(msg)


def test_a_label_value_that_looks_like_a_nan_is_text() -> None:
    # hypothesis found it in CI: "NaN:0x" as a label value is a string, not a double
    _same_as_protobuf(m.WriteRequest([m.TimeSeries([m.Label("a", "NaN:0x")], [])]))


def _same_as_protobuf(msg: Any) -> None:
    assert to_dict(msg, keep_nan_bits=False) == _protobuf_dict(msg)
    oracle = _protobuf_dict(msg)
    assert _nan_text_blind(to_dict(msg), oracle) == oracle


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_from_dict_reads_protobuf_json(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    pb = to_oracle(msg)
    d = json_format.MessageToDict(pb, preserving_proto_field_name=True)
    expected = from_oracle(cls, pb)
    assert _nan_blind(canonical(from_dict(cls, d))) == _nan_blind(canonical(expected))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_cases(case: Case) -> None:
    d = to_dict(case.message)
    oracle = _protobuf_dict(case.message)
    assert _nan_text_blind(d, oracle) == oracle
    assert canonical(from_dict(type(case.message), d)) == canonical(case.message)


def test_shapes() -> None:
    h = m.Histogram(count_float=0.0, zero_count_int=0, schema=-53, reset_hint=m.ResetHint.GAUGE)
    assert to_dict(h) == {
        "count_float": 0.0,
        "schema": -53,
        "zero_count_int": "0",
        "reset_hint": "GAUGE",
    }
    stale = m.Sample(float("nan"), -1)
    assert to_dict(stale) == {"value": "NaN", "timestamp": "-1"}
    assert to_dict(m.Sample(float("-inf"))) == {"value": "-Infinity"}
    assert math.copysign(1.0, to_dict(m.Sample(-0.0))["value"]) == -1.0
    assert to_dict(m.Query(hints=m.ReadHints())) == {"hints": {}}
    assert to_dict(m.Query()) == {}
    assert to_dict(m.MetricMetadata(type=99)) == {"type": 99}
    assert to_dict(m.Chunk(type=m.ChunkEncoding.XOR2, data=b"\xff\x00")) == {
        "type": "XOR2",
        "data": "/wA=",
    }
    assert to_dict(m.ReadRequest(accepted_response_types=[1, 0, 7])) == {
        "accepted_response_types": ["STREAMED_XOR_CHUNKS", "SAMPLES", 7]
    }
    assert to_dict(m.BucketSpan(-1, 4)) == {"offset": -1, "length": 4}


def test_from_dict_accepts_json_spellings() -> None:
    assert from_dict(m.Sample, {"value": "Infinity", "timestamp": "-5"}) == m.Sample(
        float("inf"), -5
    )
    assert from_dict(m.Sample, {"value": 1, "timestamp": 7}) == m.Sample(1.0, 7)
    assert from_dict(m.Sample, {"value": "2.5"}) == m.Sample(2.5, 0)
    assert math.isnan(from_dict(m.Sample, {"value": "NaN"}).value)
    assert from_dict(m.LabelMatcher, {"type": 2}).type == m.MatchType.RE
    assert from_dict(m.LabelMatcher, {"type": "NRE"}).type == m.MatchType.NRE
    assert from_dict(m.Chunk, {"type": 42}).type == 42
    assert from_dict(m.Histogram, {"count_int": "0"}) == m.Histogram(count_int=0)
    assert from_dict(m.Chunk, {"data": "/wA="}).data == b"\xff\x00"


BAD_DICTS: list[tuple[str, type[Any], Any]] = [
    ("not_a_dict", m.Sample, [1]),
    ("unknown_field", m.Sample, {"valu": 1.0}),
    ("value_not_number", m.Sample, {"value": "one"}),
    ("value_bool", m.Sample, {"value": True}),
    ("value_list", m.Sample, {"value": [1.0]}),
    ("timestamp_not_integer", m.Sample, {"timestamp": "1.x"}),
    ("timestamp_list", m.Sample, {"timestamp": [1]}),
    ("enum_unknown_name", m.MetricMetadata, {"type": "COUNTERS"}),
    ("enum_bool", m.MetricMetadata, {"type": True}),
    ("enum_float", m.LabelMatcher, {"type": 1.5}),
    ("string_not_str", m.Label, {"name": 5}),
    ("bool_not_bool", m.ReadHints, {"by": "true"}),
    ("bad_base64", m.Chunk, {"data": "!!"}),
    ("repeated_not_list", m.TimeSeries, {"labels": {"name": "a"}}),
    ("nested_not_dict", m.TimeSeries, {"labels": ["a"]}),
    ("nested_unknown_field", m.WriteRequest, {"timeseries": [{"label": []}]}),
    ("hints_not_dict", m.Query, {"hints": 1}),
    # integers: what protobuf's json_format.ParseDict refuses too
    ("timestamp_fraction", m.Sample, {"timestamp": 1.5}),
    ("timestamp_bool", m.Sample, {"timestamp": True}),
    ("timestamp_inf", m.Sample, {"timestamp": float("inf")}),
    ("int64_too_big", m.Sample, {"timestamp": str(1 << 63)}),
    ("int64_too_small", m.Chunk, {"min_time_ms": -(1 << 63) - 1}),
    ("uint64_negative", m.Histogram, {"count_int": "-1"}),
    ("uint64_too_big", m.Histogram, {"zero_count_int": str(1 << 64)}),
    ("uint32_too_big", m.BucketSpan, {"length": 1 << 32}),
    ("sint32_too_big", m.BucketSpan, {"offset": 1 << 31}),
    ("sint64_too_small", m.Histogram, {"positive_deltas": [str(-(1 << 63) - 1)]}),
    ("enum_too_big", m.MetricMetadata, {"type": 1 << 31}),
]


@pytest.mark.parametrize(("cls", "d"), [b[1:] for b in BAD_DICTS], ids=[b[0] for b in BAD_DICTS])
def test_from_dict_errors(cls: type[Any], d: Any) -> None:
    with pytest.raises(DecodeError):
        from_dict(cls, d)


# promwire is stricter than protobuf here: protobuf's ParseDict takes True as the
# double 1.0 and as enum number 1, 1.5 as enum 1, and "!!" as empty bytes.
PROTOBUF_LENIENT = {"value_bool", "enum_bool", "enum_float", "bad_base64"}
STRICT_BOTH = [b for b in BAD_DICTS if b[0] not in PROTOBUF_LENIENT]


@pytest.mark.parametrize(
    ("cls", "d"), [b[1:] for b in STRICT_BOTH], ids=[b[0] for b in STRICT_BOTH]
)
def test_protobuf_refuses_the_same_dicts(cls: type[Any], d: Any) -> None:
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(d, ORACLE[cls]())


def test_from_dict_null_is_the_default() -> None:
    """proto3 JSON: ``null`` is accepted for every field and means its default."""
    cases: list[tuple[type[Any], dict[str, Any]]] = [
        (m.Query, {"hints": None, "start_timestamp_ms": None}),
        (m.Sample, {"value": None, "timestamp": None}),
        (m.TimeSeries, {"labels": None, "samples": None}),
        (m.Histogram, {"count_int": None, "count_float": None, "reset_hint": None}),
        (m.Label, {"name": None, "value": None}),
        (m.Chunk, {"data": None, "type": None}),
        (m.ReadHints, {"by": None, "grouping": None}),
    ]
    for cls, d in cases:
        assert from_dict(cls, d) == cls()
        pb = ORACLE[cls]()
        json_format.ParseDict(d, pb)
        assert pb.SerializeToString() == b""


def test_from_dict_refuses_lone_surrogates() -> None:
    # str that is not encodable as UTF-8: refused when read, like protobuf does.
    with pytest.raises(DecodeError):
        from_dict(m.Label, {"name": "\ud800"})
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict({"name": "\ud800"}, ORACLE[m.Label]())
    with pytest.raises(DecodeError):
        from_dict(m.ReadHints, {"grouping": ["ok", "\udfff"]})


def test_from_dict_integer_edges() -> None:
    assert from_dict(m.Sample, {"timestamp": 2.0}).timestamp == 2
    assert from_dict(m.Sample, {"timestamp": str(-(1 << 63))}).timestamp == -(1 << 63)
    assert from_dict(m.Histogram, {"count_int": str((1 << 64) - 1)}).count_int == (1 << 64) - 1
    assert from_dict(m.BucketSpan, {"offset": -(1 << 31)}).offset == -(1 << 31)
    assert from_dict(m.MetricMetadata, {"type": -(1 << 31)}).type == -(1 << 31)


def test_from_dict_of_capture_sidecar(fixtures_dir: Any) -> None:
    side = json.loads(
        (fixtures_dir / "rw_sender" / "A_03_with_exemplars_and_native_histogram.json").read_text()
    )
    req = from_dict(m.WriteRequest, side["decoded"])
    # The sidecar (protobuf's JSON) writes every NaN "NaN"; to_dict keeps the bits.
    assert _nan_text_blind(to_dict(req), side["decoded"]) == side["decoded"]
    pb = ORACLE[m.WriteRequest]()
    json_format.ParseDict(side["decoded"], pb)
    assert canonical(from_oracle(m.WriteRequest, pb)) == canonical(req)


def _double(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


NAN_FORMS = [
    (0x7FF8000000000000, "NaN"),  # float("nan"): the plain proto3 spelling
    (STALE_NAN_BITS, "NaN:0x7ff0000000000002"),  # Prometheus' stale marker
    (0x7FF8000000000001, "NaN:0x7ff8000000000001"),  # Go's math.NaN()
    (0xFFF8000000000000, "NaN:0xfff8000000000000"),  # negative quiet NaN
    (0x7FFFFFFFFFFFFFFF, "NaN:0x7fffffffffffffff"),
]


@pytest.mark.parametrize(("bits", "text"), NAN_FORMS, ids=[t for _, t in NAN_FORMS])
def test_nan_bits_are_kept(bits: int, text: str) -> None:
    sample = m.Sample(_double(bits), 5)
    assert to_dict(sample) == {"value": text, "timestamp": "5"}
    assert to_dict(sample, keep_nan_bits=False) == {"value": "NaN", "timestamp": "5"}
    back = from_dict(m.Sample, {"value": text, "timestamp": "5"})
    assert double_bits(back.value) == bits
    assert encode(back) == encode(sample)
    histogram = m.Histogram(sum=_double(bits), count_float=_double(bits))
    again = from_dict(m.Histogram, to_dict(histogram))
    assert double_bits(again.sum) == double_bits(again.count_float) == bits


@pytest.mark.parametrize(
    "text",
    [
        "NaN:0x3ff0000000000000",  # 1.0: not a NaN
        "NaN:0x7ff0000000000000",  # +Inf: not a NaN
        "NaN:0x7ff800000000001",  # 15 digits
        "NaN:0x7ff80000000000011",  # 17 digits
        "NaN:0x7ff800000000000g",
        "NaN:0x",
    ],
)
def test_nan_text_must_name_a_nan(text: str) -> None:
    with pytest.raises(DecodeError):
        from_dict(m.Sample, {"value": text})


def test_protobuf_json_of_a_stale_marker_still_reads() -> None:
    # What protobuf (and the capture sidecars) write: a plain "NaN".
    assert math.isnan(from_dict(m.Sample, {"value": "NaN"}).value)
