"""Float native-histogram chunks (``FLOAT_HISTOGRAM``), bit-exact with Prometheus' TSDB.

Same header and layout as integer chunks
(:mod:`promwire.chunks.histogram_layout`); each sample is::

    sample 0    t: varbit int, count, zero count, sum: 64 raw bits each,
                each bucket count (positive, then negative): 64 raw bits
    sample n>0  t: varbit int delta-of-delta,
                count, zero count, sum, each bucket: XOR against its previous value

Every XOR-coded field (count, zero count, sum and each bucket) keeps its own
(leading, trailing) window. Bucket counts are absolute (``positive_counts``
/ ``negative_counts``). A stale marker writes a count and zero count of 0 and
no buckets; only stale markers may follow it in a chunk. Values keep their
exact bits (NaN payloads included).

Public API: :func:`encode_float_histogram_chunk`, :func:`decode_float_histogram_chunk`.
Errors: :class:`~promwire.errors.DecodeError`, :class:`~promwire.errors.EncodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..codec import messages as m
from ..errors import DecodeError, EncodeError
from .bitstream import NO_WINDOW, BitReader, BitWriter, varbit_int_at, xor_fields
from .histogram_layout import (
    STALE_NAN_BITS,
    CounterResetHeader,
    Layout,
    bucket_count,
    check_layout,
    header_for_hint,
    hint_at,
    read_layout,
    write_layout,
)

__all__ = ["decode_float_histogram_chunk", "encode_float_histogram_chunk"]

_MAX_SAMPLES = 0xFFFF
MASK64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _i64(v: int) -> int:
    if _INT64_MIN <= v <= _INT64_MAX:
        return v
    return ((v - _INT64_MIN) & MASK64) + _INT64_MIN


def _to_bits(values: Sequence[float], what: str) -> list[int]:
    n = len(values)
    try:
        return list(struct.unpack(f"<{n}Q", struct.pack(f"<{n}d", *values)))
    except struct.error:
        raise EncodeError(f"{what} must be floats") from None


def _to_floats(bits: Sequence[int]) -> list[float]:
    n = len(bits)
    return list(struct.unpack(f"<{n}d", struct.pack(f"<{n}Q", *bits)))


def _spans_copy(spans: list[m.BucketSpan]) -> list[m.BucketSpan]:
    return [m.BucketSpan(s.offset, s.length) for s in spans]


def decode_float_histogram_chunk(data: bytes | bytearray | memoryview) -> list[m.Histogram]:
    """Decode a ``FLOAT_HISTOGRAM`` chunk into float :class:`~promwire.codec.messages.Histogram` s.

    Reset hints and stale markers as in
    :func:`~promwire.chunks.histogram.decode_histogram_chunk`. Raises
    :class:`DecodeError` for a truncated or corrupt chunk.
    """
    data = bytes(data)
    if len(data) < 3:
        raise DecodeError("histogram chunk shorter than its 3-byte header")
    count = (data[0] << 8) | data[1]
    header = CounterResetHeader(data[2] >> 6)
    if count == 0:
        return []
    r = BitReader(data, 24)
    layout = read_layout(r)
    npos = sum(s.length for s in layout.positive_spans)
    nneg = sum(s.length for s in layout.negative_spans)
    nb = npos + nneg
    if nb * 64 > r.size - r.pos:  # the first sample takes 64 bits per bucket
        raise DecodeError("truncated float histogram chunk (more buckets than bits)")
    t = r.varbit_int()
    # Bit patterns: count, zero count, sum (``head``) and the buckets; the
    # windows of all of them side by side in ``leads``/``trails``.
    vals = [r.bits(64) for _ in range(3 + nb)]
    head = vals[:3]
    leads = [0] * (3 + nb)  # Go's iterator starts with zero windows
    trails = [0] * (3 + nb)
    t_delta = 0
    words = r.words
    p = r.pos
    size = r.size
    nspans = layout.negative_spans  # BucketSpan is frozen: lists share them safely
    pspans = layout.positive_spans
    hint_first = hint_at(header, 0)
    hint_later = hint_at(header, 1)
    out: list[m.Histogram] = []
    hist = m.Histogram
    try:
        for i in range(count):
            if i:
                dod, p = varbit_int_at(words, p)
                t_delta += dod
                t += t_delta
                # count, zero count, sum; the buckets unless this is a stale marker
                p = xor_fields(words, p, head, leads, trails, 0)
                if head[2] != STALE_NAN_BITS:
                    p = xor_fields(words, p, vals, leads, trails, 3)
            if p > size:
                raise DecodeError("truncated float histogram chunk")
            if head[2] == STALE_NAN_BITS:
                out.append(
                    hist(
                        count_float=0.0,
                        zero_count_float=0.0,
                        sum=_to_floats(head[2:3])[0],
                        timestamp=_i64(t),
                    )
                )
                continue
            vals[0:3] = head
            floats = _to_floats(vals)
            out.append(
                hist(
                    count_float=floats[0],
                    sum=floats[2],
                    schema=layout.schema,
                    zero_threshold=layout.zero_threshold,
                    zero_count_float=floats[1],
                    negative_spans=list(nspans),
                    negative_counts=floats[3 + npos :],
                    positive_spans=list(pspans),
                    positive_counts=floats[3 : 3 + npos],
                    reset_hint=hint_later if i else hint_first,
                    timestamp=_i64(t),
                )
            )
    except IndexError:
        raise DecodeError("truncated float histogram chunk") from None
    return out


def encode_float_histogram_chunk(
    histograms: Sequence[m.Histogram],
    *,
    header: CounterResetHeader | int | None = None,
    byte_sizes: list[int] | None = None,
    cut_bytes: int | None = None,
    cut_min: int = 1,
) -> bytes:
    """Encode float histograms (in time order) into one ``FLOAT_HISTOGRAM`` chunk.

    Byte-identical to Prometheus' appender; the same rules as
    :func:`~promwire.chunks.histogram.encode_histogram_chunk` (one layout per
    chunk, ``header`` from the first reset hint by default, at most 65535
    samples). ``byte_sizes``, when given, gets the chunk's
    length in bytes after each histogram (what Prometheus' head looks at
    before appending the next). ``cut_bytes`` and ``cut_min``: as there, the
    chunk ends after the first histogram that brings it to ``cut_bytes``.
    Raises :class:`EncodeError`.
    """
    n = len(histograms)
    if n > _MAX_SAMPLES:
        raise EncodeError(f"a histogram chunk holds at most {_MAX_SAMPLES} samples")
    if header is None:
        header = header_for_hint(int(histograms[0].reset_hint)) if n else 0
    if not 0 <= int(header) <= 3:
        raise EncodeError(f"counter-reset header {header!r} is not 0..3")
    if n == 0:
        return bytes((0, 0, int(header) << 6))

    w = BitWriter()
    stale = False
    layout = Layout(0, 0.0, [], [])
    npos = nneg = 0
    prev_t = 0
    t_delta = 0
    vals: list[int] = []
    leads: list[int] = []
    trails: list[int] = []
    for i, h in enumerate(histograms):
        if not isinstance(h, m.Histogram):
            raise EncodeError(f"histogram {i} is a {type(h).__name__}, not a Histogram")
        if h.count_int is not None or h.zero_count_int is not None or h.count_float is None:
            raise EncodeError(f"histogram {i} is an integer histogram: use encode_histogram_chunk")
        t = h.timestamp
        if not isinstance(t, int) or isinstance(t, bool) or not _INT64_MIN <= t <= _INT64_MAX:
            raise EncodeError(f"histogram {i}: timestamp {t!r} is not an int64")
        zc = h.zero_count_float if h.zero_count_float is not None else 0.0
        head3 = _to_bits([h.count_float, zc, h.sum], "histogram counts")
        if head3[2] == STALE_NAN_BITS:
            head3[0] = head3[1] = 0
            new = head3
        else:
            if stale:
                raise EncodeError(f"histogram {i}: only stale markers may follow a stale marker")
            buckets = _to_bits(h.positive_counts, "bucket counts") + _to_bits(
                h.negative_counts, "bucket counts"
            )
            new = head3 + buckets
        if i == 0:
            if head3[2] == STALE_NAN_BITS:
                stale = True
            else:
                layout = Layout.of(h)
                npos = bucket_count(layout.positive_spans, h.positive_counts, "positive")
                nneg = bucket_count(layout.negative_spans, h.negative_counts, "negative")
            write_layout(w, layout)
            w.varbit_int(t)
            for v in new:
                w.write(v, 64)
            vals = new
            leads = [NO_WINDOW] * len(new)
            trails = [0] * len(new)
        else:
            d = _i64(t - prev_t)
            w.varbit_int(_i64(d - t_delta))
            t_delta = d
            if head3[2] == STALE_NAN_BITS:
                stale = True
            else:
                check_layout(h, layout, npos, nneg, i)
            xor = w.xor
            for k, v in enumerate(new):
                leads[k], trails[k] = xor(v, vals[k], leads[k], trails[k])
                vals[k] = v
        prev_t = t
        if byte_sizes is not None:
            byte_sizes.append(3 + w.size())
        if cut_bytes is not None and i + 1 >= cut_min and 3 + w.size() >= cut_bytes:
            n = i + 1
            break
    return n.to_bytes(2, "big") + bytes((int(header) << 6,)) + w.getvalue()
