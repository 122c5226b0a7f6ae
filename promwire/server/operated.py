"""The storage as the operated receiver sees it: HA de-duplication, tenant
limits and self-metrics around any storage.

:func:`operated_storage` wraps a storage; on a write, in this order (Mimir's
distributor order):

1. the points decoded are counted (``promwire_*_received_total`` per tenant);
2. HA pairs (:class:`~promwire.server.ha.HATracker`): a request from a replica
   that is not elected is dropped (answered 2xx), an accepted one loses its
   replica label;
3. the tenant's ingestion rate (429 with ``Retry-After``, nothing stored) and
   active-series limit (new series over it dropped, the rest stored, then 400),
   see :mod:`promwire.server.tenant_limits`;
4. the storage call, timed (``promwire_storage_duration_seconds``).

Points not stored are counted in ``promwire_samples_rejected_total`` with the
reason. Both request shapes are handled: a decoded ``WriteRequest``
(``write``) and the columnar ``SeriesColumns`` list (``write_columns``, offered
only when the wrapped storage has it). Reads pass through, timed (and
``process_query_columns`` only when the wrapped storage has it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..chunks.streamed import EncodedSeries
from ..codec.columns import ColumnBatch, SeriesColumns
from ..codec.messages import ChunkedSeries, Label, Query, QueryResult, TimeSeries, WriteRequest
from ..errors import StorageOverloaded, StorageRejected
from ..stores.protocol import BaseStorage
from .ha import HATracker
from .metrics import Metrics
from .tenant_limits import TenantLimits

__all__ = ["OperatedStorage", "operated_storage"]

#: Most distinct tenant values the metrics carry; later tenants are counted as "_other".
MAX_TENANTS_IN_METRICS = 1000

T = TypeVar("T")
#: A series in either write shape.
S = TypeVar("S", TimeSeries, SeriesColumns)


class OperatedStorage(BaseStorage):
    """See the module docstring. ``timings`` maps ``id(ctx)`` to the seconds the
    storage took for that request (the app pops it to tell decode time apart)."""

    #: Set on an instance over a storage that has it (the handlers look it up
    #: with ``getattr``: absent, a SAMPLES read goes through ``read``).
    process_query_columns: Callable[[Any, Query], Sequence[SeriesColumns]]
    #: Likewise (absent, a streamed read goes through ``process_query_chunks``).
    process_query_encoded: Callable[[Any, Query], Iterator[EncodedSeries]]

    def __init__(
        self,
        inner: Any,
        metrics: Metrics,
        *,
        ha: HATracker | None = None,
        limits: TenantLimits | None = None,
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.ha = ha
        self.limits = limits if limits is not None and limits.enabled else None
        self.accepted_protocols = tuple(getattr(inner, "accepted_protocols", ("v1", "v2")))
        self.timings: dict[int, float] = {}
        self._tenants: set[str] = set()
        if getattr(inner, "process_query_columns", None) is not None:
            self.process_query_columns = self._query_columns
        if getattr(inner, "process_query_encoded", None) is not None:
            self.process_query_encoded = inner.process_query_encoded
        self.checks_read_deadline = bool(getattr(inner, "checks_read_deadline", False))

    # ------------------------------------------------------------------ helpers

    def _tenant_label(self, tenant: str) -> str:
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) >= MAX_TENANTS_IN_METRICS:
            return "_other"
        self._tenants.add(tenant)
        return tenant

    def _reject(self, tenant: str, reason: str, n: int) -> None:
        self.metrics.inc("promwire_samples_rejected_total", (self._tenant_label(tenant), reason), n)

    def _timed(self, ctx: Any, operation: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        finally:
            spent = time.perf_counter() - start
            self.metrics.observe("promwire_storage_duration_seconds", spent, (operation,))
            self.timings[id(ctx)] = self.timings.get(id(ctx), 0.0) + spent

    def _ha_verdict(self, tenant: str, labels: Sequence[Label]) -> bool | None:
        """``None``: not an HA request; ``True``: from the elected replica; ``False``: drop."""
        ha = self.ha
        if ha is None:
            return None
        cluster = replica = None
        for label in labels:
            if label.name == ha.cluster_label:
                cluster = label.value
            elif label.name == ha.replica_label:
                replica = label.value
        if cluster is None or replica is None:
            return None
        accepted, elected = ha.accept(tenant, cluster, replica)
        if elected:
            self.metrics.inc("promwire_ha_elections_total", (self._tenant_label(tenant), cluster))
        return accepted

    def _strip_replica(self, labels: Sequence[Label]) -> list[Label]:
        assert self.ha is not None
        name = self.ha.replica_label
        return [label for label in labels if label.name != name]

    def _admit(
        self, ctx: Any, tenant: str, labels: list[Sequence[Label]], points: int
    ) -> list[bool] | None:
        """The rate limit (raises 429) and the series limit (which series to keep)."""
        limits = self.limits
        if limits is None:
            return None
        wait = limits.take(tenant, points)
        if wait is not None:
            self._reject(tenant, "rate_limited", points)
            raise StorageOverloaded(
                f"tenant ingestion rate limit ({limits.rate:g} samples/s) exceeded",
                retry_after=wait,
            )
        keys = [tuple((label.name, label.value) for label in ls) for ls in labels]
        return limits.admit_series(tenant, keys)

    def _store(self, ctx: Any, tenant: str, points: int, call: Callable[[], Any]) -> None:
        try:
            self._timed(ctx, "write", call)
        except Exception:
            self._reject(tenant, "storage_error", points)
            raise

    def _count(self, tenant: str, samples: int, histograms: int, exemplars: int) -> None:
        label = (self._tenant_label(tenant),)
        self.metrics.inc("promwire_samples_received_total", label, samples)
        self.metrics.inc("promwire_histograms_received_total", label, histograms)
        self.metrics.inc("promwire_exemplars_received_total", label, exemplars)

    def _series_limited(self, tenant: str, dropped: int, series: int) -> StorageRejected:
        self._reject(tenant, "series_limit", dropped)
        assert self.limits is not None
        return StorageRejected(
            f"per-tenant series limit of {self.limits.max_series} exceeded: "
            f"{series} new series dropped, the rest stored"
        )

    # ------------------------------------------------------------------- writes

    def _operate(
        self,
        ctx: Any,
        series: Sequence[S],
        sizes: Callable[[S], tuple[int, int, int]],
        relabel: Callable[[S, list[Label]], S],
        store: Callable[[list[S]], Any],
        *,
        store_empty: bool = False,
    ) -> None:
        """The write path of either shape: count, HA verdict (replica label
        stripped), tenant limits, then ``store`` what is kept (also when
        nothing is, with ``store_empty``: metadata still goes through)."""
        tenant = getattr(ctx, "tenant", None) or ""
        counts = [0, 0, 0]
        for s in series:
            n_samples, n_histograms, n_exemplars = sizes(s)
            counts[0] += n_samples
            counts[1] += n_histograms
            counts[2] += n_exemplars
        points = sum(counts)
        self._count(tenant, *counts)
        verdict = self._ha_verdict(tenant, series[0].labels) if series else None
        if verdict is False:
            self._reject(tenant, "ha_deduplicated", points)
            return
        kept = list(series)
        if verdict:
            kept = [relabel(s, self._strip_replica(s.labels)) for s in kept]
        keep = self._admit(ctx, tenant, [s.labels for s in kept], points)
        dropped = lost = 0
        if keep is not None and not all(keep):
            admitted = [s for s, ok in zip(kept, keep, strict=True) if ok]
            dropped = points - sum(sum(sizes(s)) for s in admitted)
            lost = len(kept) - len(admitted)
            kept = admitted
        if kept or store_empty:
            self._store(ctx, tenant, points - dropped, lambda: store(kept))
        if lost:
            raise self._series_limited(tenant, dropped, lost)

    def write(self, ctx: Any, request: WriteRequest) -> None:
        self._operate(
            ctx,
            request.timeseries,
            lambda ts: (len(ts.samples), len(ts.histograms), len(ts.exemplars)),
            lambda ts, labels: TimeSeries(labels, ts.samples, ts.exemplars, ts.histograms),
            lambda kept: self.inner.write(ctx, WriteRequest(kept, request.metadata)),
            store_empty=bool(request.metadata),
        )

    # -------------------------------------------------------------------- reads

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        result: QueryResult = self._timed(ctx, "read", lambda: self.inner.process_query(ctx, query))
        return result

    def _query_columns(self, ctx: Any, query: Query) -> Sequence[SeriesColumns]:
        result: Sequence[SeriesColumns] = self._timed(
            ctx, "read", lambda: self.inner.process_query_columns(ctx, query)
        )
        return result

    def process_query_chunks(self, ctx: Any, query: Query) -> Iterator[ChunkedSeries | TimeSeries]:
        chunks = getattr(self.inner, "process_query_chunks", None)
        if chunks is None:
            yield from sorted(
                self.process_query(ctx, query).timeseries,
                key=lambda ts: [(label.name, label.value) for label in ts.labels],
            )
            return
        yield from chunks(ctx, query)

    def check_writable(self) -> str | None:
        check = getattr(self.inner, "check_writable", None)
        return None if check is None else check()

    def close(self) -> None:
        if self.ha is not None:
            self.ha.close()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class _ColumnOperatedStorage(OperatedStorage):
    """:class:`OperatedStorage` over a storage with ``write_columns``."""

    def write_columns(self, ctx: Any, series: Sequence[SeriesColumns]) -> None:
        if type(series) is ColumnBatch and self.ha is None and self.limits is None:
            # Nothing to strip or admit: count and hand the batch over as it is
            # (iterating it would make the objects per series it saves).
            tenant = getattr(ctx, "tenant", None) or ""
            points = len(series.timestamps)
            self._count(tenant, points, 0, 0)
            self._store(ctx, tenant, points, lambda: self.inner.write_columns(ctx, series))
            return
        self._operate(
            ctx,
            series,
            lambda s: (len(s.values), len(s.histograms), len(s.exemplars)),
            lambda s, labels: SeriesColumns(
                tuple(labels), s.timestamps, s.values, s.histograms, s.exemplars
            ),
            lambda kept: self.inner.write_columns(ctx, kept),
        )


def operated_storage(
    inner: Any,
    metrics: Metrics,
    *,
    ha: HATracker | None = None,
    limits: TenantLimits | None = None,
) -> OperatedStorage:
    """An :class:`OperatedStorage` over ``inner`` (with ``write_columns`` when it has it)."""
    cls = _ColumnOperatedStorage if getattr(inner, "write_columns", None) else OperatedStorage
    return cls(inner, metrics, ha=ha, limits=limits)
