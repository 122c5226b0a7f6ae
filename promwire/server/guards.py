"""Connection and request guards shared by the apps and ``promwire serve``.

* timeouts: how long a client may take to send its headers
  (``header_timeout``), its body (``body_timeout``) and how long a kept-alive
  connection may sit idle between requests (``idle_timeout``);
* caps: open connections (``max_connections``) and request-body bytes held
  at once across all requests (``max_buffered_bytes``, :class:`BodyBudget`);
* browsers: requests carrying an ``Origin`` header are refused unless the
  origin is allowed, and the ``Host`` header may be limited to a list
  (:func:`origin_allowed`, :func:`host_allowed`);
* :func:`parse_content_length`: a strict ``Content-Length`` (ASCII digits only).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "EVENT_LOOPS",
    "HTTP_PARSERS",
    "LOOPBACK_HOSTS",
    "BadContentLength",
    "BodyBudget",
    "BodyTimeout",
    "BodyTooLarge",
    "OverBudget",
    "Reservation",
    "host_allowed",
    "origin_allowed",
    "parse_content_length",
]

#: Seconds from a connection's opening (or, on a kept-alive connection, from
#: the first byte of the next request) to the end of the request headers.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds from the end of the headers to the end of the body. Prometheus
#: sends at most a few MiB per request; 60 s is 32 MiB at ~4 Mbit/s.
DEFAULT_BODY_TIMEOUT = 60.0
#: Seconds a kept-alive connection may wait for its next request.
DEFAULT_IDLE_TIMEOUT = 15.0
#: Open connections served at once; more are answered 503 and closed.
#: Prometheus 2.42 opens at most one per shard (``max_shards`` default 200).
DEFAULT_MAX_CONNECTIONS = 256
#: Request-body bytes held at once across all requests (8 bodies of the 32 MiB
#: ``max_body_size``); a request that would pass it is answered 503.
DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024
#: uvicorn's HTTP/1.1 parsers and event loops ``serve`` offers: ``auto``
#: first, then the pure-Python fallback and the fast one.
HTTP_PARSERS = ("auto", "h11", "httptools")
EVENT_LOOPS = ("auto", "asyncio", "uvloop")

#: Host names ``promwire serve`` accepts by default when it listens on loopback.
LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")


class BadContentLength(ValueError):
    """A Content-Length that is not a plain decimal number."""


# How reading a body can fail; the apps answer each through AppBase.body_refused.
class BodyTooLarge(Exception):
    """The body grew past ``max_body_size`` (413)."""


class BodyTimeout(Exception):
    """The body was not in within ``body_timeout`` (408)."""


class OverBudget(Exception):
    """The body no longer fits in ``max_buffered_bytes`` (503)."""


def parse_content_length(value: str | None) -> int | None:
    """``None`` for no header, the length, or :class:`BadContentLength`.

    Only ASCII digits count: ``str.isdigit`` also takes ``"²"``, which ``int``
    then refuses.
    """
    if value is None or value == "":
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise BadContentLength("bad Content-Length: not a decimal number")
    return int(value)


class BodyBudget:
    """Request-body bytes held at once, across threads, up to ``limit``.

    :meth:`reserve` takes bytes from the budget (all of a declared
    Content-Length up front, or a chunked body piece by piece) and says
    whether they fit; :meth:`release` gives them back.
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("max_buffered_bytes must be > 0")
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used = max(0, self.used - size)

    def hold(self) -> Reservation:
        """An empty :class:`Reservation` on this budget."""
        return Reservation(self)


class Reservation:
    """The bytes one request holds of a :class:`BodyBudget`; :meth:`release` returns them."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.size = 0

    def grow_to(self, size: int) -> bool:
        """Hold ``size`` bytes in all (no change when already holding that many)."""
        if size <= self.size:
            return True
        if not self.budget.reserve(size - self.size):
            return False
        self.size = size
        return True

    def release(self) -> None:
        self.budget.release(self.size)
        self.size = 0


def _host_name(host: str) -> str:
    """``"Example.com:9201"`` -> ``"example.com"``, ``"[::1]:80"`` -> ``"::1"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def host_allowed(host: str | None, allowed: Iterable[str] | None) -> bool:
    """Whether a ``Host`` header value is in ``allowed`` (``None`` or ``"*"``: any).

    Names compare case-insensitively, without the port; a request without a
    Host header (HTTP/1.0) passes: browsers always send one.
    """
    if allowed is None or host is None:
        return True
    names = {_host_name(a) for a in allowed}
    return "*" in names or _host_name(host) in names


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's ``Origin`` is allowed: none sent, or listed (``"*"``: any).

    Prometheus and other remote write senders send no Origin; browsers do,
    on every POST (also after DNS rebinding, where the page's origin is the
    attacker's name).
    """
    if origin is None:
        return True
    wanted = {a.strip().rstrip("/").lower() for a in allowed}
    return "*" in wanted or origin.strip().rstrip("/").lower() in wanted
