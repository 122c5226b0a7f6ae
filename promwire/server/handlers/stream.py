"""Streamed remote read (STREAMED_XOR_CHUNKS) bodies and priming a lazy body.

A streamed answer's body is a lazy iterator (sync storage) or async iterator
(async storage) of frames, one series each, computed as it is pulled; an
error after the first frame ends the body with a text message, as in
Prometheus. :func:`prime_response` / :func:`aprime_response` pull the first
frame before the status is sent so an early failure is an error status.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from ...chunks.streamed import (
    STREAMED_CONTENT_TYPE,
    AnySeries,
    EncodedSeries,
    stream_chunked_response,
)
from ...codec.messages import ChunkedSeries, Query, QueryResult, ReadRequest, TimeSeries
from ...errors import LimitExceeded
from ...stores.protocol import ReadBudget
from .common import Response, error_message, error_response
from .offload import _call

log = logging.getLogger("promwire")


def _labels_key(series: TimeSeries | ChunkedSeries) -> tuple[tuple[str, str], ...]:
    # Prometheus orders label sets pairwise by (name, value), then by length:
    # exactly how tuples of sorted pairs compare.
    return tuple(sorted((lb.name, lb.value) for lb in series.labels))


def _sorted_result(result: QueryResult) -> list[TimeSeries]:
    return sorted(result.timeseries, key=_labels_key)


def _series_method(storage: Any) -> Any:
    """The storage's ``process_query_encoded``, else its ``process_query_chunks``
    (``None``: neither; a streamed read then goes through ``process_query``)."""
    return getattr(storage, "process_query_encoded", None) or getattr(
        storage, "process_query_chunks", None
    )


def _query_series(storage: Any, ctx: Any, query: Query) -> Iterable[AnySeries]:
    chunks = _series_method(storage)
    if chunks is not None:
        items: Iterable[AnySeries] = chunks(ctx, query)
        return items
    return _sorted_result(storage.process_query(ctx, query))


def _query_results(
    storage: Any, ctx: Any, request: ReadRequest
) -> Iterator[tuple[int, Iterable[AnySeries]]]:
    """Each query's index and series, asked of the storage as they are pulled."""
    return (
        (index, _query_series(storage, ctx, query)) for index, query in enumerate(request.queries)
    )


def _stream_error(exc: BaseException) -> bytes:
    """What is appended to a stream that fails after its first frame.

    Like Prometheus: the status (200) is already sent, so the error text goes
    into the body, where a reader sees an unreadable frame (a bad length or a
    CRC mismatch) and fails the read instead of taking a cut answer as whole.
    """
    log.error("streamed remote read failed after the first frame", exc_info=exc)
    message = error_message(exc)
    return f"promwire: streamed remote read failed: {message}\n".encode()


def _stream_frames(
    storage: Any,
    ctx: Any,
    request: ReadRequest,
    max_bytes_in_frame: int,
    samples_per_chunk: int,
    budget: ReadBudget | None = None,
) -> Iterator[bytes]:
    """The frames of a streamed answer, computed as they are pulled.

    Raises when the first frame cannot be made (the caller can still answer
    with an error status); after that, an error ends the body with a text
    message (see :func:`_stream_error`). Each frame sent restarts the
    budget's clock: ``max_read_seconds`` bounds the silence between frames.
    """
    results = _query_results(storage, ctx, request)
    started = False
    try:
        for frame in stream_chunked_response(
            results, max_bytes_in_frame=max_bytes_in_frame, samples_per_chunk=samples_per_chunk
        ):
            started = True
            yield frame
            if budget is not None:
                budget.restart_clock()
    except Exception as exc:
        if not started:
            raise
        yield _stream_error(exc)


def inline_answer(
    storage: Any,
    ctx: Any,
    request: ReadRequest,
    max_bytes_in_frame: int,
    samples_per_chunk: int,
    budget: ReadBudget,
) -> Response | None:
    """A streamed answer made whole now, on the caller's thread, if the
    storage finishes within ``budget``'s clock and the frames within
    ``max_bytes_in_frame`` bytes in all; ``None`` when it does not (out of
    time or too large: nothing was sent, so the read starts over with the
    full clock, in a worker thread). For a storage whose reads check the
    clock (``checks_read_deadline``): an event loop may then serve a small
    read without the two thread switches a worker costs, and stops for at
    most the budget's seconds (plus the work between two checks) when the
    read turns out large. An error other than the clock's is the answer.
    """
    results = _query_results(storage, ctx, request)
    frames = stream_chunked_response(
        results, max_bytes_in_frame=max_bytes_in_frame, samples_per_chunk=samples_per_chunk
    )
    kept: list[bytes] = []
    size = 0
    try:
        for frame in frames:
            size += len(frame)
            if size > max_bytes_in_frame:
                return None
            kept.append(frame)
            if budget.expired():
                return None
    except LimitExceeded as exc:
        if exc.status == 503 and budget.expired():
            return None
        return error_response(exc)
    except Exception as exc:
        return error_response(exc)
    finally:
        close = getattr(frames, "close", None)  # a generator: an answer given up
        if close is not None:  # on closes the storage's cursor now
            close()
    return Response(200, _streamed_headers(), kept[0] if len(kept) == 1 else b"".join(kept))


def _frames_of(
    index: int, series: AnySeries, max_bytes_in_frame: int, samples_per_chunk: int
) -> list[bytes]:
    return list(
        stream_chunked_response(
            [(index, [series])],
            max_bytes_in_frame=max_bytes_in_frame,
            samples_per_chunk=samples_per_chunk,
        )
    )


async def _aquery_series(storage: Any, ctx: Any, query: Query) -> AsyncIterator[AnySeries]:
    chunks = _series_method(storage)
    if chunks is None:
        for series in _sorted_result(await _call(storage.process_query, ctx, query)):
            yield series
        return
    items = chunks(ctx, query)
    if inspect.isawaitable(items):
        items = await items
    if isinstance(items, AsyncIterator):
        async for series in items:
            yield series
    else:
        for series in items:
            yield series


async def _astream_frames(
    storage: Any,
    ctx: Any,
    request: ReadRequest,
    max_bytes_in_frame: int,
    samples_per_chunk: int,
    budget: ReadBudget | None = None,
) -> AsyncIterator[bytes]:
    """:func:`_stream_frames` for an async storage: series pulled on the loop,
    each series framed on its own (frames never span series, so this is the
    same byte stream); series of many samples are framed in a worker thread."""
    started = False
    try:
        for index, query in enumerate(request.queries):
            async for series in _aquery_series(storage, ctx, query):
                size = (
                    len(series.samples) + len(series.histograms)
                    if isinstance(series, TimeSeries)
                    else len(series.sizes)
                    if isinstance(series, EncodedSeries)
                    else len(series.chunks)
                )
                if size > 4 * samples_per_chunk:
                    frames = await asyncio.to_thread(
                        _frames_of, index, series, max_bytes_in_frame, samples_per_chunk
                    )
                else:
                    frames = _frames_of(index, series, max_bytes_in_frame, samples_per_chunk)
                for frame in frames:
                    started = True
                    yield frame
                    if budget is not None:
                        budget.restart_clock()
    except Exception as exc:
        if not started:
            raise
        yield _stream_error(exc)


def _is_async_storage(storage: Any) -> bool:
    chunks = _series_method(storage)
    if chunks is not None:
        return inspect.isasyncgenfunction(chunks) or inspect.iscoroutinefunction(chunks)
    return inspect.iscoroutinefunction(getattr(storage, "process_query", None))


def _streamed_headers() -> list[tuple[str, str]]:
    # No Content-Encoding: the frames are not snappy-compressed.
    return [("Content-Type", STREAMED_CONTENT_TYPE)]


def prime_response(response: Response) -> Response:
    """Compute the start of a streamed body before anything is sent.

    A streamed read's body is lazy: the storage is first called when the
    body is iterated. Call this before sending the status line so that a
    failure up to the first frame becomes an ordinary error response
    (4xx/5xx text) instead of a broken 200. The second piece is pulled too:
    a body that ends after its first piece (a streamed read of one series
    under ``max_bytes_in_frame``, the usual case) comes back as ``bytes``,
    so the server sends it with a ``Content-Length`` in one go rather than
    chunked (chunked, its end is a tiny write of its own after a large one,
    which a client on loopback waited ~40 ms for in about one read of ten:
    TCP's delayed ACK). Bodies that are ``bytes`` come back unchanged; an
    empty stream becomes an empty body (zero frames is a valid answer). The
    adapters in :mod:`promwire.server.asgi` and :mod:`promwire.server.wsgi`
    do this.
    """
    body = response.body
    if isinstance(body, bytes | bytearray | memoryview):
        return response
    if isinstance(body, AsyncIterator):
        raise TypeError("an async body needs aprime_response")
    it = iter(body)
    try:
        first = next(it, None)
    except Exception as exc:
        return error_response(exc)
    if first is None:
        return Response(response.status, response.headers, b"")
    try:
        second = next(it, None)
    except Exception as exc:  # nothing is sent yet: still an error status
        return error_response(exc)
    if second is None:
        return Response(response.status, response.headers, bytes(first))
    return Response(response.status, response.headers, _resume(first, second, it))


def _resume(first: bytes, second: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield second
    yield from rest  # closing this generator closes ``rest`` too


async def aprime_response(response: Response) -> Response:
    """:func:`prime_response` for the async adapters: async bodies are pulled on
    the loop, sync ones in a worker thread (pulling may block on a storage)."""
    body = response.body
    if isinstance(body, bytes | bytearray | memoryview):
        return response
    if not isinstance(body, AsyncIterator):
        return await asyncio.to_thread(prime_response, response)
    try:
        first = await anext(body, None)
    except Exception as exc:
        return error_response(exc)
    if first is None:
        return Response(response.status, response.headers, b"")
    try:
        second = await anext(body, None)
    except Exception as exc:
        return error_response(exc)
    if second is None:
        return Response(response.status, response.headers, bytes(first))
    return Response(response.status, response.headers, _aresume(first, second, body))


async def _aresume(first: bytes, second: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        yield second
        async for piece in rest:
            yield piece
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
