"""uvicorn's httptools protocol with the guards promwire's h11 one has.

httptools (llhttp, in C) costs less per request than h11 (a ``GET
/-/healthy`` takes about 0.6x the time end to end, docs/performance.md),
but uvicorn's protocol on it lacks two bounds h11 gives:

* **head size**: h11 refuses a request head that is still incomplete past
  16 KiB; llhttp as uvicorn drives it accumulates a URL or a header value
  of any length (and uvicorn appends the URL's pieces without a bound).
  Here the bytes fed while a head is awaited are counted, the parser is
  never fed more than :data:`MAX_HEAD_BYTES` of an incomplete head, and
  past that the connection is answered ``431 Request Header Fields Too
  Large`` and closed (or only closed when an earlier request's answer is
  still being written, which a status line would corrupt). h11 under
  uvicorn answers such a head 400, its answer to any unparsable request;
  431 is the status RFC 6585 gives this case, and says why to the client.
* **header deadline**: as for h11 (:class:`~promwire.server.uvicorn_guard.HeaderDeadline`),
  armed when the connection opens, and after a read that brought the next
  request's first byte (llhttp's ``on_message_begin``) or any byte while no
  request is being read (blank lines between requests would otherwise stop
  uvicorn's keep-alive timer and start nothing) if the head is not complete
  in it; disarmed when the head is complete. A head that arrives whole in
  one read, the usual case, costs no timer.

A head that begins in the middle of a read (pipelined requests, or a body's
end and the next head sent together) is counted from the next read on: the
parser does not say where in a read a message began. That read (at most
about 256 KiB, the transport's read size under asyncio and uvloop) is what
h11 also holds in its buffer before it checks its bound, so the memory per
connection stays within the same limit.

The idle keep-alive timeout, ``limit_concurrency``, and the ``Server``
header come from ``uvicorn.Config`` as for h11 (httptools' protocol reads
the same settings).
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .uvicorn_guard import HeaderDeadline

__all__ = ["MAX_HEAD_BYTES", "GuardedHttpToolsProtocol"]

# h11's default max_incomplete_event_size, which uvicorn keeps.
MAX_HEAD_BYTES = 16 * 1024

_TOO_LARGE = b"request head too large\n"


class GuardedHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a head-size bound."""

    # True from a request's end (or the connection's start) until the next
    # request's head is complete: bytes fed then belong to a head.
    _in_head: bool = True
    _head_bytes: int = 0  # bytes of the awaited head fed to the parser so far
    _began: bool = False  # a request began in this read and its head is incomplete

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._began = False
        while data and not self.transport.is_closing():
            piece = data
            if self._in_head:
                room = MAX_HEAD_BYTES - self._head_bytes
                if room <= 0:
                    self._refuse_head()
                    return
                # Never more than the bound of an incomplete head: what follows
                # its end in this read (a body) is fed on the next turn.
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                data = b""
            super().data_received(piece)  # the callbacks below reset the count
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes >= MAX_HEAD_BYTES:
            self._refuse_head()  # 16 KiB fed and the head still incomplete
        elif self._head_bytes or self._began:
            self._arm()  # part of a head (or blank lines) is in: it must complete in time

    # llhttp's callbacks, in the order it calls them for each request. A
    # head that completes within the read it began in arms no timer.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._began = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._began = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _head_pending(self) -> bool:
        return self._in_head

    def _headers_late(self) -> None:
        if self._in_head and self._busy():
            # The head may be late because reading is paused behind a request
            # still being answered: checked again a deadline later.
            self._header_timer = None
            self._arm()
            return
        super()._headers_late()

    def _busy(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _refuse_head(self) -> None:
        logging.getLogger("uvicorn.error").warning(
            "Request head larger than %d bytes.", MAX_HEAD_BYTES
        )
        if not self._busy():
            head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
            head += [
                name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
            ]
            head += [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(_TOO_LARGE),
                b"connection: close\r\n\r\n",
                _TOO_LARGE,
            ]
            self.transport.write(b"".join(head))
        self.transport.close()
