"""What an operated receiver adds around the remote read/write endpoints.

:class:`Operations` is given to the ASGI or WSGI app (``operations=``) and
holds: the :class:`~promwire.server.auth.Authenticator` (401 with
``WWW-Authenticate`` before the body is read, so nothing is decoded), the
tenant header (``--tenant-header``: a request without it is 401, its value
travels as ``RequestContext.tenant``), the :class:`~promwire.server.metrics.Metrics`
served on ``/metrics``, ``/-/healthy`` and ``/-/ready``
(:mod:`promwire.server.health`) and the log lines of refused requests
(:mod:`promwire.server.logs`). Authentication covers every path, as
Prometheus' web configuration does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .auth import Authenticator
from .ha import HATracker
from .handlers import Response, text_response
from .health import HEALTHY_PATH, READY_PATH, health_response
from .metrics import Metrics, MetricSpec

__all__ = ["METRICS_PATH", "Operations"]

METRICS_PATH = "/metrics"
#: Longest tenant name accepted (longer: 400).
MAX_TENANT_LENGTH = 150

http_log = logging.getLogger("promwire.http")
access_log = logging.getLogger("promwire.access")

_EXPOSITION = ("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
_ACTIVE_SERIES = MetricSpec(
    "promwire_tenant_active_series",
    "Active series per tenant as counted by the series limit (this process).",
    "gauge",
    ("tenant",),
)
_ELECTED = MetricSpec(
    "promwire_ha_elected_replica",
    "1 for the replica of each (tenant, cluster) currently elected (as this process last saw).",
    "gauge",
    ("tenant", "cluster", "replica"),
)


class Operations:
    """Auth, tenants, metrics, health and logs of a receiver (see the module docstring).

    ``storage`` answers ``/-/ready``; ``gauges`` is called at scrape time for
    extra gauge families (``{label values: value}`` per :class:`MetricSpec`).
    """

    def __init__(
        self,
        storage: Any,
        *,
        auth: Authenticator | None = None,
        tenant_header: str | None = None,
        metrics: Metrics | None = None,
        access_log: bool = False,
        active_series: Callable[[], Mapping[str, int]] | None = None,
        timings: dict[int, float] | None = None,
        ha: HATracker | None = None,
    ) -> None:
        self.ha = ha
        self.storage = storage
        self.auth = auth if auth is not None and auth.enabled else None
        self.tenant_header = tenant_header.lower() if tenant_header else None
        self.metrics = metrics if metrics is not None else Metrics()
        self.access_log = access_log
        self.active_series = active_series
        self.timings = timings if timings is not None else {}

    # ------------------------------------------------------------ before the body

    def is_own(self, path: str) -> bool:
        """Whether ``path`` is one of the paths answered here (metrics, health)."""
        return path in (METRICS_PATH, HEALTHY_PATH, READY_PATH)

    def needs_auth_thread(self, headers: Mapping[str, str]) -> bool:
        """Whether checking this request's credentials may take a bcrypt run (then run
        it off the event loop); credentials that passed before never do."""
        auth = self.auth
        if auth is None or not auth.users:
            return False
        return not auth.remembered(headers.get("authorization"))

    def unauthorized(self, headers: Mapping[str, str]) -> tuple[Response, str] | None:
        """The 401 (and the reason, for the log) for a request without valid
        credentials or tenant, else ``None``. ``headers`` has lower-case names."""
        if self.auth is not None:
            problem = self.auth.check(headers.get("authorization"))
            if problem is not None:
                challenge = ("WWW-Authenticate", self.auth.challenge())
                return text_response(401, "Unauthorized", [challenge]), problem
        return None

    def tenant(self, path: str, headers: Mapping[str, str]) -> str | Response | None:
        """The tenant of a request (``None`` when tenants are off or for own paths),
        or the 401/400 refusing it."""
        if self.tenant_header is None or self.is_own(path):
            return None
        value = headers.get(self.tenant_header, "").strip()
        if not value:
            return text_response(401, f"no tenant: the {self.tenant_header} header is required")
        if len(value) > MAX_TENANT_LENGTH or not value.isprintable():
            return text_response(400, "invalid tenant name")
        return value

    def own(self, path: str, method: str) -> Response:
        """The answer for ``/metrics``, ``/-/healthy`` or ``/-/ready``."""
        if method not in ("GET", "HEAD"):
            return text_response(405, f"method {method} not allowed", [("Allow", "GET, HEAD")])
        if path == METRICS_PATH:
            return Response(200, [_EXPOSITION], self.render_metrics().encode())
        answer = health_response(path, self.storage)
        assert answer is not None
        return answer

    def render_metrics(self) -> str:
        extra: list[tuple[MetricSpec, Mapping[tuple[str, ...], float]]] = []
        if self.active_series is not None:
            counts = self.active_series()
            extra.append((_ACTIVE_SERIES, {(t,): float(n) for t, n in counts.items()}))
        if self.ha is not None:
            extra.append((_ELECTED, self.ha.elected_replicas()))
        return self.metrics.render(extra)

    # ------------------------------------------------------------- after the answer

    def finish(
        self,
        endpoint: str,
        path: str,
        method: str,
        note: Any,
        client: str | None,
        started: float,
        response: Response,
    ) -> None:
        """Count and log one answered request (``note`` is the app's ``RequestNote``)."""
        status = response.status
        tenant, ctx_id, body_bytes, reason = note.tenant, note.ctx_id, note.body_bytes, note.reason
        metrics = self.metrics
        metrics.inc("promwire_http_requests_total", (endpoint, str(status)))
        if body_bytes:
            metrics.inc("promwire_request_bytes_total", (endpoint,), body_bytes)
        spent = time.perf_counter() - started
        storage_seconds = self.timings.pop(ctx_id, 0.0) if ctx_id is not None else 0.0
        if endpoint == "write":
            metrics.observe("promwire_decode_duration_seconds", max(0.0, spent - storage_seconds))
        # what both log lines say of the request
        fields = {
            "endpoint": path[:100],
            "method": method[:10],
            "status": status,
            "tenant": tenant,
            "client": client,
        }
        if status >= 400:
            why = reason or _first_line(response.body)
            metrics.inc("promwire_requests_rejected_total", (endpoint, _reason_class(status, why)))
            http_log.log(
                logging.ERROR if status >= 500 else logging.WARNING,
                "request refused",
                extra={"fields": {**fields, "reason": why}},
            )
        if self.access_log:
            access_log.info(
                "request",
                extra={"fields": {**fields, "bytes": body_bytes, "seconds": f"{spent:.4f}"}},
            )


def _first_line(body: bytes | Iterable[bytes] | Any) -> str:
    if isinstance(body, bytes | bytearray):
        return bytes(body[:200]).decode("utf-8", "replace").split("\n", 1)[0]
    return ""


def _reason_class(status: int, why: str) -> str:
    """A bounded reason label for the rejected-requests counter."""
    if status == 401:
        return "unauthorized"
    if status == 429:
        return "rate_limited"
    if status == 413:
        return "too_large"
    if status == 415:
        return "unsupported_media_type"
    if status == 400:
        if "series limit" in why:
            return "series_limit"
        return "bad_request"
    if status == 404:
        return "not_found"
    if status == 405:
        return "method_not_allowed"
    if status == 403:
        return "forbidden"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "other"
