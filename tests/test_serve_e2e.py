"""End to end with the real Prometheus (2.42) and ``python -m promwire.server.runner``.

One Prometheus scrapes itself and a small protobuf target (a counter with an
exemplar, a native histogram) every second and remote-writes to two
receivers at once: ``promwire serve`` in a subprocess, and an in-process
uvicorn whose storage fails 40% of the writes (half before, half after
committing). Both stores must end up holding exactly Prometheus' own samples.
A second Prometheus remote-reads data only promwire holds. Bad inputs are
thrown at ``promwire serve`` under both of its servers.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from promwire import (
    STALE_NAN_BITS,
    BucketSpan,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    MetricType,
    Query,
    QueryResult,
    ReadRequest,
    ResponseType,
    Sample,
    StorageError,
    TimeSeries,
    WriteRequest,
    encode,
    snappy,
)
from promwire.chunks.streamed import read_streamed_response
from promwire.codec.wire import (
    I64,
    LEN,
    VARINT,
    double_bits,
    pack_double,
    tag,
    varint,
    zigzag_encode,
)
from promwire.server.asgi import RemoteStorageApp
from promwire.stores.protocol import BaseStorage
from promwire.stores.sqlite import SQLiteStorage
from tests.support.prometheus import PrometheusProcess, free_port

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


# ------------------------------------------------------------------ promwire serve


@contextmanager
def promwire_serve(db: Path, server: str = "auto") -> Iterator[tuple[int, list[str]]]:
    """``python -m promwire.server.runner`` on a free port; yields (port, its output lines)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "promwire.server.runner"),
            *("--db", str(db), "--listen", f"127.0.0.1:{port}", "--server", server),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"promwire serve exited: {lines}"
            assert time.monotonic() < deadline, "promwire serve did not start listening"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, lines
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)


def eventually(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


# -------------------------------------------------------- a protobuf scrape target


def _len(field: int, payload: bytes) -> bytes:
    return tag(field, LEN) + varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _len(field, text.encode())


def _uint(field: int, value: int) -> bytes:
    return tag(field, VARINT) + varint(value)


def _double(field: int, value: float) -> bytes:
    return tag(field, I64) + pack_double(value)


EXEMPLAR_MS = int(time.time() * 1000) - 1000
DEMO_HISTOGRAM = Histogram(
    count_int=6,
    sum=3.5,
    schema=0,
    zero_threshold=0.001,
    zero_count_int=1,
    positive_spans=[BucketSpan(-1, 2)],
    positive_deltas=[2, 1],
)


def demo_exposition(requests: int) -> bytes:
    """io.prometheus.client.MetricFamily messages, varint-delimited (client_model).

    A counter with an exemplar (field numbers from client_model's metrics.proto:
    MetricFamily 1 name, 2 help, 3 type, 4 metric; Metric 3 counter, 7 histogram;
    Counter 1 value, 2 exemplar; Exemplar 1 label, 2 value, 3 timestamp) and a
    native histogram (Histogram 1 count, 2 sum, 5 schema, 6 zero_threshold,
    7 zero_count, 12 positive_span, 13 positive_delta packed sint64).
    """
    exemplar = (
        _len(1, _str(1, "trace_id") + _str(2, "abc123"))
        + _double(2, 0.25)
        + _len(3, _uint(1, EXEMPLAR_MS // 1000) + _uint(2, (EXEMPLAR_MS % 1000) * 1_000_000))
    )
    counter = _len(3, _double(1, float(requests)) + _len(2, exemplar))
    h = DEMO_HISTOGRAM
    spans = b"".join(
        _len(12, _uint(1, zigzag_encode(s.offset)) + _uint(2, s.length)) for s in h.positive_spans
    )
    deltas = b"".join(varint(zigzag_encode(d)) for d in h.positive_deltas)
    histogram = _len(
        7,
        _uint(1, h.count_int or 0)
        + _double(2, h.sum)
        + _uint(5, zigzag_encode(h.schema))
        + _double(6, h.zero_threshold)
        + _uint(7, h.zero_count_int or 0)
        + spans
        + _len(13, deltas),
    )
    families = [
        _str(1, "promwire_demo_requests_total") + _str(2, "Demo requests.") + _len(4, counter),
        _str(1, "promwire_demo_latency_seconds")
        + _str(2, "Demo latency.")
        + _uint(3, 4)  # HISTOGRAM
        + _len(4, histogram),
    ]
    return b"".join(varint(len(f)) + f for f in families)


@contextmanager
def demo_target() -> Iterator[int]:
    scrapes = Counter[str]()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            scrapes["n"] += 1
            body = demo_exposition(scrapes["n"])
            self.send_response(200)
            self.send_header(
                "Content-Type",
                "application/vnd.google.protobuf; "
                "proto=io.prometheus.client.MetricFamily; encoding=delimited",
            )
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------- the failing receiver


class FlakyStorage(BaseStorage):
    """Fails ``rate`` of the writes with a 500: half before and half after the
    inner store committed (a lost response), so Prometheus resends committed data."""

    def __init__(self, inner: SQLiteStorage, rate: float, seed: int = 7) -> None:
        self.inner = inner
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.failed_before = 0
        self.failed_after = 0
        self.delivered = Counter[tuple[tuple[tuple[str, str], ...], int]]()

    def write(self, ctx: Any, request: WriteRequest) -> None:
        with self.lock:
            roll = self.rng.random()
        if roll < self.rate / 2:
            with self.lock:
                self.failed_before += 1
            raise StorageError("injected failure before writing")
        self.inner.write(ctx, request)
        with self.lock:
            for ts in request.timeseries:
                key = tuple((lb.name, lb.value) for lb in ts.labels)
                self.delivered.update((key, s.timestamp) for s in ts.samples)
            if roll < self.rate:
                self.failed_after += 1
                raise StorageError("injected failure after committing")

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        return self.inner.process_query(ctx, query)


@contextmanager
def uvicorn_thread(app: Any) -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, 10, "uvicorn")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


# -------------------------------------------------------------- comparison helpers

SeriesKey = tuple[tuple[str, str], ...]
Raw = dict[SeriesKey, list[tuple[int, float]]]


def prometheus_raw(prom: PrometheusProcess, selector: str, at_ms: int) -> Raw:
    """Raw samples of ``selector[5m]`` at ``at_ms``, from Prometheus' own TSDB."""
    data = prom.api("/api/v1/query", query=f"{selector}[5m]", time=f"{at_ms / 1000:.3f}")
    return {
        tuple(sorted(r["metric"].items())): [
            (round(float(t) * 1000), float(v)) for t, v in r.get("values", [])
        ]
        for r in data["result"]
        if r.get("values")
    }


def store_raw(store: SQLiteStorage, matchers: list[LabelMatcher], at_ms: int) -> Raw:
    """The same from a promwire store; stale markers dropped, as a range vector does."""
    result = store.process_query(None, Query(at_ms - 300_000, at_ms, matchers))
    out: Raw = {}
    for ts in result.timeseries:
        points = [
            (s.timestamp, s.value) for s in ts.samples if double_bits(s.value) != STALE_NAN_BITS
        ]
        if points:
            out[tuple((lb.name, lb.value) for lb in ts.labels)] = points
    return out


def same(a: Raw, b: Raw) -> bool:
    """Equal keys and samples; NaN equals NaN (Prometheus' JSON keeps no NaN payload)."""
    if a.keys() != b.keys():
        return False
    for key, points in a.items():
        other = b[key]
        if len(points) != len(other):
            return False
        for (t1, v1), (t2, v2) in zip(points, other, strict=True):
            if t1 != t2 or not (v1 == v2 or (math.isnan(v1) and math.isnan(v2))):
                return False
    return True


def describe_diff(a: Raw, b: Raw) -> str:
    missing = sorted(set(a) - set(b))[:3]
    extra = sorted(set(b) - set(a))[:3]
    differing = [k for k in set(a) & set(b) if not same({k: a[k]}, {k: b[k]})][:2]
    return json.dumps(
        {
            "missing": missing,
            "extra": extra,
            "differing": [(k, a[k][-3:], b[k][-3:]) for k in differing],
        },
        default=str,
    )[:3000]


# ------------------------------------------------------------ remote write e2e


@dataclass
class SelfScrape:
    prom: PrometheusProcess
    serve_store: SQLiteStorage
    flaky: FlakyStorage
    serve_output: list[str]


@pytest.fixture(scope="module")
def self_scrape(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SelfScrape]:
    tmp = tmp_path_factory.mktemp("selfscrape")
    queue = (
        "    send_exemplars: true\n"
        "    send_native_histograms: true\n"
        "    queue_config: {max_samples_per_send: 100, batch_send_deadline: 1s,"
        " min_backoff: 50ms, max_backoff: 1s}\n"
        "    metadata_config: {send: true, send_interval: 2s}\n"
    )
    flaky = FlakyStorage(SQLiteStorage(tmp / "flaky.db", synchronous="NORMAL"), rate=0.4)
    with (
        promwire_serve(tmp / "serve.db") as (serve_port, output),
        uvicorn_thread(RemoteStorageApp(flaky)) as flaky_port,
        demo_target() as demo_port,
    ):
        config = (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: prometheus\n"
            "    static_configs: [{targets: ['127.0.0.1:{PORT}']}]\n"
            "  - job_name: demo\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{demo_port}']}}]\n"
            "remote_write:\n"
            f"  - url: http://127.0.0.1:{serve_port}/api/v1/write\n"
            + queue
            + f"  - url: http://127.0.0.1:{flaky_port}/api/v1/write\n"
            + queue
        )
        # flush-deadline: on shutdown, stop waiting for the queues after 1 s.
        flags = [
            "--enable-feature=native-histograms,exemplar-storage",
            "--storage.remote.flush-deadline=1s",
        ]
        with PrometheusProcess(config, tmp / "prom", flags=flags) as prom:
            serve_store = SQLiteStorage(tmp / "serve.db")
            try:
                yield SelfScrape(prom, serve_store, flaky, output)
            finally:
                serve_store.close()
                flaky.inner.close()


UP = [LabelMatcher(MatchType.EQ, "__name__", "up"), LabelMatcher(MatchType.EQ, "job", "prometheus")]
JOB = [LabelMatcher(MatchType.EQ, "job", "prometheus")]


def settled_time(store: SQLiteStorage, scrapes: int) -> int:
    """A timestamp (ms) after ``scrapes`` scrapes reached ``store``, 2 s in the past."""

    def enough() -> int:
        result = store.process_query(None, Query(0, 1 << 62, UP)).timeseries
        return (
            result[0].samples[scrapes - 1].timestamp
            if result and len(result[0].samples) >= scrapes
            else 0
        )

    eventually(enough, 40, f"{scrapes} scrapes of up to arrive")
    return int(time.time() * 1000) - 2000


def wait_same(store: SQLiteStorage, expected: Raw, at: int, timeout: float) -> Raw:
    """Wait until ``store`` holds exactly ``expected`` up to ``at``; fail with a diff."""
    got: Raw = {}
    deadline = time.monotonic() + timeout
    while True:
        got = store_raw(store, JOB, at)
        if same(expected, got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(describe_diff(expected, got))
        time.sleep(0.25)


def test_remote_write_stores_exactly_what_prometheus_has(self_scrape: SelfScrape) -> None:
    store, prom = self_scrape.serve_store, self_scrape.prom
    at = settled_time(store, 4)
    expected = prometheus_raw(prom, '{job="prometheus"}', at)
    assert len(expected) > 100  # every series Prometheus has about itself
    got = wait_same(store, expected, at, 10)
    assert sum(map(len, got.values())) >= 2 * len(expected)
    # The printed prometheus.yml snippet points at the server.
    text = "".join(self_scrape.serve_output)
    assert "remote_write:" in text
    assert "/api/v1/write" in text
    assert "/api/v1/read" in text


def test_metadata_exemplars_and_native_histograms_arrive(self_scrape: SelfScrape) -> None:
    store, prom = self_scrape.serve_store, self_scrape.prom
    settled_time(store, 2)

    def metadata() -> dict[str, Any]:
        return {m.metric_family_name: m for m in store.metadata()}

    names = ("prometheus_tsdb_head_series", "promwire_demo_latency_seconds")
    md = eventually(
        lambda: (lambda d: d if all(n in d for n in names) else None)(metadata()), 15, "metadata"
    )
    theirs = prom.api("/api/v1/metadata", metric="prometheus_tsdb_head_series")
    (entry,) = theirs["prometheus_tsdb_head_series"]
    ours = md["prometheus_tsdb_head_series"]
    assert (ours.type, ours.help) == (MetricType.GAUGE, entry["help"])
    assert md["promwire_demo_latency_seconds"].type == MetricType.HISTOGRAM
    assert md["promwire_demo_requests_total"].help == "Demo requests."

    demo = LabelMatcher(MatchType.EQ, "job", "demo")
    (with_ex,) = eventually(
        lambda: store.exemplars(
            [demo, LabelMatcher(MatchType.EQ, "__name__", "promwire_demo_requests_total")]
        ),
        10,
        "the exemplar",
    )
    assert {
        (e.labels[0].name, e.labels[0].value, e.value, e.timestamp) for e in with_ex.exemplars
    } == {("trace_id", "abc123", 0.25, EXEMPLAR_MS)}

    hist = LabelMatcher(MatchType.EQ, "__name__", "promwire_demo_latency_seconds")
    (series,) = store.process_query(None, Query(0, 1 << 62, [demo, hist])).timeseries
    assert series.histograms
    for h in series.histograms:
        assert (h.count_int, h.sum, h.schema, h.zero_threshold, h.zero_count_int) == (
            6,
            3.5,
            0,
            0.001,
            1,
        )
        assert (h.positive_spans, h.positive_deltas) == ([BucketSpan(-1, 2)], [2, 1])
    # Prometheus has a native histogram at every timestamp we stored one.
    at = series.histograms[-1].timestamp
    theirs_h = prom.api(
        "/api/v1/query", query="promwire_demo_latency_seconds[5m]", time=f"{at / 1000:.3f}"
    )["result"][0]["histograms"]
    assert [round(float(t) * 1000) for t, _ in theirs_h] == [h.timestamp for h in series.histograms]
    assert all(float(v["sum"]) == 3.5 and v["count"] == "6" for _, v in theirs_h)


def test_retried_writes_leave_nothing_missing_or_duplicated(self_scrape: SelfScrape) -> None:
    flaky, prom = self_scrape.flaky, self_scrape.prom
    at = settled_time(flaky.inner, 4)
    expected = prometheus_raw(prom, '{job="prometheus"}', at)
    wait_same(flaky.inner, expected, at, 20)
    assert flaky.failed_before > 0 and flaky.failed_after > 0
    # Committed batches were resent after a 500 and still stored once each.
    resent = [k for k, n in flaky.delivered.items() if n > 1]
    assert resent
    print(  # shown with pytest -s
        f"flaky receiver: {flaky.failed_before} failed before, {flaky.failed_after} after "
        f"committing; {len(resent)} samples delivered more than once, stored once"
    )
    # Prometheus keeps writing: what was committed before the count is a lower
    # bound of it (nothing lost), what was committed after it an upper one
    # (nothing stored twice).
    with flaky.lock:
        before = len(flaky.delivered)
    stored = flaky.inner.counts()["samples"]
    with flaky.lock:
        after = len(flaky.delivered)
    assert before <= stored <= after, (before, stored, after)


# ---------------------------------------------------------------- remote read e2e


def post(port: int, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


RW = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}


def test_prometheus_remote_read_answers_from_promwire(prometheus_bin: str, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    values = {"a": [0.5, 1.25, -3.0, 1e-300, 7.0, 42.125], "b": [2.0, 2.0, 1e300, 0.1, -0.0, 3.0]}
    written = {
        src: [(now - 50_000 + 10_000 * i, v) for i, v in enumerate(vals)]
        for src, vals in values.items()
    }
    req = WriteRequest(
        [
            TimeSeries(
                [Label("__name__", "promwire_e2e_only"), Label("src", src)],
                [Sample(v, t) for t, v in points],
            )
            for src, points in written.items()
        ]
    )
    with promwire_serve(tmp_path / "r.db") as (port, _):
        assert post(port, "/api/v1/write", snappy.compress(encode(req)), RW) == (204, "")
        config = (
            "global: {scrape_interval: 1m}\n"
            "remote_read:\n"
            f"  - url: http://127.0.0.1:{port}/api/v1/read\n"
            "    read_recent: true\n"
        )
        with PrometheusProcess(config, tmp_path / "prom") as prom:
            # A raw range vector: every written sample, exactly, through remote read.
            got = prometheus_raw(prom, "promwire_e2e_only", now)
            assert got == {
                (("__name__", "promwire_e2e_only"), ("src", src)): points
                for src, points in written.items()
            }
            # PromQL evaluated by Prometheus over data only promwire holds.
            total = prom.api("/api/v1/query", query="sum(promwire_e2e_only)", time=now / 1000)
            assert float(total["result"][0]["value"][1]) == 42.125 + 3.0
            peak = prom.api(
                "/api/v1/query",
                query='max_over_time(promwire_e2e_only{src="b"}[2m])',
                time=now / 1000,
            )
            assert float(peak["result"][0]["value"][1]) == 1e300


# ------------------------------------------------------------------- bad inputs


def oversized_status(port: int, size: int) -> tuple[int, str]:
    """Send only the headers of a huge request: a capped server answers without the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # loopback names only
            b"Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers["content-length"]))
    return status, body.decode()


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_bad_inputs_get_the_right_status_and_change_nothing(server: str, tmp_path: Path) -> None:
    good = WriteRequest([TimeSeries([Label("__name__", "ok")], [Sample(1.0, 1000)])])
    good_body = snappy.compress(encode(good))
    bad: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
        ("truncated", "POST", good_body[:-4], RW, 400, "snappy"),
        ("framed snappy", "POST", b"\xff\x06\x00\x00sNaPpY" + b"\x00" * 8, RW, 400, "framed"),
        ("uncompressed", "POST", encode(good), RW, 400, ""),
        ("bad protobuf", "POST", snappy.compress(b"\x0a\xff"), RW, 400, ""),
        (
            "json",
            "POST",
            good_body,
            {**RW, "Content-Type": "application/json"},
            415,
            "Content-Type",
        ),
        ("gzip", "POST", good_body, {**RW, "Content-Encoding": "gzip"}, 415, "Content-Encoding"),
        (
            "unknown message",
            "POST",
            good_body,
            {**RW, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"},
            415,
            "io.prometheus.write.v3.Request",
        ),
        ("GET", "GET", b"", {}, 405, "POST"),
        ("PUT", "PUT", good_body, RW, 405, "POST"),
    ]
    with promwire_serve(tmp_path / "b.db", server) as (port, _):
        assert post(port, "/api/v1/write", good_body, RW) == (204, "")
        with SQLiteStorage(tmp_path / "b.db") as store:
            before = store.counts()
            for name, method, body, headers, status, needle in bad:
                got_status, message = post(port, "/api/v1/write", body, headers, method)
                assert (name, got_status) == (name, status), message
                assert needle in message
                assert message.strip(), name
            status, message = oversized_status(port, 33 * 1024 * 1024)
            assert (status, "over the limit" in message) == (413, True)
            assert post(port, "/api/v1/read", b"junk", RW)[0] == 400
            assert post(port, "/nope", good_body, RW)[0] == 404
            # A v1 body labelled 2.0 decodes as an empty v2 request (v2 reserves
            # fields 1-3): 204 with every Written count 0, so a v2 sender knows.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            v2_type = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
            conn.request("POST", "/api/v1/write", good_body, {**RW, "Content-Type": v2_type})
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (204, b"")
            assert resp.getheader("X-Prometheus-Remote-Write-Samples-Written") == "0"
            conn.close()
            assert store.counts() == before
            assert before["samples"] == 1


# --------------------------------------------------------------- serve() itself


def test_serve_falls_back_to_wsgiref_without_uvicorn(tmp_path: Path) -> None:
    """With uvicorn unimportable, ``serve`` runs on the standard library alone."""
    port = free_port()
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # makes find_spec/import fail
        "from promwire.server.runner import main\n"
        f"main(['--db', {str(tmp_path / 'w.db')!r}, '--listen', '127.0.0.1:{port}'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        eventually(lambda: _connectable(port), 20, "the wsgiref server")
        body = snappy.compress(
            encode(WriteRequest([TimeSeries([Label("__name__", "w")], [Sample(2.0, 5)])]))
        )
        assert post(port, "/api/v1/write", body, RW) == (204, "")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "(wsgiref)" in out
    assert f"url: http://127.0.0.1:{port}/api/v1/write" in out
    assert proc.returncode == 0  # SIGTERM ends serve_forever cleanly and closes the store
    with SQLiteStorage(tmp_path / "w.db") as store:
        assert store.counts()["samples"] == 1


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_listen_parsing_and_snippet() -> None:
    from promwire.server.runner import parse_listen, prometheus_snippet

    assert parse_listen("127.0.0.1:9201") == ("127.0.0.1", 9201)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen(":9201") == ("127.0.0.1", 9201)
    with pytest.raises(ValueError, match="host:port"):
        parse_listen("localhost")
    assert "url: http://[::1]:80/api/v1/read" in prometheus_snippet("::1", 80)
    assert "url: http://127.0.0.1:1/api/v1/write" in prometheus_snippet("0.0.0.0", 1)


# ------------------------------------------------------ streamed read, 1M samples

BIG_SERIES = 100
BIG_SAMPLES = 10_000
BIG_T0 = 1_700_000_000_000


def _big_series(i: int) -> TimeSeries:
    # A counter-like series with some float noise: realistic XOR chunk sizes.
    return TimeSeries(
        [Label("__name__", "promwire_big"), Label("series", f"{i:03d}")],
        [
            Sample(i * 1000.0 + j * 0.25 + (j % 7) / 3, BIG_T0 + 15_000 * j)
            for j in range(BIG_SAMPLES)
        ],
    )


def _vm(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` memory figure in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{key} missing")


def _server_pid(port: int) -> int:
    """The pid of the ``promwire.server.runner`` process listening on ``127.0.0.1:<port>``."""
    wanted = f"127.0.0.1:{port}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"promwire.server.runner" in args and wanted in args:
            return int(cmdline.parent.name)
    raise AssertionError(f"no promwire.server.runner process listening on {port}")


class _PeakRSS:
    """Samples a process' VmRSS every 5 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = _vm(pid, "VmRSS")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _vm(self.pid, "VmRSS"))
            time.sleep(0.005)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _vm(self.pid, "VmRSS"))

    @property
    def growth(self) -> int:
        return self.peak - self.before


def _streamed_read(
    port: int, matchers: list[LabelMatcher], sink: Callable[[TimeSeries], None]
) -> str:
    """POST a read asking for STREAMED_XOR_CHUNKS only; feed each decoded series to ``sink``."""
    req = ReadRequest(
        queries=[Query(BIG_T0, BIG_T0 + 15_000 * BIG_SAMPLES, matchers)],
        accepted_response_types=[ResponseType.STREAMED_XOR_CHUNKS],
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/v1/read", body=snappy.compress(encode(req)), headers=RW)
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()[:500]
        assert resp.getheader("Content-Encoding") is None
        for index, series in read_streamed_response(iter(lambda: resp.read(64 * 1024), b"")):
            assert index == 0
            sink(series)
        return str(resp.getheader("Content-Type"))
    finally:
        conn.close()


def _object_bytes(series: list[TimeSeries]) -> int:
    """What a list of series weighs as Python objects (samples, floats, ints, lists)."""
    total = sys.getsizeof(series)
    for ts in series:
        total += sys.getsizeof(ts) + sys.getsizeof(ts.samples)
        total += sum(
            sys.getsizeof(s) + sys.getsizeof(s.value) + sys.getsizeof(s.timestamp)
            for s in ts.samples
        )
    return total


def test_streamed_read_of_a_million_samples_keeps_server_memory_flat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "big.db"
    # Write phase: 10 POSTs of 10 series x 10,000 samples.
    with promwire_serve(db, "uvicorn") as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for first in range(0, BIG_SERIES, 10):
                batch = WriteRequest([_big_series(i) for i in range(first, first + 10)])
                conn.request(
                    "POST", "/api/v1/write", body=snappy.compress(encode(batch)), headers=RW
                )
                resp = conn.getresponse()
                assert (resp.status, resp.read()) == (204, b"")
        finally:
            conn.close()
    # Read phase in a fresh server: its memory owes nothing to the writes.
    name = [LabelMatcher(MatchType.EQ, "__name__", "promwire_big")]
    with promwire_serve(db, "uvicorn") as (port, _):
        pid = _server_pid(port)
        warm: list[TimeSeries] = []
        one = [*name, LabelMatcher(MatchType.EQ, "series", "000")]
        _streamed_read(port, one, warm.append)  # first request: lazy imports, thread pool
        assert warm == [_big_series(0)]
        # A first read of everything fills the store's read caches (bounded:
        # docs/storage.md); what a read itself holds is measured on the next.
        with _PeakRSS(pid) as first:
            _streamed_read(port, name, lambda ts: None)
        with _PeakRSS(pid) as streamed:
            got: list[TimeSeries] = []
            started = time.monotonic()
            content_type = _streamed_read(port, name, got.append)
            elapsed = time.monotonic() - started
        hwm = _vm(pid, "VmHWM")
        # The same answer as SAMPLES (one ReadResponse, built whole): shows what
        # the sampling above would have caught had the stream been materialised.
        with _PeakRSS(pid) as whole:
            body = snappy.compress(
                encode(ReadRequest([Query(BIG_T0, BIG_T0 + 15_000 * BIG_SAMPLES, name)]))
            )
            status, _ = post(port, "/api/v1/read", body, RW)
            assert status == 200
    assert content_type == "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    # Exactly the stored data, series in label order.
    assert len(got) == BIG_SERIES
    assert sum(len(ts.samples) for ts in got) == BIG_SERIES * BIG_SAMPLES
    for i, ts in enumerate(got):
        assert ts == _big_series(i), f"series {i} differs"
    answer = _object_bytes(got)
    mib = 2**20
    with capsys.disabled():
        print(
            f"\nstreamed read of {BIG_SERIES * BIG_SAMPLES} samples in {elapsed:.1f} s: "
            f"server VmRSS {streamed.before / mib:.1f} MiB before, peak "
            f"{streamed.peak / mib:.1f} MiB (+{streamed.growth / mib:.1f} MiB; the first read, "
            f"filling the read caches, +{first.growth / mib:.1f} MiB; VmHWM "
            f"{hwm / mib:.1f} MiB); the answer as Python objects: {answer / mib:.1f} MiB; "
            f"the same read as SAMPLES: +{whole.growth / mib:.1f} MiB"
        )
    # One series (10,000 samples) at a time plus a 1 MiB frame budget: the growth
    # stays a small fraction of the answer (~100 MiB as objects), while building
    # the answer whole (SAMPLES) grows the server by a multiple of it.
    assert answer > 80 * mib
    assert streamed.growth < answer / 8, (streamed.growth, answer)
    # the caches keep chunk bytes and records, far less than the objects
    assert first.growth < answer / 4, (first.growth, answer)
    assert whole.growth > 4 * streamed.growth, (whole.growth, streamed.growth)
