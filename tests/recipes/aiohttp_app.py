from typing import Any

from aiohttp import web

import promwire.handlers as pw


async def send(request: web.Request, resp: pw.Response) -> web.StreamResponse:
    if isinstance(resp.body, bytes):
        return web.Response(body=resp.body, status=resp.status, headers=dict(resp.headers))
    out = web.StreamResponse(status=resp.status, headers=dict(resp.headers))
    await out.prepare(request)
    for chunk in resp.body:
        await out.write(chunk)
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
        return await send(request, await pw.handle_read_async(body, request.headers, storage))

    app.router.add_post("/api/v1/write", write)
    app.router.add_post("/api/v1/read", read)
    return app
