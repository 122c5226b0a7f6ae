"""Native histogram chunks (HISTOGRAM, FLOAT_HISTOGRAM): Prometheus' bytes, round trips,
Prometheus' cutting rules, corruption, and the streamed read both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promwire
import promwire.testing
from promwire import BucketSpan, Chunk, ChunkedSeries, ChunkEncoding, Histogram, Label, ResetHint
from promwire.chunks.bitstream import BitReader, BitWriter
from promwire.chunks.float_histogram import (
    decode_float_histogram_chunk,
    encode_float_histogram_chunk,
)
from promwire.chunks.histogram import decode_histogram_chunk, encode_histogram_chunk
from promwire.chunks.histogram_cut import cut_histogram_chunks
from promwire.chunks.histogram_layout import (
    STALE_NAN_BITS,
    CounterResetHeader,
    bucket_indices,
    chunk_header,
    expand_both_ways,
    expand_forward,
    insert_buckets,
)
from promwire.chunks.streamed import (
    decode_series_histograms,
    iter_chunked_series,
    read_streamed_response,
    stream_chunked_response,
)
from promwire.errors import DecodeError, EncodeError, PromwireError
from promwire.stores.protocol import AsyncBaseStorage, BaseStorage

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
I64 = (-(1 << 63), (1 << 63) - 1)


def _fixture(fixtures_dir: Path) -> tuple[dict[str, object], bytes]:
    base = fixtures_dir / "rr_server" / "rr_native_hist_streamed"
    meta = json.loads(base.with_suffix(".json").read_text())
    return meta, base.with_suffix(".response.bin").read_bytes()


def _wire(h: Histogram) -> bytes:
    """Exact comparison, NaN payloads included."""
    return promwire.encode(h)


# ----------------------------------------------------------------------------- Prometheus' bytes


def test_prometheus_histogram_chunks_decode_and_reencode_exactly(fixtures_dir: Path) -> None:
    meta, body = _fixture(fixtures_dir)
    described = meta["response_decoded"]["series"][0]["chunks"]  # type: ignore[index]
    series = [s for _, s in iter_chunked_series(body)]
    assert len(series) == 1
    chunks = series[0].chunks
    assert [c.type for c in chunks] == [ChunkEncoding.HISTOGRAM] * len(described)
    previous_count = 0
    for chunk, info in zip(chunks, described, strict=True):
        hs = decode_histogram_chunk(chunk.data)
        assert len(hs) == info["n_samples_header"]
        assert hs[0].timestamp == chunk.min_time_ms == info["min_time_ms"]
        assert hs[-1].timestamp == chunk.max_time_ms == info["max_time_ms"]
        for i, h in enumerate(hs):
            # A counter histogram: counts consistent with the buckets, never going down.
            counts = []
            total = 0
            for d in h.positive_deltas + h.negative_deltas:
                total = total + d if len(counts) != len(h.positive_deltas) else d
                counts.append(total)
            assert all(c >= 0 for c in counts)
            assert h.count_int is not None and h.count_int >= previous_count
            previous_count = h.count_int
            assert h.reset_hint == (ResetHint.NO if i else ResetHint.UNKNOWN)
        # Re-encoding the decoded samples gives Prometheus' bytes.
        assert encode_histogram_chunk(hs, header=chunk_header(chunk.data)) == chunk.data
    # Cutting the whole series the way the head does gives the same chunks
    # (2.42 resets the header of head chunks it re-encodes for a read: see docs).
    all_hs = [h for c in chunks for h in decode_histogram_chunk(c.data)]
    cut = cut_histogram_chunks(all_hs, chunk_range_ms=7_200_000)
    assert [(c.min_time_ms, c.max_time_ms, c.data[3:]) for c in cut] == [
        (c.min_time_ms, c.max_time_ms, c.data[3:]) for c in chunks
    ]


def test_streamed_reader_returns_the_histograms(fixtures_dir: Path) -> None:
    _, body = _fixture(fixtures_dir)
    [(index, series)] = list(read_streamed_response(body))
    assert index == 0 and series.samples == []
    assert len(series.histograms) == 145
    assert {lb.name: lb.value for lb in series.labels}["__name__"] == "demo_native_seconds"
    ts = [h.timestamp for h in series.histograms]
    assert ts == sorted(ts)
    [(_, windowed)] = list(read_streamed_response(body, start_ms=ts[10], end_ms=ts[20]))
    assert windowed.histograms == series.histograms[10:21]


def test_cli_decode_prints_the_histograms(
    fixtures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promwire.cli import main

    path = fixtures_dir / "rr_server" / "rr_native_hist_streamed.response.bin"
    assert main(["decode", "--samples", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    [series] = doc["results"][0]["timeseries"]
    assert len(series["histograms"]) == 145
    assert series["histograms"][0]["positive_deltas"] == ["0", "1", "-1", "1", "0", "0"]


# ----------------------------------------------------------------------------- bits


@pytest.mark.parametrize(
    ("value", "width"),
    [
        (0, 1),
        (-3, 5),
        (4, 5),
        (-4, 9),
        (5, 9),
        (32, 9),
        (33, 13),
        (-255, 13),
        (256, 13),
        (2048, 17),
        (-2048, 24),
        (131072, 24),
        (16777216, 32),
        (1 << 55, 64),
        (-(1 << 55) + 1, 64),
        (-(1 << 55), 72),
        (I64[0], 72),
        (I64[1], 72),
    ],
)
def test_varbit_int_widths_and_round_trip(value: int, width: int) -> None:
    w = BitWriter()
    w.varbit_int(value)
    w.write(0b101, 3)
    data = w.getvalue()
    assert len(data) == (width + 3 + 7) // 8
    r = BitReader(data)
    assert r.varbit_int() == value
    assert r.pos == width and r.bits(3) == 0b101


@pytest.mark.parametrize(
    ("value", "width"), [(0, 1), (7, 5), (8, 9), (4095, 17), ((1 << 64) - 1, 72)]
)
def test_varbit_uint_widths_and_round_trip(value: int, width: int) -> None:
    w = BitWriter()
    w.varbit_uint(value)
    r = BitReader(w.getvalue())
    assert r.varbit_uint() == value and r.pos == width


@pytest.mark.parametrize(
    ("threshold", "layout_bytes"),
    [(0.0, b"\x00"), (2.0**-128, bytes([116])), (2.0**10, bytes([254])), (2.0**-243, bytes([1]))],
)
def test_zero_threshold_byte(threshold: float, layout_bytes: bytes) -> None:
    h = Histogram(count_int=0, zero_threshold=threshold, timestamp=5)
    data = encode_histogram_chunk([h])
    assert data[:3] == b"\x00\x01\x00" and data[3:4] == layout_bytes
    assert decode_histogram_chunk(data)[0].zero_threshold == threshold


@pytest.mark.parametrize("threshold", [0.001, 2.0**11, 2.0**-244, -0.5, math.inf])
def test_other_zero_thresholds_take_nine_bytes(threshold: float) -> None:
    data = encode_histogram_chunk([Histogram(count_int=0, zero_threshold=threshold)])
    assert data[3] == 255
    assert struct.unpack(">d", data[4:12])[0] == threshold
    assert decode_histogram_chunk(data)[0].zero_threshold == threshold


def test_go_bstream_leaves_an_empty_byte_after_a_final_whole_byte_write() -> None:
    # Layout 11 bits + t=1 (5 bits): the three raw 64-bit values start on a
    # byte boundary, so Go's writeByte leaves one empty byte at the end.
    one = Histogram(count_float=1.0, zero_count_float=0.0, sum=0.5, timestamp=1)
    data = encode_float_histogram_chunk([one])
    assert len(data) == 3 + (16 + 192) // 8 + 1 and data[-1] == 0
    assert decode_float_histogram_chunk(data)[0].count_float == 1.0
    # t=20 (9 bits): not on a boundary, no extra byte.
    data = encode_float_histogram_chunk([Histogram(count_float=1.0, sum=0.5, timestamp=20)])
    assert len(data) == 3 + (20 + 192 + 7) // 8
    # A varbit whose 18-bit payload ends on a boundary is not a whole-bytes write;
    # a 56-bit payload is.
    w = BitWriter()
    w.varbit_int(100_000)  # 6 + 18 bits
    assert len(w.getvalue()) == 3
    w = BitWriter()
    w.varbit_int(1 << 40)  # 8 + 56 bits
    assert len(w.getvalue()) == 9 and w.getvalue()[-1] == 0
    assert BitReader(w.getvalue()).varbit_int() == 1 << 40


def test_bucket_set_helpers_follow_prometheus() -> None:
    # The example in Prometheus' expandSpansForward comment.
    old = [BucketSpan(0, 2), BucketSpan(2, 1), BucketSpan(3, 2), BucketSpan(3, 1), BucketSpan(1, 1)]
    new = [BucketSpan(0, 3), BucketSpan(1, 1), BucketSpan(1, 4), BucketSpan(3, 3)]
    assert bucket_indices(old) == [0, 1, 4, 8, 9, 13, 15]
    assert bucket_indices(new) == [0, 1, 2, 4, 6, 7, 8, 9, 13, 14, 15]
    inserts = expand_forward(old, new)
    assert inserts == [(2, 1), (3, 2), (6, 1)]
    assert insert_buckets([6, -3, 0, -1, 2, 1, -4], inserts, deltas=True) == [
        6, -3, -3, 3, -3, 0, 2, 2, 1, -5, 1,
    ]  # fmt: skip
    assert expand_forward(new, old) is None
    fwd, bwd, merged = expand_both_ways([BucketSpan(5, 1)], [BucketSpan(1, 1)])
    assert (fwd, bwd, bucket_indices(merged)) == ([(0, 1)], [(1, 1)], [1, 5])
    # Empty spans still move the index by their offset (Prometheus' bucketIterator).
    empty_spans = [BucketSpan(2, 0), BucketSpan(1, 2), BucketSpan(5, 0), BucketSpan(0, 1)]
    assert bucket_indices(empty_spans) == [3, 4, 10]


# ----------------------------------------------------------------------------- strategies

offsets = st.integers(-20, 20)
lengths = st.integers(0, 4)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, float, list[BucketSpan], list[BucketSpan]]:
    def spans() -> list[BucketSpan]:
        n = draw(st.integers(0, 3))
        return [
            BucketSpan(draw(offsets) if i == 0 else draw(st.integers(0, 6)), draw(lengths))
            for i in range(n)
        ]

    schema = draw(st.one_of(st.integers(-4, 8), st.integers(-(1 << 31), (1 << 31) - 1)))
    zt = draw(st.sampled_from([0.0, 2.0**-128, 1e-3, 2.0**-3, 7.5]))
    return schema, zt, spans(), spans()


def _n(spans: list[BucketSpan]) -> int:
    return sum(s.length for s in spans)


@st.composite
def int_chunks(draw: st.DrawFn) -> list[Histogram]:
    """Histograms sharing one layout, any values (wrap-around included), maybe stale at the end."""
    schema, zt, pos, neg = draw(layouts())
    n = draw(st.integers(1, 25))
    big = st.integers(0, (1 << 64) - 1)
    small = st.integers(0, 1000)
    deltas = st.one_of(st.integers(-50, 50), st.integers(*I64))
    times = draw(
        st.lists(
            st.one_of(st.integers(-(10**13), 10**13), st.integers(*I64)), min_size=n, max_size=n
        )
    )
    out = [
        Histogram(
            count_int=draw(st.one_of(small, big)),
            zero_count_int=draw(st.one_of(small, big)),
            sum=draw(st.floats(allow_nan=True)),
            schema=schema,
            zero_threshold=zt,
            positive_spans=list(pos),
            positive_deltas=draw(st.lists(deltas, min_size=_n(pos), max_size=_n(pos))),
            negative_spans=list(neg),
            negative_deltas=draw(st.lists(deltas, min_size=_n(neg), max_size=_n(neg))),
            timestamp=t,
        )
        for t in times
    ]
    for i in range(len(out) - draw(st.integers(0, 2)), len(out)):
        out[i] = Histogram(count_int=0, zero_count_int=0, sum=STALE, timestamp=out[i].timestamp)
    return out


@st.composite
def float_chunks(draw: st.DrawFn) -> list[Histogram]:
    ints = draw(int_chunks())
    values = st.floats(allow_nan=True, allow_infinity=True)
    out = []
    for h in ints:
        if h.count_int == 0 and h.sum is STALE:
            out.append(
                Histogram(count_float=0.0, zero_count_float=0.0, sum=STALE, timestamp=h.timestamp)
            )
            continue
        out.append(
            Histogram(
                count_float=draw(values),
                zero_count_float=draw(values),
                sum=h.sum,
                schema=h.schema,
                zero_threshold=h.zero_threshold,
                positive_spans=h.positive_spans,
                positive_counts=[draw(values) for _ in h.positive_deltas],
                negative_spans=h.negative_spans,
                negative_counts=[draw(values) for _ in h.negative_deltas],
                timestamp=h.timestamp,
            )
        )
    return out


def _expected(hs: list[Histogram], header: int) -> list[Histogram]:
    out = []
    first = hs[0]
    for i, h in enumerate(hs):
        if struct.pack("<d", h.sum) == struct.pack("<Q", STALE_NAN_BITS):
            out.append(h)
            continue
        e = promwire.decode(Histogram, promwire.encode(h))
        e.positive_spans = list(first.positive_spans)
        e.negative_spans = list(first.negative_spans)
        if e.count_int is None and e.count_float is None:
            e.count_int = 0
        if e.is_float and e.zero_count_float is None:
            e.zero_count_float = 0.0
        if not e.is_float and e.zero_count_int is None:
            e.zero_count_int = 0
        e.reset_hint = (
            ResetHint.GAUGE
            if header == 3
            else ResetHint.NO
            if i
            else (ResetHint.YES if header == 2 else ResetHint.UNKNOWN)
        )
        out.append(e)
    return out


HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(int_chunks(), st.integers(0, 3))
def test_integer_chunks_round_trip(hs: list[Histogram], header: int) -> None:
    data = encode_histogram_chunk(hs, header=header)
    assert chunk_header(data) == header and int.from_bytes(data[:2], "big") == len(hs)
    got = decode_histogram_chunk(data)
    assert [_wire(h) for h in got] == [_wire(h) for h in _expected(hs, header)]
    assert encode_histogram_chunk(got, header=header) == data


@HYP
@given(float_chunks(), st.integers(0, 3))
def test_float_chunks_round_trip(hs: list[Histogram], header: int) -> None:
    data = encode_float_histogram_chunk(hs, header=header)
    got = decode_float_histogram_chunk(data)
    assert [_wire(h) for h in got] == [_wire(h) for h in _expected(hs, header)]
    assert encode_float_histogram_chunk(got, header=header) == data


# Free sequences: layouts change, counters reset, buckets come and go, stale markers.


@st.composite
def histogram_series(draw: st.DrawFn) -> list[Histogram]:
    is_float = draw(st.booleans())
    n = draw(st.integers(1, 60))
    gauge = draw(st.booleans())
    out: list[Histogram] = []
    t = draw(st.integers(-(10**6), 10**12))
    counts: dict[int, int] = {}
    neg_counts: dict[int, int] = {}
    zero = 0
    schema = draw(st.integers(-2, 3))
    for _ in range(n):
        t += draw(st.integers(1, 100_000))
        event = draw(
            st.sampled_from(["grow", "grow", "grow", "new", "reset", "schema", "stale", "drop"])
        )
        if event == "stale":
            out.append(
                Histogram(count_float=0.0, sum=STALE, timestamp=t)
                if is_float
                else Histogram(count_int=0, sum=STALE, timestamp=t)
            )
            continue
        if event == "reset":
            counts = {k: 0 for k in counts}
            neg_counts = {k: 0 for k in neg_counts}
            zero = 0
        elif event == "schema":
            schema = draw(st.integers(-2, 3))
        elif event == "drop" and counts:
            counts.pop(draw(st.sampled_from(sorted(counts))))
        elif event == "new":
            side = counts if draw(st.booleans()) else neg_counts
            side.setdefault(draw(st.integers(-6, 6)), 0)
        for side in (counts, neg_counts):
            for k in side:
                side[k] += (
                    draw(st.integers(0, 5)) if not gauge else draw(st.integers(0, 5)) - side[k] // 2
                )
        zero += draw(st.integers(0, 3))
        out.append(_from_counts(counts, neg_counts, zero, schema, t, is_float, gauge))
    return out


def _spans_of(indices: list[int]) -> list[BucketSpan]:
    spans: list[BucketSpan] = []
    last = 0
    for i, idx in enumerate(indices):
        if i and idx == last + 1:
            spans[-1] = BucketSpan(spans[-1].offset, spans[-1].length + 1)
        else:
            spans.append(BucketSpan(idx if i == 0 else idx - last - 1, 1))
        last = idx
    return spans


def _from_counts(
    pos: dict[int, int],
    neg: dict[int, int],
    zero: int,
    schema: int,
    t: int,
    is_float: bool,
    gauge: bool,
) -> Histogram:
    pk, nk = sorted(pos), sorted(neg)
    total = sum(pos.values()) + sum(neg.values()) + zero
    h = Histogram(
        sum=float(total) * 0.5,
        schema=schema,
        zero_threshold=2.0**-128,
        positive_spans=_spans_of(pk),
        negative_spans=_spans_of(nk),
        timestamp=t,
        reset_hint=ResetHint.GAUGE if gauge else ResetHint.UNKNOWN,
    )
    if is_float:
        h.count_float, h.zero_count_float = float(total), float(zero)
        h.positive_counts = [float(pos[k]) for k in pk]
        h.negative_counts = [float(neg[k]) for k in nk]
    else:
        h.count_int, h.zero_count_int = total, zero
        h.positive_deltas = [
            b - a for a, b in zip([0] + [pos[k] for k in pk], [pos[k] for k in pk], strict=False)
        ]
        h.negative_deltas = [
            b - a for a, b in zip([0] + [neg[k] for k in nk], [neg[k] for k in nk], strict=False)
        ]
    return h


def _buckets(h: Histogram) -> tuple[dict[int, float], dict[int, float]]:
    out = []
    for spans, values, deltas in (
        (h.positive_spans, h.positive_counts, h.positive_deltas),
        (h.negative_spans, h.negative_counts, h.negative_deltas),
    ):
        if h.is_float:
            absolute = list(values)
        else:
            absolute, total = [], 0
            for d in deltas:
                total += d
                absolute.append(total)
        out.append(dict(zip(bucket_indices(spans), absolute, strict=True)))
    return out[0], out[1]


@HYP
@given(histogram_series(), st.integers(1, 130))
def test_any_series_cuts_into_chunks_that_decode_to_it(hs: list[Histogram], per_chunk: int) -> None:
    chunks = cut_histogram_chunks(hs, max_samples=per_chunk)
    decoded: list[Histogram] = []
    for c in chunks:
        got = (
            decode_float_histogram_chunk
            if c.type == ChunkEncoding.FLOAT_HISTOGRAM
            else decode_histogram_chunk
        )(c.data)
        assert 1 <= len(got) <= per_chunk
        assert (got[0].timestamp, got[-1].timestamp) == (c.min_time_ms, c.max_time_ms)
        decoded += got
    assert len(decoded) == len(hs)
    for want, got in zip(hs, decoded, strict=True):
        assert got.timestamp == want.timestamp
        if struct.pack("<d", want.sum) == struct.pack("<d", STALE):
            assert struct.pack("<d", got.sum) == struct.pack("<d", STALE)
            continue
        assert (got.schema, got.sum, got.is_float) == (want.schema, want.sum, want.is_float)
        assert (got.count_int, got.count_float) == (want.count_int, want.count_float)
        # Buckets may have been expanded with empty ones (recoding): the same
        # counts where the input has a bucket, zero elsewhere.
        for have, need in zip(_buckets(got), _buckets(want), strict=True):
            assert {k: v for k, v in have.items() if k in need} == need
            assert all(v == 0 for k, v in have.items() if k not in need)


def _counter(t: int, buckets: dict[int, int], *, schema: int = 0, zero: int = 0) -> Histogram:
    return _from_counts(buckets, {}, zero, schema, t, False, False)


def _headers(chunks: list[Chunk]) -> list[CounterResetHeader]:
    return [chunk_header(c.data) for c in chunks]


def test_cutting_rules() -> None:
    hs = [
        _counter(1000, {0: 1}),
        _counter(2000, {0: 2, 3: 1}),  # a new bucket: the chunk is recoded
        _counter(3000, {0: 1, 3: 1}),  # a bucket went down: counter reset
        _counter(4000, {0: 1, 3: 1}, schema=1),  # schema change: unknown
        _counter(5000, {0: 2, 3: 2}, schema=1),
        _counter(6000, {3: 2}, schema=1),  # a bucket disappeared: counter reset
    ]
    chunks = cut_histogram_chunks(hs)
    assert [c.min_time_ms for c in chunks] == [1000, 3000, 4000, 6000]
    assert _headers(chunks) == [
        CounterResetHeader.UNKNOWN,
        CounterResetHeader.COUNTER_RESET,
        CounterResetHeader.UNKNOWN,
        CounterResetHeader.COUNTER_RESET,
    ]
    first = decode_histogram_chunk(chunks[0].data)
    assert first[0].positive_spans == [BucketSpan(0, 1), BucketSpan(2, 1)]
    assert first[0].positive_deltas == [1, -1]  # the recoded, empty bucket 3
    assert [h.reset_hint for h in decode_histogram_chunk(chunks[1].data)] == [ResetHint.YES]
    # By size: the next chunk "would have fit", so it is not a counter reset.
    more = [_counter(1000 * (i + 1), {0: i}) for i in range(5)]
    assert _headers(cut_histogram_chunks(more, max_samples=2)) == [
        CounterResetHeader.UNKNOWN,
        CounterResetHeader.NOT_COUNTER_RESET,
        CounterResetHeader.NOT_COUNTER_RESET,
    ]
    # A stale marker fits anywhere; only stale markers follow it.
    stale = Histogram(count_int=0, sum=STALE, timestamp=9000)
    cut = cut_histogram_chunks([*more[:2], stale, _counter(10000, {0: 9})])
    assert [int.from_bytes(c.data[:2], "big") for c in cut] == [3, 1]
    # Gauges: buckets may come and go in one chunk.
    gauges = [
        _from_counts({0: 5, 1: 1}, {}, 0, 0, 1000, False, True),
        _from_counts({1: 3, 2: 1}, {}, 0, 0, 2000, False, True),
    ]
    [chunk] = cut_histogram_chunks(gauges)
    assert chunk_header(chunk.data) == CounterResetHeader.GAUGE
    got = decode_histogram_chunk(chunk.data)
    assert [h.reset_hint for h in got] == [ResetHint.GAUGE] * 2
    assert [_buckets(h)[0] for h in got] == [{0: 5, 1: 1, 2: 0}, {0: 0, 1: 3, 2: 1}]
    # Integer and float histograms never share a chunk.
    mixed = [_counter(1000, {0: 1}), _from_counts({0: 1}, {}, 0, 0, 2000, True, False)]
    assert [c.type for c in cut_histogram_chunks(mixed)] == [
        ChunkEncoding.HISTOGRAM,
        ChunkEncoding.FLOAT_HISTOGRAM,
    ]


def test_encoder_refusals() -> None:
    h = _counter(1000, {0: 1})
    with pytest.raises(EncodeError, match="buckets"):
        encode_histogram_chunk([h, _counter(2000, {0: 1, 1: 1})])
    with pytest.raises(EncodeError, match="float histogram"):
        encode_histogram_chunk([_from_counts({0: 1}, {}, 0, 0, 1, True, False)])
    with pytest.raises(EncodeError, match="integer histogram"):
        encode_float_histogram_chunk([h])
    with pytest.raises(EncodeError, match="stale"):
        encode_histogram_chunk([Histogram(count_int=0, sum=STALE), h])
    with pytest.raises(EncodeError, match="spans need"):
        encode_histogram_chunk(
            [Histogram(count_int=1, positive_spans=[BucketSpan(0, 2)], positive_deltas=[1])]
        )
    with pytest.raises(EncodeError, match="count"):
        encode_histogram_chunk([Histogram(count_int=-1)])
    with pytest.raises(EncodeError, match="not after"):
        cut_histogram_chunks([h, h])
    with pytest.raises(EncodeError):
        encode_histogram_chunk([h] * 65536)


# ----------------------------------------------------------------------------- corruption


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_chunks_raise_only_promwire_errors(data: st.DataObject) -> None:
    is_float = data.draw(st.booleans())
    hs = data.draw(float_chunks() if is_float else int_chunks())
    encoded = bytearray((encode_float_histogram_chunk if is_float else encode_histogram_chunk)(hs))
    for _ in range(data.draw(st.integers(1, 4))):
        how = data.draw(st.sampled_from(["flip", "cut", "count", "byte"]))
        if how == "flip" and encoded:
            i = data.draw(st.integers(0, len(encoded) * 8 - 1))
            encoded[i >> 3] ^= 0x80 >> (i & 7)
        elif how == "cut":
            del encoded[data.draw(st.integers(0, len(encoded))) :]
        elif how == "count" and len(encoded) >= 2:
            encoded[0:2] = data.draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif encoded:
            encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    decode = decode_float_histogram_chunk if is_float else decode_histogram_chunk
    try:
        got = decode(bytes(encoded))
    except PromwireError:
        return
    assert len(got) == int.from_bytes(encoded[:2], "big")


def test_truncated_and_huge_layouts_are_refused() -> None:
    with pytest.raises(DecodeError):
        decode_histogram_chunk(b"\x00\x01")
    data = encode_histogram_chunk([_counter(1, {0: 1, 1: 2})])
    for end in range(3, len(data)):
        with pytest.raises(DecodeError):
            decode_histogram_chunk(data[:end])
    # A layout declaring billions of buckets fails at once, without allocating them.
    w = BitWriter()
    w.write(0, 8)
    w.varbit_int(0)
    w.varbit_uint(1)
    w.varbit_uint((1 << 32) - 1)
    w.varbit_int(0)
    with pytest.raises(DecodeError, match="more buckets"):
        decode_histogram_chunk(b"\x00\x01\x00" + w.getvalue() + bytes(20))
    rng = random.Random(7)
    for _ in range(200):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 60)))
        for decode in (decode_histogram_chunk, decode_float_histogram_chunk):
            with contextlib.suppress(PromwireError):
                decode(blob)


# ----------------------------------------------------------------------------- streamed read


def test_stream_chunked_response_serves_histograms() -> None:
    hist = [_counter(1000 * (i + 1), {0: i, 2: 2 * i}) for i in range(300)]
    floats = [_from_counts({-1: i}, {3: 1}, i, 2, 500 + 1000 * i, True, False) for i in range(50)]
    series = promwire.TimeSeries(
        labels=[Label("__name__", "h")],
        samples=[promwire.Sample(1.5, 10 + i) for i in range(5)],
        histograms=hist + floats[::-1],  # out of order: sorted before cutting
    )
    body = b"".join(stream_chunked_response([(0, [series])], max_bytes_in_frame=500))
    [(_, got)] = list(read_streamed_response(body))
    assert got.samples == series.samples
    want = sorted(hist + floats, key=lambda h: h.timestamp)
    assert [h.timestamp for h in got.histograms] == [h.timestamp for h in want]
    assert [(h.count_int, h.count_float) for h in got.histograms] == [
        (h.count_int, h.count_float) for h in want
    ]
    raw = [c for _, s in iter_chunked_series(body) for c in s.chunks]
    assert [c.min_time_ms for c in raw] == sorted(c.min_time_ms for c in raw)
    assert {c.type for c in raw} == {
        ChunkEncoding.XOR,
        ChunkEncoding.HISTOGRAM,
        ChunkEncoding.FLOAT_HISTOGRAM,
    }


def test_unknown_encodings_still_follow_on_unsupported() -> None:
    hist_chunk = cut_histogram_chunks([_counter(5, {0: 1})])[0]
    odd = Chunk(1, 2, ChunkEncoding.XOR2, b"\x00\x00")
    series = ChunkedSeries([Label("a", "b")], [hist_chunk, odd])
    body = b"".join(stream_chunked_response([(0, [series])]))
    with pytest.raises(promwire.UnsupportedChunkEncoding):
        list(read_streamed_response(body))
    [(_, got)] = list(read_streamed_response(body, on_unsupported="skip"))
    assert [h.timestamp for h in got.histograms] == [5]
    # Overlapping histogram chunks merge, the earlier one winning a timestamp.
    a = cut_histogram_chunks([_counter(t, {0: t}) for t in (1, 3, 5)])[0]
    b = cut_histogram_chunks([_counter(t, {0: 100 + t}) for t in (3, 4)])[0]
    merged = decode_series_histograms(ChunkedSeries([], [a, b]))
    assert [(h.timestamp, h.positive_deltas) for h in merged] == [
        (1, [1]),
        (3, [3]),
        (4, [104]),
        (5, [5]),
    ]


# ----------------------------------------------------------------------------- handlers


class _Histograms(BaseStorage):
    """A sync storage answering every query with ``series`` (process_query)."""

    def __init__(self, series: list[promwire.TimeSeries]) -> None:
        self.series = series

    def process_query(self, ctx: Any, query: promwire.Query) -> promwire.QueryResult:
        return promwire.QueryResult(list(self.series))


class _AsyncHistograms(AsyncBaseStorage):
    """The same as an async generator of series (process_query_chunks)."""

    def __init__(self, series: list[promwire.TimeSeries]) -> None:
        self.series = series

    async def process_query(self, ctx: Any, query: promwire.Query) -> promwire.QueryResult:
        raise AssertionError("unused")

    async def process_query_chunks(
        self, ctx: Any, query: promwire.Query
    ) -> AsyncIterator[promwire.TimeSeries]:
        for s in self.series:
            await asyncio.sleep(0)
            yield s


def _read_body() -> bytes:
    request = promwire.ReadRequest(
        queries=[promwire.Query(0, 10**12, [])],
        accepted_response_types=[promwire.ResponseType.STREAMED_XOR_CHUNKS],
    )
    return promwire.snappy.compress(promwire.encode(request))


def test_handlers_stream_stored_histograms_sync_and_async() -> None:
    from promwire.server.handlers import (
        aprime_response,
        handle_read,
        handle_read_async,
        prime_response,
    )

    # 600 histograms: the async handler frames such a series in a worker thread.
    series = [
        promwire.TimeSeries(
            labels=[Label("__name__", "a")],
            histograms=[_counter(1000 * (i + 1), {0: i, 4: i // 3}) for i in range(600)],
        ),
        promwire.TimeSeries(
            labels=[Label("__name__", "b")],
            samples=[promwire.Sample(2.0, 10)],
            histograms=[_from_counts({1: 1}, {2: i}, 0, 1, 5 + i, True, False) for i in range(3)],
        ),
    ]
    resp = prime_response(handle_read(_read_body(), {}, _Histograms(series)))
    assert resp.status == 200 and not isinstance(resp.body, bytes | AsyncIterator)
    sync_body = b"".join(resp.body)  # type: ignore[arg-type]

    async def run() -> bytes:
        aresp = await aprime_response(
            await handle_read_async(_read_body(), {}, _AsyncHistograms(series))
        )
        assert aresp.status == 200 and isinstance(aresp.body, AsyncIterator)
        return b"".join([piece async for piece in aresp.body])

    assert asyncio.run(run()) == sync_body
    got = [s for _, s in read_streamed_response(sync_body)]
    assert [s.samples for s in got] == [[], series[1].samples]
    for have, want in zip(got, series, strict=True):
        assert [
            (h.timestamp, h.count_int, h.count_float, _buckets(h)) for h in have.histograms
        ] == [(h.timestamp, h.count_int, h.count_float, _buckets(h)) for h in want.histograms]


def test_bench_histogram_smoke() -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_histogram.py"
    out = subprocess.run(
        [sys.executable, str(script), "--smoke"], capture_output=True, check=True, timeout=120
    )
    assert out.stdout.strip() == b"ok"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histogram_series(), st.integers(1, 130), st.integers(60, 4000))
def test_streamed_answers_carry_any_histogram_series(
    hs: list[Histogram], per_chunk: int, frame_bytes: int
) -> None:
    series = promwire.TimeSeries(labels=[Label("__name__", "x")], histograms=hs)
    body = b"".join(
        stream_chunked_response(
            [(0, [series])], max_bytes_in_frame=frame_bytes, samples_per_chunk=per_chunk
        )
    )
    [(_, got)] = list(read_streamed_response(body))
    assert len(got.histograms) == len(hs)
    for have, want in zip(got.histograms, hs, strict=True):
        assert have.timestamp == want.timestamp
        if not _is_stale_hist(want):
            assert (have.count_int, have.count_float, have.sum) == (
                want.count_int,
                want.count_float,
                want.sum,
            )


def _is_stale_hist(h: Histogram) -> bool:
    return struct.pack("<d", h.sum) == struct.pack("<Q", STALE_NAN_BITS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(promwire.testing.histograms(), min_size=1, max_size=4))
def test_encoders_refuse_inconsistent_histograms_with_promwire_errors(
    hs: list[Histogram],
) -> None:
    # Any content the wire codec carries (spans not matching buckets, both
    # count flavours, out-of-order timestamps...): encoded or refused, never a crash.
    for encode, decode in (
        (encode_histogram_chunk, decode_histogram_chunk),
        (encode_float_histogram_chunk, decode_float_histogram_chunk),
    ):
        try:
            data = encode(hs)
        except PromwireError:
            continue
        assert len(decode(data)) == len(hs)
    try:
        chunks = cut_histogram_chunks(hs)
    except PromwireError:
        return
    assert sum(int.from_bytes(c.data[:2], "big") for c in chunks) == len(hs)
