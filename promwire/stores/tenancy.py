"""Keep tenants apart over any storage: a reserved label on writes, a matcher on reads.

:func:`tenant_storage` wraps a storage so that each tenant (``ctx.tenant``,
set by ``serve --tenant-header``) only ever sees its own series:

* a write gets the label ``__promwire_tenant__="<tenant>"`` on every series;
  a label of that name sent by the client is replaced, so a sender cannot
  write into another tenant;
* a read gets the matcher ``__promwire_tenant__="<tenant>"`` added to each
  query, and the label is removed from the series answered.

A storage that keeps tenants apart itself (its own column, database or
table per tenant) declares ``native_tenancy = True`` and is used as is. A
request reaching the wrapper without a tenant is refused (400): with tenants
on, the server answers 401 before that.

The wrapper takes ``write`` and, when the wrapped storage has it,
``write_columns`` (the columnar shape), and answers reads through
``process_query`` / ``process_query_chunks``. It has no ``write_v2``, so a
remote write 2.0 request is converted to 1.0 before it reaches the wrapper.
Metadata of a 1.0 request is not per tenant: it is passed through as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..chunks.streamed import EncodedSeries
from ..codec.columns import ColumnBatch, SeriesColumns
from ..codec.messages import (
    ChunkedSeries,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    QueryResult,
    TimeSeries,
    WriteRequest,
)
from ..errors import StorageRejected
from .protocol import BaseStorage

__all__ = ["TENANT_LABEL", "TenantStorage", "tenant_storage"]

#: The label a tenant's series carry in a storage shared by tenants.
TENANT_LABEL = "__promwire_tenant__"


def with_tenant(labels: Iterable[Label], tenant: str, name: str = TENANT_LABEL) -> list[Label]:
    """``labels`` without any label ``name``, plus ``name="tenant"``, in name order."""
    out = [label for label in labels if label.name != name]
    mark = Label(name, tenant)
    # Labels arrive sorted by name (Prometheus sends them so): insert in place.
    for i, label in enumerate(out):
        if label.name > name:
            out.insert(i, mark)
            return out
    out.append(mark)
    return out


def _without(labels: Iterable[Label], name: str) -> list[Label]:
    return [label for label in labels if label.name != name]


class TenantStorage(BaseStorage):
    """A storage seen through the tenant of each request (see the module docstring)."""

    #: Set on an instance over a storage that has it (the handlers look it up
    #: with ``getattr``: absent, a SAMPLES read goes through ``read``).
    process_query_columns: Callable[[Any, Query], Sequence[SeriesColumns]]
    #: Likewise (absent, a streamed read goes through ``process_query_chunks``).
    process_query_encoded: Callable[[Any, Query], Iterator[EncodedSeries]]

    def __init__(self, inner: Any, label: str = TENANT_LABEL) -> None:
        self.inner = inner
        self.label = label
        self.accepted_protocols = tuple(getattr(inner, "accepted_protocols", ("v1", "v2")))
        if getattr(inner, "process_query_columns", None) is not None:
            self.process_query_columns = self._query_columns
        if getattr(inner, "process_query_encoded", None) is not None:
            self.process_query_encoded = self._query_encoded
        self.checks_read_deadline = bool(getattr(inner, "checks_read_deadline", False))

    def _tenant(self, ctx: Any) -> str:
        tenant = getattr(ctx, "tenant", None)
        if not tenant:
            raise StorageRejected("no tenant: this storage is shared by tenants")
        return str(tenant)

    def write(self, ctx: Any, request: WriteRequest) -> None:
        tenant = self._tenant(ctx)
        series = [
            TimeSeries(
                labels=with_tenant(ts.labels, tenant, self.label),
                samples=ts.samples,
                exemplars=ts.exemplars,
                histograms=ts.histograms,
            )
            for ts in request.timeseries
        ]
        self.inner.write(ctx, WriteRequest(timeseries=series, metadata=request.metadata))

    def _query(self, ctx: Any, query: Query) -> Query:
        mark = LabelMatcher(MatchType.EQ, self.label, self._tenant(ctx))
        return Query(
            start_timestamp_ms=query.start_timestamp_ms,
            end_timestamp_ms=query.end_timestamp_ms,
            matchers=[*query.matchers, mark],
            hints=query.hints,
        )

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        result: QueryResult = self.inner.process_query(ctx, self._query(ctx, query))
        for ts in result.timeseries:
            ts.labels = _without(ts.labels, self.label)
        return result

    def _query_columns(self, ctx: Any, query: Query) -> list[SeriesColumns]:
        series: Sequence[SeriesColumns] = self.inner.process_query_columns(
            ctx, self._query(ctx, query)
        )
        # The same label is removed from every series: their order stays sorted.
        return [
            SeriesColumns(
                tuple(_without(s.labels, self.label)),
                s.timestamps,
                s.values,
                s.histograms,
                s.exemplars,
            )
            for s in series
        ]

    def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[ChunkedSeries | TimeSeries]:
        chunks = getattr(self.inner, "process_query_chunks", None)
        tenant_query = self._query(ctx, query)
        if chunks is None:
            series: Iterable[ChunkedSeries | TimeSeries] = sorted(
                self.inner.process_query(ctx, tenant_query).timeseries,
                key=lambda ts: [(label.name, label.value) for label in ts.labels],
            )
        else:
            series = chunks(ctx, tenant_query)
        # The same label is removed from every series: their order stays sorted.
        for one in series:
            one.labels = _without(one.labels, self.label)
            yield one

    def _query_encoded(self, ctx: Any, query: Query) -> Iterator[EncodedSeries]:
        # The same label is removed from every series: their order stays sorted.
        for one in self.inner.process_query_encoded(ctx, self._query(ctx, query)):
            yield EncodedSeries(tuple(_without(one.labels, self.label)), one.pieces, one.sizes)

    def check_writable(self) -> str | None:
        check = getattr(self.inner, "check_writable", None)
        return None if check is None else check()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class _ColumnTenantStorage(TenantStorage):
    """:class:`TenantStorage` over a storage with ``write_columns``."""

    def write_columns(self, ctx: Any, series: Sequence[SeriesColumns]) -> None:
        tenant = self._tenant(ctx)
        if type(series) is ColumnBatch:  # stays a batch: flat columns, no object per series
            labels = [tuple(with_tenant(ls, tenant, self.label)) for ls in series.labels]
            batch = ColumnBatch(labels, series.offsets, series.timestamps, series.values)
            self.inner.write_columns(ctx, batch)
            return
        self.inner.write_columns(
            ctx,
            [
                SeriesColumns(
                    labels=tuple(with_tenant(s.labels, tenant, self.label)),
                    timestamps=s.timestamps,
                    values=s.values,
                    histograms=s.histograms,
                    exemplars=s.exemplars,
                )
                for s in series
            ],
        )


def tenant_storage(inner: Any, label: str = TENANT_LABEL) -> Any:
    """``inner`` itself when it declares ``native_tenancy``, else a :class:`TenantStorage`
    (with ``write_columns`` when ``inner`` has it)."""
    if getattr(inner, "native_tenancy", False):
        return inner
    if getattr(inner, "write_columns", None) is not None:
        return _ColumnTenantStorage(inner, label)
    return TenantStorage(inner, label)
