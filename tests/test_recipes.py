"""The recipes of docs/guide.md, run for real in FastAPI, aiohttp, Flask and Django.

Each framework app comes from tests/recipes/ (whose files the guide must
contain verbatim) and stores in the guide's MemoryStorage example. Every
framework gets the same checks: a write is 204 with an empty body, a read
returns it, a wrong Content-Type is 415 with a message, GET is 405, an
oversized body is refused by the framework's own limit, and an iterable
promwire body is streamed through the recipe's conversion helper.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import promwire.handlers as pw
from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ReadResponse,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from tests.recipes.memory_storage import MemoryStorage

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
RECIPES = Path(__file__).resolve().parent / "recipes"
RW = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
OVERSIZED = b"\x00" * (pw.DEFAULT_MAX_BODY_SIZE + 1)

SERIES = TimeSeries(
    [Label("__name__", "up"), Label("job", "r")], [Sample(1.0, 10), Sample(0.5, 20)]
)
WRITE = snappy.compress(encode(WriteRequest([SERIES])))
READ = snappy.compress(
    encode(ReadRequest([Query(0, 100, [LabelMatcher(MatchType.EQ, "job", "r")])]))
)


@dataclass
class Reply:
    status: int
    body: bytes


def chunks() -> Iterator[bytes]:
    yield b"first,"
    yield b"second"


def streamed() -> pw.Response:
    """A promwire response whose body is a generator, as streamed remote read will be."""
    return pw.Response(200, [("Content-Type", "application/octet-stream")], chunks())


def check(post: Any, get: Any, oversized_status: int, storage: MemoryStorage) -> None:
    """The shared assertions; ``post(path, body, headers)`` and ``get(path)`` return a Reply."""
    r = post("/api/v1/write", WRITE, RW)
    assert (r.status, r.body) == (204, b"")
    r = post("/api/v1/read", READ, RW)
    assert r.status == 200
    (result,) = decode(ReadResponse, snappy.decompress(r.body)).results
    assert result.timeseries == [SERIES]
    r = post("/api/v1/write", WRITE, {**RW, "Content-Type": "text/plain"})
    assert r.status == 415
    assert b"Content-Type" in r.body
    assert get("/api/v1/write").status == 405
    assert post("/api/v1/write", OVERSIZED, RW).status == oversized_status
    assert post("/api/v1/write", WRITE, RW).status == 204  # resent: stored once
    assert storage.series == {(("__name__", "up"), ("job", "r")): {10: 1.0, 20: 0.5}}


def test_guide_contains_every_recipe_verbatim() -> None:
    guide = GUIDE.read_text()
    for path in sorted(RECIPES.glob("*.py")):
        if path.name != "__init__.py":
            assert path.read_text().strip() in guide, f"{path.name} differs from docs/guide.md"


def test_fastapi_recipe() -> None:
    from fastapi.testclient import TestClient

    from tests.recipes.fastapi_app import make_app, to_starlette

    storage = MemoryStorage()
    app = make_app(storage)
    app.get("/stream")(lambda: to_starlette(streamed()))
    with TestClient(app) as client:

        def post(path: str, body: bytes, headers: dict[str, str]) -> Reply:
            r = client.post(path, content=body, headers=headers)
            return Reply(r.status_code, r.content)

        def get(path: str) -> Reply:
            r = client.get(path)
            return Reply(r.status_code, r.content)

        # FastAPI has no body limit of its own: promwire's handler answers 413.
        check(post, get, 413, storage)
        assert get("/stream").body == b"first,second"


def test_starlette_can_mount_the_asgi_app() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from promwire.asgi import RemoteStorageApp

    storage = MemoryStorage()
    app = Starlette(routes=[Mount("/prom", app=RemoteStorageApp(storage))])
    with TestClient(app) as client:
        assert client.post("/prom/api/v1/write", content=WRITE, headers=RW).status_code == 204
        r = client.post("/prom/api/v1/read", content=READ, headers=RW)
        assert r.status_code == 200
        assert client.post("/api/v1/write", content=WRITE, headers=RW).status_code == 404
    assert len(storage.series) == 1


def test_aiohttp_recipe() -> None:
    import threading

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from tests.recipes.aiohttp_app import make_app, send

    storage = MemoryStorage()
    app = make_app(storage)

    async def stream(request: web.Request) -> web.StreamResponse:
        return await send(request, streamed())

    app.router.add_get("/stream", stream)
    # The app runs on its own event loop in a thread; the test talks to it synchronously.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> TestClient[Any, Any]:
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    client = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def call(method: str, path: str, body: bytes = b"", headers: Any = None) -> Reply:
        async def go() -> Reply:
            async with client.request(method, path, data=body, headers=headers) as r:
                return Reply(r.status, await r.read())

        return asyncio.run_coroutine_threadsafe(go(), loop).result(30)

    try:
        check(lambda p, b, h: call("POST", p, b, h), lambda p: call("GET", p), 413, storage)
        assert call("GET", "/stream").body == b"first,second"
    finally:
        asyncio.run_coroutine_threadsafe(client.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_flask_recipe() -> None:
    from tests.recipes.flask_app import make_app, to_flask

    storage = MemoryStorage()
    app = make_app(storage)
    app.add_url_rule("/stream", "stream", lambda: to_flask(streamed()))
    client = app.test_client()

    def post(path: str, body: bytes, headers: dict[str, str]) -> Reply:
        r = client.post(path, data=body, headers=headers)
        return Reply(r.status_code, r.get_data())

    def get(path: str) -> Reply:
        r = client.get(path)
        return Reply(r.status_code, r.get_data())

    check(post, get, 413, storage)
    assert get("/stream").body == b"first,second"


@pytest.fixture(scope="module")
def django_settings() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="promwire-tests",
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            ROOT_URLCONF=types.ModuleType("promwire_empty_urls"),
            DATA_UPLOAD_MAX_MEMORY_SIZE=32 * 1024 * 1024,
        )
        django.setup()


def test_django_recipe(django_settings: None) -> None:
    from django.test import Client, override_settings
    from django.urls import path

    from tests.recipes.django_app import make_urlpatterns, to_django

    storage = MemoryStorage()
    urls = types.ModuleType("promwire_recipe_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        *make_urlpatterns(storage),
        path("stream", lambda request: to_django(streamed())),
    ]
    with override_settings(ROOT_URLCONF=urls):
        client = Client()

        def post(path: str, body: bytes, headers: dict[str, str]) -> Reply:
            ct = headers.get("Content-Type", "")
            rest = {k: v for k, v in headers.items() if k != "Content-Type"}
            r = client.post(path, data=body, content_type=ct, headers=rest)
            return Reply(r.status_code, r.content)

        def get(path: str) -> Reply:
            r = client.get(path)
            return Reply(r.status_code, r.content)

        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE with 400, not 413.
        check(post, get, 400, storage)
        r = client.get("/stream")
        assert b"".join(r.streaming_content) == b"first,second"
