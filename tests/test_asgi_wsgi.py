"""The ASGI and WSGI apps under real servers on loopback: uvicorn, waitress, wsgiref."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from waitress import wasyncore
from waitress.server import create_server

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
)
from promwire.server.asgi import RemoteStorageApp as AsgiApp
from promwire.server.handlers import Response
from promwire.server.stdlib_httpd import make_guarded_server
from promwire.server.wsgi import RemoteStorageApp as WsgiApp
from promwire.stores.protocol import AsyncBaseStorage, BaseStorage
from promwire.stores.sqlite import SQLiteStorage
from tests.support.prometheus import free_port

RW = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
SERVERS = ["uvicorn", "waitress", "wsgiref"]
CHUNKED_SERVERS = ["uvicorn", "waitress"]  # wsgiref cannot read chunked uploads


@contextmanager
def running(kind: str, app: Any) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 with the named server; yields the port."""
    port = free_port()
    if kind == "uvicorn":
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        try:
            yield port
        finally:
            server.should_exit = True
            thread.join(10)
    elif kind == "waitress":
        wserver = create_server(app, host="127.0.0.1", port=port, threads=4)
        stop = threading.Event()

        def loop() -> None:
            # waitress' own run() cannot be stopped from another thread cleanly:
            # drive its event loop in short slices instead.
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=wserver._map, count=1)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield port
        finally:
            stop.set()
            thread.join(10)
            wserver.close()
    else:
        httpd = make_guarded_server("127.0.0.1", port, app)  # what `promwire serve` runs
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield port
        finally:
            httpd.shutdown()
            httpd.server_close()


def make_app(kind: str, storage: Any, **kw: Any) -> Any:
    return AsgiApp(storage, **kw) if kind == "uvicorn" else WsgiApp(storage, **kw)


def post(
    port: int,
    path: str,
    body: bytes | Iterator[bytes],
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or RW)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def write_body(n: int = 3, name: str = "m") -> bytes:
    req = WriteRequest(
        [
            TimeSeries([Label("__name__", name), Label("i", str(i))], [Sample(float(i), 1000 + i)])
            for i in range(n)
        ]
    )
    return snappy.compress(encode(req))


def read_body(name: str = "m") -> bytes:
    q = Query(0, 10_000, [LabelMatcher(MatchType.EQ, "__name__", name)])
    return snappy.compress(encode(ReadRequest([q])))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStorage]:
    with SQLiteStorage(tmp_path / "s.db") as s:
        yield s


@pytest.mark.parametrize("kind", SERVERS)
def test_write_then_read_and_204_has_no_body(kind: str, store: SQLiteStorage) -> None:
    with running(kind, make_app(kind, store)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        # Several requests on one connection: a 204 that carried a body would
        # desynchronise the following responses (keep-alive where supported).
        for i in range(3):
            conn.request("POST", "/api/v1/write", body=write_body(2, f"m{i}"), headers=RW)
            resp = conn.getresponse()
            assert resp.status == 204
            assert resp.read() == b""
            assert resp.getheader("Content-Length") in (None, "0")
        conn.close()
        status, headers, body = post(port, "/api/v1/read", read_body("m2"))
    assert status == 200
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["content-encoding"] == "snappy"
    (result,) = decode(ReadResponse, snappy.decompress(body)).results
    assert [s.samples for s in result.timeseries] == [[Sample(0.0, 1000)], [Sample(1.0, 1001)]]


@pytest.mark.parametrize("kind", SERVERS)
def test_routing_method_and_size_errors(kind: str, store: SQLiteStorage) -> None:
    with running(kind, make_app(kind, store, max_body_size=1000)) as port:
        status, headers, body = post(port, "/api/v1/write", b"", method="GET")
        assert (status, headers.get("allow")) == (405, "POST")
        assert b"POST" in body
        status, _, body = post(port, "/api/v1/other", write_body())
        assert status == 404
        assert b"/api/v1/other" in body
        big = write_body(200)
        assert len(big) > 1000
        status, _, body = post(port, "/api/v1/write", big)
        assert status == 413
        assert b"1000" in body
        status, _, body = post(port, "/api/v1/read", b"\x00" * 2000)
        assert status == 413
        status, _, body = post(port, "/api/v1/write", b"not snappy at all")
        assert status == 400
        assert body
    assert store.counts()["samples"] == 0


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("kind", CHUNKED_SERVERS)
def test_chunked_upload_is_read_completely_and_capped(kind: str, store: SQLiteStorage) -> None:
    body = write_body(300)
    with running(kind, make_app(kind, store, max_body_size=len(body))) as port:
        status, _, _ = post(port, "/api/v1/write", chunks(body, 97))  # no Content-Length
        assert status == 204
        assert store.counts()["samples"] == 300
        status, _, msg = post(port, "/api/v1/write", chunks(body + b"\x00", 97))
        assert status == 413
        assert str(len(body)).encode() in msg


class Streaming(BaseStorage):
    pass


def streaming_app(kind: str, produced: threading.Event, consumed: threading.Event) -> Any:
    """An app whose read answer is a generator that waits for the client mid-stream."""
    piece = b"x" * 65536

    def body() -> Iterator[bytes]:
        yield piece
        produced.set()
        # Only a server that sent the first piece already lets the client signal here.
        yield b"y" if consumed.wait(5) else b"n"

    response = Response(200, [("Content-Type", "application/octet-stream")], body())
    if kind == "uvicorn":

        class A(AsgiApp):
            async def _respond(self, scope: Any, receive: Any) -> Response:
                return response

        return A(Streaming())

    class W(WsgiApp):
        def _respond(self, environ: dict[str, Any]) -> Response:
            return response

    return W(Streaming())


@pytest.mark.parametrize("kind", SERVERS)
def test_iterable_bodies_are_streamed(kind: str) -> None:
    produced, consumed = threading.Event(), threading.Event()
    with running(kind, streaming_app(kind, produced, consumed)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/v1/read", body=b"", headers=RW)
        resp = conn.getresponse()
        assert resp.status == 200
        first = resp.read(65536)
        consumed.set()
        rest = resp.read()
        conn.close()
    assert first == b"x" * 65536
    assert rest == b"y"


class Blocking(BaseStorage):
    """write blocks until released; queries answer at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, ctx: Any, request: WriteRequest) -> None:
        self.entered.set()
        assert self.release.wait(10)

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        return QueryResult()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_slow_sync_storage_does_not_block_other_requests(kind: str) -> None:
    storage = Blocking()
    with running(kind, make_app(kind, storage)) as port:
        results: list[int] = []
        writer = threading.Thread(
            target=lambda: results.append(post(port, "/api/v1/write", write_body())[0])
        )
        writer.start()
        assert storage.entered.wait(5)
        started = time.monotonic()
        status, _, _ = post(port, "/api/v1/read", read_body())  # served while write blocks
        assert status == 200
        assert time.monotonic() - started < 2
        assert results == []
        storage.release.set()
        writer.join(10)
    assert results == [204]


def test_async_storage_under_uvicorn() -> None:
    class Mem(AsyncBaseStorage):
        def __init__(self) -> None:
            self.kept: list[TimeSeries] = []

        async def write(self, ctx: Any, request: WriteRequest) -> None:
            self.kept.extend(request.timeseries)

        async def process_query(self, ctx: Any, query: Query) -> QueryResult:
            return QueryResult([t for t in self.kept if t.labels[0].value == "m"])

    storage = Mem()
    with running("uvicorn", AsgiApp(storage)) as port:
        assert post(port, "/api/v1/write", write_body(2))[0] == 204
        status, _, body = post(port, "/api/v1/read", read_body())
    assert status == 200
    assert len(decode(ReadResponse, snappy.decompress(body)).results[0].timeseries) == 2


def test_disabled_endpoint_is_404(store: SQLiteStorage) -> None:
    apps: list[Callable[[], Any]] = [
        lambda: AsgiApp(store, read_path=None),
        lambda: WsgiApp(store, read_path=None),
    ]
    for kind, factory in zip(["uvicorn", "waitress"], apps, strict=True):
        with running(kind, factory()) as port:
            assert post(port, "/api/v1/read", read_body())[0] == 404
            assert post(port, "/api/v1/write", write_body())[0] == 204


# ----------------------------------------------- the apps called directly (no server)


def asgi_call(app: Any, scope: dict[str, Any], messages: list[dict[str, Any]]) -> Any:
    """Run one ASGI call; returns (sent messages, number of receive() calls)."""
    import asyncio

    sent: list[dict[str, Any]] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, calls


def http_scope(path: str = "/api/v1/write", **headers: str) -> dict[str, Any]:
    hdrs = [(k.replace("_", "-").encode(), v.encode()) for k, v in {**RW, **headers}.items()]
    return {"type": "http", "method": "POST", "path": path, "headers": hdrs}


def test_asgi_reads_every_body_message_and_stops_at_the_cap() -> None:
    storage = SQLiteStorage()
    body = write_body(50)
    parts = [body[i : i + 100] for i in range(0, len(body), 100)]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in parts]
    messages[-1]["more_body"] = False
    sent, calls = asgi_call(AsgiApp(storage), http_scope(), list(messages))
    assert calls == len(parts) > 3
    assert sent[0]["status"] == 204
    assert storage.counts()["samples"] == 50
    # Over the cap: 413 after the message that crossed it, the rest is never read.
    sent, calls = asgi_call(AsgiApp(storage, max_body_size=250), http_scope(), list(messages))
    assert (sent[0]["status"], calls) == (413, 3)
    # A declared Content-Length over the cap: 413 without reading at all.
    scope = http_scope(**{"content-length": str(len(body))})
    sent, calls = asgi_call(AsgiApp(storage, max_body_size=250), scope, list(messages))
    assert (sent[0]["status"], calls) == (413, 0)
    # The client went away: nothing is sent, nothing stored.
    sent, _ = asgi_call(AsgiApp(storage), http_scope(), [{"type": "http.disconnect"}])
    assert sent == []
    assert storage.counts()["samples"] == 50


def test_asgi_lifespan_and_mounting() -> None:
    app = AsgiApp(SQLiteStorage())
    sent, _ = asgi_call(
        app,
        {"type": "lifespan"},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    body = [{"type": "http.request", "body": write_body(1)}]
    mounted = {**http_scope("/prom/api/v1/write"), "root_path": "/prom"}
    assert asgi_call(app, mounted, list(body))[0][0]["status"] == 204
    legacy = {**http_scope("/api/v1/write"), "root_path": "/prom"}  # path without root_path
    assert asgi_call(app, legacy, list(body))[0][0]["status"] == 204


class Trickle:
    """A wsgi.input returning at most 7 bytes per read(), like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        chunk, self.data = self.data[: min(n, 7)], self.data[min(n, 7) :]
        return chunk


def test_wsgi_reads_short_reads_to_the_end_and_caps() -> None:
    storage = SQLiteStorage()
    body = write_body(20)
    statuses: list[str] = []

    def call(app: Any, stream: Trickle, **environ: Any) -> bytes:
        env = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/write",
            "CONTENT_TYPE": RW["Content-Type"],
            "HTTP_CONTENT_ENCODING": "snappy",
            "wsgi.input": stream,
            **environ,
        }
        return b"".join(app(env, lambda status, headers: statuses.append(status)))

    stream = Trickle(body)
    assert call(WsgiApp(storage), stream, CONTENT_LENGTH=str(len(body))) == b""
    assert statuses[-1] == "204 No Content"
    assert stream.reads >= len(body) // 7
    assert storage.counts()["samples"] == 20
    # Chunked upload (no length) on a server that terminates the input: read to EOF.
    call(WsgiApp(storage), Trickle(body), **{"wsgi.input_terminated": True})
    assert statuses[-1] == "204 No Content"
    # ... and capped while reading.
    small = WsgiApp(storage, max_body_size=30)
    stream = Trickle(body)
    assert b"30" in call(small, stream, **{"wsgi.input_terminated": True})
    assert statuses[-1].startswith("413")
    assert stream.reads == 5  # stopped just past the cap, not at EOF
    # No length and no terminated input: PEP 3333 says read nothing (empty body = 400).
    stream = Trickle(body)
    call(WsgiApp(storage), stream)
    assert (statuses[-1][:3], stream.reads) == ("400", 0)
