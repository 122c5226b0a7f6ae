"""Encoding: promwire message objects to protobuf bytes, byte-identical to upb.

What makes the output identical to protobuf's own serializer:

* fields in field-number order; proto3 defaults omitted (``0``, ``""``,
  ``False``, empty lists, and ``0.0`` only when its bits are +0.0, so ``-0.0``
  is written);
* doubles written from their bits (NaN payloads such as the stale marker
  survive); negative ``int64``/enum values as 10-byte varints; ``sint`` zigzag;
* repeated numbers packed; every element of a repeated message written, even
  an empty one; a singular sub-message written when it is not ``None``;
* oneof members written whenever they are not ``None``, zero included.

``Label`` records are cached by value (labels are frozen and repeat across
series and requests), and ``TimeSeries``/``Sample``/``Exemplar``/``Histogram``
have hand-written paths (checked against the generic encoder by the tests).
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Callable
from typing import Any

from ..errors import EncodeError
from . import messages as m
from .fields import SCHEMAS, WIRE_TYPE, FieldSpec, Kind
from .wire import (
    INT64_MAX,
    INT64_MIN,
    LEN,
    MASK32,
    MASK64,
    pack_double,
    tag,
    varint,
    zigzag_encode,
)

__all__ = ["encode"]

Encoder = Callable[[Any], bytes]
_ENCODERS: dict[type[Any], Encoder] = {}

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _is_default_double(v: float) -> bool:
    return v == 0.0 and math.copysign(1.0, v) > 0


_RANGES: dict[Kind, tuple[int, int, bool]] = {
    # kind: (lowest, highest, zigzag?)
    Kind.INT64: (INT64_MIN, INT64_MAX, False),
    Kind.UINT64: (0, MASK64, False),
    Kind.UINT32: (0, MASK32, False),
    Kind.SINT64: (INT64_MIN, INT64_MAX, True),
    Kind.SINT32: (INT32_MIN, INT32_MAX, True),
    Kind.ENUM: (INT32_MIN, INT32_MAX, False),  # int32: negatives take 10 bytes
}


def _varint_value(spec: FieldSpec) -> Callable[[Any], int]:
    """A function giving the unsigned varint value that carries a field's value.

    Chosen once per field; it checks the type and range, so a wrong value is an
    :class:`EncodeError`, never wrong bytes.
    """
    name = spec.name
    if spec.kind == Kind.BOOL:

        def bool_value(v: Any) -> int:
            if type(v) is not bool:
                raise EncodeError(f"{name}: expected bool, got {type(v).__name__}")
            return int(v)

        return bool_value
    lo, hi, zigzag = _RANGES[spec.kind]
    kind_name = spec.kind.name.lower()

    def int_value(v: Any) -> int:
        if type(v) is not int and (not isinstance(v, int) or isinstance(v, bool)):
            raise EncodeError(f"{name}: expected int, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise EncodeError(f"{name}: {v} out of range for {kind_name}")
        return zigzag_encode(v) if zigzag else v & MASK64

    return int_value


def _double(spec: FieldSpec, v: Any) -> bytes:
    if not isinstance(v, (float, int)) or isinstance(v, bool):
        raise EncodeError(f"{spec.name}: expected float, got {type(v).__name__}")
    return pack_double(v)


def _len_payload(spec: FieldSpec, v: Any) -> bytes:
    if spec.kind == Kind.STRING:
        if not isinstance(v, str):
            raise EncodeError(f"{spec.name}: expected str, got {type(v).__name__}")
        try:
            return v.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError(f"{spec.name}: string is not encodable as UTF-8") from None
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise EncodeError(f"{spec.name}: expected bytes, got {type(v).__name__}")
    return bytes(v)


def _encoder_for(cls: type[Any]) -> Encoder:
    fn = _ENCODERS.get(cls)
    if fn is None:
        if cls not in SCHEMAS:
            raise EncodeError(f"{cls!r} is not a promwire message class")
        fn = _make_generic(cls)
        _ENCODERS[cls] = fn
    return fn


def _check_type(cls: type[Any], spec: FieldSpec, v: Any) -> None:
    """Refuse a sub-message of another class (a LabelMatcher would encode as a Label)."""
    if not isinstance(v, spec.message):
        raise EncodeError(
            f"{cls.__name__}.{spec.name}: cannot encode {type(v).__name__} "
            f"as {spec.message.__name__}"
        )


Writer = Callable[[Any, list[bytes]], None]


def _field_writer(cls: type[Any], spec: FieldSpec) -> Writer:
    """A function appending a field's records to ``out`` (nothing for a default).

    Chosen once per field when a message's encoder is built, so encoding makes
    no decision on the field's kind.
    """
    key = tag(spec.number, LEN if spec.packed else WIRE_TYPE[spec.kind])
    kind = spec.kind
    sub_cls = spec.message
    where = f"{cls.__name__}.{spec.name}"

    if kind == Kind.MESSAGE and spec.repeated:

        def write_messages(v: Any, out: list[bytes]) -> None:
            sub = _encoder_for(sub_cls)
            for item in v:
                if type(item) is not sub_cls:
                    _check_type(cls, spec, item)
                body = sub(item)
                out.append(key + varint(len(body)) + body)

        return write_messages
    if kind == Kind.MESSAGE:

        def write_message(v: Any, out: list[bytes]) -> None:
            if v is None:
                return
            if type(v) is not sub_cls:
                _check_type(cls, spec, v)
            body = _encoder_for(sub_cls)(v)
            out.append(key + varint(len(body)) + body)

        return write_message
    if kind == Kind.STRING or kind == Kind.BYTES:

        def write_len(v: Any, out: list[bytes]) -> None:
            for item in v if spec.repeated else (v,):
                body = _len_payload(spec, item)
                if body or spec.oneof or spec.repeated:
                    out.append(key + varint(len(body)) + body)

        return write_len
    if kind == Kind.DOUBLE and spec.repeated:

        def write_doubles(v: Any, out: list[bytes]) -> None:
            for x in v:
                if type(x) is not float:
                    _double(spec, x)  # refuses what is not a number
            body = struct.pack(f"<{len(v)}d", *v)
            out.append(key + varint(len(body)) + body)

        return write_doubles
    if kind == Kind.DOUBLE:
        oneof = spec.oneof is not None

        def write_double(v: Any, out: list[bytes]) -> None:
            if oneof or not _is_default_double(v):
                out.append(key + _double(spec, v))

        return write_double
    value_of = _varint_value(spec)
    if spec.repeated:

        def write_varints(v: Any, out: list[bytes]) -> None:
            body = b"".join([varint(value_of(x)) for x in v])
            out.append(key + varint(len(body)) + body)

        return write_varints
    oneof = spec.oneof is not None

    def write_varint(v: Any, out: list[bytes]) -> None:
        u = value_of(v)
        if u or oneof:
            out.append(key + varint(u))

    write_varint.__name__ = f"write_{where}"
    return write_varint


def _make_generic(cls: type[Any]) -> Encoder:
    """Build an encoder for ``cls`` driven by its field table."""
    plan: list[tuple[str, bool, bool, Writer]] = [
        # (name, repeated, may be None, writer)
        (
            spec.name,
            spec.repeated,
            bool(spec.oneof) or spec.kind == Kind.MESSAGE,
            _field_writer(cls, spec),
        )
        for spec in SCHEMAS[cls]
    ]
    oneof_groups: dict[str, list[str]] = {}
    for spec in SCHEMAS[cls]:
        if spec.oneof:
            oneof_groups.setdefault(spec.oneof, []).append(spec.name)
    groups = list(oneof_groups.items())

    def encode_generic(msg: Any) -> bytes:
        for group, names in groups:
            if sum(getattr(msg, n) is not None for n in names) > 1:
                raise EncodeError(f"{cls.__name__}: more than one member of oneof {group!r} set")
        out: list[bytes] = []
        for name, repeated, optional, write in plan:
            v = getattr(msg, name)
            if repeated:
                if v:
                    write(v, out)
            elif v is None:
                if not optional:
                    raise EncodeError(f"{cls.__name__}.{name}: None is not a value")
            else:
                write(v, out)
        return b"".join(out)

    encode_generic.__name__ = f"encode_{cls.__name__}"
    return encode_generic


# ---------------------------------------------------------------------- the hot paths

_generic_label = _make_generic(m.Label)
# name -> value -> the label's whole record. Keyed by the two strings rather
# than by the Label: a frozen dataclass hashes and compares in Python code,
# str keys in C (and str caches its hash).
_label_records: dict[str, dict[str, bytes]] = {}
# Bytes the cache keeps alive (records, key strings, dict slots), bounded like
# the decoder's caches: emptied when an insert would go over the budget, and a
# record longer than the cap is never kept.
_label_records_bytes = [0]
_Label = m.Label
_LABEL_CACHE_BYTES = 32 * 1024 * 1024
_LABEL_RECORD_CAP = 1024
_ENTRY_OVERHEAD = 256  # bytes and str headers, dict slots
_pack_sample = struct.Struct("<Bd").pack  # 09 + double


def _charge(used: list[int], cost: int, budget: int, cache: dict[Any, Any]) -> None:
    """Count ``cost`` more bytes in ``used[0]``, emptying ``cache`` first when
    that would pass ``budget`` (the caller then stores its entry)."""
    total = used[0] + cost
    if total > budget:
        cache.clear()
        total = cost
    used[0] = total


def _label_record(label: m.Label, remember: bool = True) -> bytes:
    """``0a <len> <Label>``: a label's whole record, cached by value.

    ``remember=False`` looks the cache up but does not add to it (exemplar
    labels: trace ids seen once would only push useful labels out).
    """
    if type(label) is not _Label:
        raise EncodeError(f"labels: expected Label, got {type(label).__name__}")
    by_value = _label_records.get(label.name)
    rec = by_value.get(label.value) if by_value is not None else None
    if rec is None:
        name = label.name
        value = label.value
        if type(name) is str and type(value) is str and name.isascii() and value.isascii():
            nb = name.encode()
            vb = value.encode()
            body = (b"\x0a" + varint(len(nb)) + nb if nb else b"") + (
                b"\x12" + varint(len(vb)) + vb if vb else b""
            )
        else:
            body = _generic_label(label)  # checks types, encodes (or refuses) non-ASCII
        rec = b"\x0a" + varint(len(body)) + body
        if remember and len(rec) <= _LABEL_RECORD_CAP:
            # the record, plus the two key strings: at most 4 bytes a character
            cost = _ENTRY_OVERHEAD + len(rec) * (2 if name.isascii() and value.isascii() else 5)
            _charge(_label_records_bytes, cost, _LABEL_CACHE_BYTES, _label_records)
            _label_records.setdefault(name, {})[value] = rec
    return rec


_generic_exemplar = _make_generic(m.Exemplar)


def _exemplar(e: m.Exemplar) -> bytes:
    if type(e) is not m.Exemplar:
        raise EncodeError(f"exemplars: cannot encode {type(e).__name__} as Exemplar")
    v = e.value
    ts = e.timestamp
    if type(v) is not float or type(ts) is not int or not INT64_MIN <= ts <= INT64_MAX:
        return _generic_exemplar(e)  # reports the bad value
    out = [_label_record(label, False) for label in e.labels]
    if not _is_default_double(v):
        out.append(_pack_exemplar_value(0x11, v))
    if ts:
        out.append(b"\x18" + varint(ts & MASK64))
    return b"".join(out)


_pack_exemplar_value = struct.Struct("<Bd").pack  # 11 + double


def _sample(s: m.Sample) -> bytes:
    if type(s) is not m.Sample:
        raise EncodeError(f"samples: cannot encode {type(s).__name__} as Sample")
    v = s.value
    ts = s.timestamp
    if type(v) is not float or type(ts) is not int or not INT64_MIN <= ts <= INT64_MAX:
        return _generic_sample(s)
    head = b"" if _is_default_double(v) else _pack_sample(0x09, v)
    if ts:
        return head + b"\x10" + varint(ts & MASK64)
    return head


_generic_sample = _make_generic(m.Sample)

# A sample of a current millisecond timestamp (2**35 <= t < 2**42: a 6-byte
# varint) and a non-zero value is always the same 18-byte record
#   12 10 | 09 <double> | 10 <6-byte varint>
# which one struct.pack call writes, the varint as three little-endian uint16
# taken from tables that map 14 payload bits to two varint bytes (with and
# without the continuation bit on the second byte). Tables built on first use.
_PACK_SAMPLE18 = struct.Struct("<BBBdBHHH").pack
_pair_more: list[int] = []  # 14 bits -> 2 varint bytes, more bytes follow
_pair_last: list[int] = []  # 14 bits -> 2 varint bytes, the varint ends here
_T6_MIN = 1 << 35
_T6_END = 1 << 42


def _build_pair_tables() -> None:
    # Entry x is two varint bytes: (x & 0x7F) | 0x80, then x >> 7 (with 0x80
    # for _pair_more). Laid out as little-endian uint16 bytes by C-level slice
    # assignments and read back as one list: a list comprehension over 16,384
    # entries took 3-4 ms of a server's first streamed read.
    first = bytes(range(0x80, 0x100)) * 128
    tables = []
    for top in (0, 0x80):
        pairs = bytearray(1 << 15)
        pairs[0::2] = first
        pairs[1::2] = b"".join(bytes([h | top]) * 128 for h in range(128))
        table = array("H", pairs)
        if sys.byteorder == "big":
            table.byteswap()
        tables.append(table.tolist())
    # Each published by one slice assignment (atomic under the GIL), _pair_more
    # last: a thread that sees _pair_more non-empty finds both tables complete.
    _pair_last[:] = tables[0]
    _pair_more[:] = tables[1]


def _sample_records(samples: list[m.Sample], out: list[bytes]) -> None:
    """Append the ``12 <len> <Sample>`` record of every sample to ``out``."""
    if not _pair_more:
        _build_pair_tables()
    more = _pair_more
    last = _pair_last
    sample_cls = m.Sample
    for s in samples:
        v = s.value
        t = s.timestamp
        # `v` truthy: non-zero or NaN (a zero, even -0.0, takes the general path,
        # and so does anything that is not a Sample: _sample() refuses it)
        if _T6_MIN <= t < _T6_END and v and type(v) is float and type(s) is sample_cls:
            out.append(
                _PACK_SAMPLE18(
                    0x12,
                    0x10,
                    0x09,
                    v,
                    0x10,
                    more[t & 0x3FFF],
                    more[(t >> 14) & 0x3FFF],
                    last[t >> 28],
                )
            )
        else:
            body = _sample(s)
            out.append(b"\x12" + varint(len(body)) + body)


_generic_histogram = _make_generic(m.Histogram)
_generic_span = _make_generic(m.BucketSpan)
_Histogram = m.Histogram
_ResetHint = m.ResetHint
# (offset, length) -> the span's body; spans repeat across histograms and series
_span_bodies: dict[tuple[int, int], bytes] = {}
_pack_tagged_double = struct.Struct("<Bd").pack


def _span_records(key: bytes, spans: list[m.BucketSpan], out: list[bytes]) -> bool:
    """Append a ``key <len> <BucketSpan>`` record per span; False if one needs the generic path."""
    for s in spans:
        if type(s) is not m.BucketSpan:
            return False
        offset = s.offset
        length = s.length
        if type(offset) is not int or type(length) is not int:
            return False
        body = _span_bodies.get((offset, length))
        if body is None:
            body = _generic_span(s)  # checks the ranges
            if len(_span_bodies) >= 10_000:
                _span_bodies.clear()
            _span_bodies[(offset, length)] = body
        out.append(key + varint(len(body)) + body)
    return True


def _packed_sint64(values: list[int]) -> bytes | None:
    """The packed zigzag varints of ``values``; None if one is not an int64."""
    for x in values:
        if type(x) is not int or not INT64_MIN <= x <= INT64_MAX:
            return None
    zz = [(x << 1) ^ (x >> 63) for x in values]  # zigzag
    if max(zz) < 0x80:  # every delta in -64..63: one byte each
        return bytes(zz)
    return b"".join([varint(u) for u in zz])


def _packed_doubles(values: list[float]) -> bytes | None:
    for x in values:
        if type(x) is not float:
            return None
    return struct.pack(f"<{len(values)}d", *values)


def _histogram(h: m.Histogram) -> bytes:
    """Encode a Histogram whose fields hold the plain types (int, float, lists of them).

    Anything else (an int where a float goes, an IntEnum, a value out of range,
    both members of a oneof) goes to the generic encoder, which encodes it or
    says what is wrong.
    """
    out: list[bytes] = []
    count_int = h.count_int
    count_float = h.count_float
    if count_int is not None:
        if count_float is not None or type(count_int) is not int or not 0 <= count_int <= MASK64:
            return _generic_histogram(h)
        out.append(b"\x08" + varint(count_int))
    elif count_float is not None:
        if type(count_float) is not float:
            return _generic_histogram(h)
        out.append(_pack_tagged_double(0x11, count_float))
    v = h.sum
    if type(v) is not float:
        return _generic_histogram(h)
    if v or math.copysign(1.0, v) < 0:  # +0.0 is the default; -0.0 and NaN are written
        out.append(_pack_tagged_double(0x19, v))
    schema = h.schema
    if type(schema) is not int or not INT32_MIN <= schema <= INT32_MAX:
        return _generic_histogram(h)
    if schema:
        out.append(b"\x20" + varint(zigzag_encode(schema)))
    v = h.zero_threshold
    if type(v) is not float:
        return _generic_histogram(h)
    if v or math.copysign(1.0, v) < 0:
        out.append(_pack_tagged_double(0x29, v))
    zero_int = h.zero_count_int
    zero_float = h.zero_count_float
    if zero_int is not None:
        if zero_float is not None or type(zero_int) is not int or not 0 <= zero_int <= MASK64:
            return _generic_histogram(h)
        out.append(b"\x30" + varint(zero_int))
    elif zero_float is not None:
        if type(zero_float) is not float:
            return _generic_histogram(h)
        out.append(_pack_tagged_double(0x39, zero_float))
    for span_tag, spans, delta_tag, deltas, count_tag, counts in (
        (b"\x42", h.negative_spans, b"\x4a", h.negative_deltas, b"\x52", h.negative_counts),
        (b"\x5a", h.positive_spans, b"\x62", h.positive_deltas, b"\x6a", h.positive_counts),
    ):
        if spans and not _span_records(span_tag, spans, out):
            return _generic_histogram(h)
        if deltas:
            body = _packed_sint64(deltas)
            if body is None:
                return _generic_histogram(h)
            out.append(delta_tag + varint(len(body)) + body)
        if counts:
            body = _packed_doubles(counts)
            if body is None:
                return _generic_histogram(h)
            out.append(count_tag + varint(len(body)) + body)
    hint = h.reset_hint
    if type(hint) is _ResetHint:
        if hint:
            out.append(b"\x70" + varint(int(hint)))
    elif type(hint) is int and INT32_MIN <= hint <= INT32_MAX:
        if hint:
            out.append(b"\x70" + varint(hint & MASK64))  # negative: 10 bytes, as int32 is
    else:
        return _generic_histogram(h)
    ts = h.timestamp
    if type(ts) is not int or not INT64_MIN <= ts <= INT64_MAX:
        return _generic_histogram(h)
    if ts:
        out.append(b"\x78" + varint(ts & MASK64))
    if h.custom_values:
        body = _packed_doubles(h.custom_values)
        if body is None:
            return _generic_histogram(h)
        out.append(b"\x82\x01" + varint(len(body)) + body)
    return b"".join(out)


def _timeseries(ts: m.TimeSeries) -> bytes:
    out = [_label_record(label) for label in ts.labels]
    _sample_records(ts.samples, out)
    for e in ts.exemplars:
        body = _exemplar(e)
        out.append(b"\x1a" + varint(len(body)) + body)
    for h in ts.histograms:
        if type(h) is not _Histogram:
            raise EncodeError(f"histograms: cannot encode {type(h).__name__} as Histogram")
        body = _histogram(h)
        out.append(b"\x22" + varint(len(body)) + body)
    return b"".join(out)


_generic_metadata = _make_generic(m.MetricMetadata)
_metadata_bodies: dict[tuple[Any, str, str, str], bytes] = {}
_METADATA_BODY_CAP = 4096
_METADATA_CACHE_BYTES = 8 * 1024 * 1024
_metadata_bytes = [0]


def _metadata(md: m.MetricMetadata) -> bytes:
    """Encode a MetricMetadata, cached by its four values (they repeat every interval)."""
    if type(md) is not m.MetricMetadata:
        raise EncodeError(f"metadata: cannot encode {type(md).__name__} as MetricMetadata")
    t = md.type
    if type(t) is not int and type(t) is not m.MetricType:  # no bool/float look-alikes
        return _generic_metadata(md)
    key = (t, md.metric_family_name, md.help, md.unit)
    body = _metadata_bodies.get(key)
    if body is None:
        body = _generic_metadata(md)
        if len(body) <= _METADATA_BODY_CAP:  # a long help text is not kept
            # the body and the key's strings (at most 4 bytes a character)
            cost = _ENTRY_OVERHEAD + 5 * len(body)
            _charge(_metadata_bytes, cost, _METADATA_CACHE_BYTES, _metadata_bodies)
            _metadata_bodies[key] = body
    return body


_ENCODERS[m.MetricMetadata] = _metadata
_ENCODERS[m.Exemplar] = _exemplar
_ENCODERS[m.TimeSeries] = _timeseries
_ENCODERS[m.Sample] = _sample
_ENCODERS[m.Histogram] = _histogram


# ------------------------------------------------------------------------ public entry


def encode(message: Any) -> bytes:
    """Encode a promwire message to protobuf bytes (uncompressed).

    The bytes equal what protobuf's own serializer produces for the same
    content. Raises :class:`~promwire.errors.EncodeError` for values a field
    cannot carry (wrong type, out of range, both members of a oneof).
    """
    fn = _encoder_for(type(message))
    try:
        return fn(message)
    except EncodeError:
        raise
    except (TypeError, struct.error, OverflowError, AttributeError) as exc:
        raise EncodeError(f"{type(message).__name__}: cannot encode: {exc}") from None
