"""Decoding: protobuf bytes to promwire message objects.

``decode(cls, data)`` works for every message class in :data:`promwire.codec.fields.SCHEMAS`.
Two kinds of decoder sit behind it:

* a generic one that walks a message's field table (all messages; cold paths);
* hand-written hot paths for what dominates remote-write traffic: ``TimeSeries``
  (its label block and its samples), ``Label``, ``Exemplar`` and ``Histogram``
  (fields in number order). They produce exactly what the
  generic decoder produces (the tests hold them to it) and fall back to it for
  anything unusual.

Every decoder walks one ``bytes`` buffer with an integer cursor ``pos`` and the
end of the current (sub-)message ``end``: no sub-message is sliced out.
"""

from __future__ import annotations

import gc
import re
import struct
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from ..errors import DecodeError
from . import messages as m
from .decode_caches import (
    _blocks,
    _cap,
    _metadata_fields,
    _pairs,
    _spans,
    cache_info,
    clear_caches,
    remember_block,
    remember_metadata,
    remember_pair,
    remember_span,
    set_cache_limits,
)
from .fields import SCHEMAS, WIRE_TYPE, FieldSpec, Kind
from .wire import (
    INT64_MAX,
    LEN,
    MASK32,
    read_varint,
    skip_unknown,
    to_int32,
    to_int64,
    unpack_double,
    zigzag_decode,
)

__all__ = ["cache_info", "clear_caches", "decode", "decode_write_request", "set_cache_limits"]

T = TypeVar("T")
Decoder = Callable[[bytes, int, int], Any]

# ------------------------------------------------------------------------------ caches
#
# Label pairs repeat massively within a request, and Prometheus resends the same
# series every scrape: the decoder keeps labels, label blocks, spans and metadata
# keyed by raw wire bytes (promwire.codec.decode_caches: byte budgets, per-entry
# caps). Hits are plain dict lookups here; only a miss calls remember_*().

# ------------------------------------------------------------------ the generic decoder

_DECODERS: dict[type[Any], Decoder] = {}


def _decoder_for(cls: type[Any]) -> Decoder:
    fn = _DECODERS.get(cls)
    if fn is None:
        if cls not in SCHEMAS:
            raise TypeError(f"{cls!r} is not a promwire message class")
        fn = _make_generic(cls)
        _DECODERS[cls] = fn
    return fn


Reader = Callable[[bytes, int, int], tuple[Any, int]]
# Strings longer than this are decoded from a memoryview instead of a slice.
_BIG_STRING = 64 * 1024

# What a varint becomes, per kind (UINT64 stays as it is).
_VARINT_CONVERT: dict[Kind, Callable[[int], Any]] = {
    Kind.INT64: to_int64,
    Kind.UINT32: lambda v: v & MASK32,
    Kind.SINT64: zigzag_decode,
    Kind.SINT32: lambda v: zigzag_decode(v & MASK32),
    Kind.BOOL: lambda v: v != 0,
}


def _scalar_reader(spec: FieldSpec) -> Reader:
    """A function reading one element of a non-message field: ``(value, new_pos)``.

    Chosen once per field when a message's decoder is built, so the decode
    loop makes no decision on the field's kind.
    """
    kind = spec.kind
    name = spec.name
    if kind == Kind.DOUBLE:

        def read_double(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
            if pos + 8 > end:
                raise DecodeError(f"{name}: truncated double")
            return unpack_double(buf, pos)[0], pos + 8

        return read_double
    if kind == Kind.STRING or kind == Kind.BYTES:
        text = kind == Kind.STRING

        def read_len(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
            n, pos = read_varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError(f"{name}: length {n} runs past the end of its message")
            if not text:
                return buf[pos:stop], stop
            try:
                if n > _BIG_STRING:  # no intermediate copy of a long string's bytes
                    return str(memoryview(buf)[pos:stop], "utf-8"), stop
                return buf[pos:stop].decode("utf-8"), stop
            except UnicodeDecodeError:
                raise DecodeError(f"{name}: string is not valid UTF-8") from None

        return read_len
    if kind == Kind.ENUM:
        enum_cls = spec.enum

        def read_enum(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
            v, pos = read_varint(buf, pos)
            # int32 on the wire; a number this version does not know stays an int
            n32 = to_int32(v)
            try:
                return enum_cls(n32), pos
            except ValueError:
                return n32, pos

        return read_enum
    conv = _VARINT_CONVERT.get(kind, int)  # UINT64: the varint as it is

    def read_number(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
        v = buf[pos]
        if v < 0x80:  # one-byte varint: no loop
            return conv(v), pos + 1
        v, pos = read_varint(buf, pos)
        return conv(v), pos

    return read_number


def _make_generic(cls: type[Any]) -> Decoder:
    """Build a decoder for ``cls`` driven by its field table."""
    fields = SCHEMAS[cls]
    # tag value -> (spec, packed?, reader); repeated scalars accept both encodings.
    by_tag: dict[int, tuple[FieldSpec, bool, Reader | None]] = {}
    for spec in fields:
        reader = None if spec.kind == Kind.MESSAGE else _scalar_reader(spec)
        by_tag[(spec.number << 3) | WIRE_TYPE[spec.kind]] = (spec, False, reader)
        if spec.packed:
            by_tag[(spec.number << 3) | LEN] = (spec, True, reader)
    siblings = {
        spec.name: tuple(o.name for o in fields if o.oneof == spec.oneof and o is not spec)
        for spec in fields
        if spec.oneof
    }
    submessage = {spec.name: spec.message for spec in fields if spec.kind == Kind.MESSAGE}
    where = cls.__name__

    def decode_generic(buf: bytes, pos: int, end: int) -> Any:
        kw: dict[str, Any] = {}
        singular_msgs: dict[str, list[tuple[int, int]]] = {}
        while pos < end:
            t = buf[pos]
            if t < 0x80:
                pos += 1
            else:
                t, pos = read_varint(buf, pos)
            entry = by_tag.get(t)
            if entry is None:
                pos = skip_unknown(buf, pos, end, t, where)
                continue
            spec, packed, reader = entry
            name = spec.name
            if reader is None:  # a sub-message
                n = buf[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = read_varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError(f"{where}.{name}: length runs past the end")
                if spec.repeated:
                    value = _decoder_for(submessage[name])(buf, pos, stop)
                    lst = kw.get(name)
                    if lst is None:
                        kw[name] = [value]
                    else:
                        lst.append(value)
                else:
                    # A singular sub-message seen twice is merged, which is what
                    # parsing the concatenation of both occurrences gives.
                    singular_msgs.setdefault(name, []).append((pos, stop))
                pos = stop
            elif packed:
                n, pos = read_varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError(f"{where}.{name}: length runs past the end")
                lst = kw.setdefault(name, [])
                if spec.kind == Kind.DOUBLE and not n & 7:
                    # packed doubles: one struct call for the whole record
                    lst.extend(struct.unpack_from(f"<{n >> 3}d", buf, pos))
                    pos = stop
                while pos < stop:
                    value, pos = reader(buf, pos, stop)
                    lst.append(value)
                if pos != stop:
                    raise DecodeError(f"{where}.{name}: packed element runs past its record")
            else:
                value, pos = reader(buf, pos, end)
                if spec.repeated:
                    kw.setdefault(name, []).append(value)
                else:
                    kw[name] = value
                    if spec.oneof:
                        for other in siblings[name]:
                            kw.pop(other, None)
        if pos != end:
            raise DecodeError(f"{where}: last field runs past the end of the message")
        for name, ranges in singular_msgs.items():
            sub = _decoder_for(submessage[name])
            if len(ranges) == 1:
                kw[name] = sub(buf, ranges[0][0], ranges[0][1])
            else:
                joined = b"".join(buf[a:b] for a, b in ranges)
                kw[name] = sub(joined, 0, len(joined))
        return cls(**kw)

    decode_generic.__name__ = f"decode_{where}"
    return decode_generic


# ---------------------------------------------------------------------- the hot paths

# Timestamps in milliseconds since 1970 are 6-byte varints (2**35 <= t < 2**42).
# Read as three little-endian uint16, each pair of varint bytes maps to its 14
# payload bits through one table lookup: two bytes per lookup instead of a
# shift-and-mask loop per byte. (The table holds 65,536 references to 16,384
# small ints, about 1 MB; it is built on first use.)
_pair_table: list[int] = []


def _varint_pairs() -> list[int]:
    if not _pair_table:
        values = list(range(1 << 14))
        table = [values[(h & 0x7F) | ((h >> 1) & 0x3F80)] for h in range(1 << 16)]
        # Published by one slice assignment (atomic under the GIL): a thread that
        # sees the table non-empty sees all of it, never a half-built one.
        _pair_table[:] = table
    return _pair_table


# One fixed-shape sample record: 12 10 | 09 <double> | 10 <6-byte varint>.
_SAMPLE18 = struct.Struct("<3xdx3H")
_unpack_sample18 = _SAMPLE18.unpack_from
_iter_samples18 = _SAMPLE18.iter_unpack
# A 6-byte varint timestamp alone (the sample of value 0: 12 07 | 10 <varint>).
_unpack_ts6 = struct.Struct("<3H").unpack_from
# A run of two or more such records, continuation bits checked (in C) by the pattern.
_SAMPLE18_RUN = re.compile(rb"(?:\x12\x10\x09.{8}\x10[\x80-\xff]{5}[\x00-\x7f]){2,}", re.S).match

_generic_label = _make_generic(m.Label)
_generic_sample = _make_generic(m.Sample)
Sample = m.Sample
TimeSeries = m.TimeSeries


_new = object.__new__
# Label is frozen: its __init__ goes through object.__setattr__ per field. The
# slot descriptors set the fields directly, which is what a decoder needs.
_set_name = m.Label.__dict__["name"].__set__
_set_value = m.Label.__dict__["value"].__set__


def _label_uncached(buf: bytes, pos: int, end: int) -> m.Label:
    """Decode a Label of the usual shape ``0a <n> name 12 <n> value``."""
    if end - pos >= 4 and buf[pos] == 0x0A and buf[pos + 1] < 0x80:
        a = pos + 2
        b = a + buf[pos + 1]
        if b + 2 <= end and buf[b] == 0x12 and buf[b + 1] < 0x80 and b + 2 + buf[b + 1] == end:
            try:
                name = buf[a:b].decode("utf-8")
                value = buf[b + 2 : end].decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("Label: string is not valid UTF-8") from None
            label: m.Label = _new(m.Label)
            _set_name(label, name)
            _set_value(label, value)
            return label
    result: m.Label = _generic_label(buf, pos, end)
    return result


def _label(buf: bytes, pos: int, end: int) -> m.Label:
    """Decode one Label, through the pair cache (unless too long to be cached)."""
    if end - pos > _cap["pairs"]:
        return _label_uncached(buf, pos, end)
    key = buf[pos:end]
    label = _pairs.get(key)
    if label is None:
        label = _label_uncached(buf, pos, end)
        remember_pair(key, label)
    return label


def _label_block(buf: bytes, pos: int, end: int, key: bytes | None) -> tuple[m.Label, ...]:
    """Decode a run of ``0a``-tagged Label records filling ``[pos, end)``.

    Called on a block cache miss; offers the block to the cache under ``key``
    (its bytes; ``None``: not to be cached), with the pairs it missed.
    """
    out = []
    pairs = _pairs
    pair_cap = _cap["pairs"]
    missed: list[tuple[bytes, m.Label]] | None = None
    while pos < end:
        pos += 1  # the 0a tag, checked by the caller's scan
        n = buf[pos]
        if n < 0x80:
            pos += 1
        else:
            n, pos = read_varint(buf, pos)
        stop = pos + n
        if n > pair_cap:  # never cached, so not looked up; nor is its block
            out.append(_label_uncached(buf, pos, stop))
            key = None
            pos = stop
            continue
        # the pair cache lookup of _label(), inlined: this loop runs per label
        pair = buf[pos:stop]
        label = pairs.get(pair)
        if label is None:
            label = _label_uncached(buf, pos, stop)
            if missed is None:
                missed = [(pair, label)]
            else:
                missed.append((pair, label))
        out.append(label)
        pos = stop
    block = tuple(out)
    remember_block(key, block, missed)
    return block


_generic_exemplar = _make_generic(m.Exemplar)


def _exemplar(buf: bytes, pos: int, end: int) -> m.Exemplar:
    """Decode an Exemplar of the usual shape (labels, then 11 <double>, 18 <varint>).

    Anything else (unknown fields, wide tags, a repeated scalar) is left to
    the generic decoder, which starts over on the whole message.
    """
    start = pos
    labels: list[m.Label] = []
    value = 0.0
    timestamp = 0
    while pos < end:
        t = buf[pos]
        if t == 0x0A:
            n = buf[pos + 1]
            if n >= 0x80:
                return _generic_exemplar(buf, start, end)  # type: ignore[no-any-return]
            pos += 2
            stop = pos + n
            if stop > end:
                raise DecodeError("Exemplar.labels: length runs past the end")
            # Looked up but never added: exemplar labels are mostly trace ids,
            # each seen once, which would only push useful pairs out.
            label = _pairs.get(buf[pos:stop])
            labels.append(label if label is not None else _label_uncached(buf, pos, stop))
            pos = stop
        elif t == 0x11 and pos + 9 <= end:
            value = unpack_double(buf, pos + 1)[0]
            pos += 9
        elif t == 0x18:
            u, pos = read_varint(buf, pos + 1)
            timestamp = u - (1 << 64) if u > INT64_MAX else u
        else:
            return _generic_exemplar(buf, start, end)  # type: ignore[no-any-return]
    if pos != end:
        raise DecodeError("Exemplar: last field runs past the end of the message")
    return m.Exemplar(labels, value, timestamp)


def _timeseries(buf: bytes, pos: int, end: int) -> m.TimeSeries:
    """Decode a TimeSeries; the label block and plain samples take fast paths."""
    labels: list[m.Label] = []
    samples: list[m.Sample] = []
    exemplars: list[m.Exemplar] = []
    histograms: list[m.Histogram] = []

    # Labels come first and together (Prometheus always sends them so): find
    # the run of 0a records and look the whole block up by its bytes.
    if pos < end and buf[pos] == 0x0A:
        p = pos
        while p < end and buf[p] == 0x0A:
            n = buf[p + 1]
            # 1-byte length fast path (labels are almost always < 128 bytes)
            if n < 0x80:
                p += 2 + n
            else:
                n, p = read_varint(buf, p + 1)
                p += n
        if p > end:
            raise DecodeError("TimeSeries.labels: length runs past the end")
        if p - pos <= _cap["blocks"]:
            key = buf[pos:p]
            block = _blocks.get(key)
            if block is None:
                block = _label_block(buf, pos, p, key)
            labels = list(block)
        else:  # too long to be cached: not looked up either (no copy of it as a key)
            labels = list(_label_block(buf, pos, p, None))
        pos = p

    while pos < end:
        t = buf[pos]
        pos += 1
        if t == 0x12 or t == 0x0A or t == 0x1A or t == 0x22:
            n = buf[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = read_varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError("TimeSeries: length runs past the end")
            if t == 0x12:
                if n == 16 and stop < end and buf[stop] == 0x12 and buf[pos] == 0x09:
                    run = _SAMPLE18_RUN(buf, pos - 2, end)
                    if run is not None:
                        # Many samples of the same 18-byte shape: unpack them all
                        # with one struct format, no per-byte work in Python.
                        t14 = _pair_table or _varint_pairs()
                        samples.extend(
                            [
                                Sample(v, t14[a] | t14[b] << 14 | t14[c] << 28)
                                for v, a, b, c in _iter_samples18(buf[pos - 2 : run.end()])
                            ]
                        )
                        pos = run.end()
                        continue
                if n == 7 and buf[pos] == 0x10:
                    a, b, c = _unpack_ts6(buf, pos + 1)
                    if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                        t14 = _pair_table or _varint_pairs()
                        samples.append(Sample(0.0, t14[a] | t14[b] << 14 | t14[c] << 28))
                        pos = stop
                        continue
                if n == 16 and buf[pos] == 0x09 and buf[pos + 9] == 0x10:
                    v, a, b, c = _unpack_sample18(buf, pos - 2)
                    if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                        t14 = _pair_table or _varint_pairs()
                        samples.append(Sample(v, t14[a] | t14[b] << 14 | t14[c] << 28))
                        pos = stop
                        continue
                # Fast path for the shape every sender uses, any varint length:
                #   09 <8-byte double> 10 <varint timestamp>
                if n >= 11 and buf[pos] == 0x09 and buf[pos + 9] == 0x10:
                    p = pos + 10
                    b = buf[p]
                    ts = b & 0x7F
                    shift = 7
                    p += 1
                    while b >= 0x80 and shift < 70:
                        b = buf[p]
                        ts |= (b & 0x7F) << shift
                        shift += 7
                        p += 1
                    if p == stop and b < 0x80:
                        if ts > INT64_MAX:
                            ts = to_int64(ts & ((1 << 64) - 1))
                        samples.append(Sample(unpack_double(buf, pos + 1)[0], ts))
                        pos = stop
                        continue
                samples.append(_generic_sample(buf, pos, stop))
            elif t == 0x0A:
                labels.append(_label(buf, pos, stop))
            elif t == 0x1A:
                exemplars.append(_exemplar(buf, pos, stop))
            else:
                histograms.append(_histogram(buf, pos, stop))
            pos = stop
        else:
            if t >= 0x80:
                t, pos = read_varint(buf, pos - 1)
            pos = skip_unknown(buf, pos, end, t, "TimeSeries")
    if pos != end:
        raise DecodeError("TimeSeries: last field runs past the end of the message")
    return m.TimeSeries(labels, samples, exemplars, histograms)


_generic_write_request = _make_generic(m.WriteRequest)


def _write_request_sized(
    buf: bytes, pos: int, end: int, unchecked: list[int] | None = None
) -> tuple[m.WriteRequest, int]:
    """Decode a WriteRequest: a loop over ``0a``-tagged TimeSeries records.

    Also returns the size of the largest TimeSeries record: no label of the
    request is longer, which lets a receiver skip its label-length check.
    The index of every series whose labels are not one cached label block
    (a block is only cached when it is a valid label set) is appended to
    ``unchecked``: only those need a receiver's label-set check.
    """
    series: list[m.TimeSeries] = []
    biggest = 0
    if unchecked is None:
        unchecked = []
    while pos < end and buf[pos] == 0x0A:
        n = buf[pos + 1]
        if n < 0x80:
            pos += 2
        elif buf[pos + 2] < 0x80:  # series of 128 bytes to 16 KiB: a 2-byte length
            n = (n & 0x7F) | (buf[pos + 2] << 7)
            pos += 3
        else:
            # 16 KiB or more: many samples or long labels, not the one-sample
            # shapes below (whose lookups would copy the whole record)
            n, pos = read_varint(buf, pos + 1)
            stop = pos + n
            if stop > end:
                raise DecodeError("WriteRequest.timeseries: length runs past the end")
            if n > biggest:
                biggest = n
            unchecked.append(len(series))
            series.append(_timeseries(buf, pos, stop))
            pos = stop
            continue
        stop = pos + n
        if stop > end:
            raise DecodeError("WriteRequest.timeseries: length runs past the end")
        if n > biggest:
            biggest = n
        # Prometheus sends one sample per series, last, in 18 bytes:
        #   12 10 | 09 <8-byte double> | 10 <6-byte varint timestamp>
        # If the bytes before it are a label block we have seen, that block is
        # the whole label run (a cached block is a complete run of Label
        # records), so the series is decoded without scanning its labels.
        s0 = stop - 18
        if s0 > pos and buf[s0] == 0x12 and buf[s0 + 1] == 0x10:
            block = _blocks.get(buf[pos:s0])
            if block is not None and buf[s0 + 2] == 0x09 and buf[s0 + 11] == 0x10:
                v, a, b, c = _unpack_sample18(buf, s0)
                # continuation bit set on the first five varint bytes, clear on the sixth
                if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                    t14 = _pair_table or _varint_pairs()
                    series.append(
                        TimeSeries(
                            list(block), [Sample(v, t14[a] | t14[b] << 14 | t14[c] << 28)], [], []
                        )
                    )
                    pos = stop
                    continue
        # The same for a sample whose value is 0 (left out on the wire):
        #   12 07 | 10 <6-byte varint timestamp>
        s0 = stop - 9
        if s0 > pos and buf[s0] == 0x12 and buf[s0 + 1] == 0x07 and buf[s0 + 2] == 0x10:
            block = _blocks.get(buf[pos:s0])
            if block is not None:
                a, b, c = _unpack_ts6(buf, s0 + 3)
                if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                    t14 = _pair_table or _varint_pairs()
                    series.append(
                        TimeSeries(
                            list(block), [Sample(0.0, t14[a] | t14[b] << 14 | t14[c] << 28)], [], []
                        )
                    )
                    pos = stop
                    continue
        # A sample and then one exemplar (Prometheus with exemplar storage on):
        #   <labels> | 12 10 09 <8> 10 <6-byte varint> | 1a <n> <exemplar>
        # or an exemplar alone (Prometheus 2.42 sends those too). The exemplar
        # is the last record, so its 1-byte length must reach exactly to the
        # end of the series. Candidate positions come from bytes.find; a wrong
        # candidate is harmless: if the bytes before it are a cached label block
        # (a complete run of Label records) and the records after it check out,
        # they are the series' records, since records parse one way only.
        if stop - pos < 20 or (buf[stop - 18] == 0x12 and buf[stop - 17] == 0x10):
            # too short, or it ends with a sample (above, with a label block not cached)
            unchecked.append(len(series))
            series.append(_timeseries(buf, pos, stop))
            pos = stop
            continue
        s0 = buf.find(b"\x12\x10\x09", pos, stop)
        if s0 > pos and s0 + 20 <= stop:
            e0 = s0 + 18
            # (the length byte: < 0x80, since a longer varint would not end there)
            if buf[e0] == 0x1A and buf[e0 + 1] == stop - e0 - 2 < 0x80 and buf[s0 + 11] == 0x10:
                key = buf[pos:s0]
                block = _blocks.get(key)
                if block is None:
                    # Not cached (a cold start): the label run is scanned here
                    # as _timeseries would, and taken if it ends right at s0.
                    p = pos
                    while p < s0 and buf[p] == 0x0A:
                        n = buf[p + 1]
                        if n < 0x80:
                            p += 2 + n
                        else:
                            n, p = read_varint(buf, p + 1)
                            p += n
                    if p == s0:
                        block = _label_block(buf, pos, s0, key)
                        unchecked.append(len(series))
                if block is not None:
                    v, a, b, c = _unpack_sample18(buf, s0)
                    if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:
                        t14 = _pair_table or _varint_pairs()
                        series.append(
                            TimeSeries(
                                list(block),
                                [Sample(v, t14[a] | t14[b] << 14 | t14[c] << 28)],
                                [_exemplar(buf, e0 + 2, stop)],
                                [],
                            )
                        )
                        pos = stop
                        continue
        elif s0 < 0:
            # No sample at all: perhaps labels and one exemplar. A few 1a bytes inside
            # the labels are tried (lengths of 26), then the general decoder.
            e0 = buf.find(b"\x1a", pos + 1, stop - 1)
            block = None
            tries = 3
            while e0 > 0 and tries:
                if buf[e0 + 1] == stop - e0 - 2 < 0x80:
                    block = _blocks.get(buf[pos:e0])
                    if block is not None:
                        break
                e0 = buf.find(b"\x1a", e0 + 1, stop - 1)
                tries -= 1
            if block is not None:
                series.append(TimeSeries(list(block), [], [_exemplar(buf, e0 + 2, stop)], []))
                pos = stop
                continue
        unchecked.append(len(series))
        series.append(_timeseries(buf, pos, stop))
        pos = stop
    if pos == end:
        return m.WriteRequest(series, []), biggest
    # Metadata, unknown fields, or series after them: the generic decoder does
    # the rest, and the series decoded so far are kept in front.
    rest: m.WriteRequest = _generic_write_request(buf, pos, end)
    rest.timeseries[:0] = series
    unchecked.extend(range(len(series), len(rest.timeseries)))
    return rest, max(biggest, end - pos)


def _write_request(buf: bytes, pos: int, end: int) -> m.WriteRequest:
    return _write_request_sized(buf, pos, end)[0]


_generic_span = _make_generic(m.BucketSpan)


def _span(buf: bytes, pos: int, end: int) -> m.BucketSpan:
    """Decode a BucketSpan through a small cache (spans repeat across histograms)."""
    key = buf[pos:end]
    span = _spans.get(key)
    if span is None:
        span = _generic_span(buf, pos, end)
        remember_span(key, span)
    return span


_generic_histogram = _make_generic(m.Histogram)
Histogram = m.Histogram
# zigzag of every one-byte varint: packed sint64 deltas are mostly one byte each
_ZIGZAG7 = [zigzag_decode(b) for b in range(0x80)]
_RESET_HINTS: dict[int, m.ResetHint] = {int(h): h for h in m.ResetHint}
_unpack_from = struct.unpack_from


def _packed_sint64(buf: bytes, pos: int, stop: int) -> list[int] | None:
    """The zigzag varints filling ``[pos, stop)``, or None if the last one overruns."""
    chunk = buf[pos:stop]
    if chunk.isascii():  # every byte < 0x80: one varint per byte
        zz = _ZIGZAG7
        return [zz[b] for b in chunk]
    out = []
    while pos < stop:
        u = buf[pos]
        if u < 0x80:
            pos += 1
        else:
            u, pos = read_varint(buf, pos)
        out.append((u >> 1) ^ -(u & 1))
    return out if pos == stop else None


_Side = tuple[list[m.BucketSpan], list[int], list[float], int, int]


def _histogram_side(buf: bytes, pos: int, end: int, t: int, span_tag: int) -> _Side | None:
    """One side of a Histogram: spans, packed sint64 deltas, packed double counts.

    ``span_tag`` is the spans' tag (``42`` negative, ``5a`` positive); the
    deltas' and counts' tags follow 8 and 16 above it. ``t`` is the tag byte at
    ``pos`` (0 at the end). Returns the three lists and the new ``pos`` and
    ``t``, or ``None`` for a layout the generic decoder must handle.
    """
    spans: list[m.BucketSpan] = []
    deltas: list[int] = []
    counts: list[float] = []
    while t == span_tag:
        n = buf[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = read_varint(buf, pos + 1)
        stop = pos + n
        if stop > end:
            return None
        spans.append(_span(buf, pos, stop))
        pos = stop
        t = buf[pos] if pos < end else 0
    if t == span_tag + 8:  # deltas, packed sint64
        n = buf[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = read_varint(buf, pos + 1)
        stop = pos + n
        packed = _packed_sint64(buf, pos, stop) if stop <= end else None
        if packed is None:
            return None
        deltas = packed
        pos = stop
        t = buf[pos] if pos < end else 0
    if t == span_tag + 16:  # counts, packed double
        n = buf[pos + 1]
        if n < 0x80:
            pos += 2
        else:
            n, pos = read_varint(buf, pos + 1)
        if n & 7 or pos + n > end:
            return None
        counts = list(_unpack_from(f"<{n >> 3}d", buf, pos))
        pos += n
        t = buf[pos] if pos < end else 0
    return spans, deltas, counts, pos, t


def _histogram(buf: bytes, pos: int, end: int) -> m.Histogram:
    """Decode a Histogram whose fields come in field-number order, each at most once.

    That is how every protobuf encoder writes one. The fields are read in one
    pass down the field table: each step consumes its field if the next tag is
    that field's and moves on. Whatever is left at the end (unknown fields,
    fields out of order or repeated, unpacked repeated scalars, a field that
    runs past the end) sends the whole message to the generic decoder, which
    starts over and gives the answer or the error. The only repeated
    sub-message fields, the spans, may come several times in a row.
    """
    start = pos
    count_int: int | None = None
    count_float: float | None = None
    zero_count_int: int | None = None
    zero_count_float: float | None = None
    sum_ = zero_threshold = 0.0
    schema = timestamp = 0
    reset_hint: m.ResetHint | int = _RESET_HINTS[0]
    custom_values: list[float] = []
    # t is the tag byte at pos, 0 (no field's tag) at the end
    t = buf[pos] if pos < end else 0
    if t == 0x08:  # 1 count_int, uint64
        u = buf[pos + 1]
        if u < 0x80:
            pos += 2
        else:
            u, pos = read_varint(buf, pos + 1)
        count_int = u
        t = buf[pos] if pos < end else 0
    if t == 0x11 and pos + 9 <= end:  # 2 count_float; the oneof's last member wins
        count_float = unpack_double(buf, pos + 1)[0]
        count_int = None
        pos += 9
        t = buf[pos] if pos < end else 0
    if t == 0x19 and pos + 9 <= end:  # 3 sum
        sum_ = unpack_double(buf, pos + 1)[0]
        pos += 9
        t = buf[pos] if pos < end else 0
    if t == 0x20:  # 4 schema, sint32: zigzag of the low 32 bits
        u = buf[pos + 1]
        if u < 0x80:
            pos += 2
            schema = _ZIGZAG7[u]
        else:
            u, pos = read_varint(buf, pos + 1)
            schema = zigzag_decode(u & MASK32)
        t = buf[pos] if pos < end else 0
    if t == 0x29 and pos + 9 <= end:  # 5 zero_threshold
        zero_threshold = unpack_double(buf, pos + 1)[0]
        pos += 9
        t = buf[pos] if pos < end else 0
    if t == 0x30:  # 6 zero_count_int, uint64
        u = buf[pos + 1]
        if u < 0x80:
            pos += 2
        else:
            u, pos = read_varint(buf, pos + 1)
        zero_count_int = u
        t = buf[pos] if pos < end else 0
    if t == 0x39 and pos + 9 <= end:  # 7 zero_count_float
        zero_count_float = unpack_double(buf, pos + 1)[0]
        zero_count_int = None
        pos += 9
        t = buf[pos] if pos < end else 0
    side = _histogram_side(buf, pos, end, t, 0x42)  # 8-10: negative side
    if side is None:
        return _generic_histogram(buf, start, end)  # type: ignore[no-any-return]
    negative_spans, negative_deltas, negative_counts, pos, t = side
    side = _histogram_side(buf, pos, end, t, 0x5A)  # 11-13: positive side
    if side is None:
        return _generic_histogram(buf, start, end)  # type: ignore[no-any-return]
    positive_spans, positive_deltas, positive_counts, pos, t = side
    if t == 0x70:  # 14 reset_hint, enum: int32 on the wire, unknown numbers stay ints
        u = buf[pos + 1]
        if u < 0x80:
            pos += 2
        else:
            u, pos = read_varint(buf, pos + 1)
        hint = _RESET_HINTS.get(u)
        if hint is None:
            n32 = to_int32(u)
            reset_hint = _RESET_HINTS.get(n32, n32)
        else:
            reset_hint = hint
        t = buf[pos] if pos < end else 0
    if t == 0x78:  # 15 timestamp, int64
        if pos + 7 <= end:
            a, b, c = _unpack_ts6(buf, pos + 1)
            if (a & b & 0x8080) == 0x8080 and (c & 0x8080) == 0x0080:  # a 6-byte varint
                t14 = _pair_table or _varint_pairs()
                timestamp = t14[a] | t14[b] << 14 | t14[c] << 28
                pos += 7
            else:
                u, pos = read_varint(buf, pos + 1)
                timestamp = u - (1 << 64) if u > INT64_MAX else u
        else:
            u, pos = read_varint(buf, pos + 1)
            timestamp = u - (1 << 64) if u > INT64_MAX else u
        t = buf[pos] if pos < end else 0
    if t == 0x82 and pos + 2 < end and buf[pos + 1] == 0x01:  # 16 custom_values, packed double
        n = buf[pos + 2]
        if n < 0x80:
            pos += 3
        else:
            n, pos = read_varint(buf, pos + 2)
        if n & 7 or pos + n > end:
            return _generic_histogram(buf, start, end)  # type: ignore[no-any-return]
        custom_values = list(_unpack_from(f"<{n >> 3}d", buf, pos))
        pos += n
    if pos != end:
        return _generic_histogram(buf, start, end)  # type: ignore[no-any-return]
    return Histogram(
        count_int,
        count_float,
        sum_,
        schema,
        zero_threshold,
        zero_count_int,
        zero_count_float,
        negative_spans,
        negative_deltas,
        negative_counts,
        positive_spans,
        positive_deltas,
        positive_counts,
        reset_hint,
        timestamp,
        custom_values,
    )


_generic_metadata = _make_generic(m.MetricMetadata)


def _metadata(buf: bytes, pos: int, end: int) -> m.MetricMetadata:
    """Decode a MetricMetadata; Prometheus resends the same ones every interval.

    The cache holds field values, not objects (MetricMetadata is mutable):
    a hit builds a fresh object without decoding.
    """
    key = buf[pos:end]
    fields = _metadata_fields.get(key)
    if fields is None:
        md: m.MetricMetadata = _generic_metadata(buf, pos, end)
        remember_metadata(key, (md.type, md.metric_family_name, md.help, md.unit))
        return md
    return m.MetricMetadata(*fields)


_DECODERS[m.MetricMetadata] = _metadata
_DECODERS[m.BucketSpan] = _span
_DECODERS[m.Histogram] = _histogram
_DECODERS[m.Label] = _label
_DECODERS[m.Exemplar] = _exemplar
_DECODERS[m.TimeSeries] = _timeseries
_DECODERS[m.WriteRequest] = _write_request


# ------------------------------------------------------------------------ public entry

_GC_PAUSE_THRESHOLD = 64 * 1024


def _run(fn: Decoder, name: str, data: bytes | bytearray | memoryview) -> Any:
    buf = data if type(data) is bytes else bytes(data)
    # A large message makes tens of thousands of small objects, none of which
    # can form a reference cycle; letting the cyclic GC scan the heap again and
    # again meanwhile doubles the decode time of a 10,000-series batch. Pause it
    # (unless the program already has) for the duration of a large decode.
    pause_gc = len(buf) >= _GC_PAUSE_THRESHOLD and gc.isenabled()
    if pause_gc:
        gc.disable()
    try:
        return fn(buf, 0, len(buf))
    except (IndexError, struct.error):
        raise DecodeError(f"{name}: truncated message") from None
    finally:
        if pause_gc:
            gc.enable()


def decode(cls: type[T], data: bytes | bytearray | memoryview) -> T:
    """Decode ``data`` (uncompressed protobuf) as a message of class ``cls``.

    Raises :class:`~promwire.errors.DecodeError` for anything that is not a
    valid encoding: truncation, over-long varints, lengths past the end, wire
    types 3/4/6/7, field number 0 or above 2**29-1, invalid UTF-8. Unknown
    fields are skipped.
    """
    result: T = _run(_decoder_for(cls), cls.__name__, data)
    return result


def decode_write_request(
    data: bytes | bytearray | memoryview, *, unchecked: list[int] | None = None
) -> tuple[m.WriteRequest, int]:
    """``decode(WriteRequest, data)``, plus the byte size of its largest TimeSeries.

    No label name or value of the request is longer than that size, so a
    receiver enforcing a label-length limit needs to look at labels only
    when it exceeds the limit. When a list is passed as ``unchecked``, the
    indexes of the series whose label sets still need a validity check
    (:func:`promwire.codec.labelset.label_set_problem`) are appended to it;
    the others are label blocks the decoder has seen valid before.
    """
    result: tuple[m.WriteRequest, int] = _run(
        partial(_write_request_sized, unchecked=unchecked), "WriteRequest", data
    )
    return result
