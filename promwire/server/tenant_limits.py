"""Per-tenant ingestion limits: samples per second and active series.

* **Ingestion rate** (``ingestion_rate`` samples/s, bursts up to
  ``ingestion_burst``, default one second's worth): a token bucket per
  tenant, charged with a request's samples + histograms + exemplars. A
  request that does not fit is refused whole (nothing stored) and answered
  **429** with ``Retry-After`` (the seconds until it would fit), as Mimir's
  distributor answers a rate-limited push: the sender backs off and retries.
  A request larger than the burst can never fit; it is answered 429 with the
  time to fill the bucket, so raise the burst above your largest batch
  (Prometheus sends at most ``max_samples_per_send``, 500 in 2.42).
* **Active series** (``max_series``): series of the tenant written within the
  last ``series_idle_timeout`` seconds (default 10 minutes, Mimir's active
  series idle timeout). Samples of series already active are stored; a new
  series past the limit is dropped, and the request is answered **400** once
  the rest is stored. That is Mimir's answer (``err-mimir-max-series-per-user``,
  "per-user series limit exceeded", a 400 from the ingester): retrying the same
  series would only fail again until old series go idle, and a 429 would make
  Prometheus retry the batch forever and stall the whole shard.

With ``share`` > 1 (``serve --workers N``) each worker process enforces
``1/share`` of the limits, as Mimir's distributors split a tenant's global
ingestion rate between them: the connections of a sender are spread over the
workers by the kernel, so the sum is the configured limit for a steady
sender. A series written through several workers counts once in each.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_SERIES_IDLE_TIMEOUT", "TenantLimits"]

#: Seconds without a sample after which a series no longer counts as active.
DEFAULT_SERIES_IDLE_TIMEOUT = 600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TenantLimits:
    """The limits of every tenant (0 = no limit); see the module docstring."""

    def __init__(
        self,
        *,
        ingestion_rate: float = 0,
        ingestion_burst: float = 0,
        max_series: int = 0,
        series_idle_timeout: float = DEFAULT_SERIES_IDLE_TIMEOUT,
        share: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(ingestion_rate, ingestion_burst, max_series) < 0 or share < 1:
            raise ValueError("limits must be >= 0 and share >= 1")
        self.rate = ingestion_rate / share
        self.burst = (ingestion_burst or ingestion_rate) / share
        self.max_series = math.ceil(max_series / share) if max_series else 0
        self.idle = series_idle_timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._series: dict[str, dict[Hashable, float]] = {}
        self._purged: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.rate or self.max_series)

    def take(self, tenant: str, n: int) -> float | None:
        """Charge ``n`` points to ``tenant``: ``None`` if allowed, else seconds to wait."""
        if not self.rate or n <= 0:
            return None
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(tenant)
            if bucket is None:
                bucket = self._buckets[tenant] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if n <= bucket.tokens:
                bucket.tokens -= n
                return None
            return max(1.0, (min(n, self.burst) - bucket.tokens) / self.rate)

    def admit_series(self, tenant: str, keys: Sequence[Hashable]) -> list[bool]:
        """For each series key, whether it may be written (already active, or new and
        within ``max_series``); admitted series are marked active now."""
        if not self.max_series:
            return [True] * len(keys)
        now = self.clock()
        with self._lock:
            active = self._series.setdefault(tenant, {})
            out = []
            for key in keys:
                if key in active:
                    active[key] = now
                    out.append(True)
                    continue
                if len(active) >= self.max_series:
                    self._purge(tenant, active, now)
                if len(active) < self.max_series:
                    active[key] = now
                    out.append(True)
                else:
                    out.append(False)
            return out

    def _purge(self, tenant: str, active: dict[Hashable, float], now: float) -> None:
        # At the limit: forget idle series, at most once a second per tenant (a full scan).
        if now - self._purged.get(tenant, -math.inf) < 1.0:
            return
        self._purged[tenant] = now
        for key in [k for k, seen in active.items() if now - seen > self.idle]:
            del active[key]

    def active_series(self) -> dict[str, int]:
        """Active series per tenant (as last counted; idle ones leave at the next purge)."""
        with self._lock:
            return {tenant: len(active) for tenant, active in self._series.items()}
