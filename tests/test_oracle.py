"""promwire against protobuf's own (upb) implementation, both ways.

(a) hypothesis messages: ``encode(m)`` == upb ``SerializeToString`` of the same content;
(b) upb-serialized bytes decode in promwire to the same content;
plus encodings promwire never emits: unknown fields (Cortex' WriteRequest
fields 2 and 1000) and unpacked repeated numeric fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire
from promwire import decode, encode
from promwire.codec import messages as m
from promwire.testing import (
    MESSAGE_CLASSES,
    canonical,
    messages,
    scrambled_encodings,
    timeseries,
    write_requests,
)
from tests.oracle import CLASSES, CORTEX, IMPLEMENTATION, ORACLE, UNPACKED, from_oracle, to_oracle

CLASS_IDS = [c.__name__ for c in MESSAGE_CLASSES]


def test_oracle_is_upb() -> None:
    # The oracle must be protobuf's C implementation, not the pure-Python one
    # (which is itself a port and could share our mistakes).
    assert IMPLEMENTATION == "upb"


def test_oracle_covers_every_message_class() -> None:
    assert set(ORACLE) == set(MESSAGE_CLASSES)
    for cls, pb_cls in ORACLE.items():
        names = [f.name for f in pb_cls.DESCRIPTOR.fields]
        assert names == [spec.name for spec in promwire.codec.fields.SCHEMAS[cls]]
        numbers = [f.number for f in pb_cls.DESCRIPTOR.fields]
        assert numbers == [spec.number for spec in promwire.codec.fields.SCHEMAS[cls]]


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_encode_equals_upb(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    pb = to_oracle(msg)
    assert encode(msg) == pb.SerializeToString()


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_decode_of_upb_bytes(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    raw = to_oracle(msg).SerializeToString()
    ours = decode(cls, raw)
    theirs = from_oracle(cls, ORACLE[cls].FromString(raw))
    assert canonical(ours) == canonical(theirs)
    assert canonical(ours) == canonical(msg)


@settings(max_examples=25, deadline=None)
@given(req=write_requests(), source=st.integers(0, 1), skip=st.booleans())
def test_cortex_extra_fields_are_skipped(req: m.WriteRequest, source: int, skip: bool) -> None:
    pb = to_oracle(req, CORTEX)
    pb.source = source
    pb.skip_label_name_validation = skip
    raw = pb.SerializeToString()
    if source or skip:
        assert raw != encode(req)
    assert canonical(decode(m.WriteRequest, raw)) == canonical(req)


def test_cortex_fields_bytes_known() -> None:
    pb = CORTEX["WriteRequest"](source=1, skip_label_name_validation=True)
    raw = pb.SerializeToString()
    assert raw == bytes.fromhex("1001c03e01")  # field 2 varint, field 1000 varint (2-byte tag)
    assert decode(m.WriteRequest, raw) == m.WriteRequest()


UNPACKED_CASES = [m.Histogram, m.ReadRequest, m.TimeSeries, m.WriteRequest]


@pytest.mark.parametrize("cls", UNPACKED_CASES, ids=[c.__name__ for c in UNPACKED_CASES])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_unpacked_encoding_decodes_to_same_values(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    raw = to_oracle(msg, UNPACKED).SerializeToString()
    assert canonical(decode(cls, raw)) == canonical(msg)


def test_unpacked_histogram_bytes_differ_from_packed() -> None:
    h = m.Histogram(positive_deltas=[1, -1], custom_values=[0.5])
    packed = encode(h)
    unpacked = to_oracle(h, UNPACKED).SerializeToString()
    assert unpacked == bytes.fromhex("600260018101000000000000e03f")
    assert packed != unpacked
    assert canonical(decode(m.Histogram, unpacked)) == canonical(h)


def test_read_request_unpacked_response_types() -> None:
    rr = m.ReadRequest(accepted_response_types=[1, 0])
    raw = to_oracle(rr, UNPACKED).SerializeToString()
    assert raw == bytes.fromhex("10011000")
    assert decode(m.ReadRequest, raw).accepted_response_types == [1, 0]


@settings(max_examples=25, deadline=None)
@given(a=timeseries(), b=timeseries())
def test_concatenation_merges_like_upb(a: m.TimeSeries, b: m.TimeSeries) -> None:
    # Parsing the concatenation of two encodings = merging; repeated fields append.
    raw = encode(a) + encode(b)
    pb = CLASSES["TimeSeries"].FromString(raw)
    assert canonical(decode(m.TimeSeries, raw)) == canonical(from_oracle(m.TimeSeries, pb))


@settings(max_examples=25, deadline=None)
@given(a=messages(m.Histogram), b=messages(m.Histogram))
def test_histogram_merge_oneof_last_wins_like_upb(a: m.Histogram, b: m.Histogram) -> None:
    raw = encode(a) + encode(b)
    pb = CLASSES["Histogram"].FromString(raw)
    assert canonical(decode(m.Histogram, raw)) == canonical(from_oracle(m.Histogram, pb))


@settings(max_examples=25, deadline=None)
@given(a=messages(m.Query), b=messages(m.Query))
def test_query_hints_merge_like_upb(a: m.Query, b: m.Query) -> None:
    raw = encode(a) + encode(b)
    pb = CLASSES["Query"].FromString(raw)
    assert canonical(decode(m.Query, raw)) == canonical(from_oracle(m.Query, pb))


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_scrambled_encodings_decode_to_the_same(cls: type[Any], data: st.DataObject) -> None:
    """Fields reordered, unknown fields inserted at every level: same message, as upb says."""
    msg, raw = data.draw(scrambled_encodings(cls))
    assert canonical(decode(cls, raw)) == canonical(msg)
    assert canonical(from_oracle(cls, ORACLE[cls].FromString(raw))) == canonical(msg)
    assert encode(decode(cls, raw)) == encode(msg)
