"""The operator's options of ``promwire serve`` and what they assemble.

:class:`OperatorOptions` holds the flags for authentication and TLS
(``--web-config``, ``--bearer-token-file``), tenants (``--tenant-header`` and
the per-tenant limits), HA pairs (``--ha-*``) and logs (``--log-level``,
``--access-log``); :meth:`OperatorOptions.assemble` turns them into the
storage the app calls (tenancy, HA, limits and metrics around the store, see
:mod:`promwire.server.operated` and :mod:`promwire.stores.tenancy`)
and the :class:`~promwire.server.operations.Operations` of the app.
"""

from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from ..stores.tenancy import tenant_storage
from .auth import Authenticator, read_token_file
from .ha import DEFAULT_FAILOVER_TIMEOUT, HATracker
from .logs import LEVELS
from .metrics import Metrics
from .operated import operated_storage
from .operations import Operations
from .tenant_limits import DEFAULT_SERIES_IDLE_TIMEOUT, TenantLimits
from .webconfig import WebConfig, WebConfigError, load_web_config

__all__ = ["OperatorOptions", "add_operator_options", "operator_options"]


@dataclass(frozen=True)
class OperatorOptions:
    """The operator-facing keywords of :func:`promwire.server.runner.serve` (0 = no limit)."""

    web_config: str | None = None
    bearer_token_file: str | None = None
    tenant_header: str | None = None
    tenant_ingestion_rate: float = 0
    tenant_ingestion_burst: float = 0
    tenant_max_series: int = 0
    tenant_series_idle_timeout: float = DEFAULT_SERIES_IDLE_TIMEOUT
    ha_cluster_label: str | None = None
    ha_replica_label: str | None = None
    ha_failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT
    log_level: str = "info"
    access_log: bool = False
    _web: WebConfig = field(default_factory=WebConfig, repr=False)
    _tokens: tuple[str, ...] = field(default=(), repr=False)

    def load(self) -> OperatorOptions:
        """These options with the web configuration and token files read and checked
        (``ValueError`` saying what is wrong)."""
        if self.log_level not in LEVELS:
            raise ValueError(f"--log-level must be one of {', '.join(LEVELS)}")
        if bool(self.ha_cluster_label) != bool(self.ha_replica_label):
            raise ValueError("--ha-cluster-label and --ha-replica-label go together")
        if self.ha_failover_timeout <= 0:
            raise ValueError("--ha-failover-timeout must be > 0")
        if min(self.tenant_ingestion_rate, self.tenant_ingestion_burst) < 0:
            raise ValueError("tenant limits must be >= 0")
        if self.tenant_max_series < 0 or self.tenant_series_idle_timeout <= 0:
            raise ValueError("--tenant-max-series must be >= 0, its idle timeout > 0")
        limited = self.tenant_ingestion_rate or self.tenant_max_series
        if limited and not self.tenant_header:
            raise ValueError("per-tenant limits need --tenant-header")
        web = WebConfig()
        if self.web_config:
            try:
                web = load_web_config(self.web_config)
            except WebConfigError as exc:
                raise ValueError(f"--web-config: {exc}") from None
        tokens: tuple[str, ...] = ()
        if self.bearer_token_file:
            try:
                tokens = read_token_file(self.bearer_token_file)
            except OSError as exc:
                raise ValueError(f"--bearer-token-file: {exc.strerror or exc}") from None
        return OperatorOptions(
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if not k.startswith("_")},
            _web=web,
            _tokens=tokens,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from the web configuration, ``None`` for plain HTTP."""
        return None if self._web.tls is None else self._web.tls.context()

    def assemble(
        self, storage: Any, *, worker: int = 0, workers: int = 1, state_dir: str | None = None
    ) -> tuple[Any, Operations]:
        """The storage for the app and its :class:`Operations` (call after :meth:`load`)."""
        metrics = Metrics(state_dir=state_dir, worker=worker)
        if self.tenant_header:
            storage = tenant_storage(storage)
        ha = None
        if self.ha_cluster_label and self.ha_replica_label:
            ha = HATracker(
                self.ha_cluster_label,
                self.ha_replica_label,
                self.ha_failover_timeout,
                state_path=None if state_dir is None else os.path.join(state_dir, "ha.sqlite"),
            )
        limits = TenantLimits(
            ingestion_rate=self.tenant_ingestion_rate,
            ingestion_burst=self.tenant_ingestion_burst,
            max_series=self.tenant_max_series,
            series_idle_timeout=self.tenant_series_idle_timeout,
            share=workers,
        )
        wrapped = operated_storage(storage, metrics, ha=ha, limits=limits)
        ops = Operations(
            wrapped,
            auth=Authenticator(self._web.users, self._tokens),
            tenant_header=self.tenant_header,
            metrics=metrics,
            access_log=self.access_log,
            active_series=limits.active_series if limits.max_series else None,
            timings=wrapped.timings,
            ha=ha,
        )
        return wrapped, ops


def add_operator_options(parser: argparse.ArgumentParser) -> None:
    """The flags of :class:`OperatorOptions`."""
    add = parser.add_argument
    add(
        "--web-config",
        metavar="FILE",
        help="TLS and basic auth in Prometheus' web configuration file format "
        "(tls_server_config, basic_auth_users with bcrypt hashes)",
    )
    add(
        "--bearer-token-file",
        metavar="FILE",
        help="accept requests carrying 'Authorization: Bearer TOKEN' for a token of this "
        "file (one per line)",
    )
    add(
        "--tenant-header",
        metavar="NAME",
        help="multi-tenant: the header naming the tenant (e.g. X-Scope-OrgID); "
        "a request without it is refused (401). Default: one tenant",
    )
    add(
        "--tenant-ingestion-rate",
        type=float,
        default=0,
        metavar="SAMPLES_PER_S",
        help="per-tenant samples/s; over it 429 with Retry-After (default 0: no limit)",
    )
    add(
        "--tenant-ingestion-burst",
        type=float,
        default=0,
        metavar="SAMPLES",
        help="per-tenant burst of the rate limit (default: one second of the rate)",
    )
    add(
        "--tenant-max-series",
        type=int,
        default=0,
        metavar="N",
        help="per-tenant active series; new series over it are dropped, answered 400 "
        "(default 0: no limit)",
    )
    add(
        "--tenant-series-idle-timeout",
        type=float,
        default=DEFAULT_SERIES_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="a series without samples this long stops counting as active "
        f"(default {DEFAULT_SERIES_IDLE_TIMEOUT:g})",
    )
    add(
        "--ha-cluster-label",
        metavar="NAME",
        help="HA pairs: the external label naming the cluster (e.g. cluster)",
    )
    add(
        "--ha-replica-label",
        metavar="NAME",
        help="HA pairs: the external label naming the replica (e.g. __replica__); only the "
        "elected replica's samples are stored, without this label",
    )
    add(
        "--ha-failover-timeout",
        type=float,
        default=DEFAULT_FAILOVER_TIMEOUT,
        metavar="SECONDS",
        help="HA pairs: elect another replica after the elected one was silent this long "
        f"(default {DEFAULT_FAILOVER_TIMEOUT:g})",
    )
    add("--log-level", choices=LEVELS, default="info", help="log level (default info)")
    add("--access-log", action="store_true", help="log one line per request")


def operator_options(args: argparse.Namespace) -> OperatorOptions:
    """:class:`OperatorOptions` from parsed :func:`add_operator_options` flags."""
    return OperatorOptions(
        web_config=args.web_config,
        bearer_token_file=args.bearer_token_file,
        tenant_header=args.tenant_header,
        tenant_ingestion_rate=args.tenant_ingestion_rate,
        tenant_ingestion_burst=args.tenant_ingestion_burst,
        tenant_max_series=args.tenant_max_series,
        tenant_series_idle_timeout=args.tenant_series_idle_timeout,
        ha_cluster_label=args.ha_cluster_label,
        ha_replica_label=args.ha_replica_label,
        ha_failover_timeout=args.ha_failover_timeout,
        log_level=args.log_level,
        access_log=args.access_log,
    )
