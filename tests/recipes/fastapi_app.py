from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

import promwire.server.handlers as pw


def to_starlette(resp: pw.Response) -> Response:
    headers = dict(resp.headers)
    if isinstance(resp.body, bytes):
        return Response(resp.body, status_code=resp.status, headers=headers)
    return StreamingResponse(resp.body, status_code=resp.status, headers=headers)


def make_app(storage: Any) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/write")
    async def write(request: Request) -> Response:
        body = await request.body()
        return to_starlette(await pw.handle_write_async(body, request.headers, storage))

    @app.post("/api/v1/read")
    async def read(request: Request) -> Response:
        body = await request.body()
        resp = await pw.handle_read_async(body, request.headers, storage)
        # A streamed answer is lazy: compute its first frame now, so a failing
        # storage gets an error status instead of a broken 200.
        return to_starlette(await pw.aprime_response(resp))

    return app
