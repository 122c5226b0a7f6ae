"""Remote write clients: send ``WriteRequest`` bodies the way Prometheus does.

::

    from promwire.client.writer import RemoteWriteClient
    with RemoteWriteClient("http://127.0.0.1:9090/api/v1/write") as client:
        client.send(write_request)                     # one request, retried
        client.send_series(series_iterable)            # batched by samples and bytes

The sync client uses only the standard library (:mod:`http.client`), keeps one
keep-alive connection, and retries like Prometheus' queue manager:

* 5xx answers and network errors are retried with exponential backoff and
  bounded jitter: before retry *n* (1-based) it sleeps ``min(max_backoff,
  base * uniform(1, 1.25))`` with ``base = min_backoff * 2**(n-1)``, so every
  delay is at least ``min_backoff``, at most ``max_backoff``, and no shorter
  than the one before (the jitter never reaches the next doubling);
* a status outside 1xx-5xx (e.g. 999) is final, like any 4xx: Prometheus
  retries only ``status // 100 == 5`` (and 429 when asked);
* a remote write 2.0 send answered 415 is re-sent at once as remote write 1.0
  (converted with :func:`promwire.v2.convert.to_v1`), and the client keeps
  sending 1.0 from then on (``active_protocol`` says which one is in use);
* 429 is retried only when ``retry_on_429=True``; a ``Retry-After`` header
  (delta-seconds or an HTTP-date), on a 429 or a 5xx, replaces the backoff for
  that wait (capped at ``max_retry_after``);
* any other 4xx is final and never retried; 2xx ends the request (nothing is
  ever re-sent after a 2xx);
* retries carry ``Retry-Attempt: n``, Prometheus' extension header;
* a label with an empty value is dropped before sending (the spec: senders
  MUST NOT send one; it means "no such label").

Failures raise :class:`RemoteWriteError` (a :class:`~promwire.errors.PromwireError`).

:class:`AsyncRemoteWriteClient` has the same API with ``async`` methods. It is
built on aiohttp, imported only when the async client is created: aiohttp is
already one of promwire's test dependencies, handles keep-alive pooling,
chunked answers and TLS, and asyncio has no HTTP client of its own; writing
HTTP/1.1 by hand on asyncio streams would mean re-implementing response
framing that the sync client gets from :mod:`http.client` for free.

Remote write 2.0 (``protocol="v2"``) needs :mod:`promwire.v2`; a v1
``WriteRequest`` handed to a v2 client is converted with
:func:`promwire.v2.convert.from_v1` (when that module provides it).
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import random as _random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from ..codec import snappy
from ..codec.decoder import decode
from ..codec.encoder import encode
from ..codec.messages import TimeSeries, WriteRequest
from ..errors import LimitExceeded, PromwireError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SAMPLES_PER_SEND",
    "RESERVED_HEADERS",
    "AsyncRemoteWriteClient",
    "ClientError",
    "RemoteWriteClient",
    "RemoteWriteError",
    "RetryPolicy",
    "WriteResult",
    "batch_series",
    "parse_retry_after",
    "user_agent",
]

#: Prometheus' default ``max_samples_per_send``.
DEFAULT_MAX_SAMPLES_PER_SEND = 2000
#: Default cap on the *uncompressed* protobuf size of one request (Prometheus
#: receivers refuse more than 32 MiB decoded; stay well below).
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: How much of an error answer is kept (Prometheus reads the same amount).
ERROR_BODY_LIMIT = 1024

V1_CONTENT_TYPE = "application/x-protobuf"
V2_CONTENT_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

#: Header names (lower case) a user cannot set: the protocol's own headers,
#: authentication (use ``basic_auth``/``bearer_token``) and hop-by-hop ones.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
        "proxy-authorization",
        "retry-attempt",
        "transfer-encoding",
        "user-agent",
        "x-prometheus-remote-read-version",
        "x-prometheus-remote-write-version",
    }
)

_WRITTEN_HEADERS = (
    ("samples", "X-Prometheus-Remote-Write-Samples-Written"),
    ("histograms", "X-Prometheus-Remote-Write-Histograms-Written"),
    ("exemplars", "X-Prometheus-Remote-Write-Exemplars-Written"),
)


def user_agent() -> str:
    """``promwire/<version>``, the User-Agent every promwire client sends."""
    from .. import __version__

    return f"promwire/{__version__}"


# ----------------------------------------------------------------------- errors


class ClientError(PromwireError):
    """A request sent by a promwire client failed.

    ``status`` is the HTTP status the server answered, or 0 when no answer
    arrived (connection refused, reset, timeout). ``body`` holds at most the
    first 1024 bytes of the answer. ``retryable`` says whether repeating the
    request may succeed; ``attempts`` how many were made.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        body: bytes = b"",
        retryable: bool = False,
        attempts: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.body = body[:ERROR_BODY_LIMIT]
        self.retryable = retryable
        self.attempts = attempts
        self.headers: dict[str, str] = dict(headers or {})


class RemoteWriteError(ClientError):
    """A remote write failed (after any retries).

    ``status`` is the status the server answered (0: none arrived).
    ``data_kept`` is ``False`` whenever an answer arrived: a 4xx or 5xx means
    the receiver did not keep the request (a remote write 2.0 receiver may
    have kept *part* of a 4xx request; see ``written``), and the one failing
    2xx - a v2 request answered without Written headers by a 1.0-only
    receiver - means it parsed the body as an empty v1 request. It is
    ``None`` when no answer arrived: the data may or may not have been kept.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        body: bytes = b"",
        retryable: bool = False,
        attempts: int = 1,
        headers: Mapping[str, str] | None = None,
        written: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            body=body,
            retryable=retryable,
            attempts=attempts,
            headers=headers,
        )
        self.data_kept: bool | None = False if status else None
        self.written: dict[str, int] = dict(written or {})


@dataclass(slots=True)
class WriteResult:
    """What a successful send got back.

    ``written`` holds the remote write 2.0 ``X-Prometheus-Remote-Write-*-Written``
    counts (keys ``samples``, ``histograms``, ``exemplars``) the server sent;
    Prometheus sends none for v1.
    """

    status: int
    attempts: int
    headers: dict[str, str] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    body_size: int = 0


# ------------------------------------------------------------------ retry policy


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    Returns ``None`` for a missing or unparsable value; a date in the past
    gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(slots=True)
class RetryPolicy:
    """When and how long to wait before retrying a remote write.

    ``max_retries`` counts retries, so a request is tried at most
    ``max_retries + 1`` times. ``sleep`` and ``random`` (``uniform(a, b)``)
    are injectable for tests; ``clock`` is the wall clock used for HTTP-date
    ``Retry-After`` values.
    """

    min_backoff: float = 0.03
    max_backoff: float = 5.0
    max_retries: int = 10
    retry_on_429: bool = False
    max_retry_after: float = 300.0
    sleep: Callable[[float], Any] = time.sleep
    random: Callable[[float, float], float] = _random.uniform
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.min_backoff < 0 or self.max_backoff < self.min_backoff:
            raise ValueError("need 0 <= min_backoff <= max_backoff")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must be >= 0")

    def is_retryable(self, status: int) -> bool:
        """Whether an answer with this status is retried (0 = no answer).

        Only 5xx (and 429 with ``retry_on_429``): a status outside 1xx-5xx
        such as 999 is final, as in Prometheus (``status/100 == 5``).
        """
        if status == 0 or 500 <= status < 600:
            return True
        return status == 429 and self.retry_on_429

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1-based): exponential with
        bounded jitter, ``min(max_backoff, base * uniform(1, 1.25))`` where
        ``base = min_backoff * 2**(retry-1)``. Never below ``min_backoff``,
        never above ``max_backoff``, never shorter than the previous delay."""
        base = min(self.max_backoff, self.min_backoff * (2 ** (retry - 1)))
        return float(min(self.max_backoff, base * float(self.random(1.0, 1.25))))

    def delay(self, retry: int, retry_after: str | None) -> float:
        """The wait before retry ``retry``: Retry-After if given, else backoff."""
        honoured = parse_retry_after(retry_after, now=self.clock())
        if honoured is not None:
            return min(honoured, self.max_retry_after)
        return self.backoff(retry)


# ----------------------------------------------------------------- shared setup


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not name or any(c in name for c in " \t\r\n:"):
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r}: value contains a line break")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(
                f"header {name!r} is reserved and set by promwire itself "
                "(use basic_auth= or bearer_token= for Authorization)"
            )
        out[name] = value
    return out


def _auth_header(basic_auth: tuple[str, str] | None, bearer_token: str | None) -> str | None:
    if basic_auth is not None and bearer_token is not None:
        raise ValueError("give basic_auth or bearer_token, not both")
    if basic_auth is not None:
        user, password = basic_auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return f"Basic {token}"
    if bearer_token is not None:
        if "\r" in bearer_token or "\n" in bearer_token:
            raise ValueError("bearer_token contains a line break")
        return f"Bearer {bearer_token}"
    return None


@dataclass(slots=True)
class _Endpoint:
    scheme: str
    host: str
    port: int | None
    target: str
    url: str

    @classmethod
    def parse(cls, url: str) -> _Endpoint:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: need an http:// or https:// URL with a host")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return cls(parts.scheme, parts.hostname, parts.port, target, url)


def _without_empty_labels(request: WriteRequest) -> WriteRequest:
    """``request`` with every label whose value is empty left out (series and
    exemplar labels); the same object when there is none, as is usual."""
    if not any(not lb.value for ts in request.timeseries for lb in ts.labels) and not any(
        not lb.value for ts in request.timeseries for e in ts.exemplars for lb in e.labels
    ):
        return request
    out = []
    for ts in request.timeseries:
        labels = [lb for lb in ts.labels if lb.value]
        exemplars = [replace(e, labels=[lb for lb in e.labels if lb.value]) for e in ts.exemplars]
        out.append(replace(ts, labels=labels, exemplars=exemplars))
    return replace(request, timeseries=out)


def _v2_without_empty_labels(request: Any) -> Any:
    """The v2 twin of :func:`_without_empty_labels` on ``labels_refs``."""
    symbols = request.symbols
    n = len(symbols)

    def empty(ref: int) -> bool:
        # An out-of-range ref is left for the receiver to refuse.
        return 0 <= ref < n and not symbols[ref]

    def keep(refs: list[int]) -> list[int]:
        out: list[int] = []
        for i in range(0, len(refs) - 1, 2):
            if not empty(refs[i + 1]):
                out += refs[i : i + 2]
        return out

    def has_empty(refs: list[int]) -> bool:
        return any(empty(refs[i]) for i in range(1, len(refs), 2))

    if not any(
        has_empty(ts.labels_refs) or any(has_empty(e.labels_refs) for e in ts.exemplars)
        for ts in request.timeseries
    ):
        return request
    out = []
    for ts in request.timeseries:
        exemplars = [replace(e, labels_refs=keep(e.labels_refs)) for e in ts.exemplars]
        out.append(replace(ts, labels_refs=keep(ts.labels_refs), exemplars=exemplars))
    return replace(request, timeseries=out)


def _content_for(protocol: str, request: Any) -> tuple[bytes, str, str]:
    """(protobuf bytes, Content-Type, version header) for ``request``.

    Labels with an empty value are left out. A v2 ``Request`` sent as v1 (after
    a 415 fallback) is converted with :func:`promwire.v2.convert.to_v1`.
    """
    if protocol == "v1":
        if not isinstance(request, WriteRequest):
            from .. import v2

            if not isinstance(request, v2.Request):
                raise TypeError(f"a v1 client sends WriteRequest, not {type(request).__name__}")
            request = v2.to_v1(request, sort_labels=True)
        return encode(_without_empty_labels(request)), V1_CONTENT_TYPE, "0.1.0"
    # Remote write 2.0: the one branch that needs promwire.v2.
    try:
        from .. import v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise PromwireError(f"remote write 2.0 needs promwire.v2, which is missing: {exc}") from exc
    if isinstance(request, WriteRequest):
        from ..v2 import convert

        request = convert.from_v1(_without_empty_labels(request))
    elif isinstance(request, v2.Request):
        request = _v2_without_empty_labels(request)
    else:
        raise TypeError(
            f"a v2 client sends v2.Request or WriteRequest, not {type(request).__name__}"
        )
    return encode(request), V2_CONTENT_TYPE, "2.0.0"


def _written(headers: Mapping[str, str]) -> dict[str, int]:
    lower = {k.lower(): v for k, v in headers.items()}
    out: dict[str, int] = {}
    for key, name in _WRITTEN_HEADERS:
        raw = lower.get(name.lower())
        if raw is None:
            continue
        try:
            out[key] = int(raw.strip())
        except ValueError:  # the spec: unparsable counts as 0
            out[key] = 0
    return out


def _counts(request: Any) -> int:
    """Data points (samples + histograms + exemplars) in a v1 or v2 request."""
    return sum(
        len(ts.samples) + len(ts.histograms) + len(ts.exemplars)
        for ts in getattr(request, "timeseries", ())
    )


class _Base:
    """Configuration shared by the sync and async write clients."""

    def __init__(
        self,
        url: str,
        *,
        protocol: str = "v1",
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        min_backoff: float = 0.03,
        max_backoff: float = 5.0,
        max_retries: int = 10,
        retry_on_429: bool = False,
        max_retry_after: float = 300.0,
        sleep: Callable[[float], Any] | None = None,
        random: Callable[[float, float], float] | None = None,
        clock: Callable[[], float] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', not {protocol!r}")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.endpoint = _Endpoint.parse(url)
        self.url = url
        self.protocol = protocol
        #: The protocol sent now: ``protocol``, or ``"v1"`` after a v2 send was
        #: answered 415 (the fallback is kept for the client's lifetime).
        self.active_protocol = protocol
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.policy = RetryPolicy(
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            max_retries=max_retries,
            retry_on_429=retry_on_429,
            max_retry_after=max_retry_after,
            sleep=sleep or time.sleep,
            random=random or _random.uniform,
            clock=clock or time.time,
        )
        self._extra = _check_headers(headers)
        self._auth = _auth_header(basic_auth, bearer_token)

    def prepare(self, request: Any) -> tuple[bytes, dict[str, str], int]:
        """The compressed body, headers (without Retry-Attempt) and point count."""
        raw, content_type, version = _content_for(self.active_protocol, request)
        return snappy.compress(raw), self._headers(content_type, version), _counts(request)

    def _headers(self, content_type: str, version: str) -> dict[str, str]:
        headers = dict(self._extra)
        headers["Content-Encoding"] = "snappy"
        headers["Content-Type"] = content_type
        headers["X-Prometheus-Remote-Write-Version"] = version
        headers["User-Agent"] = user_agent()
        if self._auth is not None:
            headers["Authorization"] = self._auth
        return headers

    def outcome(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        attempt: int,
        points: int,
    ) -> WriteResult | RemoteWriteError:
        """Turn one HTTP answer into a result or an error (retryable or not)."""
        written = _written(headers)
        if 200 <= status < 300:
            if self.active_protocol == "v2" and points and not any(written.values()):
                # A 1.0-only receiver ignores the v2 Content-Type, parses the
                # body as an empty v1 request and answers 2xx: the spec says
                # to treat that as a failure (like a 415).
                return RemoteWriteError(
                    f"{self.url}: {status} without X-Prometheus-Remote-Write-*-Written "
                    "headers for a remote write 2.0 request: the receiver probably "
                    "only speaks remote write 1.0 and dropped the data",
                    status=status,
                    attempts=attempt,
                    headers=headers,
                )
            return WriteResult(status, attempt, dict(headers), written, len(body))
        retryable = self.policy.is_retryable(status)
        text = body[:ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
        if status == 429 and not retryable:
            why = "rate limited (429; not retried: retry_on_429 is off)"
        elif status >= 500:
            why = f"server error {status}"
        elif status == 429:
            why = "rate limited (429)"
        else:
            why = f"rejected with {status} (client error, not retried)"
        return RemoteWriteError(
            f"{self.url}: {why}: {text or '(empty body)'}",
            status=status,
            body=body,
            retryable=retryable,
            attempts=attempt,
            headers=headers,
            written=written,
        )

    def network_error(self, exc: BaseException, attempt: int) -> RemoteWriteError:
        return RemoteWriteError(
            f"{self.url}: no answer ({type(exc).__name__}: {exc}); the server may or may "
            "not have kept the data",
            retryable=True,
            attempts=attempt,
        )

    def falls_back(self, err: RemoteWriteError) -> bool:
        """A v2 send answered 415: switch to remote write 1.0 for good (the
        caller re-sends at once, without a backoff)."""
        if err.status == 415 and self.active_protocol == "v2":
            self.active_protocol = "v1"
            return True
        return False

    def give_up(self, err: RemoteWriteError, attempt: int) -> bool:
        return not err.retryable or attempt > self.policy.max_retries

    def final(self, err: RemoteWriteError, attempt: int) -> RemoteWriteError:
        if err.retryable and attempt > 1:
            err.message = f"{err.message} (gave up after {attempt} attempts)"
            err.args = (err.message,)
        return err


# ------------------------------------------------------------------- batching


def _points(ts: TimeSeries) -> int:
    return len(ts.samples) + len(ts.histograms) + len(ts.exemplars)


def _take(ts: TimeSeries, k: int) -> tuple[TimeSeries, TimeSeries | None]:
    """The first ``k`` points of ``ts`` (samples, then histograms, then
    exemplars) as one piece with the same labels, and the rest (or None)."""
    if k >= _points(ts):
        return ts, None
    head = TimeSeries(labels=ts.labels)
    rest = TimeSeries(labels=ts.labels)
    for kind in ("samples", "histograms", "exemplars"):
        items = getattr(ts, kind)
        n = min(k, len(items))
        setattr(head, kind, items[:n])
        setattr(rest, kind, items[n:])
        k -= n
    return head, rest


def _size(ts: TimeSeries) -> int:
    """Bytes ``ts`` adds to a WriteRequest (its record: tag, length, message)."""
    return len(encode(WriteRequest(timeseries=[ts])))


def batch_series(
    series: Iterable[TimeSeries],
    *,
    max_samples_per_send: int = DEFAULT_MAX_SAMPLES_PER_SEND,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[WriteRequest]:
    """Group series into WriteRequests of at most ``max_samples_per_send``
    points (samples + histograms + exemplars) and ``max_bytes`` uncompressed
    protobuf bytes.

    A series that does not fit in what is left of a request is cut: its first
    points fill the request, the rest (same labels) starts the next one, so
    per-series time order is kept and requests are as full as allowed.
    Raises :class:`~promwire.errors.LimitExceeded` if a single point does not
    fit in ``max_bytes``.
    """
    if max_samples_per_send < 1 or max_bytes < 1:
        raise ValueError("max_samples_per_send and max_bytes must be >= 1")
    batch: list[TimeSeries] = []
    points = size = 0
    for whole in series:
        rest: TimeSeries | None = whole
        while rest is not None:
            room = max_samples_per_send - points
            if room <= 0:
                yield WriteRequest(timeseries=batch)
                batch, points, size = [], 0, 0
                continue
            n = max(1, min(room, _points(rest)))
            head, tail = _take(rest, n)
            b = _size(head)
            while size + b > max_bytes and n > 1:
                n = (n + 1) // 2  # halve until the piece fits the bytes left
                head, tail = _take(rest, n)
                b = _size(head)
            if size + b > max_bytes:
                if batch:
                    yield WriteRequest(timeseries=batch)
                    batch, points, size = [], 0, 0
                    continue
                raise LimitExceeded(
                    f"one point of series {_name(head)} encodes to {b} bytes, "
                    f"over max_bytes={max_bytes}"
                )
            batch.append(head)
            points += _points(head)
            size += b
            rest = tail
    if batch:
        yield WriteRequest(timeseries=batch)


def _name(ts: TimeSeries) -> str:
    body = ",".join(f'{lb.name}="{lb.value}"' for lb in ts.labels)
    return "{" + body + "}"


# ------------------------------------------------------------------ sync client


class RemoteWriteClient(_Base):
    """Blocking remote write client on :mod:`http.client` (one keep-alive connection).

    Keyword arguments (all optional):

    ``protocol``
        ``"v1"`` (default) or ``"v2"`` (needs :mod:`promwire.v2`).
    ``timeout``
        seconds per attempt for connecting and for each socket read (30).
    ``headers``
        extra headers; reserved names (:data:`RESERVED_HEADERS`) raise ``ValueError``.
    ``basic_auth`` / ``bearer_token``
        ``(user, password)`` or a token, sent as ``Authorization``.
    ``min_backoff``, ``max_backoff``, ``max_retries``
        retry schedule (0.03 s, 5 s, 10 retries); see :class:`RetryPolicy`.
    ``retry_on_429``
        retry 429 answers too (off, like Prometheus' ``retry_on_http_429``).
    ``max_retry_after``
        upper bound for a server-requested wait (300 s).
    ``sleep``, ``random``, ``clock``
        injectable ``time.sleep``, ``random.uniform`` and ``time.time``.

    Thread-safe: concurrent sends are serialised on the one connection.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RemoteWriteClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the keep-alive connection (a later send reopens one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            ep = self.endpoint
            if ep.scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    ep.host, ep.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                self._conn = http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout)
        return self._conn

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = self._connection()
        try:
            conn.request("POST", self.endpoint.target, body=body, headers=headers)
            resp = conn.getresponse()
            status = resp.status
            resp_headers = {k: v for k, v in resp.getheaders()}
            if 200 <= status < 300:
                data = resp.read()
            else:
                data = resp.read(ERROR_BODY_LIMIT)
                # Drain the rest (bounded) so the connection can be reused.
                while resp.read(65536):
                    pass
            if resp.will_close:
                self.close()
            return status, resp_headers, data
        except BaseException:
            self.close()
            raise

    def send(self, request: Any) -> WriteResult:
        """POST one request, retrying as configured; returns on a 2xx.

        Accepts a :class:`~promwire.codec.messages.WriteRequest` (or, for
        ``protocol="v2"``, a ``promwire.v2.Request``). Raises
        :class:`RemoteWriteError` when the request finally fails.
        """
        return self._send(lambda: self.prepare(request))

    def send_encoded(self, raw: bytes, points: int) -> WriteResult:
        """POST an already encoded (uncompressed) v1 ``WriteRequest`` as it is,
        retrying like :meth:`send`: no decoding, no re-encoding. The caller
        vouches for the bytes (promwire's durable writer sends the
        concatenation of ``WriteRequest`` encodings from its log: protobuf
        merges concatenated messages, so it is one request holding all their
        series). ``points`` is reported back in errors. A client in (or
        falling back from) ``protocol="v2"`` decodes the bytes and sends the
        request with :meth:`send` instead.
        """
        if self.active_protocol != "v1":
            return self.send(decode(WriteRequest, raw))
        return self._send(
            lambda: (snappy.compress(raw), self._headers(V1_CONTENT_TYPE, "0.1.0"), points)
        )

    def _send(self, prepare: Callable[[], tuple[bytes, dict[str, str], int]]) -> WriteResult:
        body, headers, points = prepare()
        with self._lock:
            attempt = 0
            while True:
                attempt += 1
                if attempt > 1:
                    headers["Retry-Attempt"] = str(attempt - 1)
                try:
                    status, resp_headers, data = self._post(body, headers)
                except (OSError, http.client.HTTPException) as exc:
                    result: WriteResult | RemoteWriteError = self.network_error(exc, attempt)
                    retry_after = None
                else:
                    result = self.outcome(status, resp_headers, data, attempt, points)
                    retry_after = _header(resp_headers, "Retry-After")
                if isinstance(result, WriteResult):
                    return result
                if self.falls_back(result):
                    body, headers, points = prepare()
                    continue
                if self.give_up(result, attempt):
                    raise self.final(result, attempt)
                self.policy.sleep(self.policy.delay(attempt, retry_after))

    def send_series(
        self,
        series: Iterable[TimeSeries],
        *,
        max_samples_per_send: int = DEFAULT_MAX_SAMPLES_PER_SEND,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> list[WriteResult]:
        """Send ``series`` in batches (see :func:`batch_series`), one after another.

        Stops at the first batch that fails (raising :class:`RemoteWriteError`);
        earlier batches were delivered.
        """
        return [
            self.send(req)
            for req in batch_series(
                series, max_samples_per_send=max_samples_per_send, max_bytes=max_bytes
            )
        ]

    def send_frame(self, frame: Any, **options: Any) -> list[WriteResult]:
        """Send a long-form pandas DataFrame or Arrow table (labels as columns,
        ``timestamp``, ``value``); see :func:`promwire.client.frames.send_frame`."""
        from . import frames

        return frames.send_frame(self, frame, **options)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return v
    return None


# ----------------------------------------------------------------- async client


class AsyncRemoteWriteClient(_Base):
    """The asyncio twin of :class:`RemoteWriteClient`, on aiohttp.

    Same keyword arguments; ``sleep`` must then be an ``async`` function
    (default ``asyncio.sleep``). Use as ``async with``, or call ``aclose()``.
    aiohttp is imported when the first request is sent; without it a
    :class:`~promwire.errors.PromwireError` says to ``pip install aiohttp``.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        import asyncio

        if kwargs.get("sleep") is None:
            kwargs["sleep"] = asyncio.sleep
        super().__init__(url, **kwargs)
        self._session: Any = None

    async def __aenter__(self) -> AsyncRemoteWriteClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _aiohttp(self) -> Any:
        try:
            import aiohttp
        except ImportError as exc:
            raise PromwireError(
                "AsyncRemoteWriteClient needs aiohttp: pip install aiohttp"
            ) from exc
        return aiohttp

    async def _post(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        aiohttp = self._aiohttp()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeout, sock_read=self.timeout
                ),
                # aiohttp would otherwise add its own User-Agent and compress nothing.
                skip_auto_headers=("User-Agent",),
            )
        ssl_arg: Any = self.ssl_context if self.ssl_context is not None else True
        async with self._session.post(
            self.url, data=body, headers=headers, ssl=ssl_arg, auto_decompress=False
        ) as resp:
            status = int(resp.status)
            if 200 <= status < 300:
                data = await resp.read()
            else:
                data = await resp.content.read(ERROR_BODY_LIMIT)
            return status, {k: v for k, v in resp.headers.items()}, bytes(data)

    async def send(self, request: Any) -> WriteResult:
        """Async :meth:`RemoteWriteClient.send`."""
        aiohttp = self._aiohttp()
        body, headers, points = self.prepare(request)
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                headers["Retry-Attempt"] = str(attempt - 1)
            try:
                status, resp_headers, data = await self._post(body, headers)
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                result: WriteResult | RemoteWriteError = self.network_error(exc, attempt)
                retry_after = None
            else:
                result = self.outcome(status, resp_headers, data, attempt, points)
                retry_after = _header(resp_headers, "Retry-After")
            if isinstance(result, WriteResult):
                return result
            if self.falls_back(result):
                body, headers, points = self.prepare(request)
                continue
            if self.give_up(result, attempt):
                raise self.final(result, attempt)
            await self.policy.sleep(self.policy.delay(attempt, retry_after))

    async def send_series(
        self,
        series: Iterable[TimeSeries],
        *,
        max_samples_per_send: int = DEFAULT_MAX_SAMPLES_PER_SEND,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> list[WriteResult]:
        """Async :meth:`RemoteWriteClient.send_series`."""
        results = []
        for req in batch_series(
            series, max_samples_per_send=max_samples_per_send, max_bytes=max_bytes
        ):
            results.append(await self.send(req))
        return results
