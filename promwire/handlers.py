"""Framework-agnostic remote write / remote read handlers (no I/O).

A web framework hands over the raw request body and headers; a handler
decodes, calls the storage and returns a :class:`Response` for the framework
to send::

    resp = handle_write(body, headers, storage)
    return framework.Response(resp.body, status=resp.status, headers=resp.headers)

HTTP behaviour (PROTOCOL.md §3-4):

* write: 204 with an empty body on success (never a body on 204: Go's client
  would misread the next response on the connection); 415 for a
  Content-Encoding other than ``snappy`` or an unsupported Content-Type; 413
  when the body exceeds ``max_body_size``; 400 with a text/plain message for
  bad snappy or protobuf, a declared decoded size over the limit, or too many
  series/samples; storage errors map through their ``.status`` (400/429/500),
  any other storage exception is a 500.
* read: 200 with ``Content-Type: application/x-protobuf`` and
  ``Content-Encoding: snappy`` carrying a snappy ``ReadResponse``; 400 when no
  accepted response type is supported or the answer exceeds
  ``max_read_samples``.

Header names are matched case-insensitively. Where promwire is more lenient
than Prometheus it says so next to the check (Content-Encoding and media type
compared case-insensitively; whitespace around ``;`` parameters tolerated).

The async handlers accept a sync or an async storage: a sync storage's
methods run in a worker thread (``asyncio.to_thread``) so they never block
the event loop; bodies of 64 KiB or more are also decoded in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from . import snappy
from .decode import decode
from .encode import encode
from .errors import (
    LimitExceeded,
    PromwireError,
    StorageError,
    StorageOverloaded,
    UnsupportedMediaType,
)
from .messages import ReadRequest, ReadResponse, ResponseType, WriteRequest
from .storage import RequestContext

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "DEFAULT_MAX_READ_SAMPLES",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MAX_SERIES",
    "PROTOBUF",
    "SUPPORTED_RESPONSE_TYPES",
    "SUPPORTED_WRITE_PROTOS",
    "WRITE_V1_PROTO",
    "Response",
    "error_response",
    "handle_read",
    "handle_read_async",
    "handle_write",
    "handle_write_async",
    "negotiate_response_type",
    "negotiate_write_proto",
    "parse_content_type",
    "prepare_read",
    "prepare_write",
    "text_response",
]

log = logging.getLogger("promwire")
T = TypeVar("T")

#: Largest request body accepted (compressed), as Prometheus: 32 MiB.
DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
#: Largest decoded size a snappy body may declare, as Prometheus: 32 MiB.
DEFAULT_MAX_DECOMPRESSED_SIZE = snappy.DEFAULT_MAX_DECOMPRESSED_SIZE
#: Most series one write request may hold. Prometheus sends at most
#: ``max_samples_per_send`` series per request (default 2000; 500 in 2.42).
DEFAULT_MAX_SERIES = 1_000_000
#: Most data points (samples + histograms + exemplars) one write request may hold.
DEFAULT_MAX_SAMPLES = 1_000_000
#: Most samples (+ histograms) one SAMPLES read response may carry, as Prometheus'
#: ``--storage.remote.read-sample-limit`` default.
DEFAULT_MAX_READ_SAMPLES = 50_000_000

PROTOBUF = "application/x-protobuf"
WRITE_V1_PROTO = "prometheus.WriteRequest"
#: ``proto=`` values handle_write accepts. Remote write 2.0 adds
#: ``io.prometheus.write.v2.Request`` here and one branch in :func:`prepare_write`.
SUPPORTED_WRITE_PROTOS: tuple[str, ...] = (WRITE_V1_PROTO,)
#: Response types handle_read can produce (STREAMED_XOR_CHUNKS joins with promwire.streamed).
SUPPORTED_RESPONSE_TYPES: tuple[ResponseType, ...] = (ResponseType.SAMPLES,)

_TEXT = ("Content-Type", "text/plain; charset=utf-8")


@dataclass(frozen=True, slots=True)
class Response:
    """What to send back. ``body`` is ``bytes`` or an iterable of ``bytes`` to stream."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | Iterable[bytes] = b""


def text_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A plain-text response (``message`` plus a newline)."""
    return Response(status, [_TEXT, *headers], (message.rstrip("\n") + "\n").encode())


def error_response(exc: BaseException) -> Response:
    """Turn an exception into a response: promwire errors by ``.status``, others 500."""
    if isinstance(exc, PromwireError):
        extra: list[tuple[str, str]] = []
        if isinstance(exc, StorageOverloaded) and exc.retry_after is not None:
            # Retry-After takes whole seconds; round up so the sender never comes back early.
            extra.append(("Retry-After", str(max(0, math.ceil(exc.retry_after)))))
        return text_response(exc.status, exc.message, extra)
    log.error("storage raised an unexpected exception", exc_info=exc)
    return text_response(500, f"internal storage error: {type(exc).__name__}: {exc}")


def _no_content() -> Response:
    # A fresh header list each time: callers may append to it.
    return Response(204, [], b"")


# ------------------------------------------------------------------ header parsing


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse_content_type(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a Content-Type into its lower-cased media type and ``(key, value)`` parameters.

    Follows PROTOCOL.md §3.2: trim, split on ``;``, every parameter must be
    ``key=value`` with exactly one ``=`` (else 415). Unlike Prometheus, the
    parts are whitespace-trimmed, so ``application/x-protobuf; proto=X`` (with a
    space) means ``proto=X`` here while Prometheus would ignore that parameter.
    Surrounding double quotes of a value are dropped (RFC 9110 quoted-string).
    """
    media, *parts = value.strip().split(";")
    params: list[tuple[str, str]] = []
    for part in parts:
        if part.count("=") != 1:
            raise UnsupportedMediaType(f"malformed Content-Type parameter {part.strip()!r}")
        key, val = part.split("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params.append((key.strip(), val))
    return media.strip().lower(), params


def negotiate_write_proto(
    content_type: str | None, supported: Iterable[str] = SUPPORTED_WRITE_PROTOS
) -> str:
    """The message type a write body holds, from its Content-Type.

    Missing Content-Type means remote write 1.0 (as Prometheus). The first
    ``proto`` parameter decides; none means 1.0. Anything else is a 415.
    """
    supported = tuple(supported)
    if content_type is None or not content_type.strip():
        return WRITE_V1_PROTO
    media, params = parse_content_type(content_type)
    if media != PROTOBUF:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}: expected {PROTOBUF!r}"
        )
    proto = next((v for k, v in params if k == "proto"), WRITE_V1_PROTO)
    if proto not in supported:
        raise UnsupportedMediaType(
            f"unsupported remote write message {proto!r}; supported: {', '.join(supported)}"
        )
    return proto


def _check_encoding(value: str | None) -> None:
    # A missing Content-Encoding is tolerated and the body still read as snappy
    # (Prometheus does the same). Compared case-insensitively (older Prometheus did).
    if value is not None and value.strip().lower() != "snappy":
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {value!r}: only 'snappy' (block format) is accepted"
        )


def _check_body_size(body: bytes, max_body_size: int) -> None:
    if len(body) > max_body_size:
        raise LimitExceeded(
            f"request body is {len(body)} bytes, over the limit of {max_body_size}", status=413
        )


# ---------------------------------------------------------------------------- write


def prepare_write(
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_series: int = DEFAULT_MAX_SERIES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
) -> WriteRequest:
    """Validate headers and decode a write body, raising a promwire error on bad input.

    Header checks run before the body is touched, so a request with a wrong
    Content-Type gets 415 even when its body is also broken (Prometheus would
    decode first and answer 400).
    """
    h = _lower(headers)
    _check_encoding(h.get("content-encoding"))
    proto = negotiate_write_proto(h.get("content-type"))
    _check_body_size(body, max_body_size)
    raw = snappy.decompress(body, max_decompressed_size=max_decompressed_size)
    if proto == WRITE_V1_PROTO:
        request = decode(WriteRequest, raw)
        _check_write_counts(request, max_series, max_samples)
        return request
    # Remote write 2.0 plugs in here: decode its Request and return it; the
    # caller then picks the storage call and the Written headers by type.
    raise UnsupportedMediaType(f"unsupported remote write message {proto!r}")


def _check_write_counts(request: WriteRequest, max_series: int, max_samples: int) -> None:
    if len(request.timeseries) > max_series:
        raise LimitExceeded(
            f"request holds {len(request.timeseries)} series, over the limit of {max_series}",
            status=400,
        )
    points = sum(len(s.samples) + len(s.histograms) + len(s.exemplars) for s in request.timeseries)
    if points > max_samples:
        raise LimitExceeded(
            f"request holds {points} samples/histograms/exemplars, over the limit of {max_samples}",
            status=400,
        )


def _context(ctx: Any, headers: Mapping[str, str]) -> Any:
    return RequestContext(headers=_lower(headers)) if ctx is None else ctx


def handle_write(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_series: int = DEFAULT_MAX_SERIES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
) -> Response:
    """Handle a remote write request with a synchronous storage.

    ``ctx`` is passed to the storage as is; ``None`` makes a
    :class:`~promwire.storage.RequestContext` holding the (lower-cased) headers.
    Limits: ``max_body_size`` (compressed bytes, 413), ``max_decompressed_size``
    (declared decoded bytes, 400), ``max_series`` and ``max_samples`` (per
    request, 400).
    """
    try:
        request = prepare_write(
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_series=max_series,
            max_samples=max_samples,
        )
        storage.write(_context(ctx, headers), request)
    except Exception as exc:
        return error_response(exc)
    return _no_content()


async def handle_write_async(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_series: int = DEFAULT_MAX_SERIES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
) -> Response:
    """:func:`handle_write` for an async or sync storage (sync runs in a thread)."""
    try:
        request = await _off_loop(
            len(body),
            prepare_write,
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_series=max_series,
            max_samples=max_samples,
        )
        await _call(storage.write, _context(ctx, headers), request)
    except Exception as exc:
        return error_response(exc)
    return _no_content()


#: Bodies from this size on are decoded in a worker thread by the async handlers.
_OFFLOAD_BYTES = 64 * 1024


async def _off_loop(size: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a decode step inline for small bodies, in a worker thread for big ones.

    Decoding a few MiB takes tens of milliseconds the event loop would spend
    deaf to other connections; for small bodies the thread hop costs more
    than the decode.
    """
    if size < _OFFLOAD_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _call(method: Callable[..., Any], *args: Any) -> Any:
    """Await an async storage method; run a sync one in a worker thread."""
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    result = await asyncio.to_thread(method, *args)
    if inspect.isawaitable(result):  # a sync-looking callable that returned a coroutine
        result = await result
    return result


# ----------------------------------------------------------------------------- read


def negotiate_response_type(
    accepted: Iterable[ResponseType | int],
    supported: Iterable[ResponseType] = SUPPORTED_RESPONSE_TYPES,
) -> ResponseType:
    """The first accepted response type this server supports (PROTOCOL.md §4.2).

    An empty list means SAMPLES (older clients, Prometheus 2.42 included, send
    none). A non-empty list with nothing supported is a 400.
    """
    accepted = list(accepted)
    supported = tuple(supported)
    if not accepted:
        return ResponseType.SAMPLES
    for rtype in accepted:
        if rtype in supported:
            return ResponseType(rtype)
    names = ", ".join(_type_name(t) for t in accepted)
    raise UnsupportedMediaType(
        f"none of the accepted response types ({names}) is supported; "
        f"supported: {', '.join(t.name for t in supported)}",
        status=400,
    )


def _type_name(rtype: ResponseType | int) -> str:
    try:
        return ResponseType(rtype).name
    except ValueError:
        return str(rtype)


def prepare_read(
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
) -> tuple[ReadRequest, ResponseType]:
    """Validate and decode a read body; return it with the negotiated response type.

    Prometheus' server ignores the request headers; promwire refuses a
    Content-Encoding other than snappy and a media type other than
    ``application/x-protobuf`` (415), accepting both when absent.
    """
    h = _lower(headers)
    _check_encoding(h.get("content-encoding"))
    content_type = h.get("content-type")
    if content_type is not None and content_type.strip():
        media, _ = parse_content_type(content_type)
        if media != PROTOBUF:
            raise UnsupportedMediaType(
                f"unsupported Content-Type {content_type!r}: expected {PROTOBUF!r}"
            )
    _check_body_size(body, max_body_size)
    raw = snappy.decompress(body, max_decompressed_size=max_decompressed_size)
    request = decode(ReadRequest, raw)
    return request, negotiate_response_type(request.accepted_response_types)


def _samples_response(
    request: ReadRequest, response: ReadResponse, max_read_samples: int
) -> Response:
    if len(response.results) != len(request.queries):
        # The client pairs results with queries by position: a mismatch is a storage bug.
        raise StorageError(
            f"storage answered {len(response.results)} results for {len(request.queries)} queries"
        )
    total = sum(
        len(ts.samples) + len(ts.histograms) for r in response.results for ts in r.timeseries
    )
    if total > max_read_samples:
        raise LimitExceeded(
            f"exceeded sample limit: response would hold {total} samples, "
            f"over the limit of {max_read_samples}",
            status=400,
        )
    return Response(
        200,
        [("Content-Type", PROTOBUF), ("Content-Encoding", "snappy")],
        snappy.compress(encode(response)),
    )


def handle_read(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
) -> Response:
    """Handle a remote read request with a synchronous storage.

    Limits: ``max_body_size`` (413), ``max_decompressed_size`` (400) and
    ``max_read_samples``, the most samples a SAMPLES answer may carry (400).
    """
    try:
        request, rtype = prepare_read(
            body, headers, max_body_size=max_body_size, max_decompressed_size=max_decompressed_size
        )
        # Only SAMPLES is negotiable for now: the STREAMED_XOR_CHUNKS branch
        # (``if rtype == ResponseType.STREAMED_XOR_CHUNKS: return Response(200, ..., frames)``)
        # goes here, its body an iterable of frames.
        del rtype
        response = storage.read(_context(ctx, headers), request)
        return _samples_response(request, response, max_read_samples)
    except Exception as exc:
        return error_response(exc)


async def handle_read_async(
    body: bytes,
    headers: Mapping[str, str],
    storage: Any,
    ctx: Any = None,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
) -> Response:
    """:func:`handle_read` for an async or sync storage (sync runs in a thread)."""
    try:
        request, rtype = await _off_loop(
            len(body),
            prepare_read,
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
        )
        del rtype  # SAMPLES only for now, see handle_read
        response = await _call(storage.read, _context(ctx, headers), request)
        return _samples_response(request, response, max_read_samples)
    except Exception as exc:
        return error_response(exc)
