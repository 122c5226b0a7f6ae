"""Integer native-histogram chunks (``HISTOGRAM``), bit-exact with Prometheus' TSDB.

After the 3-byte header and the layout (:mod:`promwire.chunks.histogram_layout`),
each sample is written as (varbit = :mod:`promwire.chunks.bitstream`)::

    sample 0    t: varbit int, count: varbit uint, zero count: varbit uint,
                sum: 64 raw bits, each bucket (positive, then negative): varbit int
    sample n>0  t, count, zero count: varbit int delta-of-delta each,
                sum: XOR against the previous sum,
                each bucket: varbit int delta-of-delta

Buckets are the delta-encoded bucket counts of the ``Histogram`` message
(``positive_deltas``/``negative_deltas``); the chunk stores how each of them
changes over time, as a delta of deltas. The "delta" of sample 1 is the delta
of deltas against 0, so it needs no special case. A stale marker (a sum with
the stale NaN bits) writes zero count and zero-count dods and no buckets; only
stale markers may follow it in a chunk.

Arithmetic follows Go's wrapping int64/uint64 rules: the encoder reduces each
delta to int64 before picking its varbit width, the decoder sums with Python
integers and reduces the results (equal modulo 2**64).

Public API: :func:`encode_histogram_chunk`, :func:`decode_histogram_chunk`.
Errors: :class:`~promwire.errors.DecodeError`, :class:`~promwire.errors.EncodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ..codec import messages as m
from ..errors import DecodeError, EncodeError
from .bitstream import NO_WINDOW, BitReader, BitWriter, add_varbit_dods, varbit_int_at
from .histogram_fast import decode_fast
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

__all__ = ["MAX_HISTOGRAMS_PER_CHUNK", "decode_histogram_chunk", "encode_histogram_chunk"]

#: The sample count header is a uint16.
MAX_HISTOGRAMS_PER_CHUNK = 0xFFFF

MASK64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _i64(v: int) -> int:
    """Go's int64 wrap-around."""
    if _INT64_MIN <= v <= _INT64_MAX:
        return v
    return ((v - _INT64_MIN) & MASK64) + _INT64_MIN


def _float_bits(v: float) -> int:
    try:
        return int(struct.unpack("<Q", struct.pack("<d", v))[0])
    except struct.error:
        raise EncodeError(f"histogram sum {v!r} is not a float") from None


def _bits_float(b: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", b))[0])


def _i64s(values: list[int]) -> list[int]:
    """A copy of ``values`` reduced to int64 (min/max first: wrapping is rare)."""
    if values and (min(values) < _INT64_MIN or max(values) > _INT64_MAX):
        return [_i64(v) for v in values]
    return values[:]


# ----------------------------------------------------------------------------- decoding


def decode_histogram_chunk(data: bytes | bytearray | memoryview) -> list[m.Histogram]:
    """Decode a ``HISTOGRAM`` chunk into integer :class:`~promwire.codec.messages.Histogram` s.

    Each histogram carries the chunk's layout, its ``timestamp`` and the reset
    hint Prometheus reports (:func:`~promwire.chunks.histogram_layout.hint_at`);
    stale markers come back as a histogram holding only the stale ``sum``.
    Raises :class:`DecodeError` for a truncated or corrupt chunk.
    """
    data = bytes(data)
    if len(data) < 3:
        raise DecodeError("histogram chunk shorter than its 3-byte header")
    count = (data[0] << 8) | data[1]
    header = CounterResetHeader(data[2] >> 6)
    if count == 0:
        return []
    fast = decode_fast(data)
    return fast if fast is not None else _decode_generic(data, count, header)


def _decode_generic(data: bytes, count: int, header: CounterResetHeader) -> list[m.Histogram]:
    """Any chunk, one field after the other (stale markers, huge or truncated ones)."""
    r = BitReader(data, 24)
    layout = read_layout(r)
    npos = sum(s.length for s in layout.positive_spans)
    nneg = sum(s.length for s in layout.negative_spans)
    if npos + nneg > r.size - r.pos:  # the first sample takes >= 1 bit per bucket
        raise DecodeError("truncated histogram chunk (more buckets than bits)")
    schema = layout.schema
    zt = layout.zero_threshold
    pspans = layout.positive_spans  # BucketSpan is frozen: lists share them safely
    nspans = layout.negative_spans
    int_varbit = r.varbit_int

    t = int_varbit()
    cnt = r.varbit_uint()
    zcnt = r.varbit_uint()
    sum_bits = r.bits(64)
    pb = [int_varbit() for _ in range(npos)]
    nb = [int_varbit() for _ in range(nneg)]
    t_delta = cnt_delta = zcnt_delta = 0
    pd = [0] * npos
    nd = [0] * nneg
    lead = trail = 0  # Go's iterator starts with a zero window, not "none"
    words = r.words
    p = r.pos
    size = r.size
    out: list[m.Histogram] = []
    hist = m.Histogram
    hint_first = hint_at(header, 0)
    hint_later = hint_at(header, 1)
    try:
        for i in range(count):
            if i:
                # Bulk readers over the integer cursor ``p`` (bitstream.py):
                # one call per field group instead of one per bit field.
                dod, p = varbit_int_at(words, p)
                t_delta += dod
                t += t_delta
                dod, p = varbit_int_at(words, p)
                cnt_delta += dod
                cnt += cnt_delta
                dod, p = varbit_int_at(words, p)
                zcnt_delta += dod
                zcnt += zcnt_delta
                r.pos = p
                sum_bits, lead, trail = r.xor(sum_bits, lead, trail)
                p = r.pos
                if sum_bits != STALE_NAN_BITS:
                    p = add_varbit_dods(words, p, pd, pb)
                    p = add_varbit_dods(words, p, nd, nb)
            if p > size:
                raise DecodeError("truncated histogram chunk")
            if sum_bits == STALE_NAN_BITS:
                out.append(
                    hist(
                        count_int=0, zero_count_int=0, sum=_bits_float(sum_bits), timestamp=_i64(t)
                    )
                )
                continue
            out.append(
                hist(
                    count_int=cnt & MASK64,
                    sum=_bits_float(sum_bits),
                    schema=schema,
                    zero_threshold=zt,
                    zero_count_int=zcnt & MASK64,
                    negative_spans=list(nspans),
                    negative_deltas=_i64s(nb),
                    positive_spans=list(pspans),
                    positive_deltas=_i64s(pb),
                    reset_hint=hint_later if i else hint_first,
                    timestamp=_i64(t),
                )
            )
    except IndexError:
        raise DecodeError("truncated histogram chunk") from None
    return out


# ----------------------------------------------------------------------------- encoding


def _check_int(value: object, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise EncodeError(f"{what} {value!r} is not an integer in {lo}..{hi}")
    return value


def _check_deltas(values: list[int], index: int) -> None:
    """Bucket deltas must be int64s (checked in bulk: min/max run in C)."""
    if not values:
        return
    if not all(type(v) is int for v in values):
        bad = next(v for v in values if type(v) is not int)
        raise EncodeError(f"histogram {index}: bucket delta {bad!r} is not an integer")
    if min(values) < _INT64_MIN or max(values) > _INT64_MAX:
        raise EncodeError(f"histogram {index}: bucket delta out of int64 range")


def encode_histogram_chunk(
    histograms: Sequence[m.Histogram],
    *,
    header: CounterResetHeader | int | None = None,
    byte_sizes: list[int] | None = None,
    cut_bytes: int | None = None,
    cut_min: int = 1,
) -> bytes:
    """Encode integer histograms (in time order) into one ``HISTOGRAM`` chunk.

    The bytes are those Prometheus' appender writes for the same samples.
    Every histogram must have the first one's layout (schema, zero threshold
    and bucket set; a stale marker may start the chunk, with an empty
    layout) - :func:`~promwire.chunks.histogram_cut.cut_histogram_chunks`
    cuts and expands a free sequence the way Prometheus' head does.
    ``header`` defaults to the one the first histogram's reset hint implies
    (:func:`~promwire.chunks.histogram_layout.header_for_hint`). At most
    65535 histograms fit. ``byte_sizes``, when given, gets the chunk's
    length in bytes after each histogram (what Prometheus' head looks at
    before appending the next). ``cut_bytes``, when given, ends the chunk
    after the first histogram (the ``cut_min``-th or a later one) that
    brings it to at least that many bytes: the histograms after it are left
    out (the chunk's count header says how many went in), as Prometheus'
    head cuts a chunk by size. Raises :class:`EncodeError`.
    """
    n = len(histograms)
    if n > MAX_HISTOGRAMS_PER_CHUNK:
        raise EncodeError(f"a histogram chunk holds at most {MAX_HISTOGRAMS_PER_CHUNK} samples")
    if header is None:
        header = header_for_hint(int(histograms[0].reset_hint)) if n else 0
    if not 0 <= int(header) <= 3:
        raise EncodeError(f"counter-reset header {header!r} is not 0..3")
    if n == 0:
        return bytes((0, 0, int(header) << 6))

    w = BitWriter()
    int_varbit = w.varbit_int
    first = histograms[0]
    stale = False
    prev_t = prev_cnt = prev_zcnt = 0
    t_delta = cnt_delta = zcnt_delta = 0
    pb: list[int] = []
    nb: list[int] = []
    pd: list[int] = []
    nd: list[int] = []
    prev_sum = 0
    lead = NO_WINDOW
    trail = 0
    layout = Layout(0, 0.0, [], [])
    npos = nneg = 0
    for i, h in enumerate(histograms):
        if not isinstance(h, m.Histogram):
            raise EncodeError(f"histogram {i} is a {type(h).__name__}, not a Histogram")
        if h.count_float is not None or h.zero_count_float is not None:
            raise EncodeError(
                f"histogram {i} is a float histogram: use encode_float_histogram_chunk"
            )
        t = _check_int(h.timestamp, f"histogram {i}: timestamp", _INT64_MIN, _INT64_MAX)
        sum_bits = _float_bits(h.sum)
        if sum_bits == STALE_NAN_BITS:
            cnt = zcnt = 0
        else:
            if stale:
                raise EncodeError(f"histogram {i}: only stale markers may follow a stale marker")
            cnt = _check_int(h.count_int or 0, f"histogram {i}: count", 0, MASK64)
            zcnt = _check_int(h.zero_count_int or 0, f"histogram {i}: zero count", 0, MASK64)
            _check_deltas(h.positive_deltas, i)
            _check_deltas(h.negative_deltas, i)
        if i == 0:
            if sum_bits == STALE_NAN_BITS:
                stale = True
            else:
                layout = Layout.of(first)
                npos = bucket_count(layout.positive_spans, h.positive_deltas, "positive")
                nneg = bucket_count(layout.negative_spans, h.negative_deltas, "negative")
            write_layout(w, layout)
            int_varbit(t)
            w.varbit_uint(cnt)
            w.varbit_uint(zcnt)
            w.write(sum_bits, 64)
            if not stale:
                pb = list(h.positive_deltas)
                nb = list(h.negative_deltas)
                for v in pb:
                    int_varbit(v)
                for v in nb:
                    int_varbit(v)
                pd = [0] * npos
                nd = [0] * nneg
        else:
            d = _i64(t - prev_t)
            int_varbit(_i64(d - t_delta))
            t_delta = d
            d = _i64(cnt - prev_cnt)
            int_varbit(0 if sum_bits == STALE_NAN_BITS else _i64(d - cnt_delta))
            cnt_delta = d
            d = _i64(zcnt - prev_zcnt)
            int_varbit(0 if sum_bits == STALE_NAN_BITS else _i64(d - zcnt_delta))
            zcnt_delta = d
            lead, trail = w.xor(sum_bits, prev_sum, lead, trail)
            if sum_bits == STALE_NAN_BITS:
                stale = True
            else:
                check_layout(h, layout, npos, nneg, i)
                w.varbit_dods(h.positive_deltas, pb, pd)
                w.varbit_dods(h.negative_deltas, nb, nd)
        prev_t = t
        prev_cnt = cnt
        prev_zcnt = zcnt
        prev_sum = sum_bits
        if byte_sizes is not None:
            byte_sizes.append(3 + w.size())
        if cut_bytes is not None and i + 1 >= cut_min and 3 + w.size() >= cut_bytes:
            n = i + 1
            break
    return n.to_bytes(2, "big") + bytes((int(header) << 6,)) + w.getvalue()
