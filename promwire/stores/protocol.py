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

``write_columns(ctx, series: Sequence[SeriesColumns]) -> None``
    Called instead of ``write`` for a remote write request (1.0, or 2.0 when
    the storage has no ``write_v2``) when present: each
    :class:`~promwire.codec.columns.SeriesColumns` holds a series' labels,
    its float samples as ``array('q')`` timestamps and ``array('d')`` values
    (no per-sample objects), and its histograms and exemplars as objects.
    The same durability and failure rules as ``write``. Metadata of a v1
    request is not passed (``write`` keeps getting it).

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

``process_query_encoded(ctx, query) -> Iterable[EncodedSeries | ChunkedSeries | TimeSeries]``
    Preferred over ``process_query_chunks`` when present, with the same
    rules, for a store that keeps its chunks' records in wire form between
    reads: a :class:`~promwire.chunks.streamed.EncodedSeries` is framed by
    joining its pieces (``EncodedSeries.of(labels, chunks)`` makes one from
    chunks). The SQLite store has it.

``checks_read_deadline: bool`` (an attribute, default ``False``)
    ``True`` says the storage's streamed reads look at ``ctx.budget``'s clock
    (``check_time()``, or SQL stopped through ``expired()``) often: at least
    every few milliseconds of work, and never wait on a lock a write may
    hold for long. The ASGI app then tries such a read on its event loop
    first, for ``inline_read_seconds``, and starts it over in a worker
    thread when the clock stops it (see ``AppBase``). The SQLite store on a
    file sets it (``:memory:`` shares its writer's lock, so it does not).

``process_query_columns(ctx, query: Query) -> Sequence[SeriesColumns]``
    Used for SAMPLES remote read instead of ``read`` when present (the
    queries are asked one after another, in order): the series matching
    ``query``, **sorted by label set**, each a
    :class:`~promwire.codec.columns.SeriesColumns` with its float samples in
    ``[start_timestamp_ms, end_timestamp_ms]`` as ``array('q')`` timestamps
    and ``array('d')`` values in time order (no per-sample objects), its
    histograms in range as objects, ``exemplars`` empty; series without data
    in range left out, as ``process_query`` does. The handlers write the
    answer from the arrays (:mod:`promwire.codec.read_columns`), bytes equal
    to encoding the object form. Spend ``ctx.budget`` as for
    ``process_query``. An async storage may make it ``async def``.

Read budget: the handlers give every read request a :class:`ReadBudget`
(``ctx.budget`` when the context is a :class:`RequestContext`; ``None``
otherwise) holding the request's limits: samples in a SAMPLES answer
(``max_read_samples``), series examined against the matchers
(``max_read_series``) and time (``max_read_seconds``). A storage that
produces rows should spend it *while* it produces them: ``take_samples(n)``
before building ``n`` more samples or histograms, ``examine(n)`` for series
whose labels it checks against the matchers, ``check_time()`` in any long
loop. Each raises :class:`~promwire.errors.LimitExceeded` (400 for the counts,
503 for time) the moment the budget is spent, so an over-limit read stops
having built at most a limit's worth. :class:`BaseStorage` and
:class:`AsyncBaseStorage` spend it between queries for storages that do not;
the handlers check the sample count of the finished answer in any case, so
a storage that ignores the budget stays correct, only less bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..codec.messages import Query, QueryResult, ReadRequest, ReadResponse, WriteRequest
from ..errors import LimitExceeded

__all__ = [
    "DEFAULT_ACCEPTED_PROTOCOLS",
    "AsyncBaseStorage",
    "AsyncRemoteStorage",
    "BaseStorage",
    "ReadBudget",
    "RemoteStorage",
    "RequestContext",
    "WriteOutcome",
    "result_samples",
]

#: What ``accepted_protocols`` defaults to: both messages (v2 through the conversion).
DEFAULT_ACCEPTED_PROTOCOLS: tuple[str, ...] = ("v1", "v2")


class ReadBudget:
    """What one read request may still spend (see the module docstring).

    ``max_samples``: samples + histograms the answer may hold; ``max_series``:
    series whose labels the storage may check against the matchers (summed
    over the request's queries: the work of a scan, matching or not);
    ``seconds``: how long the storage may work before the answer (a streamed
    answer restarts the clock with every frame it sends, so the limit is the
    longest silence, not the length of a stream). ``None`` means no limit.
    Counters only grow; one budget serves one request (queries of an async
    storage may spend it concurrently on one event loop).
    """

    __slots__ = ("_deadline", "max_samples", "max_series", "samples", "seconds", "series")

    def __init__(
        self,
        *,
        max_samples: int | None = None,
        max_series: int | None = None,
        seconds: float | None = None,
    ) -> None:
        self.max_samples = max_samples
        self.max_series = max_series
        self.seconds = seconds
        #: samples + histograms taken so far
        self.samples = 0
        #: series examined so far
        self.series = 0
        self._deadline: float | None = None
        self.restart_clock()

    def restart_clock(self) -> None:
        """Give the storage ``seconds`` from now (called as a stream makes progress)."""
        if self.seconds is not None:
            self._deadline = time.monotonic() + self.seconds

    def take_samples(self, n: int) -> None:
        """Count ``n`` more samples or histograms; raise once over ``max_samples``."""
        self.samples += n
        self._check_samples()

    def at_least_samples(self, total: int) -> None:
        """Note that ``total`` samples have been produced in all (never counts twice)."""
        if total > self.samples:
            self.samples = total
            self._check_samples()

    def examine(self, n: int = 1) -> None:
        """Count ``n`` more series checked against matchers; raise once over
        ``max_series``; check the clock too."""
        self.series += n
        if self.max_series is not None and self.series > self.max_series:
            raise LimitExceeded(
                f"read examined more than {self.max_series} series, "
                "over the limit (max_read_series); use narrower matchers",
                status=400,
            )
        self.check_time()

    def expired(self) -> bool:
        """Whether the time is up (cheap: for SQLite's progress handler)."""
        return self._deadline is not None and time.monotonic() > self._deadline

    def check_time(self) -> None:
        """Raise (503) once the storage has worked ``seconds`` without an answer."""
        if self.expired():
            raise self.timeout_error()

    def timeout_error(self) -> LimitExceeded:
        """The error for a read out of time: 503, as Prometheus answers a query timeout."""
        return LimitExceeded(
            f"read took longer than {self.seconds:g} s, over the limit (max_read_seconds)",
            status=503,
        )

    def _check_samples(self) -> None:
        if self.max_samples is not None and self.samples > self.max_samples:
            raise LimitExceeded(
                f"exceeded sample limit: the answer holds at least {self.samples} samples, "
                f"over the limit of {self.max_samples} (max_read_samples)",
                status=400,
            )


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a storage may want to know about the HTTP request.

    ``headers`` has lower-case names. ``raw`` is the framework's own request
    object (ASGI scope, WSGI environ, ...) when an adapter created the context.
    ``budget`` is the :class:`ReadBudget` of a read request (set by the read
    handlers; ``None`` for writes). ``tenant`` is the tenant the request was
    authenticated for (``serve --tenant-header``); ``None`` means the single
    default tenant. A storage that serves several tenants must keep them
    apart: a read sees only its own tenant's series.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = ""
    client: str | None = None
    raw: Any = None
    budget: ReadBudget | None = None
    tenant: str | None = None


def result_samples(result: QueryResult) -> int:
    """Samples + histograms in a query result: what ``max_read_samples`` counts."""
    return sum(len(ts.samples) + len(ts.histograms) for ts in result.timeseries)


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

    ``read`` answers the queries one after another through ``process_query``,
    spending ``ctx.budget`` (if any) after each, so a storage that ignores
    the budget still stops between queries. ``write`` and ``process_query``
    raise :class:`NotImplementedError` (a 500) until overridden, so a
    read-only storage only overrides ``process_query``.
    """

    accepted_protocols: tuple[str, ...] = DEFAULT_ACCEPTED_PROTOCOLS

    def write(self, ctx: Any, request: WriteRequest) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not accept writes")

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} does not answer queries")

    def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        results: list[QueryResult] = []
        total = 0
        for query in request.queries:
            if budget is not None:
                budget.check_time()
            result = self.process_query(ctx, query)
            results.append(result)
            if budget is not None:
                total += result_samples(result)
                budget.at_least_samples(total)
        return ReadResponse(results=results)


class AsyncBaseStorage:
    """Base class for ``async`` storages; ``read`` runs the queries concurrently.

    Results are kept in query order whatever order they finish in, which is
    what keeps ``results[i]`` the answer to ``queries[i]``. ``ctx.budget``
    (if any) is spent as each query finishes; once it is spent (or a query
    fails) the queries still running are cancelled.
    """

    accepted_protocols: tuple[str, ...] = DEFAULT_ACCEPTED_PROTOCOLS

    async def write(self, ctx: Any, request: WriteRequest) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not accept writes")

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} does not answer queries")

    async def read(self, ctx: Any, request: ReadRequest) -> ReadResponse:
        budget: ReadBudget | None = getattr(ctx, "budget", None)
        total = 0

        async def one(query: Query) -> QueryResult:
            nonlocal total
            result = await self.process_query(ctx, query)
            if budget is not None:
                total += result_samples(result)
                budget.at_least_samples(total)
                budget.check_time()
            return result

        tasks = [asyncio.ensure_future(one(q)) for q in request.queries]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()  # no-op for the finished ones
        return ReadResponse(results=list(results))
