"""The remote read path: response type negotiation, SAMPLES and streamed answers.

:func:`prepare_read` checks headers and decodes a ``ReadRequest``;
:func:`handle_read` and :func:`handle_read_async` answer SAMPLES (one snappy
``ReadResponse``, bounded by ``max_read_samples``) or STREAMED_XOR_CHUNKS
(a lazy body of frames from :mod:`promwire.server.handlers.stream`). A
SAMPLES answer of a storage with the optional ``process_query_columns``
(see :mod:`promwire.stores.protocol`) is written from its arrays by
:func:`~promwire.codec.read_columns.compressed_read_response`, without
a ``Sample`` object; other storages answer through ``read``.

Every read gets a :class:`~promwire.stores.protocol.ReadBudget` made of its
limits (``max_read_samples`` for SAMPLES answers, ``max_read_series``,
``max_read_seconds``), handed to the storage as ``ctx.budget`` so a storage
stops the moment a limit is passed instead of building the whole answer
first; the sample count of a finished answer is checked again here, for
storages that ignore the budget.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any

from ...chunks.streamed import DEFAULT_MAX_BYTES_IN_FRAME
from ...codec import snappy
from ...codec.columns import SeriesColumns
from ...codec.decoder import decode
from ...codec.encoder import encode
from ...codec.messages import Query, ReadRequest, ReadResponse, ResponseType
from ...codec.read_columns import compressed_read_response, result_points
from ...errors import LimitExceeded, StorageError, UnsupportedMediaType
from ...stores.protocol import ReadBudget, result_samples
from .common import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    DEFAULT_MAX_READ_SECONDS,
    DEFAULT_MAX_READ_SERIES,
    PROTOBUF,
    SUPPORTED_RESPONSE_TYPES,
    Response,
    _check_body_size,
    _check_encoding,
    _lower,
    _read_context,
    error_response,
)
from .offload import _call, _off_loop
from .stream import (
    _astream_frames,
    _is_async_storage,
    _stream_frames,
    _streamed_headers,
    inline_answer,
)


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


def _budget(
    rtype: ResponseType, max_read_samples: int, max_read_series: int, max_read_seconds: float
) -> ReadBudget:
    if max_read_seconds <= 0:
        raise ValueError("max_read_seconds must be > 0")
    return ReadBudget(
        # A streamed answer has no sample limit (its memory does not grow with it).
        max_samples=None if rtype == ResponseType.STREAMED_XOR_CHUNKS else max_read_samples,
        max_series=max_read_series,
        seconds=max_read_seconds,
    )


def _samples_response(request: ReadRequest, response: ReadResponse, budget: ReadBudget) -> Response:
    if len(response.results) != len(request.queries):
        # The client pairs results with queries by position: a mismatch is a storage bug.
        raise StorageError(
            f"storage answered {len(response.results)} results for {len(request.queries)} queries"
        )
    # The storage may have ignored the budget: count the finished answer too.
    budget.at_least_samples(sum(map(result_samples, response.results)))
    return Response(200, list(_SAMPLES_HEADERS), snappy.compress(encode(response)))


_SAMPLES_HEADERS = [("Content-Type", PROTOBUF), ("Content-Encoding", "snappy")]

QueryColumns = Callable[[Any, Query], Sequence[SeriesColumns]]


def _columns_of(storage: Any) -> QueryColumns | None:
    """The storage's optional ``process_query_columns``, if it has one."""
    method: QueryColumns | None = getattr(storage, "process_query_columns", None)
    return method


def _columns_body(results: Sequence[Sequence[SeriesColumns]]) -> Response:
    """The 200 of a SAMPLES answer (one result per query, asked in order):
    encoded into one buffer the thread keeps, compressed from where it is."""
    return Response(200, list(_SAMPLES_HEADERS), compressed_read_response(results))


def _take(
    results: list[Sequence[SeriesColumns]], series: Sequence[SeriesColumns], budget: ReadBudget
) -> None:
    """Add one query's answer and count the samples so far against the budget."""
    results.append(series)
    budget.at_least_samples(sum(map(result_points, results)))


def _columns_response(
    columns: QueryColumns, ctx: Any, request: ReadRequest, budget: ReadBudget
) -> Response:
    """A SAMPLES answer from ``process_query_columns``: the queries in order,
    the budget spent between them (and the finished answer counted, for a
    storage that ignores it), encoded from the arrays."""
    results: list[Sequence[SeriesColumns]] = []
    for query in request.queries:
        budget.check_time()
        _take(results, columns(ctx, query), budget)
    return _columns_body(results)


def _columns_in_thread(
    columns: QueryColumns,
    ctx: Any,
    request: ReadRequest,
    budget: ReadBudget,
    results: list[Sequence[SeriesColumns]],
) -> Response | Awaitable[Sequence[SeriesColumns]]:
    """:func:`_columns_response` for a sync storage, run in one worker thread
    (the queries and the encoding: one hop there and back); stops at a query
    whose answer is awaitable (a sync-looking callable returning a
    coroutine) and returns that, the answers so far in ``results``."""
    for query in request.queries:
        budget.check_time()
        series = columns(ctx, query)
        if inspect.isawaitable(series):
            return series
        _take(results, series, budget)
    return _columns_body(results)


async def _acolumns_response(
    columns: QueryColumns, ctx: Any, request: ReadRequest, budget: ReadBudget
) -> Response:
    """:func:`_columns_response` for the async handler: a sync storage's
    queries and the encoding in one worker thread, an async storage's
    queries awaited and the encoding off the loop when the answer is large."""
    results: list[Sequence[SeriesColumns]] = []
    if not inspect.iscoroutinefunction(columns):
        step = await asyncio.to_thread(_columns_in_thread, columns, ctx, request, budget, results)
        if isinstance(step, Response):
            return step
        _take(results, await step, budget)
    for query in request.queries[len(results) :]:
        budget.check_time()
        _take(results, await _call(columns, ctx, query), budget)
    # about 18 bytes a sample: the same threshold as a body's decoding
    return await _off_loop(18 * sum(map(result_points, results)), _columns_body, results)


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
    max_read_series: int = DEFAULT_MAX_READ_SERIES,
    max_read_seconds: float = DEFAULT_MAX_READ_SECONDS,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = 120,
) -> Response:
    """Handle a remote read request with a synchronous storage.

    Limits: ``max_body_size`` (413), ``max_decompressed_size`` (400),
    ``max_read_queries`` (queries per request, 400, checked before the
    storage is called); then, spent while the storage works (through
    ``ctx.budget``, see :class:`~promwire.stores.protocol.ReadBudget`):
    ``max_read_samples``, the most samples a SAMPLES answer may carry (400
    "exceeded sample limit"), ``max_read_series``, the most series the
    storage may check against the matchers (400), and ``max_read_seconds``,
    the longest the storage may work before answering (503; for a streamed
    answer, between two frames). A streamed answer has no sample limit (its
    memory does not grow with it); ``max_bytes_in_frame`` bounds its frames.
    A ``ctx`` of the caller's own (not a ``RequestContext``) is passed
    unchanged, so the storage sees no budget; the finished SAMPLES answer is
    still checked against ``max_read_samples``.

    A request preferring ``STREAMED_XOR_CHUNKS`` gets a 200 whose body is a
    lazy iterator of frames: nothing is asked of the storage until it is
    iterated. Each query's series (from ``process_query_chunks`` when the
    storage has it, else ``process_query``, sorted by label set) become
    frames of one series each, at most ``max_bytes_in_frame`` bytes of chunks
    per frame plus one chunk (Prometheus' rule), float samples cut into XOR
    chunks of ``samples_per_chunk``, native histograms into HISTOGRAM /
    FLOAT_HISTOGRAM chunks of at most as many. Pass the
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
        budget = _budget(rtype, max_read_samples, max_read_series, max_read_seconds)
        ctx = _read_context(ctx, headers, budget)
        if rtype == ResponseType.STREAMED_XOR_CHUNKS:
            if max_bytes_in_frame <= 0:
                raise ValueError("max_bytes_in_frame must be > 0")
            frames = _stream_frames(
                storage, ctx, request, max_bytes_in_frame, samples_per_chunk, budget
            )
            return Response(200, _streamed_headers(), frames)
        columns = _columns_of(storage)
        if columns is not None:
            return _columns_response(columns, ctx, request, budget)
        response = storage.read(ctx, request)
        return _samples_response(request, response, budget)
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
    max_read_series: int = DEFAULT_MAX_READ_SERIES,
    max_read_seconds: float = DEFAULT_MAX_READ_SECONDS,
    max_bytes_in_frame: int = DEFAULT_MAX_BYTES_IN_FRAME,
    samples_per_chunk: int = 120,
    inline_read_seconds: float = 0.0,
) -> Response:
    """:func:`handle_read` for an async or sync storage (sync runs in a thread).

    A streamed body is an async iterator for an async storage and a plain
    iterator for a sync one (the ASGI adapter pulls it in a worker thread);
    pass it through :func:`aprime_response` before sending.

    ``inline_read_seconds`` > 0: a streamed read of a sync storage that sets
    ``checks_read_deadline`` is first tried on the event loop with that much
    time and ``max_bytes_in_frame`` bytes of answer
    (:func:`~promwire.server.handlers.stream.inline_answer`); past either,
    it starts over in a worker thread with the full ``max_read_seconds``.
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
        budget = _budget(rtype, max_read_samples, max_read_series, max_read_seconds)
        ctx = _read_context(ctx, headers, budget)
        if rtype == ResponseType.STREAMED_XOR_CHUNKS:
            if max_bytes_in_frame <= 0:
                raise ValueError("max_bytes_in_frame must be > 0")
            is_async = _is_async_storage(storage)
            if (
                inline_read_seconds > 0
                and getattr(storage, "checks_read_deadline", False)
                and not is_async
            ):
                trial = _budget(rtype, max_read_samples, max_read_series, inline_read_seconds)
                trial_ctx = _read_context(ctx, headers, trial)
                if getattr(trial_ctx, "budget", None) is trial:  # else no clock to stop it
                    answer = inline_answer(
                        storage, trial_ctx, request, max_bytes_in_frame, samples_per_chunk, trial
                    )
                    if answer is not None:
                        return answer
            args = (storage, ctx, request, max_bytes_in_frame, samples_per_chunk, budget)
            frames: Iterator[bytes] | AsyncIterator[bytes] = (
                _astream_frames(*args) if is_async else _stream_frames(*args)
            )
            return Response(200, _streamed_headers(), frames)
        columns = _columns_of(storage)
        if columns is not None:
            return await _acolumns_response(columns, ctx, request, budget)
        response = await _call(storage.read, ctx, request)
        return _samples_response(request, response, budget)
    except Exception as exc:
        return error_response(exc)
