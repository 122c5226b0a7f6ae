"""Cutting a series of native histograms into chunks the way Prometheus' head does.

:func:`cut_histogram_chunks` appends histograms (in time order) one by one,
like ``memSeries.appendHistogram`` in Prometheus 2.42:

* integer and float histograms go to ``HISTOGRAM`` and ``FLOAT_HISTOGRAM``
  chunks; a change of flavour starts a new chunk;
* a counter histogram (reset hint other than GAUGE) joins the current chunk
  when it is *appendable*: same schema and zero threshold, no bucket gone, no
  count, zero count or bucket smaller than in the previous histogram, the
  previous one not a stale marker. Buckets that appear make the chunk be
  *recoded*: earlier histograms get the new (empty) buckets. Otherwise a
  new chunk starts; its header says ``COUNTER_RESET`` when a count went down
  (or the hint says YES), ``NOT_COUNTER_RESET`` when the histogram would have
  fit the previous chunk, ``UNKNOWN`` otherwise;
* a gauge histogram (hint GAUGE) needs only the same schema and zero
  threshold; buckets missing on either side are added as empty ones to the
  chunk and to the histogram (``GAUGE`` header);
* a stale marker always fits; only stale markers follow it in a chunk;
* chunks are also cut by size: every ``max_samples`` histograms (default 120),
  or - with ``chunk_range_ms`` - on Prometheus' time prediction (aim for 120
  samples, end at the chunk range's boundary, never more than 240).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import replace

from ..codec import messages as m
from ..errors import EncodeError
from .float_histogram import encode_float_histogram_chunk
from .histogram import MAX_HISTOGRAMS_PER_CHUNK, encode_histogram_chunk
from .histogram_layout import (
    STALE_NAN_BITS,
    CounterResetHeader,
    bucket_indices,
    expand_both_ways,
    expand_forward,
    insert_buckets,
)

__all__ = ["HISTOGRAMS_PER_CHUNK", "cut_histogram_chunks"]

#: Samples per chunk Prometheus' head aims for.
HISTOGRAMS_PER_CHUNK = 120


def _is_stale(h: m.Histogram) -> bool:
    try:
        bits = struct.unpack("<Q", struct.pack("<d", h.sum))[0]
    except struct.error:
        raise EncodeError(f"histogram sum {h.sum!r} is not a float") from None
    return bool(bits == STALE_NAN_BITS)


def _absolute(h: m.Histogram, positive: bool) -> list[float] | list[int]:
    if h.is_float:
        return list(h.positive_counts if positive else h.negative_counts)
    out = []
    total = 0
    for d in h.positive_deltas if positive else h.negative_deltas:
        total += d
        out.append(total)
    return out


def _reset_in_buckets(old: m.Histogram, new: m.Histogram, positive: bool) -> bool:
    """``counterResetInAnyBucket``: a bucket of ``old`` is smaller in ``new``."""
    old_spans = old.positive_spans if positive else old.negative_spans
    new_spans = new.positive_spans if positive else new.negative_spans
    new_values = dict(zip(bucket_indices(new_spans), _absolute(new, positive), strict=False))
    for idx, value in zip(bucket_indices(old_spans), _absolute(old, positive), strict=False):
        if new_values.get(idx, value) < value:
            return True
    return False


def _expand(
    h: m.Histogram,
    p_ins: list[tuple[int, int]],
    n_ins: list[tuple[int, int]],
    p_spans: list[m.BucketSpan],
    n_spans: list[m.BucketSpan],
) -> m.Histogram:
    """``h`` with empty buckets inserted and the given spans (Recode / RecodeHistogram)."""
    if h.is_float:
        pos = insert_buckets(h.positive_counts, p_ins, deltas=False) if p_ins else h.positive_counts
        neg = insert_buckets(h.negative_counts, n_ins, deltas=False) if n_ins else h.negative_counts
        return replace(
            h,
            positive_spans=list(p_spans),
            negative_spans=list(n_spans),
            positive_counts=[float(v) for v in pos],
            negative_counts=[float(v) for v in neg],
        )
    ipos = insert_buckets(h.positive_deltas, p_ins, deltas=True) if p_ins else h.positive_deltas
    ineg = insert_buckets(h.negative_deltas, n_ins, deltas=True) if n_ins else h.negative_deltas
    return replace(
        h,
        positive_spans=list(p_spans),
        negative_spans=list(n_spans),
        positive_deltas=[int(v) for v in ipos],
        negative_deltas=[int(v) for v in ineg],
    )


def _count(h: m.Histogram) -> tuple[float, float]:
    if h.is_float:
        return float(h.count_float or 0.0), float(h.zero_count_float or 0.0)
    return h.count_int or 0, h.zero_count_int or 0  # exact uint64 comparison


class _Chunk:
    __slots__ = ("header", "is_float", "min_time", "samples", "stale")

    def __init__(self, is_float: bool, header: CounterResetHeader, min_time: int) -> None:
        self.is_float = is_float
        self.header = header
        self.samples: list[m.Histogram] = []
        self.stale = False
        self.min_time = min_time

    def to_chunk(self) -> m.Chunk:
        encode = encode_float_histogram_chunk if self.is_float else encode_histogram_chunk
        return m.Chunk(
            min_time_ms=self.samples[0].timestamp,
            max_time_ms=self.samples[-1].timestamp,
            type=m.ChunkEncoding.FLOAT_HISTOGRAM if self.is_float else m.ChunkEncoding.HISTOGRAM,
            data=encode(self.samples, header=self.header),
        )


def _appendable(
    c: _Chunk, h: m.Histogram
) -> tuple[bool, bool, list[tuple[int, int]], list[tuple[int, int]]]:
    """``Appendable``: (ok, counter_reset, positive inserts, negative inserts)."""
    if c.header == CounterResetHeader.GAUGE:
        return False, False, [], []
    if _is_stale(h):
        return True, False, [], []
    if c.stale:
        return False, False, [], []
    last = c.samples[-1]
    cnt, zcnt = _count(h)
    last_cnt, last_zcnt = _count(last)
    if cnt < last_cnt:
        return False, True, [], []
    if h.schema != last.schema or h.zero_threshold != last.zero_threshold:
        return False, False, [], []
    if zcnt < last_zcnt:
        return False, True, [], []
    p_ins = expand_forward(last.positive_spans, h.positive_spans)
    n_ins = expand_forward(last.negative_spans, h.negative_spans)
    if p_ins is None or n_ins is None:
        return False, True, [], []
    if _reset_in_buckets(last, h, True) or _reset_in_buckets(last, h, False):
        return False, True, [], []
    return True, False, p_ins, n_ins


def _go_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _check(h: object, i: int) -> m.Histogram:
    if not isinstance(h, m.Histogram):
        raise EncodeError(f"histogram {i} is a {type(h).__name__}, not a Histogram")
    side_counts = (
        (h.positive_spans, h.positive_counts if h.is_float else h.positive_deltas, "positive"),
        (h.negative_spans, h.negative_counts if h.is_float else h.negative_deltas, "negative"),
    )
    for spans, buckets, side in side_counts:
        n = 0
        for s in spans:
            if not isinstance(s.length, int) or s.length < 0 or not isinstance(s.offset, int):
                raise EncodeError(f"histogram {i}: {side} span {s!r} is not valid")
            n += s.length
        if n != len(buckets):
            raise EncodeError(
                f"histogram {i}: {side} spans need {n} buckets, it has {len(buckets)}"
            )
    return h


def cut_histogram_chunks(
    histograms: Sequence[m.Histogram],
    *,
    max_samples: int = HISTOGRAMS_PER_CHUNK,
    chunk_range_ms: int | None = None,
) -> list[m.Chunk]:
    """Cut histograms (strictly increasing timestamps) into histogram chunks.

    See the module docstring for the rules. ``max_samples`` (1..65535) caps
    each chunk; with ``chunk_range_ms`` (Prometheus' block range, 7200000 by
    default there) the head's time-based prediction is used instead, which
    reproduces Prometheus' chunk boundaries for a series written in order
    into an empty head. Raises :class:`~promwire.errors.EncodeError` for a
    histogram that cannot be encoded or timestamps out of order.
    """
    if not 1 <= max_samples <= MAX_HISTOGRAMS_PER_CHUNK:
        raise ValueError(f"max_samples must be in 1..{MAX_HISTOGRAMS_PER_CHUNK}")
    if chunk_range_ms is not None and chunk_range_ms <= 0:
        raise ValueError("chunk_range_ms must be > 0")
    done: list[m.Chunk] = []
    cur: _Chunk | None = None
    next_at = 0
    for i, h in enumerate(histograms):
        h = _check(h, i)
        t = h.timestamp
        if cur is not None and t <= cur.samples[-1].timestamp:
            raise EncodeError(f"histogram {i}: timestamp {t} not after the previous one")
        is_float = h.is_float
        stale = _is_stale(h)
        # appendPreprocessor: a new chunk for a new flavour or by size/time.
        prev = cur
        new_chunk = cur is None or cur.is_float != is_float
        if cur is not None and not new_chunk:
            n = len(cur.samples)
            if chunk_range_ms is None:
                new_chunk = n >= max_samples
            else:
                if n == HISTOGRAMS_PER_CHUNK // 4:
                    last_t = cur.samples[-1].timestamp
                    k = _go_div(next_at - cur.min_time, (last_t - cur.min_time + 1) * 4)
                    if k > 1:
                        next_at = cur.min_time + _go_div(next_at - cur.min_time, k)
                new_chunk = (
                    t >= next_at or n >= HISTOGRAMS_PER_CHUNK * 2 or n >= MAX_HISTOGRAMS_PER_CHUNK
                )
        app = prev if prev is not None and prev.is_float == is_float else None
        ok = counter_reset = False
        gauge = int(h.reset_hint) == m.ResetHint.GAUGE
        p_fwd: list[tuple[int, int]] = []
        n_fwd: list[tuple[int, int]] = []
        if gauge:
            if app is not None:
                if app.samples and app.header != CounterResetHeader.GAUGE:
                    ok = False
                elif stale:
                    ok = True
                elif app.stale:
                    ok = False
                else:
                    last = app.samples[-1]
                    if h.schema == last.schema and h.zero_threshold == last.zero_threshold:
                        ok = True
                        p_fwd, p_bwd, p_merged = expand_both_ways(
                            last.positive_spans, h.positive_spans
                        )
                        n_fwd, n_bwd, n_merged = expand_both_ways(
                            last.negative_spans, h.negative_spans
                        )
                        if not new_chunk and (p_bwd or n_bwd):
                            h = _expand(h, p_bwd, n_bwd, p_merged, n_merged)
        elif int(h.reset_hint) == m.ResetHint.YES:
            counter_reset = True
        elif app is not None:
            ok, counter_reset, p_fwd, n_fwd = _appendable(app, h)
        if cur is not None and not new_chunk:
            if not ok or counter_reset:
                new_chunk = True
            elif p_fwd or n_fwd:
                cur.samples = [
                    s
                    if _is_stale(s)
                    else _expand(s, p_fwd, n_fwd, h.positive_spans, h.negative_spans)
                    for s in cur.samples
                ]
        if new_chunk:
            if cur is not None:
                done.append(cur.to_chunk())
            if gauge:
                header = CounterResetHeader.GAUGE
            elif counter_reset:
                header = CounterResetHeader.COUNTER_RESET
            elif ok:
                header = CounterResetHeader.NOT_COUNTER_RESET
            else:
                header = CounterResetHeader.UNKNOWN
            cur = _Chunk(is_float, header, t)
            if chunk_range_ms is not None:
                next_at = (_go_div(t, chunk_range_ms) * chunk_range_ms) + chunk_range_ms
        assert cur is not None
        if stale:
            cur.stale = True
        cur.samples.append(h)
    if cur is not None and cur.samples:
        done.append(cur.to_chunk())
    return done
