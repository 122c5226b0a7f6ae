"""SAMPLES remote read from columns: the encoder, the SQLite member, the handlers, serve.

:func:`~promwire.codec.read_columns.encode_read_response_columns` must write
exactly the bytes of the object form (hypothesis, and Prometheus 2.42's own
answers); ``SQLiteStorage.process_query_columns`` must hold what
``process_query`` holds; the handlers use it when a storage has it (through
``promwire serve``'s operator layer too) and answer the same bytes as the
object path. Also here: a streamed answer of one frame is sent with a
Content-Length, a longer one chunked, and its Chunk records are written by
hand as the generic encoder writes them.
"""

from __future__ import annotations

import asyncio
import http.client
import math
import socket
import struct
import threading
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
    BucketSpan,
    Chunk,
    ChunkedReadResponse,
    ChunkedSeries,
    ChunkEncoding,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    QueryResult,
    ReadRequest,
    ReadResponse,
    ResponseType,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from promwire.chunks.streamed import chunked_messages, read_streamed_response
from promwire.codec import read_columns
from promwire.codec.columnar import decode_read_columns
from promwire.codec.columns import SeriesColumns
from promwire.codec.read_columns import (
    compressed_read_response,
    encode_read_response_columns,
    encode_series_columns,
    read_response_buffer,
)
from promwire.errors import EncodeError
from promwire.server.handlers import handle_read, handle_read_async, handle_write
from promwire.server.metrics import Metrics
from promwire.server.operated import operated_storage
from promwire.server.workers import bind_socket
from promwire.stores.protocol import AsyncBaseStorage, BaseStorage, RequestContext
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.tenancy import tenant_storage
from promwire.testing import chunked_series, doubles, exemplars, histograms, labels
from tests.support.serve_process import PROTOBUF_HEADERS, serve_process

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "prometheus-2.42"
NOW = 1_795_582_338_992
STEP = 15_000
HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}


def _double(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def _bits(values: Any) -> list[int]:
    return [struct.unpack("<Q", struct.pack("<d", v))[0] for v in values]


def object_form(results: Sequence[Sequence[SeriesColumns]]) -> bytes:
    """What the object path writes for the same content."""
    return encode(
        ReadResponse(
            results=[
                QueryResult(
                    timeseries=[
                        TimeSeries(
                            labels=list(sc.labels),
                            samples=[
                                Sample(v, t) for t, v in zip(sc.timestamps, sc.values, strict=True)
                            ],
                            exemplars=list(sc.exemplars),
                            histograms=list(sc.histograms),
                        )
                        for sc in result
                    ]
                )
                for result in results
            ]
        )
    )


# ------------------------------------------------------------------ the encoder


@st.composite
def sample_columns(draw: st.DrawFn) -> tuple[array[int], array[float]]:
    """Timestamps and values shaped like a store's answer, and sometimes not."""
    n = draw(st.integers(0, 80))
    shape = draw(st.sampled_from(["today", "today", "edges", "any"]))
    if shape == "today":  # 6-byte varints, in time order
        start = draw(st.integers(1 << 35, (1 << 42) - 1 - 60_000 * n))
        steps = draw(st.lists(st.integers(1, 60_000), min_size=n, max_size=n))
        ts = [start + sum(steps[:i]) for i in range(n)]
    elif shape == "edges":  # around both ends of the 6-byte range
        edge = draw(st.sampled_from([1 << 35, 1 << 42]))
        ts = sorted(draw(st.lists(st.integers(edge - 50, edge + 50), min_size=n, max_size=n)))
    else:
        ts = draw(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=n, max_size=n))
    values = draw(st.lists(doubles(), min_size=n, max_size=n))
    # runs of zeros of either sign, where the encoder switches record shapes
    for _ in range(draw(st.integers(0, 3))):
        if n:
            a = draw(st.integers(0, n - 1))
            b = draw(st.integers(a, n))
            zero = draw(st.sampled_from([0.0, -0.0]))
            values[a:b] = [zero] * (b - a)
    return array("q", ts), array("d", values)


@st.composite
def series_columns(draw: st.DrawFn) -> SeriesColumns:
    ts, vs = draw(sample_columns())
    return SeriesColumns(
        tuple(draw(st.lists(labels(), max_size=4))),
        ts,
        vs,
        draw(st.lists(histograms(), max_size=2)),
        draw(st.lists(exemplars(), max_size=2)),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(series_columns(), max_size=3), max_size=3))
def test_columns_encode_as_the_object_form(results: list[list[SeriesColumns]]) -> None:
    assert encode_read_response_columns(results) == object_form(results)


@pytest.mark.parametrize(
    "values",
    [
        [1.5] * 500,  # one run of 18-byte records
        [0.0] * 500,  # one run of 9-byte records
        [0.0] * 200 + [2.0] * 100 + [0.0] * 200,
        [-0.0] * 300 + [0.0] * 200,  # -0.0 is written, +0.0 is not
        [0.0 if i % 3 else 1.0 for i in range(500)],  # scattered: one by one
        [_double(1), 0.0, _double(0x8000000000000001)] * 100,  # subnormals beside zeros
        [math.nan, math.inf, -math.inf, 0.0] * 125,
    ],
)
def test_long_series_of_every_value_shape(values: list[float]) -> None:
    sc = SeriesColumns(
        (Label("__name__", "m"),),
        array("q", range(NOW, NOW + STEP * len(values), STEP)),
        array("d", values),
        [],
        [],
    )
    assert encode_read_response_columns([[sc], [sc]]) == object_form([[sc], [sc]])


@pytest.mark.parametrize(
    "values",
    [
        [1.5] * 5_000,  # 90 kB of 18-byte records: written in place
        [0.0] * 5_000,  # 45 kB of 9-byte records: in place
        [0.0] * 4_000 + [2.0] * 3_000 + [0.0] * 4_000 + [3.0] * 10,  # runs in place and not
        [float(i) * 1.25 - 7.0 for i in range(20_000)],  # a zero among them: one by one for it
        [-0.0] * 2_000 + [0.0] * 4_000,
        # subnormals (their top byte is zero too) next to long runs of zeros
        ([5e-324] * 3 + [0.0] * 3_000 + [-0.0] * 50 + [0.0] * 2_000 + [1e-310, 2.0]) * 2,
    ],
    ids=["long", "short", "mixed", "counter", "minus-zero", "subnormal"],
)
def test_large_runs_written_in_place_are_the_object_form(values: list[float]) -> None:
    sc = SeriesColumns(
        (Label("__name__", "m"), Label("job", "j")),
        array("q", range(NOW, NOW + STEP * len(values), STEP)),
        array("d", values),
        [],
        [],
    )
    other = SeriesColumns((Label("__name__", "n"),), array("q", [NOW]), array("d", [1.0]), [], [])
    results = [[sc, other], [], [other, sc]]
    expected = object_form(results)
    buffer = read_response_buffer(results)
    assert buffer == expected
    assert encode_read_response_columns(results) == expected
    assert encode_series_columns(sc) == encode(
        TimeSeries(
            list(sc.labels), [Sample(v, t) for t, v in zip(sc.timestamps, values, strict=True)]
        )
    )
    # decoded back by the client's reader: the same samples, bit for bit
    (first, _), _, _ = decode_read_columns(expected)
    assert first.timestamps == sc.timestamps
    assert _bits(first.values) == _bits(values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(series_columns(), max_size=3), max_size=3))
def test_every_run_written_in_place_is_the_object_form(
    results: list[list[SeriesColumns]],
) -> None:
    # with no size threshold, every run of records takes the in-place writer
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(read_columns, "_IN_PLACE_BYTES", 0)
        assert read_response_buffer(results) == object_form(results)


def test_compressed_answers_reuse_the_threads_buffers_byte_for_byte() -> None:
    """The SAMPLES body from the kept buffers equals compressing the encoding,
    answer after answer of growing and shrinking sizes (no byte of an
    earlier, larger answer leaks), under and over the cap, in many threads."""

    def answer(n: int, seed: int) -> list[list[SeriesColumns]]:
        values = [((i * 7919 + seed) % 1000) / 8.0 for i in range(n)]
        sc = SeriesColumns(
            (Label("__name__", f"m{seed}"),),
            array("q", range(NOW, NOW + STEP * n, STEP)),
            array("d", values),
            [],
            [],
        )
        return [[sc], [sc]] if seed % 2 else [[sc]]

    def check(sizes: list[int]) -> None:
        for seed, n in enumerate(sizes):
            results = answer(n, seed)
            expected = snappy.compress(encode_read_response_columns(results))
            assert compressed_read_response(results) == expected
            assert snappy.decompress(expected) == object_form(results)

    sizes = [30_000, 3, 5_000, 40_000, 0, 2_000, 40_000, 100]
    check(sizes)
    with pytest.MonkeyPatch.context() as mp:  # answers over the caps: fresh buffers
        mp.setattr(read_columns, "KEEP_BYTES", 50_000)
        mp.setattr(snappy, "KEEP_BYTES", 60_000)
        check(sizes)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, [sizes, sizes[::-1], sizes[1:], sizes[:-1]]))


def test_compress_kept_is_compress() -> None:
    import os as _os

    for n in (0, 1, 100, 70_000, 10, 300_000, 5):
        data = _os.urandom(n // 2) + bytes(n - n // 2)
        for form in (data, bytearray(data), memoryview(data)):
            assert snappy.compress_kept(form) == snappy.compress(data)
    previous = snappy._use_backend("python")
    try:
        assert snappy.compress_kept(b"abc" * 1000) == snappy.compress(b"abc" * 1000)
    finally:
        snappy._use_backend(previous)


def _samples_fixtures() -> list[Path]:
    return sorted(
        [
            *FIXTURES.glob("rr_server/*_samples.response.bin"),
            *FIXTURES.glob("rr_client/*.response.bin"),
        ]
    )


@pytest.mark.parametrize("path", _samples_fixtures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_prometheus_answers_are_written_back_byte_for_byte(path: Path) -> None:
    raw = snappy.decompress(path.read_bytes())
    assert encode_read_response_columns(decode_read_columns(raw)) == raw


def test_the_fixtures_hold_samples() -> None:
    # the byte-for-byte test above is only worth something with samples in it
    total = 0
    for path in _samples_fixtures():
        raw = snappy.decompress(path.read_bytes())
        total += sum(len(sc.timestamps) for r in decode_read_columns(raw) for sc in r)
    assert total > 2000


def test_what_cannot_be_encoded_is_an_encode_error() -> None:
    labels_ = (Label("a", "b"),)
    uneven = SeriesColumns(labels_, array("q", [NOW, NOW + 1]), array("d", [1.0]), [], [])
    with pytest.raises(EncodeError, match="differ in length"):
        encode_read_response_columns([[uneven]])
    with pytest.raises(EncodeError, match="SeriesColumns"):
        encode_read_response_columns([[TimeSeries(labels=list(labels_))]])  # type: ignore[list-item]
    too_big = SeriesColumns(labels_, [1 << 64], [1.0], [], [])  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        encode_read_response_columns([[too_big]])
    # plain sequences are accepted and written like arrays
    plain = SeriesColumns(labels_, [NOW, NOW + 1], [0.0, 2.5], [], [])  # type: ignore[arg-type]
    as_arrays = SeriesColumns(labels_, array("q", [NOW, NOW + 1]), array("d", [0.0, 2.5]), [], [])
    assert encode_series_columns(plain) == encode_series_columns(as_arrays)


# ------------------------------------------------------------------ the SQLite member


def _written(store: SQLiteStorage, *series: TimeSeries) -> None:
    body = snappy.compress(encode(WriteRequest(list(series))))
    assert handle_write(body, HEADERS, store).status == 204


def _series(name: str, values: Sequence[float], start: int = NOW, **extra: str) -> TimeSeries:
    return TimeSeries(
        labels=[Label("__name__", name), *(Label(k, v) for k, v in sorted(extra.items()))],
        samples=[Sample(v, start + i * STEP) for i, v in enumerate(values)],
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """Chunks (compacted), head samples after them, histograms, odd floats."""
    with SQLiteStorage(tmp_path / "s.db") as s:
        stale = _double(0x7FF0000000000002)
        _written(
            s,
            _series("a", [float(i % 7) for i in range(900)], job="x"),
            _series("b", [0.0] * 300 + [-0.0, stale, math.nan] * 100, job="x"),
            _series("c", [1.25] * 10, job="y"),
        )
        s.compact(flush=True)
        _written(s, _series("a", [3.5] * 50, start=NOW + 900 * STEP, job="x"))  # in the head
        hist = TimeSeries(
            labels=[Label("__name__", "h"), Label("job", "x")],
            histograms=[_histogram(NOW + i * STEP) for i in range(5)],
        )
        _written(s, hist)
        yield s


def _histogram(t: int) -> Histogram:
    return Histogram(
        count_int=3,
        sum=4.5,
        schema=0,
        zero_threshold=1e-128,
        zero_count_int=1,
        positive_spans=[BucketSpan(0, 2)],
        positive_deltas=[1, 0],
        timestamp=t,
    )


QUERIES = [
    Query(0, 1 << 62, [LabelMatcher(MatchType.RE, "__name__", ".+")]),
    Query(NOW + 100 * STEP, NOW + 920 * STEP, [LabelMatcher(MatchType.EQ, "job", "x")]),
    Query(NOW + 3 * STEP, NOW + 3 * STEP, [LabelMatcher(MatchType.EQ, "__name__", "h")]),
    Query(0, 10, [LabelMatcher(MatchType.EQ, "__name__", "a")]),  # nothing in range
]


@pytest.mark.parametrize("query", QUERIES)
def test_sqlite_columns_hold_what_process_query_holds(store: SQLiteStorage, query: Query) -> None:
    objects = store.process_query(None, query).timeseries
    columns = store.process_query_columns(None, query)
    assert [list(sc.labels) for sc in columns] == [ts.labels for ts in objects]
    for sc, ts in zip(columns, objects, strict=True):
        assert sc.timestamps.typecode == "q" and sc.values.typecode == "d"
        assert list(sc.timestamps) == [s.timestamp for s in ts.samples]
        assert _bits(sc.values) == _bits(s.value for s in ts.samples)  # bit for bit
        assert sc.histograms == ts.histograms
        assert sc.exemplars == []
    assert encode_read_response_columns([columns]) == encode(
        ReadResponse(results=[QueryResult(timeseries=objects)])
    )


class ObjectsOnly(BaseStorage):
    """A user's storage: process_query only (the object path)."""

    def __init__(self, inner: SQLiteStorage) -> None:
        self.inner = inner

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        return self.inner.process_query(ctx, query)


def _read(queries: Sequence[Query], rtype: ResponseType = ResponseType.SAMPLES) -> bytes:
    return snappy.compress(encode(ReadRequest(list(queries), accepted_response_types=[rtype])))


def test_the_handlers_answer_the_object_paths_bytes(store: SQLiteStorage) -> None:
    body = _read(QUERIES)
    reference = handle_read(body, HEADERS, ObjectsOnly(store))
    assert reference.status == 200
    answer = decode(ReadResponse, snappy.decompress(bytes(reference.body)))  # type: ignore[arg-type]
    assert sum(len(ts.samples) for r in answer.results for ts in r.timeseries) > 1000
    wrapped = operated_storage(store, Metrics())
    assert wrapped.process_query_columns is not None  # passed through
    for storage in (store, wrapped):
        assert handle_read(body, HEADERS, storage).body == reference.body
        assert asyncio.run(handle_read_async(body, HEADERS, storage)).body == reference.body
    # a storage without the member is not offered one by the operator layer
    assert (
        getattr(operated_storage(ObjectsOnly(store), Metrics()), "process_query_columns", None)
        is None
    )


def test_the_budget_is_spent_on_the_columns_path(store: SQLiteStorage) -> None:
    resp = handle_read(_read(QUERIES[:1]), HEADERS, store, max_read_samples=100)
    assert resp.status == 400
    assert b"exceeded sample limit" in bytes(resp.body)  # type: ignore[arg-type]


class CarelessColumns(BaseStorage):
    """Ignores the budget and answers the wrong number of results."""

    def __init__(self, series: list[SeriesColumns]) -> None:
        self.series = series

    def process_query_columns(self, ctx: Any, query: Query) -> list[SeriesColumns]:
        return self.series


def test_the_finished_answer_is_counted_for_a_storage_that_ignores_the_budget() -> None:
    sc = SeriesColumns(
        (Label("__name__", "m"),),
        array("q", range(NOW, NOW + 500)),
        array("d", [1.0] * 500),
        [],
        [],
    )
    resp = handle_read(_read(QUERIES[:2]), HEADERS, CarelessColumns([sc]), max_read_samples=800)
    assert resp.status == 400  # 2 x 500 samples
    assert b"exceeded sample limit" in bytes(resp.body)  # type: ignore[arg-type]


class AsyncColumns(AsyncBaseStorage):
    def __init__(self, inner: SQLiteStorage) -> None:
        self.inner = inner
        self.calls = 0

    async def process_query_columns(self, ctx: Any, query: Query) -> list[SeriesColumns]:
        self.calls += 1
        await asyncio.sleep(0)
        return self.inner.process_query_columns(ctx, query)


def test_an_async_storage_member_is_awaited(store: SQLiteStorage) -> None:
    body = _read(QUERIES)
    reference = handle_read(body, HEADERS, ObjectsOnly(store)).body
    storage = AsyncColumns(store)
    assert asyncio.run(handle_read_async(body, HEADERS, storage)).body == reference
    assert storage.calls == len(QUERIES)


class ThreadedColumns(BaseStorage):
    """A sync storage noting the thread of each query; with ``coroutine_at``,
    that query's answer comes back as a coroutine (a sync-looking member)."""

    def __init__(self, inner: SQLiteStorage, coroutine_at: int | None = None) -> None:
        self.inner = inner
        self.threads: list[int] = []
        self.coroutine_at = coroutine_at

    def process_query_columns(self, ctx: Any, query: Query) -> Any:
        self.threads.append(threading.get_ident())
        answer = self.inner.process_query_columns(ctx, query)
        if len(self.threads) - 1 == self.coroutine_at:

            async def later() -> list[SeriesColumns]:
                await asyncio.sleep(0)
                return answer

            return later()
        return answer


def test_a_sync_storage_answers_in_one_worker_thread(store: SQLiteStorage) -> None:
    body = _read(QUERIES)
    reference = handle_read(body, HEADERS, ObjectsOnly(store)).body
    storage = ThreadedColumns(store)

    async def answer() -> tuple[bytes, int]:
        response = await handle_read_async(body, HEADERS, storage)
        assert isinstance(response.body, bytes)
        return response.body, threading.get_ident()

    hops = []
    to_thread = asyncio.to_thread

    async def counted(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await to_thread(fn, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(asyncio, "to_thread", counted)
        got, loop_thread = asyncio.run(answer())
    assert got == reference
    # every query and the encoding in one hop to a worker thread, none on the loop
    assert len(hops) == 1
    assert len(storage.threads) == len(QUERIES) > 1
    assert len(set(storage.threads)) == 1 and loop_thread not in storage.threads


@pytest.mark.parametrize("at", [0, 1])
def test_a_sync_looking_member_returning_a_coroutine_is_awaited(
    store: SQLiteStorage, at: int
) -> None:
    body = _read(QUERIES)
    reference = handle_read(body, HEADERS, ObjectsOnly(store)).body
    storage = ThreadedColumns(store, coroutine_at=at)
    assert asyncio.run(handle_read_async(body, HEADERS, storage)).body == reference
    assert len(storage.threads) == len(QUERIES)


# ------------------------------------------------------------------ promwire serve


def _post(port: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/v1/read", body, PROTOBUF_HEADERS)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_serve_answers_samples_and_streams(tmp_path: Path, server: str) -> None:
    db = tmp_path / "serve.db"
    n = 3000
    values = [float(i % 5) for i in range(n)]  # zeros among them
    with SQLiteStorage(db) as s:
        _written(s, _series("a", values, job="x"), _series("b", [2.5] * n, job="x"))
    expected = {
        "a": list(zip(range(NOW, NOW + n * STEP, STEP), _bits(values), strict=True)),
        "b": list(zip(range(NOW, NOW + n * STEP, STEP), _bits([2.5] * n), strict=True)),
    }
    everything = Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "job", "x")])
    only_a = Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "a")])
    with serve_process(db, server) as served:
        status, _, body = _post(served.port, _read([everything, only_a]))
        assert status == 200
        answer = decode(ReadResponse, snappy.decompress(body))
        got = [
            {
                ts.labels[0].value: list(
                    zip(
                        [s.timestamp for s in ts.samples],
                        _bits(s.value for s in ts.samples),
                        strict=True,
                    )
                )
                for ts in result.timeseries
            }
            for result in answer.results
        ]
        assert got == [expected, {"a": expected["a"]}]
        # one series: one frame, sent whole with a Content-Length
        status, headers, body = _post(
            served.port, _read([only_a], ResponseType.STREAMED_XOR_CHUNKS)
        )
        assert status == 200
        assert headers.get("content-length") == str(len(body))
        assert "chunked" not in headers.get("transfer-encoding", "")
        [(_, ts)] = list(read_streamed_response(body))
        assert [(s.timestamp, *_bits([s.value])) for s in ts.samples] == expected["a"]
        # two series: two frames; uvicorn makes a small answer whole on its
        # event loop (inline_read_seconds) and sends it with a Content-Length,
        # wsgiref streams it unsized and ends it by closing
        status, headers, body = _post(
            served.port, _read([everything], ResponseType.STREAMED_XOR_CHUNKS)
        )
        assert status == 200
        if server == "uvicorn":
            assert headers.get("content-length") == str(len(body))
        else:
            assert "content-length" not in headers
        streamed = {
            ts.labels[0].value: [(s.timestamp, *_bits([s.value])) for s in ts.samples]
            for _, ts in read_streamed_response(body)
        }
        assert streamed == expected


# ------------------------------------------------------------------ streamed frames


@settings(max_examples=300, deadline=None)
@given(chunked_series(max_size=6), st.integers(0, 3))
def test_chunk_records_are_the_generic_encoders(series: ChunkedSeries, index: int) -> None:
    """The frames' hand-written Chunk records equal ``encode`` of the message."""
    messages = list(chunked_messages([(index, iter([series]))], max_bytes_in_frame=1 << 40))
    if not series.chunks:
        assert messages == []
        return
    labels_ = sorted(series.labels, key=lambda lb: lb.name)
    expected = ChunkedReadResponse(
        chunked_series=[ChunkedSeries(labels=labels_, chunks=series.chunks)], query_index=index
    )
    assert messages == [encode(expected)]


def test_chunks_of_today_and_of_every_other_shape() -> None:
    today = NOW
    shapes = [
        Chunk(today, today + 10, ChunkEncoding.XOR, b"\x00\x01"),
        Chunk(today, today + 10, ChunkEncoding.XOR, bytes(300)),  # a 2-byte data length
        Chunk(0, today, ChunkEncoding.HISTOGRAM, b"x"),  # a zero time is left out
        Chunk(-5, -1, ChunkEncoding.FLOAT_HISTOGRAM, b"y"),  # negative: 10-byte varints
        Chunk(today, today, ChunkEncoding.UNKNOWN, b"z"),  # type 0 is left out
        Chunk(today, today, 200, b"w"),  # a 2-byte enum number
        Chunk(today, today, ChunkEncoding.XOR, b""),  # no data: the generic encoder
        Chunk(1 << 42, 1 << 50, ChunkEncoding.XOR, b"v"),
        Chunk((1 << 35) - 1, 1 << 35, ChunkEncoding.XOR, b"u"),  # a 5-byte varint time
        Chunk(1 << 35, (1 << 42) - 1, ChunkEncoding.XOR, b"t"),  # the 6-byte range's ends
    ]
    # data sizes where the record's and the data's size varints grow a byte,
    # and past the two-byte sizes of the one-pack path
    shapes += [
        Chunk(today, today + 1, ChunkEncoding.XOR, bytes(range(256)) * 70 + bytes(n % 256))
        if n > 17_000
        else Chunk(today, today + 1, ChunkEncoding.XOR, bytes(n))
        for n in (1, 109, 110, 127, 128, 1024, 16_364, 16_365, 16_366, 17_920 + 7)
    ]
    series = ChunkedSeries(labels=[Label("__name__", "m")], chunks=shapes)
    [message] = chunked_messages([(1, iter([series]))], max_bytes_in_frame=1 << 40)
    assert message == encode(ChunkedReadResponse(chunked_series=[series], query_index=1))


# ------------------------------------------------------------------ the listening socket


def test_connections_accepted_on_serves_socket_have_nagle_off() -> None:
    """``serve`` binds its own socket; asyncio turns TCP_NODELAY on only for
    sockets of protocol IPPROTO_TCP (a small SAMPLES answer, head and body in
    two sends, otherwise waited 40 ms for the client's delayed ACK)."""
    sock = bind_socket("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Probe, sock=sock)  # as uvicorn serves it
        try:
            _, writer = await asyncio.open_connection(*sock.getsockname())
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted_nodelay()) != 0


def test_tenants_read_from_columns_apart(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "t.db") as inner:
        shared = tenant_storage(inner)
        assert shared.process_query_columns is not None  # passed through
        for tenant, value in (("a", 1.5), ("b", 0.0)):
            ctx = RequestContext(tenant=tenant)
            body = snappy.compress(encode(WriteRequest([_series("m", [value] * 300, job="x")])))
            assert handle_write(body, HEADERS, shared, ctx).status == 204
        for tenant, value in (("a", 1.5), ("b", 0.0)):
            ctx = RequestContext(tenant=tenant)
            columns = shared.process_query_columns(ctx, QUERIES[0])
            assert [list(sc.labels) for sc in columns] == [
                [Label("__name__", "m"), Label("job", "x")]
            ]
            assert list(columns[0].values) == [value] * 300
            body = _read(QUERIES)
            objects = ObjectsOnly(inner)
            reference = handle_read(body, HEADERS, tenant_storage(objects), ctx)
            assert reference.status == 200
            assert handle_read(body, HEADERS, shared, ctx).body == reference.body
