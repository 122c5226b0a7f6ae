"""Every resource limit, through the handlers and through the ASGI app under uvicorn.

Each limit is tried just over (refused, with the right status and a message
naming the limit) and exactly at the limit (accepted), for remote write 1.0
and 2.0; after every refused request the storage must not have been called.
The snappy bomb (48 bytes declaring ~2.7 GB) must be answered at once with a
few KiB allocated. The client side of streamed read must refuse a frame that
declares more than ``max_frame_size`` before its body arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    QueryResult,
    ReadRequest,
    ReadResponse,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
    v2,
)
from promwire.chunks.frames import FrameReader, iter_frames
from promwire.client.reader import RemoteReadClient
from promwire.codec.messages import ChunkedReadResponse, ResponseType
from promwire.codec.wire import varint
from promwire.errors import LimitExceeded
from promwire.server.asgi import RemoteStorageApp
from promwire.server.handlers import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    Response,
    handle_read,
    handle_read_async,
    handle_write,
    handle_write_async,
)
from promwire.stores.protocol import BaseStorage
from tests.support.prometheus import free_port

CONTENT_TYPES = {
    "v1": "application/x-protobuf",
    "v2": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
}
WRITTEN = "X-Prometheus-Remote-Write-Samples-Written"


def headers(version: str) -> dict[str, str]:
    return {"Content-Type": CONTENT_TYPES[version], "Content-Encoding": "snappy"}


class Recorder(BaseStorage):
    """Keeps every call; ``calls`` must stay empty across refused requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def write(self, ctx: Any, request: WriteRequest) -> None:
        self.calls.append(("write", request))

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        self.calls.append(("query", query))
        samples = [
            Sample(float(t), t) for t in range(query.start_timestamp_ms, 1 + query.end_timestamp_ms)
        ]
        return QueryResult([TimeSeries([Label("__name__", "m"), Label("q", "x")], samples)])


def series(i: int, *, labels: int = 2, samples: int = 1, value: str = "v") -> TimeSeries:
    """Series ``i`` with ``labels`` labels (``__name__`` first) and ``samples`` samples."""
    lbs = [Label("__name__", "m")] + [Label(f"l{j:03d}", f"{value}{i}") for j in range(labels - 1)]
    return TimeSeries(lbs, [Sample(1.0, 1000 + t) for t in range(samples)])


def body(version: str, items: list[TimeSeries]) -> bytes:
    request = WriteRequest(items)
    raw = encode(v2.from_v1(request)) if version == "v2" else encode(request)
    return snappy.compress(raw)


def write(kind: str, data: bytes, version: str, storage: Any, **limits: Any) -> Response:
    if kind == "async":
        return asyncio.run(handle_write_async(data, headers(version), storage, **limits))
    return handle_write(data, headers(version), storage, **limits)


def refused(resp: Response, status: int, *words: str) -> str:
    assert resp.status == status, resp.body
    assert ("Content-Type", "text/plain; charset=utf-8") in resp.headers
    assert isinstance(resp.body, bytes)
    text = resp.body.decode()
    for word in words:
        assert word in text, text
    return text


# ----------------------------------------------------------------- write limits


def limit_cases() -> list[tuple[str, list[TimeSeries], str, int, int]]:
    """(limit keyword, series, words in the message, value at which the request just fits)."""
    umlauts = [TimeSeries([Label("__name__", "m"), Label("k", "é" * 10)], [Sample(1.0, 1)])]
    long_name = [TimeSeries([Label("__name__", "m"), Label("n" * 30, "v")], [Sample(1.0, 1)])]
    return [
        ("max_series", [series(i) for i in range(5)], "5 series", 5),
        ("max_samples", [series(i, samples=4) for i in range(3)], "12 samples", 12),
        ("max_labels_per_series", [series(0), series(1, labels=7)], "7 labels", 7),
        # 10 code points, 20 UTF-8 bytes: the limit counts bytes.
        ("max_label_bytes", umlauts, "value 'éééééééééé' is 20 bytes", 20),
        ("max_label_bytes", long_name, "name 'nnnnn", 30),
    ]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(("limit", "items", "words", "fits"), limit_cases())
def test_count_and_label_limits(
    kind: str, version: str, limit: str, items: list[TimeSeries], words: str, fits: int
) -> None:
    store = Recorder()
    data = body(version, items)
    resp = write(kind, data, version, store, **{limit: fits - 1})
    text = refused(resp, 400, words, f"over the limit of {fits - 1} ({limit})")
    assert store.calls == []
    if version == "v2":  # refused whole: nothing written, so the counts are 0
        assert (WRITTEN, "0") in resp.headers
    else:
        assert not any(name.startswith("X-Prometheus") for name, _ in resp.headers)
    assert "\n" not in text.rstrip("\n")  # one human-readable line
    assert write(kind, data, version, store, **{limit: fits}).status == 204
    assert len(store.calls) == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_body_and_declared_size_limits(version: str) -> None:
    store = Recorder()
    data = body(version, [series(i) for i in range(3)])
    raw_size = snappy.declared_size(data)
    r = handle_write(data, headers(version), store, max_body_size=len(data) - 1)
    refused(r, 413, f"{len(data)} bytes", f"limit of {len(data) - 1}")
    r = handle_write(data, headers(version), store, max_decompressed_size=raw_size - 1)
    refused(r, 400, f"declares {raw_size} bytes", f"limit of {raw_size - 1}")
    assert store.calls == []
    assert handle_write(data, headers(version), store, max_body_size=len(data)).status == 204
    r = handle_write(data, headers(version), store, max_decompressed_size=raw_size)
    assert r.status == 204
    assert len(store.calls) == 2


def test_label_limits_ignore_a_long_v2_help_text() -> None:
    """A long symbol that is metadata help, not a label, does not count."""
    request = v2.Request(
        symbols=["", "__name__", "m", "h" * 500],
        timeseries=[
            v2.TimeSeries(
                labels_refs=[1, 2],
                samples=[v2.Sample(1.0, 1)],
                metadata=v2.Metadata(type=v2.MetricType.METRIC_TYPE_GAUGE, help_ref=3),
            )
        ],
    )
    store = Recorder()
    data = snappy.compress(encode(request))
    assert handle_write(data, headers("v2"), store, max_label_bytes=100).status == 204
    request.timeseries[0].labels_refs = [1, 3]  # now the same symbol is a label value
    r = handle_write(snappy.compress(encode(request)), headers("v2"), store, max_label_bytes=100)
    refused(r, 400, "series #0", "500 bytes", "(max_label_bytes)")
    assert len(store.calls) == 1


def bomb() -> bytes:
    """48 bytes of snappy declaring 0xA0000000 (~2.7 GB) decoded bytes."""
    data = varint(0xA000_0000) + b"\x00a" + b"\xfe\x01\x00" * 13 + b"\x01\x01"
    assert len(data) == 48 and snappy.declared_size(data) == 0xA000_0000
    return data


@pytest.fixture(params=snappy.BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = snappy._use_backend(request.param)
    try:
        yield request.param
    finally:
        snappy._use_backend(previous)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_snappy_bomb_is_refused_at_once_without_allocating(backend: str, version: str) -> None:
    store = Recorder()
    data = bomb()
    handle_write(data, headers(version), store)  # warm up imports and caches
    tracemalloc.start()
    try:
        started = time.perf_counter()
        resp = handle_write(data, headers(version), store)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    refused(resp, 400, "declares 2684354560 bytes", f"limit of {DEFAULT_MAX_DECOMPRESSED_SIZE}")
    assert peak < 64 * 1024, peak
    assert elapsed < 0.5, elapsed  # inflating 2.7 GB would take seconds
    assert store.calls == []


# ------------------------------------------------------------------ read limits


def read_body(queries: int, types: list[ResponseType] | None = None, end: int = 9) -> bytes:
    """``queries`` queries for ``[0, end]``; the Recorder answers end + 1 samples each."""
    q = Query(0, end, [LabelMatcher(MatchType.EQ, "__name__", "m")])
    return snappy.compress(encode(ReadRequest([q] * queries, types or [])))


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("rtype", [ResponseType.SAMPLES, ResponseType.STREAMED_XOR_CHUNKS])
def test_read_query_limit(kind: str, rtype: ResponseType) -> None:
    store = Recorder()
    data = read_body(3, [rtype])
    rh = {"Content-Encoding": "snappy"}

    def read(**limits: Any) -> Response:
        if kind == "async":
            return asyncio.run(handle_read_async(data, rh, store, **limits))
        return handle_read(data, rh, store, **limits)

    refused(read(max_read_queries=2), 400, "3 queries", "limit of 2 (max_read_queries)")
    assert store.calls == []
    assert read(max_read_queries=3).status == 200


def test_read_sample_limit_applies_to_samples_answers_only() -> None:
    store = Recorder()
    rh = {"Content-Encoding": "snappy"}
    r = handle_read(read_body(2), rh, store, max_read_samples=19)
    refused(r, 400, "exceeded sample limit", "20 samples", "limit of 19")
    r = handle_read(read_body(2), rh, store, max_read_samples=20)
    assert r.status == 200 and isinstance(r.body, bytes)
    assert (
        sum(
            len(ts.samples)
            for res in decode(ReadResponse, snappy.decompress(r.body)).results
            for ts in res.timeseries
        )
        == 20
    )
    streamed = handle_read(
        read_body(2, [ResponseType.STREAMED_XOR_CHUNKS]), rh, store, max_read_samples=1
    )
    assert streamed.status == 200
    assert len(list(iter_frames(b"".join(streamed.body)))) == 2  # type: ignore[arg-type]


def test_frame_reader_refuses_a_big_frame_from_its_length_prefix() -> None:
    reader = FrameReader(max_frame_size=1000)
    reader.feed(varint(1001) + b"\x00\x00\x00\x00")  # prefix and CRC only: no message bytes
    with pytest.raises(LimitExceeded, match="1001 bytes exceeds max_frame_size=1000"):
        reader.next_frame()
    ok = FrameReader(max_frame_size=1000)
    ok.feed(varint(1000))
    assert ok.next_frame() is None  # at the limit: waits for the body


def test_read_client_refuses_a_big_frame_before_its_body_arrives() -> None:
    """A server declares a 60 MB frame and then sends nothing: the client must not wait."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    release = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            while len(rest) < length:
                rest += conn.recv(65536)
            prefix = varint(60_000_000) + b"\x00\x00\x00\x00"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-streamed-protobuf; "
                b"proto=prometheus.ChunkedReadResponse\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(prefix):x}\r\n".encode()
                + prefix
                + b"\r\n"
            )
            release.wait(20)  # the body never comes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = RemoteReadClient(f"http://127.0.0.1:{port}/api/v1/read", timeout=15)
        started = time.monotonic()
        with pytest.raises(LimitExceeded, match="60000000 bytes exceeds max_frame_size=50000000"):
            list(client.query('{__name__="m"}', 0, 10))
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join(10)
        listener.close()


# ---------------------------------------------------------- ASGI under uvicorn

APP_LIMITS: dict[str, int] = {
    "max_body_size": 64 * 1024,
    "max_decompressed_size": 256 * 1024,
    "max_series": 10,
    "max_samples": 20,
    "max_labels_per_series": 8,
    "max_label_bytes": 64,
    "max_read_queries": 2,
    "max_read_samples": 15,
    "max_bytes_in_frame": 64,
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, Recorder]]:
    store = Recorder()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            RemoteStorageApp(store, **APP_LIMITS), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port, store
    finally:
        server.should_exit = True
        thread.join(10)


def post(
    port: int, path: str, data: bytes, hdrs: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_exchange(port: int, head: bytes, pieces: list[bytes]) -> bytes:
    """Send a request head and body pieces on a socket, return what the server answers.

    Stops sending as soon as an answer arrives (the server may answer early).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        answer = b""
        for piece in [*pieces, b""]:
            with contextlib.suppress(TimeoutError):
                answer += sock.recv(65536)
            if answer:
                break
            if piece:
                sock.sendall(piece)
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        return answer


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_write_limits_under_uvicorn(served: tuple[int, Recorder], version: str) -> None:
    port, store = served
    h = headers(version)
    before = len(store.calls)
    cases = [
        ([series(i) for i in range(11)], "(max_series)"),
        ([series(i, samples=3) for i in range(7)], "(max_samples)"),
        ([series(0, labels=9)], "(max_labels_per_series)"),
        ([series(0, value="x" * 65)], "(max_label_bytes)"),
    ]
    for items, words in cases:
        status, got, text = post(port, "/api/v1/write", body(version, items), h)
        assert (status, words in text.decode()) == (400, True), text
        assert got.get(WRITTEN.lower()) == ("0" if version == "v2" else None)
    started = time.monotonic()
    status, _, text = post(port, "/api/v1/write", bomb(), h)
    assert (status, b"declares 2684354560 bytes" in text) == (400, True)
    assert time.monotonic() - started < 1
    assert len(store.calls) == before  # nothing reached the storage
    ok = [series(i, labels=8, samples=2, value="y" * 60) for i in range(10)]
    assert post(port, "/api/v1/write", body(version, ok), h)[0] == 204
    assert len(store.calls) == before + 1


def test_body_cap_under_uvicorn(served: tuple[int, Recorder]) -> None:
    port, store = served
    before = len(store.calls)
    big = b"\x00" * (64 * 1024 + 1)
    status, _, text = post(port, "/api/v1/write", big, headers("v1"))
    assert (status, b"over the limit of 65536 bytes" in text) == (413, True)
    # A declared Content-Length over the cap is answered before any body byte is sent.
    head = (
        b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: "
        + CONTENT_TYPES["v2"].encode()
        + b"\r\nContent-Length: 1000000000\r\n\r\n"
    )
    answer = raw_exchange(port, head, [])
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert f"{WRITTEN.lower()}: 0".encode() in answer.lower()
    # A chunked body is refused once it passes the cap, before it ends.
    head = b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"4000\r\n" + b"\x00" * 0x4000 + b"\r\n"  # 16 KiB chunks, never a last chunk
    answer = raw_exchange(port, head, [piece] * 40)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert len(store.calls) == before


def test_read_limits_under_uvicorn(served: tuple[int, Recorder]) -> None:
    port, store = served
    rh = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    before = len(store.calls)
    status, _, text = post(port, "/api/v1/read", read_body(3), rh)
    assert (status, b"(max_read_queries)" in text) == (400, True)
    assert len(store.calls) == before
    status, _, text = post(port, "/api/v1/read", read_body(2), rh)  # 20 samples > 15
    assert (status, b"exceeded sample limit" in text) == (400, True)
    # Streamed: no sample limit; each frame holds at most max_bytes_in_frame
    # bytes of chunks plus the one chunk that crosses it (Prometheus' rule).
    streamed = read_body(2, [ResponseType.STREAMED_XOR_CHUNKS], end=999)
    status, got, frames = post(port, "/api/v1/read", streamed, rh)
    assert status == 200 and got["content-type"].startswith("application/x-streamed-protobuf")
    messages = [decode(ChunkedReadResponse, m) for m in iter_frames(frames, max_frame_size=1024)]
    assert len(messages) > 2  # the budget split each series over several frames
    chunks = 0
    for message in messages:
        for cs in message.chunked_series:
            sizes = [len(c.data) for c in cs.chunks]
            assert sum(sizes[:-1]) < APP_LIMITS["max_bytes_in_frame"]
            chunks += len(sizes)
    assert chunks == 2 * 9  # 1000 samples in 120-sample chunks, per query


def test_wsgi_app_passes_every_limit_on() -> None:
    """The WSGI app takes the same keywords (called directly; its server is tested elsewhere)."""
    import io
    from wsgiref.util import setup_testing_defaults

    from promwire.server.wsgi import RemoteStorageApp as WsgiApp

    store = Recorder()
    app = WsgiApp(store, max_labels_per_series=2, max_label_bytes=8, max_read_queries=1)

    def call(path: str, data: bytes, content_type: str) -> tuple[str, bytes]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(data)),
            "HTTP_CONTENT_ENCODING": "snappy",
            "wsgi.input": io.BytesIO(data),
        }
        setup_testing_defaults(environ)
        status: list[str] = []
        out = b"".join(app(environ, lambda s, h: status.append(s)))
        return status[0], out

    for version in ("v1", "v2"):
        status, text = call(
            "/api/v1/write", body(version, [series(0, labels=3)]), CONTENT_TYPES[version]
        )
        assert (status, b"(max_labels_per_series)" in text) == ("400 Bad Request", True)
        status, text = call(
            "/api/v1/write", body(version, [series(0, value="x" * 9)]), CONTENT_TYPES[version]
        )
        assert (status, b"(max_label_bytes)" in text) == ("400 Bad Request", True)
    status, text = call("/api/v1/read", read_body(2), "application/x-protobuf")
    assert (status, b"(max_read_queries)" in text) == ("400 Bad Request", True)
    assert store.calls == []
    with pytest.raises(ValueError, match="max_bytes_in_frame"):
        WsgiApp(store, max_bytes_in_frame=0)
    with pytest.raises(ValueError, match="max_bytes_in_frame"):
        RemoteStorageApp(store, max_bytes_in_frame=0)
