"""Streamed remote read (STREAMED_XOR_CHUNKS): handlers, the SQLite store, the adapters."""

from __future__ import annotations

import asyncio
import http.client
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    BucketSpan,
    Chunk,
    ChunkedReadResponse,
    ChunkedSeries,
    ChunkEncoding,
    DecodeError,
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
    StorageError,
    StorageRejected,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from promwire.chunks.frames import iter_frames
from promwire.chunks.streamed import (
    STREAMED_CONTENT_TYPE,
    EncodedSeries,
    decode_series_histograms,
    read_streamed_response,
    stream_chunked_response,
)
from promwire.chunks.xor import cut_chunks
from promwire.server.asgi import RemoteStorageApp as AsgiApp
from promwire.server.handlers import (
    Response,
    aprime_response,
    handle_read,
    handle_read_async,
    handle_write,
    prime_response,
)
from promwire.server.wsgi import RemoteStorageApp as WsgiApp
from promwire.stores.protocol import AsyncBaseStorage, BaseStorage, RequestContext
from promwire.stores.sqlite import SQLiteStorage
from tests.test_asgi_wsgi import running

STREAMED = ResponseType.STREAMED_XOR_CHUNKS
SAMPLES = ResponseType.SAMPLES
ALL = [LabelMatcher(MatchType.RE, "__name__", ".+")]


def ts(name: str, n: int, *, start: int = 0, step: int = 1000, **labels: str) -> TimeSeries:
    return TimeSeries(
        labels=[Label("__name__", name), *(Label(k, v) for k, v in sorted(labels.items()))],
        samples=[Sample(float(i) * 1.5 + len(name), start + i * step) for i in range(n)],
    )


def read_body(*queries: Query, accepted: list[ResponseType] | None = None) -> bytes:
    req = ReadRequest(queries=list(queries), accepted_response_types=list(accepted or []))
    return snappy.compress(encode(req))


def store_with(*series: TimeSeries) -> SQLiteStorage:
    store = SQLiteStorage(":memory:")
    assert (
        handle_write(snappy.compress(encode(WriteRequest(list(series)))), {}, store).status == 204
    )
    return store


def body_bytes(resp: Response) -> bytes:
    # primed, a body of one frame is bytes (sent with a Content-Length)
    assert not isinstance(resp.body, AsyncIterator)
    return resp.body if isinstance(resp.body, bytes) else b"".join(resp.body)


def messages(body: bytes) -> list[ChunkedReadResponse]:
    return [decode(ChunkedReadResponse, m) for m in iter_frames([body])]


def label_key(series: TimeSeries | ChunkedSeries) -> list[tuple[str, str]]:
    return sorted((lb.name, lb.value) for lb in series.labels)


DATA = [
    ts("b_metric", 300, job="x"),
    ts("a_metric", 1000, job="y", step=15_000),
    ts("a_metric", 5, job="x"),
    ts("c_metric", 1),
]


# ------------------------------------------------------------------ the handler


def test_streamed_answer_headers_and_exact_data_with_sqlite() -> None:
    store = store_with(*DATA)
    queries = [
        Query(0, 10**12, [LabelMatcher(MatchType.EQ, "__name__", "a_metric")]),
        Query(0, 10**12, [LabelMatcher(MatchType.EQ, "job", "nobody")]),  # empty: no frame
        Query(100_000, 200_000, ALL),
    ]
    resp = prime_response(handle_read(read_body(*queries, accepted=[STREAMED, SAMPLES]), {}, store))
    assert resp.status == 200
    assert resp.headers == [("Content-Type", STREAMED_CONTENT_TYPE)]
    assert STREAMED_CONTENT_TYPE == (
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    )
    body = body_bytes(resp)
    got = list(read_streamed_response(body))
    # Filtered by time as a client must (a closed head group goes whole, as
    # Prometheus' completed head chunks do), exactly what process_query
    # (SAMPLES) answers, query by query, series sorted by labels.
    for index, query in enumerate(queries):
        expected = sorted(store.process_query(None, query).timeseries, key=label_key)
        within = read_streamed_response(
            body, start_ms=query.start_timestamp_ms, end_ms=query.end_timestamp_ms
        )
        assert [s for i, s in within if i == index] == expected
    assert [i for i, _ in got] == [0, 0, 2, 2]
    assert [label_key(s) for i, s in got if i == 0] == sorted(
        label_key(s) for i, s in got if i == 0
    )
    # Every frame: one series, query_index set (index 2 on the wire), labels sorted.
    for msg in messages(body):
        assert len(msg.chunked_series) == 1
        assert msg.query_index in (0, 2)
        names = [lb.name for lb in msg.chunked_series[0].labels]
        assert names == sorted(names)
        assert all(c.type == ChunkEncoding.XOR for c in msg.chunked_series[0].chunks)


@pytest.mark.parametrize(
    ("accepted", "streamed"),
    [
        ([], False),
        ([SAMPLES], False),
        ([SAMPLES, STREAMED], False),
        ([STREAMED], True),
        ([STREAMED, SAMPLES], True),
        ([7, STREAMED, SAMPLES], True),
        ([7, SAMPLES, STREAMED], False),
    ],
)
def test_first_supported_preference_wins(accepted: list[int], streamed: bool) -> None:
    store = store_with(ts("up", 3))
    body = read_body(Query(0, 10**9, ALL), accepted=accepted)  # type: ignore[arg-type]
    resp = prime_response(handle_read(body, {}, store))
    assert resp.status == 200
    if streamed:
        assert dict(resp.headers) == {"Content-Type": STREAMED_CONTENT_TYPE}
        assert [s for _, s in read_streamed_response(body_bytes(resp))] == [ts("up", 3)]
    else:
        assert dict(resp.headers) == {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
        }
        assert isinstance(resp.body, bytes)
        answer = decode(ReadResponse, snappy.decompress(resp.body))
        assert answer.results[0].timeseries == [ts("up", 3)]


class Spy(BaseStorage):
    """Answers from a fixed list; records calls; can fail at a given query."""

    def __init__(self, series: list[TimeSeries], fail_at: int | None = None) -> None:
        self.series = series
        self.calls: list[Query] = []
        self.fail_at = fail_at

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        self.calls.append(query)
        if self.fail_at is not None and len(self.calls) > self.fail_at:
            raise StorageError("disk on fire")
        return QueryResult(list(self.series))


def test_body_is_lazy_until_iterated() -> None:
    spy = Spy([ts("z", 2), ts("a", 2)])
    resp = handle_read(read_body(Query(), Query(), accepted=[STREAMED]), {}, spy)
    assert resp.status == 200
    assert spy.calls == []  # nothing computed yet
    assert isinstance(resp.body, Iterator)
    first = next(resp.body)
    assert len(spy.calls) == 1  # only the first query so far
    rest = b"".join(resp.body)
    got = list(read_streamed_response(first + rest))
    # process_query's list is sorted by label set before framing.
    assert [(i, s.labels[0].value) for i, s in got] == [(0, "a"), (0, "z"), (1, "a"), (1, "z")]


def test_frame_budget_splits_long_series_one_series_per_frame() -> None:
    long = ts("long", 5000)
    store = store_with(long, ts("short", 10))
    body = read_body(Query(0, 10**12, ALL), accepted=[STREAMED])
    small = body_bytes(prime_response(handle_read(body, {}, store, max_bytes_in_frame=2000)))
    default = body_bytes(prime_response(handle_read(body, {}, store)))
    small_msgs, default_msgs = messages(small), messages(default)
    assert len(default_msgs) == 2  # 1 MiB holds each series whole
    assert len(small_msgs) > 5
    for msg in small_msgs:
        (series,) = msg.chunked_series
        # Budget rule: the chunks before the last stay under the budget (labels deducted).
        sizes = [len(encode(c)) for c in series.chunks]
        labels = sum(len(encode(lb)) for lb in series.labels)
        assert sum(sizes[:-1]) < 2000 - labels
        assert all(len(c.data) <= 1024 for c in series.chunks)
    assert list(read_streamed_response(small)) == list(read_streamed_response(default))
    assert [s for _, s in read_streamed_response(small)] == [long, ts("short", 10)]
    # Chunks cut where Prometheus 2.42's head cuts them: at the 30th sample (1 s
    # apart from 0) the 2-hour range splits into 7_200_000 // (29_001 * 4) = 62
    # chunks of equal time, so the first ends before 7_200_000 // 62 ms: 117 samples.
    first_chunk = default_msgs[0].chunked_series[0].chunks[0]
    end = 7_200_000 // (7_200_000 // (29_001 * 4))
    assert (
        int.from_bytes(first_chunk.data[:2], "big")
        == sum(1 for s in long.samples if s.timestamp < end)
        == 117
    )


def test_storage_chunks_are_used_and_passed_through() -> None:
    odd = Chunk(min_time_ms=1, max_time_ms=2, type=ChunkEncoding.XOR2, data=b"\x00\x01opaque")

    class Chunky(BaseStorage):
        def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[Any]:
            yield ChunkedSeries(labels=[Label("__name__", "a")], chunks=[odd])
            yield ts("b", 3)

        def process_query(self, ctx: Any, query: Query) -> QueryResult:
            raise AssertionError("process_query_chunks must be preferred")

    body = body_bytes(handle_read(read_body(Query(), accepted=[STREAMED]), {}, Chunky()))
    msgs = messages(body)
    assert msgs[0].chunked_series[0].chunks == [odd]
    assert [s for _, s in read_streamed_response(body, on_unsupported="skip")][1] == ts("b", 3)


def test_error_before_the_first_frame_is_an_ordinary_error_response() -> None:
    resp = prime_response(
        handle_read(read_body(Query(), accepted=[STREAMED]), {}, Spy([], fail_at=0))
    )
    assert resp.status == 500
    assert resp.body == b"disk on fire\n"
    # Also after empty queries: no frame was sent yet.
    resp = prime_response(
        handle_read(read_body(Query(), Query(), accepted=[STREAMED]), {}, Spy([], fail_at=1))
    )
    assert resp.status == 500

    class Rejecting(BaseStorage):
        def process_query(self, ctx: Any, query: Query) -> QueryResult:
            raise StorageRejected("bad regex")

    resp = prime_response(handle_read(read_body(Query(), accepted=[STREAMED]), {}, Rejecting()))
    assert (resp.status, resp.body) == (400, b"bad regex\n")


def test_error_after_streaming_began_appends_text_the_reader_rejects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = Spy([ts("a", 200)], fail_at=1)
    resp = prime_response(handle_read(read_body(Query(), Query(), accepted=[STREAMED]), {}, spy))
    assert resp.status == 200
    with caplog.at_level(logging.ERROR, "promwire"):
        body = body_bytes(resp)
    assert body.endswith(b"promwire: streamed remote read failed: disk on fire\n")
    assert "failed after the first frame" in caplog.text
    with pytest.raises(DecodeError):
        list(read_streamed_response(body))


def _histogram(t: int) -> Histogram:
    return Histogram(
        count_int=2,
        sum=3.0,
        schema=0,
        zero_threshold=1e-128,
        positive_spans=[BucketSpan(0, 1)],
        positive_deltas=[2],
        timestamp=t,
    )


def test_histograms_are_streamed_as_histogram_chunks() -> None:
    mixed = ts("mixed", 3)
    mixed.histograms = [_histogram(5000)]
    only = TimeSeries([Label("__name__", "only_h")], histograms=[_histogram(1000)])
    spy = Spy([mixed, only])
    body = body_bytes(handle_read(read_body(Query(), accepted=[STREAMED]), {}, spy))
    got = [s for _, s in read_streamed_response(body)]
    assert [s.samples for s in got] == [mixed.samples, []]
    for series, want in zip(got, (mixed, only), strict=True):
        [h] = series.histograms
        assert (h.timestamp, h.count_int, h.sum) == (want.histograms[0].timestamp, 2, 3.0)
        assert (h.positive_spans, h.positive_deltas) == ([BucketSpan(0, 1)], [2])
    # SAMPLES still carries them.
    samples = handle_read(read_body(Query()), {}, spy)
    assert isinstance(samples.body, bytes)
    answer = decode(ReadResponse, snappy.decompress(samples.body)).results[0].timeseries
    assert answer == [mixed, only]


def chunked(series: TimeSeries) -> ChunkedSeries:
    """What the SQLite store streams for ``series``: its samples in XOR chunks."""
    return ChunkedSeries(labels=list(series.labels), chunks=cut_chunks(series.samples))


def test_sqlite_streams_histograms_as_histogram_chunks() -> None:
    # one series with floats (3 samples, 0..2 s) and histograms (9 s, 10 s)
    mixed = ts("mixed", 3)
    hists = [_histogram(9000), _histogram(10_000)]
    store = store_with(mixed, TimeSeries(list(mixed.labels), histograms=hists))
    [got] = list(store.process_query_chunks(None, Query(0, 10**9, ALL)))
    xor = chunked(ts("mixed", 3)).chunks
    assert got.chunks[: len(xor)] == xor  # floats first: their chunk starts earlier
    [hchunk] = got.chunks[len(xor) :]
    assert hchunk.type == ChunkEncoding.HISTOGRAM
    assert (hchunk.min_time_ms, hchunk.max_time_ms) == (9000, 10_000)
    # the whole answer decodes back to what was written, through the handler too
    request = read_body(Query(0, 10**9, ALL), accepted=[STREAMED])
    resp = prime_response(handle_read(request, {}, store))
    assert resp.status == 200
    body = body_bytes(resp)
    [(_, series)] = list(read_streamed_response(body))
    assert series.samples == mixed.samples
    # a chunk carries the zero bucket's count as 0 where the message left it unset
    assert [replace(h, reset_hint=0) for h in series.histograms] == [
        replace(h, zero_count_int=0) for h in hists
    ]
    # a range that cuts the histograms keeps the ones inside it
    [cut] = list(store.process_query_chunks(None, Query(9500, 10**9, ALL)))
    assert [c.type for c in cut.chunks] == [ChunkEncoding.HISTOGRAM]
    assert [h.timestamp for h in decode_series_histograms(cut)] == [10_000]


# ----------------------------------------------------------- the SQLite store


@pytest.mark.parametrize(
    ("method", "shape"),
    [("process_query_chunks", "series_chunks"), ("process_query_encoded", "series_encoded")],
)
def test_sqlite_streams_one_series_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, shape: str
) -> None:
    import promwire.stores.sqlite as sqlite_store

    fetched: list[int] = []
    real = getattr(sqlite_store, shape)

    def counting(conn: Any, sid: int, start: int, end: int, head: Any, **kw: Any) -> Any:
        fetched.append(sid)
        return real(conn, sid, start, end, head, **kw)

    monkeypatch.setattr(sqlite_store, shape, counting)

    def expected(series: TimeSeries) -> ChunkedSeries | EncodedSeries:
        if method == "process_query_chunks":
            return chunked(series)
        return EncodedSeries.of(series.labels, cut_chunks(series.samples))

    series = [ts("m", 50, i=f"{i:02d}") for i in range(20)]
    with SQLiteStorage(tmp_path / "s.db", synchronous="OFF") as store:
        store.write(None, WriteRequest(list(reversed(series))))
        it = getattr(store, method)(None, Query(0, 10**9, ALL))
        assert next(it) == expected(series[0])
        assert len(fetched) == 1  # one series' samples read so far
        # A snapshot: writes after the stream began are not seen by it, and the
        # stream may be resumed on another thread.
        store.write(None, WriteRequest([ts("m", 5, i="00a")]))
        out: list[Any] = []
        worker = threading.Thread(target=lambda: out.extend(it))
        worker.start()
        worker.join(10)
        assert out == [expected(s) for s in series[1:]]
        assert len(fetched) == 20
        assert [
            s.labels[1].value for s in store.process_query(None, Query(0, 10**9, ALL)).timeseries
        ][:2] == ["00", "00a"]


def test_sqlite_encodes_a_closed_head_group_once_and_the_open_one_afresh() -> None:
    import struct

    import promwire.stores.sqlite_streamed as streamed_module
    from promwire.stores.sqlite_chunks import cut_groups, encode_groups

    def head_cut(series: TimeSeries) -> EncodedSeries:
        """The series cut like Prometheus' head and encoded, with no cache."""
        t = [s.timestamp for s in series.samples]
        bits = [struct.unpack("<Q", struct.pack("<d", s.value))[0] for s in series.samples]
        chunks = [
            Chunk(mint, maxt, ChunkEncoding.XOR, data)
            for mint, maxt, _, data in encode_groups(t, bits, cut_groups(t, None)[0])
        ]
        return EncodedSeries.of(series.labels, chunks)

    # 15 s samples over 40 min, then 65 min: in the head (not compacted)
    series = ts("h", 160, start=1_700_000_000_000, step=15_000)
    more = ts("h", 260, start=1_700_000_000_000, step=15_000)
    store = store_with(series)
    query = Query(0, 1 << 60, ALL)
    first = list(store.process_query_encoded(None, query))
    assert first == [head_cut(series)] and len(first[0].sizes) == 2
    runs = streamed_module._HEAD_GROUPS.cache
    before = runs.held_keys()
    [second] = list(store.process_query_encoded(None, query))
    assert [second] == first and runs.held_keys() == before  # from the cache
    assert all(a is b for a, b in zip(second.pieces, first[0].pieces, strict=True))
    # 100 samples more: the closed first group is the same object, the rest is new
    store.write(None, WriteRequest([TimeSeries(more.labels, more.samples[160:])]))
    [third] = list(store.process_query_encoded(None, query))
    assert third == head_cut(more)
    assert third.pieces[0] is first[0].pieces[0] and third.pieces[2] is not first[0].pieces[2]
    [chunked_again] = list(store.process_query_chunks(None, query))
    assert EncodedSeries.of(more.labels, chunked_again.chunks) == head_cut(more)


def test_sqlite_sends_closed_head_groups_whole_and_trims_only_the_open_one() -> None:
    """Prometheus 2.42 sends completed head chunks whole and re-encodes only
    the open one, trimmed to the range; groups are cut over the whole head,
    so a read of another range reuses the same encoded groups."""
    import promwire.stores.sqlite_streamed as streamed_module

    t0 = 7_200_000 * 236_112  # a 2-hour boundary: 120-sample groups
    series = ts("h", 600, start=t0, step=15_000)  # 5 groups, all in the head
    store = store_with(series)
    times = [s.timestamp for s in series.samples]
    query = Query(times[130], times[590], ALL)
    [chunked] = list(store.process_query_chunks(None, query))
    assert [(c.min_time_ms, c.max_time_ms) for c in chunked.chunks] == [
        (times[120], times[239]),  # closed: whole, samples before the range too
        (times[240], times[359]),
        (times[360], times[479]),
        (times[480], times[590]),  # open: trimmed to the range
    ]
    [encoded] = list(store.process_query_encoded(None, query))
    assert encoded == EncodedSeries.of(chunked.labels, chunked.chunks)
    runs = streamed_module._HEAD_GROUPS.cache
    before = set(runs.held_keys())
    [other] = list(store.process_query_encoded(None, Query(times[250], times[599], ALL)))
    assert other.pieces[:4] == encoded.pieces[2:6]  # the same closed groups
    assert len(set(runs.held_keys()) - before) == 1  # one new: the open group, now read whole
    got = read_streamed_response(
        b"".join(stream_chunked_response([(0, [encoded])])),
        start_ms=query.start_timestamp_ms,
        end_ms=query.end_timestamp_ms,
    )
    assert [s for _, series_ in got for s in series_.samples] == series.samples[130:591]


def test_sqlite_stream_fails_cleanly_when_the_store_closes(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "c.db", synchronous="OFF")
    store.write(None, WriteRequest([ts("m", 5, i=str(i)) for i in range(3)]))
    it = store.process_query_chunks(None, Query(0, 10**9, ALL))
    next(it)
    store.close()
    with pytest.raises(StorageError):
        list(it)


# ---------------------------------------------------------------------- async


class AsyncChunks(AsyncBaseStorage):
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise AssertionError("unused")

    async def process_query_chunks(self, ctx: Any, query: Query) -> AsyncIterator[TimeSeries]:
        await asyncio.sleep(0)
        if self.fail:
            raise StorageError("async failure")
        yield ts("a", 1000)
        yield ts("b", 3)


class AsyncEncoded:
    """Only a sync ``process_query`` (never used) and an async ``process_query_encoded``."""

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise AssertionError("unused")

    async def process_query_encoded(self, ctx: Any, query: Query) -> AsyncIterator[EncodedSeries]:
        await asyncio.sleep(0)
        for series in (ts("a", 1000), ts("b", 3)):
            yield EncodedSeries.of(series.labels, cut_chunks(series.samples))


def test_an_async_process_query_encoded_is_pulled_on_the_loop() -> None:
    async def run() -> bytes:
        resp = await aprime_response(
            await handle_read_async(read_body(Query(), accepted=[STREAMED]), {}, AsyncEncoded())
        )
        assert resp.status == 200
        if isinstance(resp.body, AsyncIterator):
            return b"".join([piece async for piece in resp.body])
        assert isinstance(resp.body, bytes)
        return resp.body

    sync = body_bytes(
        handle_read(read_body(Query(), accepted=[STREAMED]), {}, Spy([ts("a", 1000), ts("b", 3)]))
    )
    assert asyncio.run(run()) == sync


def test_async_storage_streams_the_same_bytes() -> None:
    async def run(storage: Any) -> tuple[int, bytes]:
        resp = await aprime_response(
            await handle_read_async(read_body(Query(), accepted=[STREAMED]), {}, storage)
        )
        if isinstance(resp.body, bytes):
            return resp.status, resp.body
        if isinstance(resp.body, AsyncIterator):
            return resp.status, b"".join([piece async for piece in resp.body])
        return resp.status, b"".join(resp.body)

    status, body = asyncio.run(run(AsyncChunks()))
    assert status == 200
    sync = body_bytes(
        handle_read(read_body(Query(), accepted=[STREAMED]), {}, Spy([ts("a", 1000), ts("b", 3)]))
    )
    assert body == sync
    status, body = asyncio.run(run(AsyncChunks(fail=True)))
    assert (status, body) == (500, b"async failure\n")
    # A sync storage through the async handler: a plain iterator, pulled in threads.
    status, body = asyncio.run(run(Spy([ts("b", 3), ts("a", 1000)])))
    assert (status, body) == (200, sync)


# --------------------------------------------------------------- the adapters


def _post_read(port: int, body: bytes) -> tuple[int, dict[str, str], list[bytes]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # With a Content-Type: wsgiref fills in "text/plain" when it is missing.
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
        conn.request("POST", "/api/v1/read", body=body, headers=headers)
        resp = conn.getresponse()
        pieces = list(iter(lambda: resp.read1(1 << 16), b""))
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, pieces
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["uvicorn", "waitress", "wsgiref"])
def test_adapters_stream_frames(server: str) -> None:
    series = [ts("m", 3000, i=str(i)) for i in range(6)]
    store = store_with(*series)
    app = (AsgiApp if server == "uvicorn" else WsgiApp)(store, max_bytes_in_frame=4096)
    body = read_body(Query(0, 10**12, ALL), accepted=[STREAMED, SAMPLES])
    with running(server, app) as port:
        status, headers, pieces = _post_read(port, body)
        assert status == 200
        assert headers["content-type"] == STREAMED_CONTENT_TYPE
        assert "content-encoding" not in headers
        assert "content-length" not in headers  # streamed, not buffered
        assert [s for _, s in read_streamed_response(pieces)] == series
        # Storage failing before the first frame: an ordinary 500 through the adapter.
        failing = (AsgiApp if server == "uvicorn" else WsgiApp)(Spy([], fail_at=0))
    with running(server, failing) as port:
        status, headers, pieces = _post_read(port, body)
        assert (status, b"".join(pieces)) == (500, b"disk on fire\n")


# ------------------------------------------- first tried on the event loop


class _Clocked(BaseStorage):
    """A storage whose streamed reads check the budget's clock between series
    (``checks_read_deadline``), each series taking ``pause`` seconds; it
    notes the thread of every series it makes."""

    checks_read_deadline = True

    def __init__(self, n: int, pause: float = 0.0, size: int = 10, fail: bool = False) -> None:
        self.n, self.pause, self.size, self.fail = n, pause, size, fail
        self.threads: list[int] = []

    def write(self, ctx: Any, request: WriteRequest) -> None:
        raise NotImplementedError

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        return QueryResult(list(self.process_query_chunks(ctx, query)))  # type: ignore[arg-type]

    def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[TimeSeries]:
        for i in range(self.n):
            ctx.budget.check_time()
            time.sleep(self.pause)
            self.threads.append(threading.get_ident())
            if self.fail:
                raise StorageError("the disk is gone")
            yield ts("m", self.size, i=f"{i:04}")


async def _answer(storage: Any, inline: float, **limits: Any) -> tuple[Response, int]:
    resp = await aprime_response(
        await handle_read_async(
            read_body(Query(), accepted=[STREAMED]),
            {},
            storage,
            RequestContext(),
            inline_read_seconds=inline,
            **limits,
        )
    )
    return resp, threading.get_ident()


def test_a_small_streamed_read_is_answered_on_the_event_loop() -> None:
    store = _Clocked(3)
    resp, loop_thread = asyncio.run(_answer(store, 0.5))
    assert resp.status == 200 and isinstance(resp.body, bytes)
    assert set(store.threads) == {loop_thread}  # no worker thread
    threaded = _Clocked(3)
    again, loop_thread = asyncio.run(_answer(threaded, 0.0))  # 0: never on the loop
    assert loop_thread not in threaded.threads
    assert body_bytes(again) == resp.body
    plain = Spy([ts("m", 10, i=f"{i:04}") for i in range(3)])  # no checks_read_deadline
    assert body_bytes(handle_read(read_body(Query(), accepted=[STREAMED]), {}, plain)) == resp.body


def test_a_read_out_of_inline_time_starts_over_in_a_thread_and_loses_nothing() -> None:
    store = _Clocked(40, pause=0.002)  # 80 ms of work against 10 ms on the loop
    started = time.perf_counter()
    resp, loop_thread = asyncio.run(_answer(store, 0.01))
    assert resp.status == 200
    on_loop = [t for t in store.threads if t == loop_thread]
    assert 1 <= len(on_loop) <= 10  # given up after about 10 ms, not 80
    assert store.threads[-1] != loop_thread  # the rest, from the start, in a worker
    got = list(read_streamed_response(body_bytes(resp)))
    assert [s.labels for _, s in got] == [ts("m", 10, i=f"{i:04}").labels for i in range(40)]
    assert time.perf_counter() - started < 5


def test_a_large_answer_or_an_error_on_the_loop_is_the_threads_answer() -> None:
    big = _Clocked(30, size=2000)  # ~30 frames: over max_bytes_in_frame in all
    resp, loop_thread = asyncio.run(_answer(big, 0.5, max_bytes_in_frame=4096))
    assert resp.status == 200 and big.threads[-1] != loop_thread
    assert len(list(read_streamed_response(body_bytes(resp)))) == 30
    failing = _Clocked(5, fail=True)  # fails before its first frame
    resp, loop_thread = asyncio.run(_answer(failing, 0.5))
    assert set(failing.threads) == {loop_thread}
    threaded, _ = asyncio.run(_answer(_Clocked(5, fail=True), 0.0))
    assert resp.status == 500
    assert (resp.status, body_bytes(resp)) == (threaded.status, body_bytes(threaded))


def test_sqlite_on_a_file_is_tried_on_the_loop_and_gives_the_same_answer(tmp_path: Path) -> None:
    assert not SQLiteStorage(":memory:").checks_read_deadline  # shares its writer's lock
    store = SQLiteStorage(tmp_path / "inline.db")
    assert store.checks_read_deadline
    store.write(None, WriteRequest([ts("m", 500, i=str(i)) for i in range(50)]))
    answers = {}
    for inline in (0.0, 1e-9, 1.0):  # never, always out of time at once, always in time
        resp, _ = asyncio.run(_answer(store, inline))
        assert resp.status == 200
        answers[inline] = body_bytes(resp)
    assert answers[0.0] == answers[1e-9] == answers[1.0]
    assert len(list(read_streamed_response(answers[0.0]))) == 50
    store.close()


def test_the_operated_and_tenant_wrappers_pass_checks_read_deadline_on(tmp_path: Path) -> None:
    from promwire.server.operator import OperatorOptions
    from promwire.stores.tenancy import TenantStorage

    for store, checks in [
        (SQLiteStorage(tmp_path / "w.db"), True),
        (SQLiteStorage(":memory:"), False),
    ]:
        wrapped, _ = OperatorOptions().load().assemble(store)
        assert wrapped is not store
        assert wrapped.checks_read_deadline is checks  # what `serve` hands the app
        assert TenantStorage(store).checks_read_deadline is checks
        store.close()
