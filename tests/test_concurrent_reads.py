"""At most ``max_concurrent_reads`` remote reads are handled at once (both apps);
a read past it waits ``read_queue_timeout`` for a slot, then gets 503."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

from promwire import Query, QueryResult, ReadRequest, encode, snappy
from promwire.server.asgi import RemoteStorageApp as AsgiApp
from promwire.server.wsgi import RemoteStorageApp as WsgiApp
from promwire.stores.protocol import BaseStorage
from tests.support.serve_process import serve_process

BODY = snappy.compress(encode(ReadRequest([Query(0, 1, [])])))
HEADERS = {"content-type": "application/x-protobuf", "content-encoding": "snappy"}


class GatedStorage(BaseStorage):
    """A storage whose queries wait until ``release`` is set, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.release.wait(20)
            return QueryResult([])
        finally:
            with self.lock:
                self.running -= 1


def _wsgi_post(app: WsgiApp) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/read",
        "CONTENT_TYPE": HEADERS["content-type"],
        "CONTENT_LENGTH": str(len(BODY)),
        "HTTP_CONTENT_ENCODING": "snappy",
        "wsgi.input": __import__("io").BytesIO(BODY),
    }
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def test_wsgi_reads_past_the_limit_wait_then_get_503() -> None:
    storage = GatedStorage()
    app = WsgiApp(storage, max_concurrent_reads=2, read_queue_timeout=0.5)
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(_wsgi_post(app)[0])) for _ in range(2)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while storage.running < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    status, headers, body = _wsgi_post(app)  # a third read: no slot within 0.5 s
    assert status.startswith("503") and headers["Retry-After"] == "1"
    assert b"too many concurrent remote reads" in body
    assert 0.4 < time.monotonic() - started < 5
    storage.release.set()
    for t in threads:
        t.join(10)
    assert answers == ["200 OK", "200 OK"] and storage.most == 2
    assert _wsgi_post(app)[0] == "200 OK"  # the slots are free again


def test_asgi_reads_queue_for_a_slot() -> None:
    storage = GatedStorage()
    app = AsgiApp(storage, max_concurrent_reads=1, read_queue_timeout=5)

    async def post() -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/read",
            "headers": [(k.encode(), v.encode()) for k, v in HEADERS.items()],
        }
        await app(scope, receive, send)
        return int(sent[0]["status"])

    async def main() -> list[int]:
        tasks = [asyncio.create_task(post()) for _ in range(3)]
        while storage.running < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert storage.running == 1  # the other two wait for the slot
        storage.release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [200, 200, 200]
    assert storage.most == 1


def test_serve_takes_the_flag(tmp_path: Any) -> None:
    with serve_process(tmp_path / "c.db", "wsgiref", options=["--max-concurrent-reads", "3"]):
        pass  # accepted and started
    refused = subprocess.run(
        [sys.executable, "-m", "promwire", "serve", "--max-concurrent-reads", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--max-concurrent-reads" in refused.stderr
    assert "Traceback" not in refused.stderr
