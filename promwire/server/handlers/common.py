"""Shared pieces of the handlers: limit defaults, :class:`Response` and header checks.

The ``DEFAULT_*`` limits are the keyword defaults of every handler (and of the
ASGI/WSGI apps); :func:`text_response` and :func:`error_response` build the
plain-text answers; the private helpers lower-case header names and check
Content-Encoding and body size, the first checks of both the write and read
paths.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ...codec import snappy
from ...codec.messages import ResponseType
from ...errors import LimitExceeded, PromwireError, StorageOverloaded, UnsupportedMediaType
from ...stores.protocol import DEFAULT_ACCEPTED_PROTOCOLS, ReadBudget, RequestContext

log = logging.getLogger("promwire")


#: Largest request body accepted (compressed), as Prometheus: 32 MiB.
DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
#: Largest decoded size a snappy body may declare, as Prometheus: 32 MiB.
DEFAULT_MAX_DECOMPRESSED_SIZE = snappy.DEFAULT_MAX_DECOMPRESSED_SIZE
#: Most series one write request may hold. Prometheus sends at most
#: ``max_samples_per_send`` series per request (default 2000; 500 in 2.42).
DEFAULT_MAX_SERIES = 1_000_000
#: Most data points (samples + histograms + exemplars) one write request may hold.
DEFAULT_MAX_SAMPLES = 1_000_000
#: Most labels one series of a write request may carry. Prometheus has no such
#: limit; Grafana Mimir's default refuses more than 30, so this never refuses
#: a real series while bounding the per-series work of sorting labels and
#: building keys.
DEFAULT_MAX_LABELS_PER_SERIES = 1000
#: Longest label name or value of a written series, in UTF-8 bytes. Prometheus
#: has no such limit; Grafana Mimir (2048 characters) and VictoriaMetrics
#: (4 KiB) are far stricter, so this only stops strings no storage should
#: have to index.
DEFAULT_MAX_LABEL_BYTES = 64 * 1024
#: Most queries one read request may hold (each one a storage scan).
#: Prometheus sends one query per request; 100 leaves room for clients that
#: batch selectors while bounding the fixed work of a small request.
DEFAULT_MAX_READ_QUERIES = 100
#: Most samples (+ histograms) one SAMPLES read answer may carry, counted while
#: the storage produces them (a storage spending ``ctx.budget`` stops there).
#: Prometheus' ``--storage.remote.read-sample-limit`` is 5e7, sized for Go; in
#: Python a sample costs about 100 bytes as an object plus its encoding, so
#: 1e6 keeps an answer at the limit near 150 MB. Streamed answers have no
#: such limit (as in Prometheus): their memory does not grow with the answer.
DEFAULT_MAX_READ_SAMPLES = 1_000_000
#: Most series one read request may check against its matchers (summed over
#: its queries, matching or not): the work of a scan a matcher without an
#: equality (``{job=~".+"}``) makes over the whole store. About 3 s of CPU.
DEFAULT_MAX_READ_SERIES = 1_000_000
#: Longest a storage may work on a read before answering (a streamed answer:
#: between two frames), in seconds. Over it: 503, as Prometheus answers a
#: query timeout.
DEFAULT_MAX_READ_SECONDS = 10.0
#: Most problems a partial-write (400) answer lists one by one; the rest are counted.
MAX_LISTED_PROBLEMS = 20

PROTOBUF = "application/x-protobuf"
#: Remote write messages the handlers can take ("v1": ``prometheus.WriteRequest``,
#: "v2": ``io.prometheus.write.v2.Request``); a storage narrows them with
#: ``accepted_protocols`` (see :mod:`promwire.stores.protocol`).
SUPPORTED_WRITE_PROTOS: tuple[str, ...] = DEFAULT_ACCEPTED_PROTOCOLS
#: Response types handle_read can produce.
SUPPORTED_RESPONSE_TYPES: tuple[ResponseType, ...] = (
    ResponseType.SAMPLES,
    ResponseType.STREAMED_XOR_CHUNKS,
)


_TEXT = ("Content-Type", "text/plain; charset=utf-8")


@dataclass(frozen=True, slots=True)
class Response:
    """What to send back. ``body`` is ``bytes`` or an iterable of ``bytes`` to stream."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | Iterable[bytes] | AsyncIterator[bytes] = b""


#: Longest text answer; a longer message is cut (it never echoes much input).
MAX_MESSAGE_CHARS = 4096


def text_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A plain-text response (``message``, cut to :data:`MAX_MESSAGE_CHARS`, plus a newline)."""
    message = message.rstrip("\n")
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return Response(status, [_TEXT, *headers], (message + "\n").encode())


def quoted(value: str, limit: int = 64) -> str:
    """``repr(value)``, cut to about ``limit`` characters, for quoting input in a message."""
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    return repr(value)


#: The answer to a storage failure that is not a promwire error.
INTERNAL_ERROR = "internal storage error (the cause is in the server's log)"


def error_message(exc: BaseException) -> str:
    """What a client is told about ``exc``; the cause goes to the ``promwire`` log.

    A promwire error's own message (the words its raiser chose for the
    client), without the text of a wrapped non-promwire cause (``raise
    StorageError("sqlite write failed: ...") from exc`` answers "sqlite write
    failed"); "not implemented by this storage" for ``NotImplementedError``
    (a :class:`~promwire.stores.protocol.BaseStorage` without ``write``);
    anything else is :data:`INTERNAL_ERROR`. Never an exception
    class name, a traceback or a database's own error text.
    """
    if isinstance(exc, NotImplementedError):
        return "not implemented by this storage"
    if not isinstance(exc, PromwireError):
        return INTERNAL_ERROR
    message = exc.message
    cause = exc.__cause__
    if cause is not None and not isinstance(cause, PromwireError):
        cause_text = str(cause)
        if cause_text and (message.endswith(cause_text) or len(cause_text) >= 8):
            message = message.replace(cause_text, "").rstrip(" :;,-") or INTERNAL_ERROR
    return message


def error_response(exc: BaseException, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Turn an exception into a response: promwire errors by ``.status``, others 500.

    5xx answers are logged (with the traceback and cause) on the ``promwire``
    logger; the client gets :func:`error_message`.
    """
    extra: list[tuple[str, str]] = list(headers)
    status = exc.status if isinstance(exc, PromwireError) else 500
    if isinstance(exc, StorageOverloaded) and exc.retry_after is not None:
        # Retry-After takes whole seconds; round up so the sender never comes back early.
        extra.append(("Retry-After", str(max(0, math.ceil(exc.retry_after)))))
    if status >= 500:
        log.error("storage failed: answering %d", status, exc_info=exc)
    return text_response(status, error_message(exc), extra)


def _no_content(headers: Iterable[tuple[str, str]] = ()) -> Response:
    # A fresh header list each time: callers may append to it.
    return Response(204, list(headers), b"")


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _check_encoding(value: str | None) -> None:
    # A missing Content-Encoding is tolerated and the body still read as snappy
    # (Prometheus does the same). Compared case-insensitively (older Prometheus did).
    if value is not None and value.strip().lower() != "snappy":
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {quoted(value)}: "
            "only 'snappy' (block format) is accepted"
        )


def _check_body_size(body: bytes, max_body_size: int) -> None:
    if len(body) > max_body_size:
        raise LimitExceeded(
            f"request body is {len(body)} bytes, over the limit of {max_body_size}", status=413
        )


def _context(ctx: Any, headers: Mapping[str, str]) -> Any:
    return RequestContext(headers=_lower(headers)) if ctx is None else ctx


def _read_context(ctx: Any, headers: Mapping[str, str], budget: ReadBudget) -> Any:
    """The context of a read: a :class:`RequestContext` gets the request's budget;
    a caller's own context object is passed as it is."""
    ctx = _context(ctx, headers)
    if isinstance(ctx, RequestContext):
        return replace(ctx, budget=budget)
    return ctx
