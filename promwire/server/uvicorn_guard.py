"""uvicorn settings for ``promwire serve``: its HTTP parser, event loop and guards.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and, with
``limit_concurrency``, answers 503 once that many connections or requests are
open; with h11 it bounds the size of a request head (h11's
``max_incomplete_event_size``, 16 KiB) but not the time it takes to arrive:
its keep-alive timer stops at the first byte of a request, and a connection
sending a header byte a second is held forever. :func:`guarded_protocol`
makes a protocol class that closes a connection whose request line and
headers are not complete ``header_timeout`` seconds after it opened (or, on
a kept-alive connection, after the next request's first byte). The body
deadline is the app's (``body_timeout``: 408).

Two HTTP/1.1 parsers can carry it: uvicorn's h11 protocol (pure Python, the
fallback) and its httptools one (llhttp in C, about twice as fast per
request; :mod:`promwire.server.uvicorn_httptools` adds the same deadline
and h11's 16 KiB head bound, which uvicorn's httptools protocol lacks). The
event loop is asyncio's or uvloop's. ``"auto"`` picks the fast one when it
is importable (both are in the ``serve`` extra), else the pure-Python one.

Imported only when uvicorn runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from uvicorn.protocols.http import h11_impl
from uvicorn.protocols.http.h11_impl import H11Protocol

from .guards import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    EVENT_LOOPS,
    HTTP_PARSERS,
)

__all__ = [
    "EVENT_LOOPS",
    "HTTP_PARSERS",
    "HeaderDeadline",
    "choose_stack",
    "guarded_protocol",
    "uvicorn_options",
]


# h11 as uvicorn uses it (a dependency of uvicorn's, not promwire's).
_IDLE: Any = h11_impl.h11.IDLE  # type: ignore[attr-defined]


def choose_stack(http: str = "auto", loop: str = "auto") -> tuple[str, str]:
    """The parser and loop ``http``/``loop`` name, ``auto`` resolved: httptools
    and uvloop when importable, else h11 and asyncio. ``ValueError`` for an
    unknown name or one that is asked for but not installed."""
    if http not in HTTP_PARSERS:
        raise ValueError(f"unknown --http {http[:40]!r}: use auto, h11 or httptools")
    if loop not in EVENT_LOOPS:
        raise ValueError(f"unknown --loop {loop[:40]!r}: use auto, asyncio or uvloop")
    chosen = []
    for name, fast, slow in ((http, "httptools", "h11"), (loop, "uvloop", "asyncio")):
        have = importlib.util.find_spec(fast) is not None
        if name == fast and not have:
            raise ValueError(f"{fast} is not installed (pip install 'promwire[serve]')")
        chosen.append(fast if name == fast or (name == "auto" and have) else slow)
    return chosen[0], chosen[1]


class HeaderDeadline:
    """The header deadline, for a uvicorn protocol class: :meth:`_arm` when a
    head is awaited, :meth:`_disarm` once it is complete; when the timer fires
    and :meth:`_head_pending` still says so, the connection is closed."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _head_pending(self) -> bool:
        raise NotImplementedError

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._head_pending() and not self.transport.is_closing():
            self.transport.close()


class _HeaderDeadlineProtocol(HeaderDeadline, H11Protocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_pending():
            # Part of a request head is buffered: it must complete in time.
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _head_pending(self) -> bool:
        # h11 leaves IDLE once a request's head is complete, and comes back to
        # it only when the next request may start.
        return self.conn.their_state is _IDLE


def guarded_protocol(header_timeout: float, http: str = "h11") -> type[asyncio.Protocol]:
    """A uvicorn protocol class on ``http`` (h11 or httptools) closing
    connections whose headers are late (httptools: or larger than 16 KiB)."""
    if header_timeout <= 0:
        raise ValueError("header_timeout must be > 0")
    base: type[asyncio.Protocol]
    if http == "httptools":
        from .uvicorn_httptools import GuardedHttpToolsProtocol

        base = GuardedHttpToolsProtocol
    elif http == "h11":
        base = _HeaderDeadlineProtocol
    else:
        raise ValueError(f"unknown HTTP parser {http[:40]!r}: use h11 or httptools")
    name = "PromwireHttpToolsProtocol" if http == "httptools" else "PromwireH11Protocol"
    return type(name, (base,), {"header_timeout": header_timeout})


def uvicorn_options(
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    http: str = "auto",
    loop: str = "auto",
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` with promwire's
    guards, on the parser and loop :func:`choose_stack` picks."""
    if idle_timeout <= 0 or max_connections <= 0:
        raise ValueError("idle_timeout and max_connections must be > 0")
    parser, event_loop = choose_stack(http, loop)
    return {
        "http": guarded_protocol(header_timeout, parser),
        "loop": event_loop,
        "timeout_keep_alive": idle_timeout,
        # uvicorn answers 503 once len(connections) >= limit, counting the asking one.
        "limit_concurrency": max_connections + 1,
        "server_header": False,
        "headers": [("Server", "promwire")],
    }
