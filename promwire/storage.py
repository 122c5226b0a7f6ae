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
a batch that got a 2xx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .messages import Query, QueryResult, ReadRequest, ReadResponse, WriteRequest

__all__ = [
    "AsyncBaseStorage",
    "AsyncRemoteStorage",
    "BaseStorage",
    "RemoteStorage",
    "RequestContext",
]


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

    async def write(self, ctx: Any, request: WriteRequest) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not accept writes")

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} does not answer queries")

    async def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        results = await asyncio.gather(*(self.process_query(ctx, q) for q in request.queries))
        return ReadResponse(results=list(results))
