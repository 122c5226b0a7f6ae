"""De-duplication of HA Prometheus pairs, with the semantics of Mimir's HA tracker.

Two Prometheus replicas scraping the same targets send the same series,
told apart by an external label (``__replica__``) and grouped by another
(``cluster``). :class:`HATracker` elects one replica per (tenant, cluster):

* a request is judged by the labels of its **first** series (as Mimir does);
  a request without the cluster or the replica label passes untouched;
* the first replica seen for a (tenant, cluster) is elected; its requests are
  accepted and the replica label is removed from every series before
  storing (the cluster label stays), so both replicas' data land on the same
  series;
* another replica's requests are dropped and answered 2xx, so the sender
  does not retry them;
* when the elected replica has sent nothing for ``failover_timeout`` seconds
  (default 30), the next replica to send is elected (a failover).

State: in memory for one process; with ``state_path`` (``serve --workers N``)
in a small SQLite file shared by the workers, so all of them follow the same
election. A worker re-reads the shared row at most every ``update_interval``
seconds while its own view says the sender is the elected replica (Mimir's
tracker likewise writes its KV store only every few seconds).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_FAILOVER_TIMEOUT", "HATracker"]

#: Silence of the elected replica after which another one takes over (Mimir's default).
DEFAULT_FAILOVER_TIMEOUT = 30.0


@dataclass(slots=True)
class _Elected:
    replica: str
    seen: float  # clock time of its last accepted request
    checked: float  # when this process last wrote/read the shared row


class HATracker:
    """Elects one replica per (tenant, cluster); see the module docstring."""

    def __init__(
        self,
        cluster_label: str,
        replica_label: str,
        failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
        *,
        state_path: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if failover_timeout <= 0:
            raise ValueError("failover_timeout must be > 0")
        self.cluster_label = cluster_label
        self.replica_label = replica_label
        self.failover_timeout = failover_timeout
        self.update_interval = min(1.0, failover_timeout / 4)
        self.clock = clock
        self._lock = threading.Lock()
        self._elected: dict[tuple[str, str], _Elected] = {}
        self._db: sqlite3.Connection | None = None
        if state_path is not None:
            self._db = sqlite3.connect(
                state_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # election state, not data: no fsync
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ha_elected (tenant TEXT, cluster TEXT, "
                "replica TEXT, seen REAL, PRIMARY KEY (tenant, cluster))"
            )

    def accept(self, tenant: str, cluster: str, replica: str) -> tuple[bool, bool]:
        """Whether a request from ``replica`` of ``cluster`` is stored, and whether it
        made an election (the first for this cluster, or a failover)."""
        now = self.clock()
        key = (tenant, cluster)
        with self._lock:
            mine = self._elected.get(key)
            if self._db is None or (
                mine is not None
                and mine.replica == replica
                and now - mine.checked < self.update_interval
            ):
                return self._decide(key, mine, replica, now)
            return self._decide_shared(key, replica, now)

    def _decide(
        self, key: tuple[str, str], mine: _Elected | None, replica: str, now: float
    ) -> tuple[bool, bool]:
        if mine is not None and mine.replica == replica:
            mine.seen = now
            return True, False
        if mine is None or now - mine.seen > self.failover_timeout:
            self._elected[key] = _Elected(replica, now, now)
            return True, True
        return False, False

    def _decide_shared(self, key: tuple[str, str], replica: str, now: float) -> tuple[bool, bool]:
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")  # one writer at a time across the workers
        try:
            row = db.execute(
                "SELECT replica, seen FROM ha_elected WHERE tenant = ? AND cluster = ?", key
            ).fetchone()
            current = None if row is None else _Elected(row[0], row[1], now)
            accepted, elected = self._decide(key, current, replica, now)
            if accepted:
                db.execute(
                    "INSERT OR REPLACE INTO ha_elected VALUES (?, ?, ?, ?)", (*key, replica, now)
                )
            elif current is not None:
                self._elected[key] = current
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return accepted, elected

    def elected(self, tenant: str, cluster: str) -> str | None:
        """The replica this process believes elected for (tenant, cluster)."""
        with self._lock:
            mine = self._elected.get((tenant, cluster))
            return None if mine is None else mine.replica

    def elected_replicas(self) -> dict[tuple[str, ...], float]:
        """``{(tenant, cluster, replica): 1}`` for the replicas this process last saw
        elected (the ``promwire_ha_elected_replica`` gauge)."""
        with self._lock:
            return {(t, c, e.replica): 1.0 for (t, c), e in self._elected.items()}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
