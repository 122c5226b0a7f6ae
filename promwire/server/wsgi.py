"""A WSGI application serving remote write and remote read over a sync storage.

    from promwire.server.wsgi import RemoteStorageApp
    app = RemoteStorageApp(SQLiteStorage("metrics.db"))
    # waitress-serve --listen=127.0.0.1:9201 module:app

Same routing and limits as :mod:`promwire.server.asgi`: ``POST`` on ``write_path`` /
``read_path``, 405 (``Allow: POST``) for other methods there, 404 elsewhere.
The body is read in a loop of bounded ``read()`` calls; a ``Content-Length``
over ``max_body_size`` is refused before reading, and reading stops with 413
as soon as the body passes the limit. Without a Content-Length (chunked
upload) the body is read to EOF only when the server sets
``wsgi.input_terminated`` (waitress does); otherwise it is empty, per PEP 3333. Iterable response
bodies (a streamed remote read's frames) are handed to the server as the WSGI
iterable, which streams them without a Content-Length; the first frame is
computed before ``start_response`` so a storage failure up to there is an
error status, and so is the second, so that an answer of one frame is sent
whole with a Content-Length (:func:`promwire.server.handlers.prime_response`).

The guards are the ASGI app's (``allowed_origins``, ``allowed_hosts``,
``body_timeout``, ``max_buffered_bytes``, 400 for a malformed
Content-Length; see :class:`~promwire.server._app.AppBase`), except that the
``Connection: close`` of early answers is left to the server (PEP 3333 keeps
hop-by-hop headers from apps). A WSGI app cannot interrupt a blocking read:
``body_timeout`` is checked between reads, and a server that bounds each read
(``promwire serve``'s :mod:`promwire.server.stdlib_httpd` does) turns a
stalled one into a 408 as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import IO, Any
from wsgiref.util import is_hop_by_hop

from ..stores.protocol import RequestContext
from ._app import AppBase, RequestNote
from .guards import BodyTimeout, BodyTooLarge, OverBudget, Reservation
from .handlers import (
    Response,
    handle_read,
    handle_write,
    prime_response,
)

__all__ = ["RemoteStorageApp"]

StartResponse = Callable[..., Any]

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

_READ_SIZE = 64 * 1024


class RemoteStorageApp(AppBase):
    """WSGI application for a synchronous :class:`~promwire.stores.protocol.RemoteStorage`.

    Keyword limits are those of the handlers (see :mod:`promwire.server.handlers`)
    and the guards of :class:`~promwire.server._app.AppBase`; set ``read_path``
    or ``write_path`` to ``None`` to disable that endpoint.
    """

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response = self._respond(environ)
        status = f"{response.status} {_REASONS.get(response.status, 'Status')}"
        # PEP 3333: hop-by-hop headers (Connection) are the server's business.
        headers = [(k, v) for k, v in response.headers if not is_hop_by_hop(k)]
        body = response.body
        if isinstance(body, bytes | bytearray | memoryview):
            if response.status == 204:
                start_response(status, headers)
                return []  # never a body on 204
            headers.append(("Content-Length", str(len(body))))
            start_response(status, headers)
            return [bytes(body)]
        if isinstance(body, AsyncIterator):  # only handle_read_async makes these
            raise TypeError("a WSGI app cannot send an async body")
        start_response(status, headers)
        return body

    def _new_read_slots(self, n: int) -> threading.BoundedSemaphore:
        return threading.BoundedSemaphore(n)

    def _respond(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "")
        headers = _headers(environ)
        ops = self.operations
        if ops is None:
            return self._serve(environ, path, method, headers, RequestNote())
        # Operated: credentials and tenant before the body is read, then count and log.
        started = time.perf_counter()
        note = RequestNote()
        denied = ops.unauthorized(headers)
        if denied is not None:
            note.reason = denied[1]
            response = self.refusal(path, headers, 401, "Unauthorized", denied[0].headers[-1:])
        else:
            early = self.operated_early(path, method, headers, note)
            response = early or self._serve(environ, path, method, headers, note)
        addr = environ.get("REMOTE_ADDR")
        peer = f"{addr}:{environ.get('REMOTE_PORT', '')}" if addr else None
        ops.finish(self.endpoint(path), path, method, note, peer, started, response)
        return response

    def _serve(
        self,
        environ: dict[str, Any],
        path: str,
        method: str,
        headers: dict[str, str],
        note: RequestNote,
    ) -> Response:
        admitted = self.admit(path, method, headers)
        if isinstance(admitted, Response):
            return admitted
        held, declared = admitted
        try:
            try:
                body = _read_body(environ, declared, self.max_body_size, held, self.body_timeout)
            except (BodyTooLarge, BodyTimeout, OverBudget) as exc:
                return self.body_refused(exc, path, headers)
            note.body_bytes = len(body)
            return self._handle(environ, path, method, headers, body, note)
        finally:
            held.release()

    def _handle(
        self,
        environ: dict[str, Any],
        path: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        note: RequestNote,
    ) -> Response:
        addr = environ.get("REMOTE_ADDR")
        ctx = RequestContext(
            headers=headers,
            method=method,
            path=path,
            client=f"{addr}:{environ.get('REMOTE_PORT', '')}" if addr else None,
            raw=environ,
            tenant=note.tenant,
        )
        note.ctx_id = id(ctx)
        if path == self.write_path:
            return handle_write(
                body,
                headers,
                self.storage,
                ctx,
                **self.write_limits,
            )
        # The answer is built (a SAMPLES body whole, a streamed one up to its
        # first frame) while holding one of max_concurrent_reads slots.
        if not self._read_slots.acquire(timeout=self.read_queue_timeout):
            return self.reads_busy()
        try:
            response = handle_read(
                body,
                headers,
                self.storage,
                ctx,
                **self.read_limits,
            )
            # A streamed read's body is lazy: compute its first frame before the
            # status goes out, so a storage failure up to there is an error status.
            return prime_response(response)
        finally:
            self._read_slots.release()


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers from a WSGI environ, names lower-cased with dashes."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    # CGI keeps these two out of the HTTP_ namespace.
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _read_body(
    environ: dict[str, Any], declared: int | None, limit: int, held: Reservation, timeout: float
) -> bytes:
    """The body, in bounded reads, within ``limit`` bytes and ``timeout`` seconds.

    The deadline is checked between reads; a server that bounds each read
    (``promwire serve``'s does, to the same deadline) makes a stalled read
    raise ``TimeoutError``, also answered 408.
    """
    stream: IO[bytes] = environ["wsgi.input"]
    if declared is not None:
        remaining = declared
    elif environ.get("wsgi.input_terminated"):
        # No length but the server de-chunked the body and ends the stream at its
        # end: read to EOF, never more than one byte past the limit.
        remaining = limit + 1
    else:
        # No length and no terminated stream: PEP 3333 says read nothing (reading
        # would block on the socket).
        remaining = 0
    deadline = time.monotonic() + timeout
    parts: list[bytes] = []
    size = 0
    while remaining > 0:
        if time.monotonic() > deadline:
            raise BodyTimeout
        try:
            chunk = stream.read(min(_READ_SIZE, remaining))
        except TimeoutError:
            raise BodyTimeout from None
        if not chunk:
            break
        size += len(chunk)
        remaining -= len(chunk)
        if size > limit:
            raise BodyTooLarge
        if not held.grow_to(size):
            raise OverBudget
        parts.append(chunk)
    return b"".join(parts)
