"""RemoteWriteClient against a scripted loopback HTTP server: headers, retries, errors."""

from __future__ import annotations

import asyncio
import email.utils
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from promwire import Label, Sample, TimeSeries, WriteRequest, __version__, decode, snappy
from promwire.client.writer import (
    AsyncRemoteWriteClient,
    RemoteWriteClient,
    RemoteWriteError,
    batch_series,
    parse_retry_after,
)
from tests.support.prometheus import free_port


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """Answers to give, in order; the last one repeats. Records every request."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.seen.append(seen)
            if len(self.answers) > 1:
                return self.answers.pop(0)
            return self.answers[0]


def _handler(script: Script) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            status, headers, payload = script.next(Seen(dict(self.headers.items()), body))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 204:  # never a body (or Content-Length) on a 204
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if status != 204:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script(answers=[(204, {}, b"")])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    t = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/write", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def _request(n: int = 1) -> WriteRequest:
    return WriteRequest(
        timeseries=[
            TimeSeries(
                labels=[Label("__name__", "up"), Label("job", "t")],
                samples=[Sample(float(i), 1000 * (i + 1)) for i in range(n)],
            )
        ]
    )


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def __call__(self, s: float) -> None:
        self.sleeps.append(s)


def _upper(a: float, b: float) -> float:
    """An injected ``random.uniform`` that always picks the top of the range."""
    assert (a, b) == (1.0, 1.25)
    return b


def test_headers_and_body(server: tuple[str, Script]) -> None:
    url, script = server
    with RemoteWriteClient(url, headers={"X-Scope-OrgID": "tenant-1"}) as c:
        result = c.send(_request(3))
    assert result.status == 204 and result.attempts == 1
    [seen] = script.seen
    h = {k.lower(): v for k, v in seen.headers.items()}
    assert h["content-encoding"] == "snappy"
    assert h["content-type"] == "application/x-protobuf"
    assert h["x-prometheus-remote-write-version"] == "0.1.0"
    assert h["user-agent"] == f"promwire/{__version__}"
    assert h["x-scope-orgid"] == "tenant-1"
    assert "retry-attempt" not in h and "authorization" not in h
    assert decode(WriteRequest, snappy.decompress(seen.body)) == _request(3)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"basic_auth": ("alice", "s3cret")}, "Basic YWxpY2U6czNjcmV0"),
        ({"bearer_token": "tok"}, "Bearer tok"),
    ],
)
def test_auth(server: tuple[str, Script], kwargs: dict[str, Any], expected: str) -> None:
    url, script = server
    with RemoteWriteClient(url, **kwargs) as c:
        c.send(_request())
    assert script.seen[0].headers["Authorization"] == expected


@pytest.mark.parametrize(
    "name",
    [
        "Content-Encoding",
        "content-type",
        "X-Prometheus-Remote-Write-Version",
        "USER-AGENT",
        "Authorization",
        "Retry-Attempt",
        "Host",
        "Content-Length",
    ],
)
def test_reserved_headers_refused(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        RemoteWriteClient("http://127.0.0.1:1/w", headers={name: "x"})


def test_bad_config_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        RemoteWriteClient("http://127.0.0.1:1/w", basic_auth=("a", "b"), bearer_token="t")
    with pytest.raises(ValueError, match="line break"):
        RemoteWriteClient("http://127.0.0.1:1/w", headers={"X-A": "a\r\nX-B: b"})
    with pytest.raises(ValueError, match="http"):
        RemoteWriteClient("ftp://example/w")


def test_5xx_retried_with_backoff_and_retry_attempt(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, b"boom"), (503, {}, b"busy"), (502, {}, b""), (204, {}, b"")]
    rec = Recorder()
    c = RemoteWriteClient(url, min_backoff=0.1, max_backoff=0.3, sleep=rec, random=_upper)
    result = c.send(_request())
    c.close()
    assert result.status == 204 and result.attempts == 4
    assert len(script.seen) == 4
    assert [s.headers.get("Retry-Attempt") for s in script.seen] == [None, "1", "2", "3"]
    # The top of the jitter (1.25 x) on a base doubling from min_backoff,
    # capped at max_backoff.
    assert rec.sleeps == pytest.approx([0.125, 0.25, 0.3])
    # Every attempt carried the same bytes.
    assert len({s.body for s in script.seen}) == 1


def test_backoff_is_jittered_within_bounds(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, b"")] * 8 + [(204, {}, b"")]
    rec = Recorder()
    with RemoteWriteClient(url, min_backoff=0.01, max_backoff=0.05, sleep=rec) as c:
        c.send(_request())
    assert len(rec.sleeps) == 8
    bases = [min(0.05, 0.01 * 2**i) for i in range(8)]
    # Each delay lies in [base, 1.25 x base] capped at max_backoff: never
    # under min_backoff, and never shorter than the delay before it.
    assert all(b <= s <= min(0.05, 1.25 * b) for s, b in zip(rec.sleeps, bases, strict=True))
    assert rec.sleeps == sorted(rec.sleeps)


def test_gives_up_after_max_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, b"x" * 5000)]
    rec = Recorder()
    with (
        RemoteWriteClient(url, max_retries=3, sleep=rec, random=_upper) as c,
        pytest.raises(RemoteWriteError) as info,
    ):
        c.send(_request())
    err = info.value
    assert len(script.seen) == 4 and err.attempts == 4 and len(rec.sleeps) == 3
    assert err.status == 500 and err.retryable and err.data_kept is False
    assert err.body == b"x" * 1024
    assert "server error 500" in str(err) and "4 attempts" in str(err)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 422])
def test_4xx_not_retried(server: tuple[str, Script], status: int) -> None:
    url, script = server
    script.answers = [(status, {}, b"out of order sample"), (204, {}, b"")]
    rec = Recorder()
    with RemoteWriteClient(url, sleep=rec) as c, pytest.raises(RemoteWriteError) as info:
        c.send(_request())
    assert len(script.seen) == 1 and rec.sleeps == []
    assert info.value.status == status and not info.value.retryable
    assert info.value.data_kept is False
    assert "out of order sample" in str(info.value)


def test_429_not_retried_by_default(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "1"}, b"slow down"), (204, {}, b"")]
    with RemoteWriteClient(url, sleep=Recorder()) as c, pytest.raises(RemoteWriteError) as info:
        c.send(_request())
    assert len(script.seen) == 1
    assert info.value.status == 429 and "retry_on_429" in str(info.value)


def test_429_retry_after_seconds(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"Retry-After": "7"}, b""), (429, {}, b""), (200, {}, b"ok")]
    rec = Recorder()
    with RemoteWriteClient(url, retry_on_429=True, sleep=rec, random=_upper, min_backoff=0.5) as c:
        result = c.send(_request())
    assert result.status == 200 and result.attempts == 3
    # First wait is the server's, the second falls back to backoff (retry 2:
    # base 2 * 0.5, times the top of the jitter 1.25).
    assert rec.sleeps == [7.0, 1.25]


def test_retry_after_http_date(server: tuple[str, Script]) -> None:
    url, script = server
    now = 1_790_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    script.answers = [(429, {"Retry-After": date}, b""), (204, {}, b"")]
    rec = Recorder()
    with RemoteWriteClient(url, retry_on_429=True, sleep=rec, clock=lambda: now) as c:
        c.send(_request())
    assert rec.sleeps == [30.0]


def test_retry_after_on_5xx_and_cap(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"Retry-After": "100000"}, b""), (204, {}, b"")]
    rec = Recorder()
    with RemoteWriteClient(url, sleep=rec, max_retry_after=60) as c:
        c.send(_request())
    assert rec.sleeps == [60.0]


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 5) == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 + 5) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") is None


def test_nothing_sent_twice_after_2xx(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {}, b"accepted")]
    with RemoteWriteClient(url, sleep=Recorder()) as c:
        for i in range(3):
            c.send(_request(i + 1))
    assert len(script.seen) == 3
    sent = [decode(WriteRequest, snappy.decompress(s.body)) for s in script.seen]
    assert sent == [_request(1), _request(2), _request(3)]
    assert all("Retry-Attempt" not in s.headers for s in script.seen)


def test_network_error_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"  # nothing listens there
    rec = Recorder()
    with (
        RemoteWriteClient(url, max_retries=2, sleep=rec, timeout=2) as c,
        pytest.raises(RemoteWriteError) as info,
    ):
        c.send(_request())
    err = info.value
    assert err.status == 0 and err.retryable and err.attempts == 3 and len(rec.sleeps) == 2
    assert err.data_kept is None
    assert "no answer" in str(err)


def test_send_series_batches(server: tuple[str, Script]) -> None:
    url, script = server
    series = [
        TimeSeries(
            labels=[Label("__name__", f"m{k}")],
            samples=[Sample(float(i), i) for i in range(n)],
        )
        for k, n in enumerate([1500, 3100, 10])
    ]
    with RemoteWriteClient(url) as c:
        results = c.send_series(series, max_samples_per_send=1000)
    got = [decode(WriteRequest, snappy.decompress(s.body)) for s in script.seen]
    assert len(results) == len(got) == 5
    assert all(sum(len(ts.samples) for ts in r.timeseries) <= 1000 for r in got)
    # Per series, every sample arrives exactly once, in order.
    for k, orig in enumerate(series):
        name = f"m{k}"
        merged = [
            s for r in got for ts in r.timeseries if ts.labels[0].value == name for s in ts.samples
        ]
        assert merged == orig.samples


def test_batch_series_respects_max_bytes() -> None:
    from promwire import encode

    series = [
        TimeSeries(labels=[Label("__name__", "m"), Label("i", str(i))], samples=[Sample(1.0, i)])
        for i in range(200)
    ]
    reqs = list(batch_series(series, max_bytes=600))
    assert len(reqs) > 1
    assert all(len(encode(r)) <= 600 for r in reqs)
    assert [ts for r in reqs for ts in r.timeseries] == series


def test_v2_protocol(server: tuple[str, Script]) -> None:
    from promwire import v2

    url, script = server
    written = {
        "X-Prometheus-Remote-Write-Samples-Written": "3",
        "X-Prometheus-Remote-Write-Histograms-Written": "0",
        "X-Prometheus-Remote-Write-Exemplars-Written": "0",
    }
    script.answers = [(204, written, b""), (204, {}, b"")]
    with RemoteWriteClient(url, protocol="v2") as c:
        result = c.send(_request(3))
        assert result.written == {"samples": 3, "histograms": 0, "exemplars": 0}
        # A 2xx without Written headers: a 1.0-only receiver dropped the data.
        with pytest.raises(RemoteWriteError, match=r"1\.0") as info:
            c.send(_request(3))
        assert info.value.data_kept is False and info.value.status == 204
    first = script.seen[0]
    assert first.headers["Content-Type"] == (
        "application/x-protobuf;proto=io.prometheus.write.v2.Request"
    )
    assert first.headers["X-Prometheus-Remote-Write-Version"] == "2.0.0"
    req = decode(v2.Request, snappy.decompress(first.body))
    assert v2.to_v1(req).timeseries == _request(3).timeseries


def test_async_client(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {}, b"x"), (429, {"Retry-After": "2"}, b""), (204, {}, b"")]
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)

    async def run() -> Any:
        async with AsyncRemoteWriteClient(
            url, retry_on_429=True, sleep=sleep, random=_upper, min_backoff=0.25
        ) as c:
            ok = await c.send(_request(2))
            script.answers = [(400, {}, b"bad labels")]
            with pytest.raises(RemoteWriteError) as info:
                await c.send(_request(2))
            return ok, info.value

    ok, err = asyncio.run(run())
    assert ok.status == 204 and ok.attempts == 3 and sleeps == [0.3125, 2.0]
    assert err.status == 400 and err.attempts == 1 and "bad labels" in str(err)
    assert [s.headers.get("Retry-Attempt") for s in script.seen] == [None, "1", "2", None]
    assert script.seen[0].headers["User-Agent"] == f"promwire/{__version__}"
    assert decode(WriteRequest, snappy.decompress(script.seen[0].body)) == _request(2)


def test_async_client_without_aiohttp() -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "sys.modules['aiohttp'] = None\n"  # makes `import aiohttp` fail
        "from promwire.client.writer import AsyncRemoteWriteClient\n"
        "from promwire import WriteRequest, PromwireError\n"
        "c = AsyncRemoteWriteClient('http://127.0.0.1:1/w')\n"
        "try:\n"
        "    asyncio.run(c.send(WriteRequest()))\n"
        "except PromwireError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert b"pip install aiohttp" in out.stdout, out.stderr
