"""The remote read path: response type negotiation, SAMPLES and streamed answers.

:func:`prepare_read` checks headers and decodes a ``ReadRequest``;
:func:`handle_read` and :func:`handle_read_async` answer SAMPLES (one snappy
``ReadResponse``, bounded by ``max_read_samples``) or STREAMED_XOR_CHUNKS
(a lazy body of frames from :mod:`promwire.server.handlers.stream`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from ...chunks.streamed import DEFAULT_MAX_BYTES_IN_FRAME
from ...codec import snappy
from ...codec.decoder import decode
from ...codec.encoder import encode
from ...codec.messages import ReadRequest, ReadResponse, ResponseType
from ...errors import LimitExceeded, StorageError, UnsupportedMediaType
from .common import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    PROTOBUF,
    SUPPORTED_RESPONSE_TYPES,
    Response,
    _check_body_size,
    _check_encoding,
    _context,
    _lower,
    error_response,
)
from .offload import _call, _off_loop
from .stream import _astream_frames, _is_async_storage, _stream_frames, _streamed_headers


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
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    supported: Iterable[ResponseType] = SUPPORTED_RESPONSE_TYPES,
) -> tuple[ReadRequest, ResponseType]:
    """Validate and decode a read body; return it with the negotiated response type.

    Prometheus' server ignores the request headers; promwire refuses a
    Content-Encoding other than snappy and a media type other than
    ``application/x-protobuf`` (415), accepting both when absent (parameters
    after ``;`` are ignored).
    """
    h = _lower(headers)
    _check_encoding(h.get("content-encoding"))
    content_type = h.get("content-type")
    if content_type is not None and content_type.strip():
        media = content_type.split(";", 1)[0].strip().lower()
        if media != PROTOBUF:
            raise UnsupportedMediaType(
                f"unsupported Content-Type {content_type!r}: expected {PROTOBUF!r}"
            )
    _check_body_size(body, max_body_size)
    raw = snappy.decompress(body, max_decompressed_size=max_decompressed_size)
    request = decode(ReadRequest, raw)
    if len(request.queries) > max_read_queries:
        raise LimitExceeded(
            f"read request holds {len(request.queries)} queries, "
            f"over the limit of {max_read_queries} (max_read_queries)",
            status=400,
        )
    return request, negotiate_response_type(request.accepted_response_types, supported)


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
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = 120,
) -> Response:
    """Handle a remote read request with a synchronous storage.

    Limits: ``max_body_size`` (413), ``max_decompressed_size`` (400),
    ``max_read_queries`` (queries per request, 400, checked before the
    storage is called) and ``max_read_samples``, the most samples a SAMPLES
    answer may carry (400). A streamed answer has no sample limit (its memory
    does not grow with it); ``max_bytes_in_frame`` bounds its frames.

    A request preferring ``STREAMED_XOR_CHUNKS`` gets a 200 whose body is a
    lazy iterator of frames: nothing is asked of the storage until it is
    iterated. Each query's series (from ``process_query_chunks`` when the
    storage has it, else ``process_query``, sorted by label set) become
    frames of one series each, at most ``max_bytes_in_frame`` bytes of chunks
    per frame plus one chunk (Prometheus' rule), float samples cut into XOR
    chunks of ``samples_per_chunk``. Native histograms of a ``TimeSeries``
    are left out with a log warning (no histogram chunk encoder). Pass the
    response through :func:`prime_response` before sending it so a failure
    before the first frame becomes an error status; a failure after it ends
    the body with a text message, as Prometheus does.
    """
    try:
        request, rtype = prepare_read(
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_read_queries=max_read_queries,
        )
        if rtype == ResponseType.STREAMED_XOR_CHUNKS:
            if max_bytes_in_frame <= 0:
                raise ValueError("max_bytes_in_frame must be > 0")
            frames = _stream_frames(
                storage, _context(ctx, headers), request, max_bytes_in_frame, samples_per_chunk
            )
            return Response(200, _streamed_headers(), frames)
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
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = 120,
) -> Response:
    """:func:`handle_read` for an async or sync storage (sync runs in a thread).

    A streamed body is an async iterator for an async storage and a plain
    iterator for a sync one (the ASGI adapter pulls it in a worker thread);
    pass it through :func:`aprime_response` before sending.
    """
    try:
        request, rtype = await _off_loop(
            len(body),
            prepare_read,
            body,
            headers,
            max_body_size=max_body_size,
            max_decompressed_size=max_decompressed_size,
            max_read_queries=max_read_queries,
        )
        ctx = _context(ctx, headers)
        if rtype == ResponseType.STREAMED_XOR_CHUNKS:
            if max_bytes_in_frame <= 0:
                raise ValueError("max_bytes_in_frame must be > 0")
            args = (storage, ctx, request, max_bytes_in_frame, samples_per_chunk)
            frames: Iterator[bytes] | AsyncIterator[bytes] = (
                _astream_frames(*args) if _is_async_storage(storage) else _stream_frames(*args)
            )
            return Response(200, _streamed_headers(), frames)
        response = await _call(storage.read, ctx, request)
        return _samples_response(request, response, max_read_samples)
    except Exception as exc:
        return error_response(exc)
