"""What the ASGI and WSGI apps share: configuration, limits, routing answers.

The apps themselves (:mod:`promwire.server.asgi`, :mod:`promwire.server.wsgi`) only do what
their server interface needs: read the body, build the request context, send
the response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .guards import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    BadContentLength,
    BodyBudget,
    BodyTimeout,
    BodyTooLarge,
    OverBudget,
    Reservation,
    host_allowed,
    origin_allowed,
    parse_content_length,
)
from .handlers import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_BYTES_IN_FRAME,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_MAX_LABELS_PER_SERIES,
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    DEFAULT_MAX_READ_SECONDS,
    DEFAULT_MAX_READ_SERIES,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MAX_SERIES,
    Response,
    refused_write_headers,
    text_response,
)

#: Remote reads handled at once (Prometheus' --storage.remote.read-concurrent-limit).
DEFAULT_MAX_CONCURRENT_READS = 10
#: How long a read waits for one of those slots before it is answered 503.
DEFAULT_READ_QUEUE_TIMEOUT = 10.0


@dataclass(slots=True)
class RequestNote:
    """What the app learns about a request for :meth:`Operations.finish`."""

    tenant: str | None = None
    ctx_id: int | None = None
    body_bytes: int = 0
    reason: str | None = None


#: How long a streamed read may first be tried on the event loop (see AppBase).
DEFAULT_INLINE_READ_SECONDS = 0.005

#: Added to answers given before the body was read: the rest of the body is
#: not wanted, so the server closes the connection instead of reading on.
CLOSE = ("Connection", "close")


class AppBase:
    """Storage, paths and limits of a remote storage app, and its early answers.

    Keyword limits are those of the handlers: ``max_body_size`` (also enforced
    while reading the body and from ``Content-Length`` before reading),
    ``max_decompressed_size``, ``max_series``, ``max_samples``,
    ``max_labels_per_series``, ``max_label_bytes`` (write),
    ``max_read_queries``, ``max_read_samples``, ``max_read_series``,
    ``max_read_seconds`` and ``max_bytes_in_frame`` (read); see
    :mod:`promwire.server.handlers` for defaults and answers. Set
    ``read_path`` or ``write_path`` to ``None`` to disable that endpoint.

    Guards (see :mod:`promwire.server.guards`):

    * ``allowed_origins`` (default none): a request carrying an ``Origin``
      header is refused (403) unless its origin is listed (``"*"``: any).
      Remote write senders send no Origin; browsers do, so a web page cannot
      write to or read from a receiver on your machine.
    * ``allowed_hosts`` (default ``None``: any): when given, a ``Host``
      header naming another host is refused (403), which stops DNS
      rebinding; ``promwire serve`` on loopback allows only loopback names.
    * ``body_timeout`` (60 s): a body not received in full that long after
      the request reached the app is answered 408 and the connection closed.
    * ``max_buffered_bytes`` (256 MiB): request-body bytes held at once over
      all requests; a request whose Content-Length (or chunked body) would
      pass it is answered 503 with ``Retry-After: 1``. It must be at least
      ``max_body_size``.
    * a ``Content-Length`` that is not a decimal number is answered 400.
    * ``max_concurrent_reads`` (10, Prometheus' ``--storage.remote.read-concurrent-limit``):
      remote reads handled at once. A read past it waits up to
      ``read_queue_timeout`` seconds (10) for a slot, then is answered 503
      with ``Retry-After: 1``. With ``max_read_samples`` this bounds the
      memory all reads together can take while their answers are built.
    * ``inline_read_seconds`` (0.005, ASGI only; 0: never): a streamed read
      of a storage that sets ``checks_read_deadline`` (the SQLite store on a
      file) is first answered on the event loop, given that long and
      ``max_bytes_in_frame`` bytes; a larger one starts over in a worker
      thread. A small read is spared the two thread switches (~0.3 ms on a
      2-core VM, a third of a one-series read); the loop stops for at most
      that long, as long as a worker thread holding the GIL stops it anyway
      (``sys.getswitchinterval()``, 5 ms).
    """

    def __init__(
        self,
        storage: Any,
        write_path: str | None = "/api/v1/write",
        read_path: str | None = "/api/v1/read",
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
        max_series: int = DEFAULT_MAX_SERIES,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        max_labels_per_series: int = DEFAULT_MAX_LABELS_PER_SERIES,
        max_label_bytes: int = DEFAULT_MAX_LABEL_BYTES,
        max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
        max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
        max_read_series: int = DEFAULT_MAX_READ_SERIES,
        max_read_seconds: float = DEFAULT_MAX_READ_SECONDS,
        max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_concurrent_reads: int = DEFAULT_MAX_CONCURRENT_READS,
        read_queue_timeout: float = DEFAULT_READ_QUEUE_TIMEOUT,
        inline_read_seconds: float = DEFAULT_INLINE_READ_SECONDS,
        operations: Any = None,
    ) -> None:
        #: a :class:`~promwire.server.operations.Operations` (auth, tenants,
        #: /metrics, health, logs) or ``None`` for a bare receiver
        self.operations = operations
        if max_concurrent_reads <= 0:
            raise ValueError("max_concurrent_reads must be > 0")
        if read_queue_timeout < 0:
            raise ValueError("read_queue_timeout must be >= 0")
        if inline_read_seconds < 0:
            raise ValueError("inline_read_seconds must be >= 0")
        self.max_concurrent_reads = max_concurrent_reads
        self.read_queue_timeout = read_queue_timeout
        self.inline_read_seconds = inline_read_seconds
        self._read_slots = self._new_read_slots(max_concurrent_reads)
        if max_bytes_in_frame <= 0:
            raise ValueError("max_bytes_in_frame must be > 0")
        if body_timeout <= 0:
            raise ValueError("body_timeout must be > 0")
        if max_buffered_bytes < max_body_size:
            # Else a body within max_body_size could never fit: a 503 forever.
            raise ValueError(
                f"max_buffered_bytes ({max_buffered_bytes}) must be at least "
                f"max_body_size ({max_body_size})"
            )
        self.allowed_origins = tuple(allowed_origins)
        self.allowed_hosts = None if allowed_hosts is None else tuple(allowed_hosts)
        self.body_timeout = body_timeout
        self.budget = BodyBudget(max_buffered_bytes)
        self.storage = storage
        self.write_path = write_path
        self.read_path = read_path
        self.max_body_size = max_body_size
        #: keyword arguments for handle_write / handle_read
        self.write_limits: dict[str, int] = {
            "max_body_size": max_body_size,
            "max_decompressed_size": max_decompressed_size,
            "max_series": max_series,
            "max_samples": max_samples,
            "max_labels_per_series": max_labels_per_series,
            "max_label_bytes": max_label_bytes,
        }
        self.read_limits: dict[str, Any] = {
            "max_body_size": max_body_size,
            "max_decompressed_size": max_decompressed_size,
            "max_read_queries": max_read_queries,
            "max_read_samples": max_read_samples,
            "max_read_series": max_read_series,
            "max_read_seconds": max_read_seconds,
            "max_bytes_in_frame": max_bytes_in_frame,
        }

    def _new_read_slots(self, n: int) -> Any:
        """The semaphore of the read slots: a threading one (WSGI) or an asyncio one (ASGI)."""
        raise NotImplementedError

    def reads_busy(self) -> Response:
        """The 503 for a read that found no free slot within ``read_queue_timeout``."""
        return text_response(
            503,
            f"too many concurrent remote reads (limit {self.max_concurrent_reads}); retry later",
            [("Retry-After", "1")],
        )

    def admit(
        self, path: str, method: str, headers: Mapping[str, str]
    ) -> Response | tuple[Reservation, int | None]:
        """Everything decided before the body is read: the early answer (404,
        405, 403, 400 for a bad Content-Length, 413, 503), or the bytes of
        ``max_buffered_bytes`` reserved for the body (its declared
        Content-Length up front) with that length. ``headers`` has
        lower-case names; the caller releases the reservation."""
        early = self.route(path, method) or self.refuse(path, headers)
        if early is not None:
            return early
        declared = self.declared_length(path, headers)
        if isinstance(declared, Response):
            return declared
        if declared is not None and declared > self.max_body_size:
            return self.too_large(path, headers)
        held = self.budget.hold()
        if not held.grow_to(declared or 0):
            return self.busy(path, headers)
        return held, declared

    def operated_early(
        self, path: str, method: str, headers: Mapping[str, str], note: RequestNote
    ) -> Response | None:
        """With ``operations``, what is answered before anything else: the metrics
        and health paths, or the 401/400 of a request without tenant. Credentials
        are checked before this (:meth:`Operations.unauthorized`)."""
        ops = self.operations
        if ops.is_own(path):
            response: Response = ops.own(path, method)
            return response
        if path not in (self.write_path, self.read_path):
            return None
        tenant = ops.tenant(path, headers)
        if isinstance(tenant, Response):
            note.reason = "missing or invalid tenant"
            return self.refusal(path, headers, tenant.status, _text(tenant), [])
        note.tenant = tenant
        return None

    def endpoint(self, path: str) -> str:
        """The ``endpoint`` label of a path in the self-metrics."""
        if path == self.write_path:
            return "write"
        if path == self.read_path:
            return "read"
        return {"/metrics": "metrics", "/-/healthy": "healthy", "/-/ready": "ready"}.get(
            path, "other"
        )

    def body_refused(self, exc: Exception, path: str, headers: Mapping[str, str]) -> Response:
        """The answer to a body that failed to arrive (``BodyTooLarge``, ``BodyTimeout``,
        ``OverBudget`` from :mod:`promwire.server.guards`)."""
        if isinstance(exc, BodyTooLarge):
            return self.too_large(path, headers)
        if isinstance(exc, BodyTimeout):
            return self.body_timed_out(path, headers)
        if isinstance(exc, OverBudget):
            return self.busy(path, headers)
        raise exc

    def route(self, path: str, method: str) -> Response | None:
        """The 404 or 405 answer for a request, or ``None`` when it is for an endpoint."""
        if path not in (self.write_path, self.read_path):
            return text_response(404, f"not found: {path}")
        if method != "POST":
            return text_response(405, f"method {method} not allowed: use POST", [("Allow", "POST")])
        return None

    def refuse(self, path: str, headers: Mapping[str, str]) -> Response | None:
        """The 403 for a request from a browser page or for another host, else ``None``.

        ``headers`` has lower-case names.
        """
        if not origin_allowed(headers.get("origin"), self.allowed_origins):
            return self.refusal(
                path, headers, 403, "cross-origin request refused: this Origin is not allowed"
            )
        if not host_allowed(headers.get("host"), self.allowed_hosts):
            return self.refusal(path, headers, 403, "request refused: this Host is not allowed")
        return None

    def declared_length(self, path: str, headers: Mapping[str, str]) -> int | Response | None:
        """The request's Content-Length, or the 400 answer for a malformed one."""
        try:
            return parse_content_length(headers.get("content-length"))
        except BadContentLength as exc:
            return self.refusal(path, headers, 400, str(exc))

    def body_timed_out(self, path: str, headers: Mapping[str, str]) -> Response:
        """The 408 answer for a body not received within ``body_timeout``."""
        message = f"request body not received within {self.body_timeout:g} s"
        return self.refusal(path, headers, 408, message)

    def busy(self, path: str, headers: Mapping[str, str]) -> Response:
        """The 503 answer when ``max_buffered_bytes`` is used up."""
        message = "too many request bodies in flight: retry later"
        return self.refusal(path, headers, 503, message, [("Retry-After", "1")])

    def too_large(self, path: str, headers: Mapping[str, str]) -> Response:
        """The 413 answer for a body over ``max_body_size``."""
        message = f"request body is over the limit of {self.max_body_size} bytes"
        return self.refusal(path, headers, 413, message)

    def refusal(
        self,
        path: str,
        headers: Mapping[str, str],
        status: int,
        message: str,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """An answer given before the handler ran: a write's carries the Written
        counts (0) when it names remote write 2.0, and every one closes the
        connection, since the rest of the body is not wanted."""
        written = refused_write_headers(headers) if path == self.write_path else []
        return text_response(status, message, [*written, *extra, CLOSE])


def _text(response: Response) -> str:
    body = response.body
    return bytes(body).decode("utf-8").strip() if isinstance(body, bytes | bytearray) else ""
