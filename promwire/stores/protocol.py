"""The storage side of a receiver: what a handler calls once a request is decoded.

A storage implements three methods, each taking an opaque per-request
``ctx`` first (the handlers pass a :class:`RequestContext` unless the caller
supplies its own object)::

    write(ctx, request: WriteRequest) -> None
    process_query(ctx, query: Query) -> QueryResult
    read(ctx, request: ReadRequest) -> ReadResponse

:class:`RemoteStorage` is the synchronous protocol, :class:`AsyncRemoteStorage`
its ``async def`` twin. Most storages only write ``write`` and
``process_query`` and inherit ``read`` from :class:`BaseStorage` /
:class:`AsyncBaseStorage`, which answer every query in order (the async one
concurrently) with exactly one result per query, as remote read requires.

Failures: raise :class:`~promwire.errors.StorageRejected` (answered 400, the
sender drops the data), :class:`~promwire.errors.StorageError` (500, the
sender retries) or :class:`~promwire.errors.StorageOverloaded` (429 with
``Retry-After``). Any other exception becomes a 500, so a bug in a storage
makes Prometheus retry rather than lose data.

``write`` must not return before the data is as durable as the storage
promises: the handler answers 204 right after it, and Prometheus never resends
a batch that got a 2xx. When it raises, it must have kept nothing of the
request (the handler tells a remote write 2.0 sender that nothing was
written, and the sender retries a 5xx with the same data).

Optional members (looked up with ``getattr``; a storage without them works):

``accepted_protocols``
    Which remote write messages the storage takes: a collection of ``"v1"``
    (``prometheus.WriteRequest``) and ``"v2"`` (``io.prometheus.write.v2.Request``).
    Default ``("v1", "v2")``: a v2 request is checked, converted with
    :func:`promwire.v2.to_v1` and handed to ``write`` like a v1 one. A
    request naming a message not listed is answered 415, so a sender can fall
    back to the other one.

``write_v2(ctx, request: promwire.v2.Request) -> WriteOutcome | None``
    Called instead of ``write`` for remote write 2.0 requests, with the
    request already checked (refs in range, each series with samples or
    histograms, samples in time order, exemplars with timestamps; series and
    points failing those are removed and reported by the handler). Use it to
    keep what the v1 view loses (start timestamps, per-series metadata, the
    symbol table). Return ``None`` when everything was kept, or a
    :class:`WriteOutcome` with the counts actually kept and the problems
    (a partial write: answered 400 with those counts).

``process_query_chunks(ctx, query: Query) -> Iterable[ChunkedSeries | TimeSeries]``
    Used for streamed remote read (``STREAMED_XOR_CHUNKS``) instead of
    ``process_query``: yield the matching series one at a time, **sorted by
    label set**, as ready ``ChunkedSeries`` (chunks sent as they are) or
    ``TimeSeries`` (float samples in time order, cut into XOR chunks of 120
    samples by promwire). Yielding lazily (one series' samples fetched at a
    time) keeps a large answer from ever being in memory at once. The
    iterator may be resumed on different worker threads (the ASGI adapter
    pulls each frame in a thread) and may be closed early when the client
    goes away. An async storage may make it an async generator.
    Without it, a streamed read calls ``process_query`` and sorts its series.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..codec.messages import Query, QueryResult, ReadRequest, ReadResponse, WriteRequest

__all__ = [
    "DEFAULT_ACCEPTED_PROTOCOLS",
    "AsyncBaseStorage",
    "AsyncRemoteStorage",
    "BaseStorage",
    "RemoteStorage",
    "RequestContext",
    "WriteOutcome",
]

#: What ``accepted_protocols`` defaults to: both messages (v2 through the conversion).
DEFAULT_ACCEPTED_PROTOCOLS: tuple[str, ...] = ("v1", "v2")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a storage may want to know about the HTTP request.

    ``headers`` has lower-case names. ``raw`` is the framework's own request
    object (ASGI scope, WSGI environ, ...) when an adapter created the context.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = ""
    client: str | None = None
    raw: Any = None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What an optional ``write_v2`` kept of a remote write 2.0 request.

    ``samples``, ``histograms`` and ``exemplars`` count what was written
    (sent back in the ``X-Prometheus-Remote-Write-*-Written`` headers);
    ``problems`` lists human-readable reasons for whatever was not (any
    problem makes the answer a 400, a partial write).
    """

    samples: int
    histograms: int
    exemplars: int
    problems: Sequence[str] = ()


@runtime_checkable
class RemoteStorage(Protocol):
    """A synchronous remote storage (see the module docstring)."""

    def write(self, ctx: Any, request: WriteRequest) -> None:
        """Keep everything in ``request`` durably, or raise a ``Storage*`` error."""

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        """Answer one query: matching series, samples in ``[start, end]`` sorted by time."""

    def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        """Answer every query of ``request``, one result per query, in order."""


@runtime_checkable
class AsyncRemoteStorage(Protocol):
    """The ``async def`` twin of :class:`RemoteStorage`."""

    async def write(self, ctx: Any, request: WriteRequest) -> None:
        """Keep everything in ``request`` durably, or raise a ``Storage*`` error."""

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        """Answer one query: matching series, samples in ``[start, end]`` sorted by time."""

    async def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        """Answer every query of ``request``, one result per query, in order."""


class BaseStorage:
    """Base class for synchronous storages: inherit it and write two methods.

    ``read`` answers the queries one after another through ``process_query``.
    ``write`` and ``process_query`` raise :class:`NotImplementedError` (a 500)
    until overridden, so a read-only storage only overrides ``process_query``.
    """

    accepted_protocols: tuple[str, ...] = DEFAULT_ACCEPTED_PROTOCOLS

    def write(self, ctx: Any, request: WriteRequest) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not accept writes")

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} does not answer queries")

    def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        return ReadResponse(results=[self.process_query(ctx, q) for q in request.queries])


class AsyncBaseStorage:
    """Base class for ``async`` storages; ``read`` runs the queries concurrently.

    ``asyncio.gather`` keeps the results in query order whatever order they
    finish in, which is what keeps ``results[i]`` the answer to ``queries[i]``.
    """

    accepted_protocols: tuple[str, ...] = DEFAULT_ACCEPTED_PROTOCOLS

    async def write(self, ctx: Any, request: WriteRequest) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not accept writes")

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} does not answer queries")

    async def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        results = await asyncio.gather(*(self.process_query(ctx, q) for q in request.queries))
        return ReadResponse(results=list(results))
