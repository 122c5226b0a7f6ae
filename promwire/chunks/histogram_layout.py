"""What integer and float histogram chunks share: header, layout, bucket sets.

A histogram chunk starts with three bytes::

    bytes 0-1   sample count, uint16 big-endian
    byte 2      counter-reset header in the top two bits, the rest zero:
                00 unknown, 01 not a counter reset, 10 counter reset, 11 gauge

The bit stream that follows begins with the chunk's *layout*, written once
(``histogram_meta.go``): the zero threshold (one byte ``0`` for 0; one byte
``exp + 243`` for a power of two ``0.5 * 2**exp`` with -242 <= exp <= 11; else
the byte 255 and the 64 bits of the float), the schema (varbit int), then the
positive and the negative spans, each as a varbit uint count followed by
``length`` (varbit uint) and ``offset`` (varbit int) per span. Every sample of
the chunk has this layout; a histogram whose buckets differ has to be
expanded to it (new buckets appearing: the chunk is *recoded*) or start a new
chunk (see :mod:`promwire.chunks.histogram_cut`).

This module also holds the bucket-set arithmetic Prometheus' appenders use
(``expandSpansForward``, ``expandSpansBothWays``, ``insert``) and the
counter-reset hint a decoded sample gets from the header and its position.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence

from ..codec import messages as m
from ..errors import DecodeError, EncodeError
from .bitstream import BitReader, BitWriter

__all__ = [
    "STALE_NAN_BITS",
    "CounterResetHeader",
    "Layout",
    "bucket_count",
    "bucket_indices",
    "check_layout",
    "chunk_header",
    "expand_both_ways",
    "expand_forward",
    "header_for_hint",
    "hint_at",
    "insert_buckets",
    "read_layout",
    "write_layout",
]

#: Prometheus' stale marker, a NaN with this exact bit pattern.
STALE_NAN_BITS = 0x7FF0000000000002
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_MAX_UINT32 = (1 << 32) - 1


class CounterResetHeader(enum.IntEnum):
    """The top two bits of a histogram chunk's third byte."""

    UNKNOWN = 0b00
    NOT_COUNTER_RESET = 0b01
    COUNTER_RESET = 0b10
    GAUGE = 0b11


def chunk_header(data: bytes | bytearray | memoryview) -> CounterResetHeader:
    """The counter-reset header of a histogram chunk (its third byte)."""
    if len(data) < 3:
        raise DecodeError("histogram chunk shorter than its 3-byte header")
    return CounterResetHeader(data[2] >> 6)


def header_for_hint(hint: int) -> CounterResetHeader:
    """The header a chunk gets when its first sample carries ``hint``."""
    if hint == m.ResetHint.YES:
        return CounterResetHeader.COUNTER_RESET
    if hint == m.ResetHint.NO:
        return CounterResetHeader.NOT_COUNTER_RESET
    if hint == m.ResetHint.GAUGE:
        return CounterResetHeader.GAUGE
    return CounterResetHeader.UNKNOWN


def hint_at(header: CounterResetHeader, index: int) -> m.ResetHint:
    """The reset hint Prometheus reports for sample ``index`` (0-based) of a chunk.

    Gauge chunks: GAUGE. Later samples of a counter chunk: NO (a reset always
    cuts a chunk). The first sample: YES after a counter reset, otherwise
    UNKNOWN - even under a "not a counter reset" header, since the previous
    chunk may be gone.
    """
    if header == CounterResetHeader.GAUGE:
        return m.ResetHint.GAUGE
    if index > 0:
        return m.ResetHint.NO
    if header == CounterResetHeader.COUNTER_RESET:
        return m.ResetHint.YES
    return m.ResetHint.UNKNOWN


# ----------------------------------------------------------------------------- layout


class Layout:
    """Schema, zero threshold and spans of a chunk (shared by all its samples)."""

    __slots__ = ("negative_spans", "positive_spans", "schema", "zero_threshold")

    def __init__(
        self,
        schema: int,
        zero_threshold: float,
        positive_spans: list[m.BucketSpan],
        negative_spans: list[m.BucketSpan],
    ) -> None:
        self.schema = schema
        self.zero_threshold = zero_threshold
        self.positive_spans = positive_spans
        self.negative_spans = negative_spans

    @classmethod
    def of(cls, h: m.Histogram) -> Layout:
        return cls(h.schema, h.zero_threshold, list(h.positive_spans), list(h.negative_spans))


def _float_bits(v: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", v))[0])


def _bits_float(b: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", b))[0])


def _check_spans(spans: Sequence[m.BucketSpan], side: str) -> None:
    for s in spans:
        if (
            not isinstance(s, m.BucketSpan)
            or not isinstance(s.offset, int)
            or not isinstance(s.length, int)
            or not _INT32_MIN <= s.offset <= _INT32_MAX
            or not 0 <= s.length <= _MAX_UINT32
        ):
            raise EncodeError(f"{side} span {s!r} out of range (int32 offset, uint32 length)")


def write_layout(w: BitWriter, layout: Layout) -> None:
    """``writeHistogramChunkLayout``."""
    if not isinstance(layout.schema, int) or not _INT32_MIN <= layout.schema <= _INT32_MAX:
        raise EncodeError(f"histogram schema {layout.schema} out of int32 range")
    _check_spans(layout.positive_spans, "positive")
    _check_spans(layout.negative_spans, "negative")
    zt = layout.zero_threshold
    try:
        zt = float(zt)
    except (TypeError, ValueError):
        raise EncodeError(f"zero threshold {zt!r} is not a float") from None
    if zt == 0:
        w.write(0, 8)
    else:
        frac, exp = math.frexp(zt)
        if frac != 0.5 or not -242 <= exp <= 11:
            w.write((0xFF << 64) | _float_bits(zt), 72)
        else:
            w.write(exp + 243, 8)
    w.varbit_int(layout.schema)
    for spans in (layout.positive_spans, layout.negative_spans):
        w.varbit_uint(len(spans))
        for s in spans:
            w.varbit_uint(s.length)
            w.varbit_int(s.offset)


def _read_spans(r: BitReader) -> list[m.BucketSpan]:
    n = r.varbit_uint()
    if n > r.size - r.pos:  # every span takes at least two bits
        raise DecodeError("truncated histogram chunk (spans)")
    spans = []
    for _ in range(n):
        length = r.varbit_uint() & _MAX_UINT32  # Go keeps uint32(length)
        offset = r.varbit_int()
        offset = ((offset - _INT32_MIN) & 0xFFFFFFFF) + _INT32_MIN  # and int32(offset)
        spans.append(m.BucketSpan(offset=offset, length=length))
    return spans


def read_layout(r: BitReader) -> Layout:
    """``readHistogramChunkLayout``."""
    b = r.bits(8)
    if b == 0:
        zt = 0.0
    elif b == 255:
        zt = _bits_float(r.bits(64))
    else:
        zt = math.ldexp(0.5, b - 243)
    schema = r.varbit_int()
    schema = ((schema - _INT32_MIN) & 0xFFFFFFFF) + _INT32_MIN  # int32(v)
    positive = _read_spans(r)
    negative = _read_spans(r)
    if r.pos > r.size:
        raise DecodeError("truncated histogram chunk (layout)")
    return Layout(schema, zt, positive, negative)


# ----------------------------------------------------------------------------- bucket sets


def bucket_indices(spans: Sequence[m.BucketSpan]) -> list[int]:
    """The bucket indices ``spans`` cover, in order (``bucketIterator``).

    Callers bound the total span length first (it is the bucket count).
    """
    out: list[int] = []
    if not spans:
        return out
    idx = spans[0].offset - 1
    for i, s in enumerate(spans):
        if i == 0:
            out.extend(range(idx + 1, idx + 1 + s.length))
            idx += s.length
            continue
        idx += s.offset + 1
        if s.length == 0:
            idx -= 1
            continue
        out.extend(range(idx, idx + s.length))
        idx += s.length - 1
    return out


def expand_forward(
    old: Sequence[m.BucketSpan], new: Sequence[m.BucketSpan]
) -> list[tuple[int, int]] | None:
    """``expandSpansForward``: the ``(pos, num)`` inserts turning ``old``'s
    buckets into ``new``'s, or None when ``new`` lacks a bucket of ``old``."""
    a = bucket_indices(old)
    b = bucket_indices(new)
    inserts: list[tuple[int, int]] = []
    pos = num = 0
    i = j = 0
    while i < len(a) or j < len(b):
        if i < len(a) and j < len(b):
            if a[i] == b[j]:
                if num:
                    inserts.append((pos, num))
                num = 0
                i += 1
                j += 1
                pos += 1
            elif a[i] < b[j]:
                return None
            else:
                num += 1
                j += 1
        elif i < len(a):
            return None
        else:
            num += 1
            j += 1
    if num:
        inserts.append((pos, num))
    return inserts


def expand_both_ways(
    old: Sequence[m.BucketSpan], new: Sequence[m.BucketSpan]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[m.BucketSpan]]:
    """``expandSpansBothWays``: forward inserts, backward inserts, merged spans."""
    a = bucket_indices(old)
    b = bucket_indices(new)
    fwd: list[tuple[int, int]] = []
    bwd: list[tuple[int, int]] = []
    merged: list[m.BucketSpan] = []
    last = 0

    def add(bucket: int) -> None:
        nonlocal last
        offset = bucket - last - 1
        if offset == 0 and merged:
            merged[-1] = m.BucketSpan(offset=merged[-1].offset, length=merged[-1].length + 1)
        else:
            if not merged:
                offset += 1
            merged.append(m.BucketSpan(offset=offset, length=1))
        last = bucket

    fpos = fnum = bpos = bnum = 0
    i = j = 0
    while i < len(a) or j < len(b):
        if i < len(a) and j < len(b) and a[i] == b[j]:
            if fnum:
                fwd.append((fpos, fnum))
                fnum = 0
            if bnum:
                bwd.append((bpos, bnum))
                bnum = 0
            add(a[i])
            i += 1
            j += 1
            fpos += 1
            bpos += 1
        elif j >= len(b) or (i < len(a) and a[i] < b[j]):
            bnum += 1
            if fnum:
                fwd.append((fpos, fnum))
                fnum = 0
            add(a[i])
            fpos += 1
            i += 1
        else:
            fnum += 1
            if bnum:
                bwd.append((bpos, bnum))
                bnum = 0
            add(b[j])
            bpos += 1
            j += 1
    if fnum:
        fwd.append((fpos, fnum))
    if bnum:
        bwd.append((bpos, bnum))
    return fwd, bwd, merged


def insert_buckets(
    values: Sequence[int] | Sequence[float],
    inserts: Sequence[tuple[int, int]],
    *,
    deltas: bool,
) -> list[int | float]:
    """``insert``: add empty buckets at ``inserts`` (``(pos, num)``) to ``values``.

    With ``deltas`` the values are delta-encoded (integer histograms): an
    inserted bucket is ``-previous`` so its count is 0, and the bucket after it
    absorbs the difference.
    """
    out: list[int | float] = []
    last: int | float = 0
    empty: int | float = 0 if deltas else 0.0
    k = 0
    for i, d in enumerate(values):
        if k < len(inserts) and i == inserts[k][0]:
            num = inserts[k][1]
            out.append(-last if deltas else empty)
            out.extend([empty] * (num - 1))
            k += 1
            out.append(d + last if deltas else d)
            last = d + last
            continue
        out.append(d)
        last += d
    if k == len(inserts) - 1:
        out.append(-last if deltas else empty)
        out.extend([empty] * (inserts[k][1] - 1))
    elif k != len(inserts):
        raise EncodeError("bucket inserts beyond the buckets")
    return out


def check_layout(h: m.Histogram, layout: Layout, npos: int, nneg: int, index: int) -> None:
    """Raise :class:`EncodeError` unless ``h`` has exactly the chunk's layout."""
    if h.schema != layout.schema:
        raise EncodeError(f"histogram {index}: schema {h.schema} differs from the chunk's")
    if h.zero_threshold != layout.zero_threshold and not (
        h.zero_threshold != h.zero_threshold and layout.zero_threshold != layout.zero_threshold
    ):
        raise EncodeError(f"histogram {index}: zero threshold differs from the chunk's")
    for spans, chunk_spans, buckets, n, side in (
        (
            h.positive_spans,
            layout.positive_spans,
            h.positive_counts if h.is_float else h.positive_deltas,
            npos,
            "positive",
        ),
        (
            h.negative_spans,
            layout.negative_spans,
            h.negative_counts if h.is_float else h.negative_deltas,
            nneg,
            "negative",
        ),
    ):
        if len(buckets) != n:
            raise EncodeError(
                f"histogram {index}: {len(buckets)} {side} buckets, the chunk's layout has {n}"
            )
        if spans == chunk_spans:
            continue
        if bucket_count(spans, buckets, side) != n or bucket_indices(spans) != bucket_indices(
            chunk_spans
        ):
            raise EncodeError(
                f"histogram {index}: {side} buckets differ from the chunk's layout "
                "(expand it first, or use cut_histogram_chunks)"
            )


def bucket_count(spans: Sequence[m.BucketSpan], buckets: Sequence[object], side: str) -> int:
    """The number of buckets ``spans`` cover; raises unless ``buckets`` has as many."""
    n = 0
    for s in spans:
        if not isinstance(s, m.BucketSpan):
            raise EncodeError(f"{side} span {s!r} is not a BucketSpan")
        if not isinstance(s.length, int) or not 0 <= s.length <= _MAX_UINT32:
            raise EncodeError(f"{side} span length {s.length!r} is not a uint32")
        if not isinstance(s.offset, int) or not _INT32_MIN <= s.offset <= _INT32_MAX:
            raise EncodeError(f"{side} span offset {s.offset!r} is not an int32")
        n += s.length
    if n != len(buckets):
        raise EncodeError(f"{side} spans need {n} buckets, the histogram has {len(buckets)}")
    return n
