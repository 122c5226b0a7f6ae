"""ClickHouse's HTTP interface through the standard library (no driver needed).

:class:`ClickHouseHTTP` posts SQL to one of a list of servers, keeps one
kept-alive connection per server and thread, moves on to the next server
when one cannot be reached, and turns every failure into promwire's error
family so the handlers answer with a status the sender acts on:

* server unreachable, a shard unreachable behind a ``Distributed`` table,
  ZooKeeper trouble, a read-only replica, a timeout: :class:`StorageError`
  with status 503 (the sender retries);
* too many parts or queries at once: 503 too, not 429: Prometheus 2.x drops
  a batch answered 429 unless ``retry_on_http_429`` is set, and it retries a 5xx;
* anything else ClickHouse refuses: :class:`StorageError` (500, retried).

Errors from ClickHouse arrive as ``Code: N, e.displayText() = ...`` (18.16)
or ``Code: N. DB::Exception: ...`` (current releases); the code is read from
either form, and the message is cut short (it can quote the query).
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import urllib.parse
from base64 import b64encode
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..errors import StorageError

__all__ = ["UNAVAILABLE_CODES", "ClickHouseHTTP", "SQLClient"]

#: ClickHouse error codes meaning "a part of the cluster is not there right now": 503.
UNAVAILABLE_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        225,  # NO_ZOOKEEPER
        242,  # TABLE_IS_READ_ONLY (a replica that lost ZooKeeper)
        279,  # ALL_CONNECTION_TRIES_FAILED (a whole shard down)
        285,  # TOO_FEW_LIVE_REPLICAS (insert_quorum)
        286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
        319,  # UNKNOWN_STATUS_OF_INSERT
        999,  # KEEPER_EXCEPTION
    }
)
#: Error codes meaning "slow down" (also 503, see the module docstring).
OVERLOADED_CODES = frozenset({202, 252})  # TOO_MANY_SIMULTANEOUS_QUERIES, TOO_MANY_PARTS

_CODE = re.compile(rb"Code: (\d+)")
_MAX_MESSAGE = 300


class SQLClient(Protocol):
    """What the ClickHouse store needs of a client (:class:`ClickHouseHTTP` is one)."""

    def query(
        self,
        sql: str,
        data: bytes | None = None,
        settings: Mapping[str, str | int | float] | None = None,
    ) -> bytes: ...

    def close(self) -> None: ...


class ClickHouseHTTP:
    """SQL over HTTP to ``hosts`` (``(host, port)`` pairs, tried in order).

    ``user``/``password`` are sent as HTTP basic authentication; ``timeout``
    (seconds) bounds connecting and each wait for data.
    """

    def __init__(
        self,
        hosts: Sequence[tuple[str, int]],
        *,
        user: str = "default",
        password: str = "",
        timeout: float = 30.0,
    ) -> None:
        if not hosts:
            raise ValueError("at least one ClickHouse host is needed")
        self.hosts = list(hosts)
        self.timeout = timeout
        token = b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._local = threading.local()
        self._pid = os.getpid()
        self._preferred = 0  # index of the host that answered last

    def _connection(self, i: int) -> http.client.HTTPConnection:
        if self._pid != os.getpid():
            # A forked worker (serve --workers) must not share its parent's sockets.
            self._local = threading.local()
            self._pid = os.getpid()
        conns: dict[int, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(i)
        if conn is None:
            host, port = self.hosts[i]
            conn = conns[i] = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn

    def _drop(self, i: int) -> None:
        conns: dict[int, http.client.HTTPConnection] = getattr(self._local, "conns", {})
        conn = conns.pop(i, None)
        if conn is not None:
            conn.close()

    def query(
        self,
        sql: str,
        data: bytes | None = None,
        settings: Mapping[str, str | int | float] | None = None,
    ) -> bytes:
        """Run ``sql`` and return the body of the answer.

        With ``data``, ``sql`` goes into the URL and ``data`` (the rows of an
        ``INSERT ... FORMAT``) is the body; otherwise ``sql`` is the body.
        ``settings`` become URL parameters (ClickHouse settings).
        """
        params: dict[str, str | int | float] = {**(settings or {})}
        if data is not None:
            params["query"] = sql
            body = data
        else:
            body = sql.encode()
        path = "/?" + urllib.parse.urlencode(params) if params else "/"
        failures: list[str] = []
        n = len(self.hosts)
        for k in range(n):
            i = (self._preferred + k) % n
            # A kept-alive connection the server has closed fails at once; a
            # fresh one is tried before the next host (inserts are deduplicated).
            for attempt in (0, 1):
                conn = self._connection(i)
                try:
                    conn.request("POST", path, body, self._headers)
                    resp = conn.getresponse()
                    answer = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(i)
                    if attempt == 0 and isinstance(
                        exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                    ):
                        continue
                    host, port = self.hosts[i]
                    failures.append(f"{host}:{port}: {type(exc).__name__}: {exc}"[:_MAX_MESSAGE])
                    break
                self._preferred = i
                if resp.status != 200:
                    raise _error(resp.status, resp.getheader("X-ClickHouse-Exception-Code"), answer)
                return answer
        raise StorageError("clickhouse unreachable: " + "; ".join(failures), status=503)

    def close(self) -> None:
        """Close this thread's connections (others close when their threads end)."""
        for i in list(getattr(self._local, "conns", {})):
            self._drop(i)


def _error(status: int, header: str | None, body: bytes) -> StorageError:
    """The promwire error for a ClickHouse error answer."""
    code: int | None = None
    if header and header.isdigit():
        code = int(header)
    else:
        found = _CODE.search(body[:200])
        if found:
            code = int(found.group(1))
    text = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
    message = f"clickhouse error {code if code is not None else status}: {text}"
    if code in UNAVAILABLE_CODES or code in OVERLOADED_CODES or status == 503:
        return StorageError(message, status=503)
    return StorageError(message)
