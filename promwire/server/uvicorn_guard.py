"""uvicorn settings for ``promwire serve``, and a header deadline uvicorn lacks.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and, with
``limit_concurrency``, answers 503 once that many connections or requests are
open; it bounds the size of a request head (h11's
``max_incomplete_event_size``, 16 KiB) but not the time it takes to arrive:
its keep-alive timer stops at the first byte of a request, and a connection
sending a header byte a second is held forever. :func:`guarded_protocol`
makes an h11 protocol class that closes a connection whose request line and
headers are not complete ``header_timeout`` seconds after it opened (or, on
a kept-alive connection, after the next request's first byte). The body
deadline is the app's (``body_timeout``: 408).

Imported only when uvicorn runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

from .guards import DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS

__all__ = ["guarded_protocol", "uvicorn_options"]

# h11 as uvicorn uses it (a dependency of uvicorn's, not promwire's).
_IDLE: Any = h11_impl.h11.IDLE  # type: ignore[attr-defined]


class _HeaderDeadlineProtocol(H11Protocol):
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is _IDLE:
            # Part of a request head is buffered: it must complete in time.
            if self._header_timer is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is _IDLE and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[H11Protocol]:
    """An h11 protocol class closing connections whose headers are late."""
    if header_timeout <= 0:
        raise ValueError("header_timeout must be > 0")
    return type(
        "PromwireH11Protocol", (_HeaderDeadlineProtocol,), {"header_timeout": header_timeout}
    )


def uvicorn_options(
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` with promwire's guards."""
    if idle_timeout <= 0 or max_connections <= 0:
        raise ValueError("idle_timeout and max_connections must be > 0")
    return {
        "http": guarded_protocol(header_timeout),
        "timeout_keep_alive": idle_timeout,
        # uvicorn answers 503 once len(connections) >= limit, counting the asking one.
        "limit_concurrency": max_connections + 1,
        "server_header": False,
        "headers": [("Server", "promwire")],
    }
