"""The hand-written v2 TimeSeries decoder against the table-driven one."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import DecodeError, decode, encode, v2
from promwire.codec.decoder import _DECODERS, _make_generic
from promwire.testing import canonical
from promwire.testing.v2 import timeseries
from promwire.v2.fastdecode import decode_timeseries

GENERIC = _make_generic(v2.TimeSeries)


def _both(raw: bytes) -> tuple[Any, Any]:
    """(fast, generic) results, each a value or the DecodeError class."""
    out = []
    for fn in (decode_timeseries, GENERIC):
        try:
            out.append(canonical(fn(raw, 0, len(raw))))
        except (DecodeError, IndexError, struct.error):
            # IndexError/struct.error are what public decode() turns into DecodeError
            out.append(DecodeError)
    return out[0], out[1]


def test_fast_decoder_is_registered() -> None:
    assert _DECODERS[v2.TimeSeries] is decode_timeseries


@settings(max_examples=80, deadline=None)
@given(ts=timeseries(max_size=4))
def test_same_as_generic_on_valid_input(ts: v2.TimeSeries) -> None:
    raw = encode(ts)
    fast, generic = _both(raw)
    assert fast == generic == canonical(ts)


@st.composite
def _damaged(draw: st.DrawFn) -> bytes:
    buf = bytearray(encode(draw(timeseries())))
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
            buf[at] = draw(st.sampled_from((0x00, 0x08, 0x09, 0x10, 0x18, 0x80, 0xFF, 0x0A, 0x12)))
    return bytes(buf)


@settings(max_examples=150, deadline=None)
@given(raw=_damaged())
def test_same_as_generic_on_damaged_input(raw: bytes) -> None:
    fast, generic = _both(raw)
    assert fast == generic


@pytest.mark.parametrize(
    "hexdata",
    [
        "0a03 818001 02",  # packed ref needing 3 bytes (16384), then 2
        "0801 0a02 0203 0804",  # unpacked and packed refs mixed
        "0a0b ffffffffffffffffff01 05",  # 10-byte varint truncated to uint32
        "1209 10e807 09000000000000f03f",  # sample fields in reverse order
        "1206 10e807 18e607",  # sample without value, with start timestamp
        "1206 10e807 10e907",  # a field repeated: the last one wins
        "120a 09000000000000f03f 20",  # truncated unknown field inside a sample
        "1203 2801 10",  # unknown field first, then truncated timestamp
        "120c 10ffffffffffffffffff01 0a00",  # negative timestamp, then unknown LEN
        "2a02 0801 2a02 1803 2a02 2004",  # three metadata records merged
        "3005 0a02 0102",  # legacy field 6 before the refs
        "1200 1200",  # two empty samples
    ],
)
def test_same_as_generic_on_unusual_layouts(hexdata: str) -> None:
    raw = bytes.fromhex(hexdata.replace(" ", ""))
    fast, generic = _both(raw)
    assert fast == generic


def test_public_decode_uses_it_and_reports_truncation_as_decode_error() -> None:
    raw = encode(v2.Request(symbols=[""], timeseries=[v2.TimeSeries(labels_refs=[0, 0])]))
    assert decode(v2.Request, raw).timeseries[0].labels_refs == [0, 0]
    with pytest.raises(DecodeError):
        decode(v2.TimeSeries, bytes.fromhex("120a 09000000"))
