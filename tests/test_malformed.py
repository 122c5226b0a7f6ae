"""Malformed input: decode() raises DecodeError and nothing else, quickly.

Random bytes and damaged valid encodings go to every message class; specific
malformations (PROTOCOL.md §6.1) must be rejected with DecodeError. When
promwire accepts damaged bytes, protobuf's own parser must accept them too
and read the same content.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import DecodeError, decode, encode, snappy
from promwire.codec import messages as m
from promwire.codec.fields import SCHEMAS, Kind
from promwire.codec.wire import LEN, read_varint, skip_field
from promwire.testing import (
    MESSAGE_CLASSES,
    canonical,
    messages,
    mutated_encodings,
    mutations,
    scrambled_encodings,
)
from tests.cases import CASES
from tests.conftest import FIXTURES
from tests.oracle import ORACLE, from_oracle, has_group

CLASS_IDS = [c.__name__ for c in MESSAGE_CLASSES]


def _decode_or_error(cls: type[Any], raw: bytes) -> Any:
    """decode(), allowing only DecodeError (returned as None)."""
    try:
        msg = decode(cls, raw)
    except DecodeError as exc:
        assert exc.status == 400
        return None
    assert type(msg) is cls
    return msg


def _oversized_tag(cls: type[Any], buf: bytes, pos: int, end: int) -> bool:
    """Whether a tag in ``buf[pos:end]`` (a valid ``cls``) is wider than 32 bits.

    Field numbers stop at 2**29-1, so such a tag is invalid; upb and promwire
    refuse it (Prometheus' Go decoder would skip it as an unknown field).
    """
    specs = {s.number: s for s in SCHEMAS[cls]}
    while pos < end:
        t, pos = read_varint(buf, pos)
        if t > 0xFFFFFFFF:
            return True
        wt = t & 7
        spec = specs.get(t >> 3)
        if wt == LEN:
            n, pos = read_varint(buf, pos)
            if (
                spec
                and spec.kind == Kind.MESSAGE
                and _oversized_tag(spec.message, buf, pos, pos + n)
            ):
                return True
            pos += n
        else:
            pos = skip_field(buf, pos, end, wt)
    return False


def _refused_only_if_upb_refuses(cls: type[Any], raw: bytes) -> None:
    """promwire refused ``raw``: so must upb, unless it holds a group.

    Groups (deprecated wire types 3/4) are refused by promwire anywhere
    (PROTOCOL.md §0); upb skips them inside unknown fields.
    """
    try:
        ORACLE[cls].FromString(raw)
    except ProtobufDecodeError:
        return
    assert has_group(cls, raw, 0, len(raw)), raw.hex()


def _agrees_with_upb(cls: type[Any], raw: bytes, msg: Any) -> None:
    """promwire accepted ``raw`` as ``msg``: upb must accept it with the same content."""
    pb = ORACLE[cls].FromString(raw)
    assert canonical(from_oracle(cls, pb)) == canonical(msg)


# ------------------------------------------------------------------------ fuzzing


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=80))
def test_random_bytes(cls: type[Any], raw: bytes) -> None:
    msg = _decode_or_error(cls, raw)
    if msg is not None:
        _agrees_with_upb(cls, raw, msg)
    else:
        _refused_only_if_upb_refuses(cls, raw)


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=30, deadline=None)
@given(raw=st.data())
def test_mutated_encodings(cls: type[Any], raw: st.DataObject) -> None:
    data = raw.draw(mutated_encodings(cls))
    msg = _decode_or_error(cls, data)
    if msg is not None:
        _agrees_with_upb(cls, data, msg)
    else:
        _refused_only_if_upb_refuses(cls, data)


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=CLASS_IDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_truncation_of_an_encoding(cls: type[Any], data: st.DataObject) -> None:
    raw = encode(data.draw(messages(cls)))
    for cut in range(len(raw)):
        msg = _decode_or_error(cls, raw[:cut])
        if msg is not None:
            _agrees_with_upb(cls, raw[:cut], msg)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_damaged_everywhere(case: Any) -> None:
    """Each position of each golden encoding: truncated, bit-flipped, byte inserted."""
    cls = type(case.message)
    raw = case.raw
    for i in range(len(raw)):
        _decode_or_error(cls, raw[:i])
        for bit in (0, 3, 7):
            b = bytearray(raw)
            b[i] ^= 1 << bit
            _decode_or_error(cls, bytes(b))
        for ins in (b"\x80", b"\xff", b"\x00", b"\x07"):
            _decode_or_error(cls, raw[:i] + ins + raw[i:])


def _fixture_raws() -> list[tuple[type[Any], bytes]]:
    out: list[tuple[type[Any], bytes]] = []
    for p in sorted(FIXTURES.glob("rw_sender/*.bin")):
        out.append((m.WriteRequest, snappy.decompress(p.read_bytes())))
    for p in sorted(FIXTURES.glob("rr_client/req_0[1-2].bin")):
        out.append((m.ReadRequest, snappy.decompress(p.read_bytes())))
    for p in sorted(FIXTURES.glob("rr_server/*_samples.response.bin")):
        out.append((m.ReadResponse, snappy.decompress(p.read_bytes())))
    return out


def test_fixture_truncations() -> None:
    """Real captures cut short: near both ends at every position, in between sampled."""
    for cls, raw in _fixture_raws():
        n = len(raw)
        cuts = set(range(min(n, 400))) | set(range(max(0, n - 400), n)) | set(range(0, n, 37))
        for cut in sorted(cuts):
            msg = _decode_or_error(cls, raw[:cut])
            if msg is not None:
                # A cut on a record boundary is a valid, shorter message.
                assert encode(msg) == raw[:cut]


def test_fixture_bit_flips() -> None:
    for cls, raw in _fixture_raws():
        for i in range(0, len(raw), max(7, len(raw) // 60)):
            b = bytearray(raw)
            b[i] ^= 0x80 if i % 2 else 0x04
            msg = _decode_or_error(cls, bytes(b))
            if msg is not None and len(raw) < 20000:
                _agrees_with_upb(cls, bytes(b), msg)


# ------------------------------------------------------------- specific rejections

BAD: list[tuple[str, type[Any], str]] = [
    # varints
    ("varint_11_bytes", m.Sample, "10 ffffffffffffffffffff 01"),
    ("varint_11_bytes_zero_continuations", m.Sample, "10 8080808080808080808000"),
    ("tag_varint_11_bytes", m.Sample, "ffffffffffffffffffffff 01"),
    ("truncated_varint", m.Sample, "10 ff"),
    ("truncated_varint_at_end", m.Sample, "10"),
    ("truncated_tag", m.TimeSeries, "80"),
    ("truncated_int64_in_series_sample", m.TimeSeries, "12 03 10 ff ff"),
    # fixed 64-bit
    ("truncated_double", m.Sample, "09 0000000000f03f"),
    ("truncated_double_empty", m.Sample, "09"),
    ("truncated_unknown_i64", m.Sample, "21 000000"),
    ("truncated_unknown_i32", m.Sample, "2d 0000"),
    ("truncated_packed_double", m.Histogram, "6a 07 00000000000000"),
    ("packed_double_ragged", m.Histogram, "6a 09 000000000000f03f 00"),
    ("packed_varint_ragged", m.Histogram, "62 02 02 80"),
    # lengths
    ("missing_length", m.Label, "0a"),
    ("truncated_length_varint", m.Label, "0a 80"),
    ("length_past_end", m.Label, "0a 05 6162"),
    ("huge_length", m.Label, "0a ffffffff0f 61"),
    ("length_past_end_unknown_field", m.Sample, "2a 05 00"),
    ("submessage_length_past_end", m.WriteRequest, "0a 06 0a 03 0a 01 61"),
    ("sample_length_past_end", m.TimeSeries, "12 0b 09 000000000000f03f 10"),
    ("label_past_series_end", m.WriteRequest, "0a 03 0a 05 61 0a 00 0a 00"),
    ("string_past_label_end", m.TimeSeries, "0a 03 0a 05 61 12 00 12 00"),
    ("string_past_label_end_in_request", m.WriteRequest, "0a 05 0a 03 0a 05 61 0a 00 0a 00"),
    # fields overrunning their sub-message while the buffer goes on
    ("double_overruns_sample", m.TimeSeries, "12 02 09 00 12 00 12 00 12 00 12 00"),
    ("varint_overruns_sample", m.TimeSeries, "12 02 10 ff 12 00"),
    ("varint_overruns_hot_sample", m.TimeSeries, "12 0b 09 000000000000f03f 10 ff 12 00"),
    ("unknown_overruns_sample", m.TimeSeries, "12 02 2a 05 12 00 12 00 12 00"),
    ("unknown_i64_overruns_label", m.TimeSeries, "0a 02 21 00 12 00 12 00 12 00 12 00"),
    ("double_overruns_exemplar", m.TimeSeries, "1a 02 11 00 12 00 12 00 12 00 12 00"),
    ("hints_field_overruns", m.Query, "22 02 12 05 1a 00 1a 00 1a 00"),
    ("packed_overruns_histogram", m.TimeSeries, "22 03 62 05 02 12 00 12 00"),
    ("span_overruns_histogram", m.Histogram, "42 01 08 70 00"),
    ("chunk_data_overruns", m.ChunkedSeries, "12 03 22 05 00 12 00 12 00"),
    ("series_overruns_query_result", m.ReadResponse, "0a 02 0a 05 0a 00 0a 00 0a 00"),
    # wire types 3, 4, 6, 7 (known and unknown field numbers)
    ("wire_type_3", m.Sample, "0b"),
    ("wire_type_4", m.Sample, "0c"),
    ("wire_type_6", m.Sample, "0e 00"),
    ("wire_type_7", m.Sample, "0f 00"),
    ("wire_type_3_unknown_field", m.WriteRequest, "13 14"),
    ("wire_type_6_in_series", m.TimeSeries, "16 00"),
    ("wire_type_7_in_label", m.Label, "0f"),
    ("wire_type_6_in_request", m.WriteRequest, "0e"),
    ("wire_type_7_in_nested_label", m.WriteRequest, "0a 03 0a 01 0f"),
    # field number 0
    ("field_0_varint", m.Sample, "00 00"),
    ("field_0_len", m.Label, "02 00"),
    ("field_0_in_series", m.TimeSeries, "00 00"),
    ("field_0_in_request", m.WriteRequest, "02 00"),
    ("field_0_nested", m.ReadRequest, "0a 02 00 00"),
    ("field_0_long_tag", m.Sample, "80 00 00"),
    # UTF-8
    ("utf8_invalid_byte", m.Label, "0a 01 ff"),
    ("utf8_overlong", m.Label, "0a 02 c0 80"),
    ("utf8_surrogate", m.Label, "12 03 eda080"),
    ("utf8_truncated_sequence", m.Label, "12 02 e697"),
    ("utf8_in_series_label", m.TimeSeries, "0a 03 0a 01 ff"),
    ("utf8_in_request", m.WriteRequest, "0a 07 0a 05 0a 01 61 12 00 0a 05 0a 01 ff 12 00"),
    ("utf8_in_metadata", m.MetricMetadata, "22 01 80"),
    ("utf8_in_matcher", m.ReadRequest, "0a 05 1a 03 12 01 ff"),
    ("utf8_in_grouping", m.ReadHints, "2a 01 fe"),
]


@pytest.mark.parametrize(("cls", "hexdata"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_rejected(cls: type[Any], hexdata: str) -> None:
    raw = bytes.fromhex(hexdata.replace(" ", ""))
    with pytest.raises(DecodeError):
        decode(cls, raw)
    _refused_only_if_upb_refuses(cls, raw)


def test_hot_path_label_cache_does_not_hide_errors() -> None:
    """A label block seen valid, then the same series with a bad sample, still fails."""
    good = bytes.fromhex("0a 03 0a 01 61 12 00".replace(" ", ""))
    assert decode(m.TimeSeries, good).labels == [m.Label("a", "")]
    for bad in ("0a 03 0a 01 61 12 05 00", "0a 03 0a 01 61 0e", "0a 03 0a 01 61 00 00"):
        with pytest.raises(DecodeError):
            decode(m.TimeSeries, bytes.fromhex(bad.replace(" ", "")))
        wrapped = bytes([0x0A, len(bytes.fromhex(bad.replace(" ", "")))])
        with pytest.raises(DecodeError):
            decode(m.WriteRequest, wrapped + bytes.fromhex(bad.replace(" ", "")))


def test_field_numbers_beyond_2_29_are_refused_like_upb() -> None:
    """Tag 2**32 + 0x35 (field 2**29 + 6, wire type 5): not a valid field number.

    upb refuses it and so does promwire (Go's gogo decoder would skip it; no
    real sender writes such a tag, so promwire sides with the protobuf spec).
    """
    raw = bytes.fromhex("b5 80 80 80 10 00000000 09 000000000000f03f".replace(" ", ""))
    assert _oversized_tag(m.Sample, raw, 0, len(raw))
    with pytest.raises(DecodeError, match="out of range"):
        decode(m.Sample, raw)
    with pytest.raises(ProtobufDecodeError):
        ORACLE[m.Sample].FromString(raw)


def test_errors_are_value_errors_with_status_400() -> None:
    with pytest.raises(ValueError) as info:
        decode(m.Label, b"\x0a")
    assert isinstance(info.value, DecodeError)
    assert info.value.status == 400


def test_accepts_bytearray_and_memoryview() -> None:
    raw = CASES[0].raw
    assert decode(m.WriteRequest, bytearray(raw)) == decode(m.WriteRequest, raw)
    assert decode(m.WriteRequest, memoryview(raw)) == decode(m.WriteRequest, raw)


def test_unknown_class_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        decode(dict, b"")


# ---------------------------------------------------------------------- no hangs


def _timed(cls: type[Any], raw: bytes) -> float:
    start = time.perf_counter()
    _decode_or_error(cls, raw)
    return time.perf_counter() - start


def test_pathological_inputs_are_fast() -> None:
    mib = 1 << 18  # a quarter MiB: linear work is milliseconds, quadratic would be hours
    cases: list[tuple[type[Any], bytes]] = [
        # a huge declared length on a tiny body
        (m.WriteRequest, b"\x0a\xff\xff\xff\xff\x0f"),
        (m.WriteRequest, b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" + b"\x00" * 100),
        # a megabyte of continuation bytes
        (m.WriteRequest, b"\x80" * mib),
        (m.TimeSeries, b"\x12" + b"\xff" * mib),
        # a megabyte of empty sub-messages / unknown fields: valid and linear
        (m.WriteRequest, b"\x0a\x00" * (mib // 2)),
        (m.Sample, b"\x18\x00" * (mib // 2)),
        (m.Histogram, b"\x62\x00" * (mib // 2)),
        # deep-looking but flat: nested lengths that all overrun
        (m.ReadResponse, b"\x0a\xfe\xff\x3f" * (mib // 4)),
    ]
    for cls, raw in cases:
        assert _timed(cls, raw) < 5.0, (cls, raw[:12])


def test_snappy_then_decode_garbage_fixture_stream(tmp_path: Path) -> None:
    """A streamed (framed, CRC) response is neither snappy nor a ReadResponse body."""
    body = (FIXTURES / "rr_server" / "rr_up_streamed.response.bin").read_bytes()
    with pytest.raises(DecodeError):
        snappy.decompress(body)


def test_large_malformed_body_leaves_gc_as_it_was() -> None:
    """decode() pauses the cyclic GC for large bodies; an error must not leave it off."""
    import gc

    big_bad = encode(m.WriteRequest([m.TimeSeries([m.Label("a", "b" * 100)])] * 1000)) + b"\x0e"
    assert len(big_bad) > 64 * 1024
    assert gc.isenabled()
    with pytest.raises(DecodeError):
        decode(m.WriteRequest, big_bad)
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(DecodeError):
            decode(m.WriteRequest, big_bad)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("cls", [m.WriteRequest, m.ReadRequest, m.Histogram])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_mutated_scrambled_encodings(cls: type[Any], data: st.DataObject) -> None:
    """Damage to non-canonical layouts (unknown fields, reordered) reaches other code paths."""
    _, raw = data.draw(scrambled_encodings(cls))
    bad = data.draw(mutations(raw))
    msg = _decode_or_error(cls, bad)
    if msg is not None:
        _agrees_with_upb(cls, bad, msg)
    else:
        _refused_only_if_upb_refuses(cls, bad)


@settings(max_examples=300, deadline=None)
@given(
    name=st.one_of(
        st.binary(max_size=8),
        st.text(max_size=4).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"\xed\xa0\x80", b"\xef\xbf\xbe", b"\xf4\x90\x80\x80", b"\xc0\xaf"]),
    )
)
def test_utf8_validation_matches_upb(name: bytes) -> None:
    """A Label name is accepted exactly when upb accepts it (strict UTF-8, both ways)."""
    raw = b"\x0a" + bytes([len(name)]) + name
    try:
        ORACLE[m.Label].FromString(raw)
        upb_ok = True
    except ProtobufDecodeError:
        upb_ok = False
    for cls, data in ((m.Label, raw), (m.TimeSeries, b"\x0a" + bytes([len(raw)]) + raw)):
        try:
            decode(cls, data)
            ours_ok = True
        except DecodeError:
            ours_ok = False
        assert ours_ok == upb_ok, (cls, name)
