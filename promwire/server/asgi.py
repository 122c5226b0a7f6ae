"""An ASGI application serving remote write and remote read over a storage.

    from promwire.server.asgi import RemoteStorageApp
    app = RemoteStorageApp(SQLiteStorage("metrics.db"))
    # uvicorn module:app --host 127.0.0.1 --port 9201

* ``POST write_path`` -> :func:`promwire.server.handlers.handle_write_async`,
  ``POST read_path`` -> :func:`promwire.server.handlers.handle_read_async`;
  another method on those paths is a 405 (with ``Allow: POST``), any other
  path a 404.
* The body is read message by message until ``more_body`` is false; the size
  cap is enforced while reading: a declared ``Content-Length`` over the limit
  is refused before reading anything, a body that grows past it is refused as
  soon as it does (413), without buffering the rest.
* Before reading the body: a request carrying a disallowed ``Origin`` or
  ``Host`` is refused (403), a malformed ``Content-Length`` is 400, and the
  declared length is reserved from ``max_buffered_bytes`` (503 when it does
  not fit); the body must arrive within ``body_timeout`` (408). These early
  answers carry ``Connection: close`` (see :class:`~promwire.server._app.AppBase`).
* A sync storage runs in a worker thread; an async one on the event loop.
* A streamed remote read (``STREAMED_XOR_CHUNKS``) is sent frame by frame as
  it is computed, with chunked transfer encoding (an answer of one frame
  whole, with a Content-Length); a failure before the first frame is an
  ordinary error status (:func:`promwire.server.handlers.aprime_response`).
* A response body that is an iterable of ``bytes`` is streamed chunk by chunk
  (pulled in a worker thread, since producing a chunk may block); an async
  iterable is streamed from the loop.
* ``lifespan`` events are acknowledged, so servers that send them are happy.
* Paths are relative to the mount point (``root_path``), so the app can be
  mounted under a prefix, e.g. ``starlette_app.mount("/prom", app)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from ..stores.protocol import RequestContext
from ._app import AppBase, RequestNote
from .guards import BodyTimeout, BodyTooLarge, OverBudget, Reservation
from .handlers import (
    Response,
    aprime_response,
    handle_read_async,
    handle_write_async,
)

__all__ = ["RemoteStorageApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _next_or_none(it: Iterator[bytes]) -> bytes | None:
    return next(it, None)


class _Disconnected(Exception):
    pass


class RemoteStorageApp(AppBase):
    """ASGI 3 application for a :class:`~promwire.stores.protocol.RemoteStorage` or
    :class:`~promwire.stores.protocol.AsyncRemoteStorage`.

    Keyword limits are those of the handlers: ``max_body_size`` (also enforced
    while reading the body and from ``Content-Length`` before reading),
    ``max_decompressed_size``, ``max_series``, ``max_samples``,
    ``max_labels_per_series``, ``max_label_bytes`` (write),
    ``max_read_queries``, ``max_read_samples`` and ``max_bytes_in_frame``
    (read); see :mod:`promwire.server.handlers` for defaults and answers. Set
    ``read_path`` or ``write_path`` to ``None`` to disable that endpoint.
    Guards: ``allowed_origins``, ``allowed_hosts``, ``body_timeout`` and
    ``max_buffered_bytes`` (see :class:`~promwire.server._app.AppBase`).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets etc.: not ours; returning closes the connection
        try:
            response = await self._respond(scope, receive)
        except _Disconnected:
            return
        await _send_response(send, response)

    def _new_read_slots(self, n: int) -> asyncio.BoundedSemaphore:
        return asyncio.BoundedSemaphore(n)

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        path = _route_path(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        ops = self.operations
        if ops is None:
            return await self._serve(scope, receive, path, headers, RequestNote())
        # Operated: credentials and tenant before the body is read, then count and log.
        started = time.perf_counter()
        note = RequestNote()
        method = str(scope.get("method"))
        if ops.needs_auth_thread(headers):  # a bcrypt run takes ~100 ms: not on the event loop
            denied = await asyncio.to_thread(ops.unauthorized, headers)
        else:
            denied = ops.unauthorized(headers)
        if denied is not None:
            note.reason = denied[1]
            response = self.refusal(path, headers, 401, "Unauthorized", denied[0].headers[-1:])
        else:
            early = self.operated_early(path, method, headers, note)
            if early is None:
                response = await self._serve(scope, receive, path, headers, note)
            else:
                response = early
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else None
        ops.finish(self.endpoint(path), path, method, note, peer, started, response)
        return response

    async def _serve(
        self, scope: Scope, receive: Receive, path: str, headers: dict[str, str], note: RequestNote
    ) -> Response:
        admitted = self.admit(path, str(scope.get("method")), headers)
        if isinstance(admitted, Response):
            return admitted
        held, _ = admitted
        try:
            try:
                body = await _read_body(receive, self.max_body_size, held, self.body_timeout)
            except (BodyTooLarge, BodyTimeout, OverBudget) as exc:
                return self.body_refused(exc, path, headers)
            note.body_bytes = len(body)
            return await self._handle(scope, path, headers, body, note)
        finally:
            held.release()

    async def _handle(
        self, scope: Scope, path: str, headers: dict[str, str], body: bytes, note: RequestNote
    ) -> Response:
        client = scope.get("client")
        ctx = RequestContext(
            headers=headers,
            method="POST",
            path=path,
            client=f"{client[0]}:{client[1]}" if client else None,
            raw=scope,
            tenant=note.tenant,
        )
        note.ctx_id = id(ctx)
        if path == self.write_path:
            return await handle_write_async(
                body,
                headers,
                self.storage,
                ctx,
                **self.write_limits,
            )
        # The answer is built (a SAMPLES body whole, a streamed one up to its
        # first frame) while holding one of max_concurrent_reads slots.
        slots = self._read_slots
        if slots.locked():  # all taken: wait in the queue, at most read_queue_timeout
            try:
                await asyncio.wait_for(slots.acquire(), self.read_queue_timeout)
            except asyncio.TimeoutError:
                return self.reads_busy()
        else:  # a free slot is taken at once (no wait_for task, no extra loop turn)
            await slots.acquire()
        try:
            response = await handle_read_async(
                body,
                headers,
                self.storage,
                ctx,
                inline_read_seconds=self.inline_read_seconds,
                **self.read_limits,
            )
            # A streamed read's body is lazy: compute its first frame before the
            # status goes out, so a storage failure up to there is an error status.
            return await aprime_response(response)
        finally:
            slots.release()


def _route_path(scope: Scope) -> str:
    """The request path relative to where the app is mounted.

    Servers and frameworks disagree on whether ``path`` includes ``root_path``
    (Starlette's ``Mount`` and uvicorn's ``--root-path`` now include it, older
    ones did not): strip it when it is there.
    """
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive, limit: int, held: Reservation, timeout: float) -> bytes:
    """The body, within ``timeout`` seconds and ``limit`` bytes; ``held`` grows
    with it past what was reserved up front (the declared Content-Length).

    One deadline for the whole body: ``asyncio.timeout`` where there is one
    (Python 3.11 on: no task is made), else one ``wait_for`` task around
    the whole reading, not one per message."""
    try:
        if _timeout is not None:
            async with _timeout(timeout):
                return await _collect_body(receive, limit, held)
        return await asyncio.wait_for(_collect_body(receive, limit, held), timeout)
    except asyncio.TimeoutError:
        raise BodyTimeout from None


_timeout: Callable[[float], Any] | None = getattr(asyncio, "timeout", None)


async def _collect_body(receive: Receive, limit: int, held: Reservation) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if not held.grow_to(size):
            raise OverBudget
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _send_response(send: Send, response: Response) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    body = response.body
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body) if response.status != 204 else b""  # never a body on 204
        if response.status != 204:
            headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    async for chunk in _aiter(body):
        if chunk:
            await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _aiter(body: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    if isinstance(body, AsyncIterable):
        async for piece in body:
            yield piece
        return
    it: Iterator[bytes] = iter(body)
    try:
        while True:
            # next() may do blocking work (a storage cursor): keep it off the loop.
            chunk: bytes | None = await asyncio.to_thread(_next_or_none, it)
            if chunk is None:
                return
            yield chunk
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
