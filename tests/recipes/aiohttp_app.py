import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

from aiohttp import web

import promwire.server.handlers as pw


def pull(it: Iterator[bytes]) -> bytes | None:
    return next(it, None)


async def pieces(body: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(body, AsyncIterable):  # an async storage's streamed answer
        async for piece in body:
            yield piece
        return
    # A sync storage is called as the body is pulled: pull in a worker thread.
    it = iter(body)
    while (chunk := await asyncio.to_thread(pull, it)) is not None:
        yield chunk


async def send(request: web.Request, resp: pw.Response) -> web.StreamResponse:
    if isinstance(resp.body, bytes):
        return web.Response(body=resp.body, status=resp.status, headers=dict(resp.headers))
    out = web.StreamResponse(status=resp.status, headers=dict(resp.headers))
    await out.prepare(request)
    async for piece in pieces(resp.body):
        await out.write(piece)
    await out.write_eof()
    return out


def make_app(storage: Any) -> web.Application:
    # aiohttp refuses bodies over client_max_size (default 1 MiB) with 413.
    app = web.Application(client_max_size=pw.DEFAULT_MAX_BODY_SIZE)

    async def write(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        return await send(request, await pw.handle_write_async(body, request.headers, storage))

    async def read(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = await pw.handle_read_async(body, request.headers, storage)
        # A streamed answer is lazy: compute its first frame now, so a failing
        # storage gets an error status instead of a broken 200.
        return await send(request, await pw.aprime_response(resp))

    app.router.add_post("/api/v1/write", write)
    app.router.add_post("/api/v1/read", read)
    return app
