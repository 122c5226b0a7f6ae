"""Streamed remote read end to end against Prometheus' captures, plus the frame-filling rules."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire
from promwire import (
    Chunk,
    ChunkedReadResponse,
    ChunkedSeries,
    ChunkEncoding,
    DecodeError,
    EncodeError,
    Histogram,
    Label,
    PromwireError,
    ReadResponse,
    Sample,
    TimeSeries,
    UnsupportedChunkEncoding,
)
from promwire.chunks.frames import encode_frame, iter_frames
from promwire.chunks.streamed import (
    STREAMED_CONTENT_TYPE,
    aread_streamed_response,
    decode_series,
    iter_chunked_series,
    read_streamed_columns,
    read_streamed_response,
    stream_chunked_response,
)
from promwire.chunks.xor import cut_chunks, encode_xor
from promwire.codec.wire import double_bits

Key = tuple[int, tuple[tuple[str, str], ...]]


def _key(query_index: int, labels: list[Label]) -> Key:
    return query_index, tuple((lb.name, lb.value) for lb in labels)


def _bits(samples: list[Sample]) -> list[tuple[int, int]]:
    return [(s.timestamp, double_bits(s.value)) for s in samples]


def _samples_response(fixtures_dir: Path, case: str) -> ReadResponse:
    raw = (fixtures_dir / "rr_server" / f"{case}_samples.response.bin").read_bytes()
    return promwire.decode(ReadResponse, promwire.snappy.decompress(raw))


def _streamed(fixtures_dir: Path, case: str) -> bytes:
    return (fixtures_dir / "rr_server" / f"{case}_streamed.response.bin").read_bytes()


def _split(raw: bytes, size: int) -> Iterator[bytes]:
    return (raw[i : i + size] for i in range(0, len(raw), size))


# ----------------------------------------------------------------------------- Prometheus' captures


@pytest.mark.parametrize("case", ["rr_up", "rr_two_queries"])
def test_streamed_fixture_gives_exactly_the_samples_of_the_samples_fixture(
    fixtures_dir: Path, case: str
) -> None:
    expected = {
        _key(i, ts.labels): ts
        for i, result in enumerate(_samples_response(fixtures_dir, case).results)
        for ts in result.timeseries
    }
    got = list(
        read_streamed_response(_split(_streamed(fixtures_dir, case), 37), on_unsupported="skip")
    )
    keys = [_key(i, ts.labels) for i, ts in got]
    assert keys == sorted(keys)  # queries in order, series sorted within each
    assert set(keys) == set(expected)
    n_samples = 0
    for key, ts in zip(keys, (ts for _, ts in got), strict=True):
        assert _bits(ts.samples) == _bits(expected[key].samples)
        n_samples += len(ts.samples)
        # The native-histogram series streams HISTOGRAM chunks only (skipped
        # here); Prometheus 2.42's SAMPLES answer lists it with no samples and
        # no histograms either.
    assert n_samples >= 290


def test_histogram_chunks_decode_to_histograms(fixtures_dir: Path) -> None:
    raw = _streamed(fixtures_dir, "rr_native_hist")
    series = list(iter_chunked_series([raw]))
    assert len(series) == 1
    query_index, cs = series[0]
    assert query_index == 0
    assert {c.type for c in cs.chunks} == {ChunkEncoding.HISTOGRAM}
    assert all(c.data[:2] != b"\x00\x00" for c in cs.chunks)
    [(index, ts)] = list(read_streamed_response([raw]))
    assert (index, ts.labels, ts.samples) == (0, cs.labels, [])
    assert len(ts.histograms) == sum(int.from_bytes(c.data[:2], "big") for c in cs.chunks)
    # the columnar reader carries the same histograms beside its arrays
    [(_, columns)] = list(read_streamed_columns([raw]))
    assert columns.histograms == ts.histograms and len(columns.timestamps) == 0
    # the two-query capture holds one such series among float ones
    both = list(read_streamed_response([_streamed(fixtures_dir, "rr_two_queries")]))
    assert sum(1 for _, s in both if s.histograms) == 1
    # encodings that remain unknown still raise (or are skipped)
    odd = ChunkedSeries(cs.labels, [*cs.chunks, Chunk(0, 1, ChunkEncoding.XOR2, b"\x00\x00")])
    body = b"".join(stream_chunked_response([(0, [odd])]))
    with pytest.raises(UnsupportedChunkEncoding) as info:
        list(read_streamed_response([body]))
    assert info.value.chunk.type == ChunkEncoding.XOR2  # type: ignore[attr-defined]
    [(_, skipped)] = list(read_streamed_response([body], on_unsupported="skip"))
    assert skipped.histograms == ts.histograms


def test_resending_prometheus_samples_reproduces_its_stream(fixtures_dir: Path) -> None:
    response = _samples_response(fixtures_dir, "rr_up")
    out = b"".join(stream_chunked_response(list(enumerate(r.timeseries for r in response.results))))
    assert out == _streamed(fixtures_dir, "rr_up")


def test_mixed_timeseries_and_chunked_series_reproduce_prometheus_stream(
    fixtures_dir: Path,
) -> None:
    raw = _streamed(fixtures_dir, "rr_two_queries")
    samples = {
        _key(i, ts.labels): ts
        for i, r in enumerate(_samples_response(fixtures_dir, "rr_two_queries").results)
        for ts in r.timeseries
    }
    results: dict[int, list[TimeSeries | ChunkedSeries]] = {}
    for query_index, cs in iter_chunked_series([raw]):
        if all(c.type == ChunkEncoding.XOR for c in cs.chunks):
            ts = samples[_key(query_index, cs.labels)]
            # reversed: the writer sorts a list itself
            results.setdefault(query_index, []).insert(
                0, TimeSeries(labels=ts.labels, samples=ts.samples)
            )
        else:
            results.setdefault(query_index, []).insert(0, cs)
    out = b"".join(stream_chunked_response(sorted(results.items())))
    assert out == raw


def test_content_type_constant() -> None:
    assert (
        STREAMED_CONTENT_TYPE
        == "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    )


# ----------------------------------------------------------------------------- writer rules


def _series(name: str, n: int, step: int = 15_000, extra: list[Label] | None = None) -> TimeSeries:
    labels = [Label("__name__", name), *(extra or [])]
    return TimeSeries(
        labels=labels, samples=[Sample(value=float(i % 5), timestamp=step * i) for i in range(n)]
    )


def _frames(stream: Iterator[bytes]) -> list[ChunkedReadResponse]:
    return [promwire.decode(ChunkedReadResponse, m) for m in iter_frames(stream)]


@pytest.mark.parametrize(
    ("extra", "max_bytes"),
    [
        ([Label("job", "j")], 400),
        # a label over 127 bytes: its record's size varint takes two bytes
        ([Label("job", "j"), Label("path", "/x" * 150)], 700),
    ],
)
def test_frame_budget_splits_long_series_like_prometheus(
    extra: list[Label], max_bytes: int
) -> None:
    series = _series("long", 120 * 30 + 7, extra=extra)
    labels_size = sum(len(promwire.encode(lb)) for lb in series.labels)
    frames = _frames(stream_chunked_response([(3, [series])], max_bytes_in_frame=max_bytes))
    chunks = cut_chunks(series.samples)
    assert len(frames) > 3
    seen: list[Chunk] = []
    for i, frame in enumerate(frames):
        assert frame.query_index == 3
        assert len(frame.chunked_series) == 1
        cs = frame.chunked_series[0]
        assert cs.labels == series.labels
        sizes = [len(promwire.encode(c)) for c in cs.chunks]
        budget = max_bytes - labels_size
        assert sizes and budget - sum(sizes[:-1]) > 0  # every chunk but the last kept it positive
        if i + 1 < len(frames):
            assert budget - sum(sizes) <= 0  # a frame closes only when the budget is spent
        seen.extend(cs.chunks)
    assert seen == chunks
    joined = list(
        read_streamed_response(
            stream_chunked_response([(3, [series])], max_bytes_in_frame=max_bytes)
        )
    )
    assert [(i, _bits(ts.samples)) for i, ts in joined] == [(3, _bits(series.samples))]


def test_default_frame_holds_a_whole_small_series_and_query_index_zero_is_omitted() -> None:
    frames = list(stream_chunked_response([(0, [_series("a", 500)])]))
    assert len(frames) == 1
    message = next(iter_frames(frames))
    assert b"\x10\x00" not in message[-2:]
    assert promwire.decode(ChunkedReadResponse, message).query_index == 0


def test_list_is_sorted_iterables_keep_their_order_labels_sorted_by_name() -> None:
    b = _series("b", 3)
    a2 = TimeSeries(labels=[Label("z", "1"), Label("__name__", "a")], samples=b.samples)
    a1 = _series("a", 3)
    got = [
        _key(f.query_index, f.chunked_series[0].labels)
        for f in _frames(stream_chunked_response([(0, [b, a2, a1])]))
    ]
    assert got == [
        (0, (("__name__", "a"),)),
        (0, (("__name__", "a"), ("z", "1"))),
        (0, (("__name__", "b"),)),
    ]
    got = [
        _key(f.query_index, f.chunked_series[0].labels)
        for f in _frames(stream_chunked_response([(0, iter([b, a1]))]))
    ]
    assert got == [(0, (("__name__", "b"),)), (0, (("__name__", "a"),))]


def test_series_without_chunks_produce_no_frame() -> None:
    empty = TimeSeries(labels=[Label("__name__", "e")])
    assert list(stream_chunked_response([(0, [empty, ChunkedSeries(labels=empty.labels)])])) == []
    assert list(stream_chunked_response([(0, []), (1, [])])) == []


def test_histogram_timeseries_are_streamed_as_histogram_chunks() -> None:
    ts = TimeSeries(
        labels=[Label("__name__", "h")], histograms=[Histogram(count_int=1, timestamp=5)]
    )
    body = b"".join(stream_chunked_response([(0, [ts])]))
    [(_, cs)] = list(iter_chunked_series([body]))
    assert [c.type for c in cs.chunks] == [ChunkEncoding.HISTOGRAM]
    [(_, got)] = list(read_streamed_response([body]))
    assert [(h.timestamp, h.count_int) for h in got.histograms] == [(5, 1)]
    bad = TimeSeries(labels=ts.labels, histograms=[Histogram(count_int=-1, timestamp=5)])
    with pytest.raises(EncodeError):
        list(stream_chunked_response([(0, [bad])]))


def test_writer_is_lazy() -> None:
    pulled: list[int] = []

    def series() -> Iterator[TimeSeries]:
        for i in range(1000):
            pulled.append(i)
            yield _series(f"s{i:04d}", 10)

    stream = stream_chunked_response([(0, series())])
    next(stream)
    assert len(pulled) <= 2


# ----------------------------------------------------------------------------- reader rules


def _stream_of(*responses: ChunkedReadResponse) -> bytes:
    return b"".join(encode_frame(promwire.encode(r)) for r in responses)


def _chunk(ts: list[int], vs: list[float]) -> Chunk:
    return Chunk(
        min_time_ms=ts[0], max_time_ms=ts[-1], type=ChunkEncoding.XOR, data=encode_xor(ts, vs)
    )


def test_reader_joins_only_consecutive_frames_of_the_same_series() -> None:
    la = [Label("__name__", "a")]
    lb = [Label("__name__", "b")]
    c1 = _chunk([1, 2], [1.0, 2.0])
    c2 = _chunk([3, 4], [3.0, 4.0])
    raw = _stream_of(
        ChunkedReadResponse([ChunkedSeries(la, [c1])]),
        ChunkedReadResponse([ChunkedSeries(la, [c2])]),
        ChunkedReadResponse([ChunkedSeries(lb, [c1])]),
        ChunkedReadResponse([ChunkedSeries(la, [c1])]),
        ChunkedReadResponse([ChunkedSeries(la, [c2])], query_index=1),
        # several series in one frame are accepted
        ChunkedReadResponse([ChunkedSeries(la, [c1]), ChunkedSeries(lb, [c2])], query_index=1),
    )
    got = [
        (i, ts.labels[0].value, [s.timestamp for s in ts.samples])
        for i, ts in read_streamed_response([raw])
    ]
    assert got == [
        (0, "a", [1, 2, 3, 4]),
        (0, "b", [1, 2]),
        (0, "a", [1, 2]),
        (1, "a", [1, 2, 3, 4]),  # joined; chunks out of time order are merged
        (1, "b", [3, 4]),
    ]


def test_overlapping_chunks_merge_by_timestamp_earlier_chunk_wins() -> None:
    cs = ChunkedSeries(
        [Label("__name__", "o")],
        [_chunk([10, 20, 30], [1.0, 2.0, 3.0]), _chunk([5, 20, 40], [9.0, 9.5, 4.0])],
    )
    assert decode_series(cs) == ([5, 10, 20, 30, 40], [9.0, 1.0, 2.0, 3.0, 4.0])


def test_time_filter_is_optional_and_inclusive() -> None:
    cs = ChunkedSeries([Label("__name__", "f")], [_chunk([10, 20, 30, 40], [1.0, 2.0, 3.0, 4.0])])
    raw = _stream_of(ChunkedReadResponse([cs]))
    ((_, everything),) = read_streamed_response([raw])
    assert [s.timestamp for s in everything.samples] == [10, 20, 30, 40]
    ((_, some),) = read_streamed_response([raw], start_ms=20, end_ms=30)
    assert [(s.timestamp, s.value) for s in some.samples] == [(20, 2.0), (30, 3.0)]
    assert decode_series(cs, start_ms=35) == ([40], [4.0])
    assert decode_series(cs, end_ms=9) == ([], [])


def test_stale_markers_survive_the_round_trip() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", promwire.STALE_NAN_BITS))[0]
    ts = TimeSeries(
        [Label("__name__", "s")], [Sample(1.0, 1000), Sample(stale, 2000), Sample(2.0, 3000)]
    )
    ((_, got),) = read_streamed_response(stream_chunked_response([(0, [ts])]))
    assert _bits(got.samples) == _bits(ts.samples)


def test_bad_message_in_a_good_frame_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        list(read_streamed_response([encode_frame(b"\x0a\x05\x01")]))


def test_async_reader() -> None:
    raw = b"".join(
        stream_chunked_response(
            [(0, [_series("a", 300), _series("b", 5)]), (1, [_series("c", 1)])],
            max_bytes_in_frame=100,
        )
    )

    async def body() -> AsyncIterator[bytes]:
        for piece in _split(raw, 13):
            await asyncio.sleep(0)
            yield piece

    async def collect() -> list[tuple[int, str, int]]:
        return [
            (i, ts.labels[0].value, len(ts.samples))
            async for i, ts in aread_streamed_response(body())
        ]

    assert asyncio.run(collect()) == [(0, "a", 300), (0, "b", 5), (1, "c", 1)]


# ----------------------------------------------------------------------------- properties

label_sets = st.lists(
    st.tuples(st.sampled_from(["__name__", "job", "le", "x"]), st.text(min_size=1, max_size=4)),
    min_size=1,
    max_size=3,
    unique_by=lambda p: p[0],
)


@st.composite
def query_results(draw: st.DrawFn) -> list[tuple[int, list[TimeSeries]]]:
    out = []
    for query_index in range(draw(st.integers(1, 3))):
        series = []
        for pairs in draw(st.lists(label_sets, max_size=3, unique_by=lambda ps: tuple(sorted(ps)))):
            n = draw(st.integers(0, 300))
            start = draw(st.integers(-(10**12), 10**12))
            step = draw(st.integers(1, 20_000))  # series never repeat a timestamp
            values = draw(st.lists(st.floats(allow_nan=False), min_size=1, max_size=4))
            samples = [
                Sample(value=values[i % len(values)], timestamp=start + i * step) for i in range(n)
            ]
            series.append(TimeSeries(labels=[Label(k, v) for k, v in pairs], samples=samples))
        out.append((query_index, series))
    return out


@settings(max_examples=60, deadline=None)
@given(query_results(), st.integers(1, 3000), st.integers(1, 500), st.integers(1, 200))
def test_write_then_read_round_trips(
    results: list[tuple[int, list[TimeSeries]]], max_bytes: int, per_chunk: int, split: int
) -> None:
    raw = b"".join(
        stream_chunked_response(results, max_bytes_in_frame=max_bytes, samples_per_chunk=per_chunk)
    )
    expected = [
        (i, tuple(sorted((lb.name, lb.value) for lb in ts.labels)), _bits(ts.samples))
        for i, series in results
        for ts in sorted(series, key=lambda s: sorted((lb.name, lb.value) for lb in s.labels))
        if ts.samples
    ]
    got = [
        (i, _key(i, ts.labels)[1], _bits(ts.samples))
        for i, ts in read_streamed_response(_split(raw, split))
    ]
    assert got == expected


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupted_streams_raise_only_promwire_errors(data: st.DataObject) -> None:
    raw = bytearray(
        b"".join(
            stream_chunked_response(
                [(0, [_series("a", 200), _series("b", 3)])], max_bytes_in_frame=60
            )
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    # also bypass the checksum: re-frame corrupted messages so decoding itself is exercised
    try:
        messages = list(iter_frames([bytes(raw)]))
    except PromwireError:
        messages = []
    reframed = b"".join(encode_frame(m[: len(m) - data.draw(st.integers(0, 3))]) for m in messages)
    for stream in (bytes(raw), reframed):
        try:
            for _ in read_streamed_response([stream]):
                pass
        except PromwireError:
            pass


@pytest.mark.parametrize("long_label", [False, True])
def test_frame_budget_counts_the_labels_own_sizes_to_the_byte(long_label: bool) -> None:
    """Chunks of one size: a frame is cut exactly where Prometheus' budget
    (max_bytes_in_frame less the labels' own sizes, not their records')
    runs out, with labels under and over 127 bytes."""
    labels = [Label("__name__", "m"), Label("job", "j" * (300 if long_label else 5))]
    labels_size = sum(len(promwire.encode(lb)) for lb in labels)
    t = 1_795_582_338_992
    chunks = [Chunk(t + i, t + i, ChunkEncoding.XOR, bytes(200)) for i in range(9)]
    chunk_size = len(promwire.encode(chunks[0]))
    series = ChunkedSeries(labels=labels, chunks=chunks)
    for max_bytes in (labels_size + 3 * chunk_size, labels_size + 2 * chunk_size + 1):
        frames = _frames(stream_chunked_response([(0, [series])], max_bytes_in_frame=max_bytes))
        assert [len(f.chunked_series[0].chunks) for f in frames] == [3, 3, 3]
