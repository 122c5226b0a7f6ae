"""DurableWriter: nothing lost across kill -9, backlog drained after an outage.

The receiver is a real ``promwire serve`` process; a counting proxy in this
process sits in front of it to count every point that arrives (so duplicates
can be reported), and the sender is a real process killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import http.server
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    MetricMetadata,
    MetricType,
    ResponseType,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    snappy,
)
from promwire.client.durable import AsyncDurableWriter, DurableWriter, WalError, WalFull, shard_of
from promwire.client.reader import RemoteReadClient
from promwire.client.wal import SegmentLog
from promwire.stores.sqlite import SQLiteStorage
from tests.support.durable_sender import SERIES, batch
from tests.support.prometheus import free_port
from tests.support.serve_process import REPO, serve_process


class Proxy:
    """Forwards POSTs to ``promwire serve`` and counts the (series, timestamp)
    points of every request the receiver answered 2xx. ``down`` answers 503
    without forwarding (the receiver "down")."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.seen: Counter[tuple[str, int]] = Counter()
        self.requests = 0
        self.down = False
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle(self) -> None:
                with contextlib.suppress(ConnectionError):  # the sender was killed
                    super().handle()

            def do_POST(self) -> None:
                self.forward()

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender was killed mid-request
                    self.close_connection = True
                    return
                if proxy.down:
                    status, data = 503, b"down"
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.target, timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request("POST", self.path, body, headers)
                    resp = conn.getresponse()
                    status, data = resp.status, resp.read()
                    conn.close()
                    if 200 <= status < 300:
                        req = decode(WriteRequest, snappy.decompress(body))
                        with proxy.lock:
                            proxy.requests += 1
                            for ts in req.timeseries:
                                key = ",".join(f"{lb.name}={lb.value}" for lb in ts.labels)
                                for s in ts.samples:
                                    proxy.seen[(key, s.timestamp)] += 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/write"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @contextmanager
    def running(self) -> Iterator[Proxy]:
        self.thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def stored(port: int) -> dict[tuple[str, int], float]:
    """Every sample the receiver answers a remote read with: {("i=<n>", ts): value}."""
    out: dict[tuple[str, int], float] = {}
    with RemoteReadClient(f"http://127.0.0.1:{port}/api/v1/read") as client:
        for ts in client.query('{__name__=~".+"}', 0, 10**13):
            lbl = {lb.name: lb.value for lb in ts.labels}
            key = f"i={lbl['i']}" if "i" in lbl else lbl["__name__"]
            for s in ts.samples:
                out[(key, s.timestamp)] = s.value
    return out


def expected(end: int) -> dict[tuple[str, int], float]:
    return {
        (f"i={ts.labels[1].value}", s.timestamp): s.value
        for b in range(end)
        for ts in batch(b)
        for s in ts.samples
    }


def _sender(url: str, wal: Path, first: int, end: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.durable_sender", url, str(wal), str(first), str(end)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_ten_times_loses_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(17)
    wal = tmp_path / "wal"
    with (
        serve_process(tmp_path / "db", None) as served,
        Proxy(served.port).running() as proxy,
    ):
        next_batch = 0
        kills = []
        for _ in range(10):
            proc = _sender(proxy.url, wal, next_batch, 10**9)
            assert proc.stdout is not None
            # Wait for the first confirmed append (the interpreter's start-up
            # is not interesting), then kill at a random point after it.
            first = proc.stdout.readline()
            assert first.strip().isdigit(), proc.stderr.read() if proc.stderr else ""
            time.sleep(rng.uniform(0.01, 0.4))
            os.kill(proc.pid, signal.SIGKILL)
            # read(), not communicate(): with two pipes communicate() reads the
            # descriptors directly and would miss what readline() buffered.
            out = proc.stdout.read()
            proc.wait(30)
            proc.stdout.close()
            if proc.stderr is not None:
                proc.stderr.close()
            confirmed = [int(x) for x in (first + out).split()]
            assert confirmed == list(range(next_batch, confirmed[-1] + 1))
            kills.append(confirmed[-1] - next_batch + 1)
            next_batch = confirmed[-1] + 1
        final_end = next_batch + 50
        proc = _sender(proxy.url, wal, next_batch, final_end)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split()[-1] == "done"
        want = expected(final_end)
        got = stored(served.port)
        assert got == want  # every point of the stream, exact values, nothing else
        arrived = sum(proxy.seen.values())
        duplicates = arrived - len(proxy.seen)
        assert set(proxy.seen) == {(f"__name__=stream,{k}", t) for k, t in want}
    # The report: duplicates are the batches a killed writer had sent without
    # having recorded the 2xx yet (re-sent by the next writer), plus the one
    # batch appended but not yet confirmed on stdout when the kill came
    # (appended again by the next run). Both are bounded per kill by the
    # shards' in-flight requests (4 x 100 points) and one batch (20 points).
    with capsys.disabled():  # shown in every run's output, not only with -s
        print(
            f"\n{len(want)} points in {final_end} batches, {sum(kills)} batches appended by "
            f"10 killed runs; {arrived} points arrived, {duplicates} duplicates "
            f"({duplicates / len(want):.1%}; at most 10 kills x (4 shards x 100 points in "
            f"flight, re-sent by the next writer, + 20 points appended but not yet reported "
            f"when killed, appended again) = {10 * (4 * 100 + SERIES)})"
        )
    assert duplicates <= 10 * (4 * 100 + SERIES)
    assert not list(wal.glob("shard-*/*.wal")) or all(
        SegmentLog(d).pending_points == 0 for d in wal.glob("shard-*")
    )


def test_receiver_down_then_up_drains_everything(tmp_path: Path) -> None:
    with (
        serve_process(tmp_path / "db", None) as served,
        Proxy(served.port).running() as proxy,
    ):
        proxy.down = True
        with DurableWriter(
            proxy.url,
            tmp_path / "wal",
            shards=4,
            retry_wait=0.05,
            max_retry_wait=0.2,
            min_backoff=0.01,
            max_backoff=0.05,
            segment_bytes=2000,
        ) as w:
            for b in range(300):
                w.append(batch(b))
            time.sleep(0.5)
            m = w.metrics()
            assert m.pending_points == 300 * SERIES and m.sent_points == 0
            assert m.failures > 0 and m.retries > 0 and m.bytes_on_disk > 0
            segments = len(list((tmp_path / "wal").glob("shard-*/*.wal")))
            assert segments > 8  # segment_bytes=2000: several per shard
            proxy.down = False
            assert w.flush(60)
            m = w.metrics()
            assert m.pending_points == 0 and m.sent_points == 300 * SERIES
            # Sent segments are deleted: at most the head segment of each shard is left.
            assert len(list((tmp_path / "wal").glob("shard-*/*.wal"))) <= 4
        assert stored(served.port) == expected(300)
        assert sum(proxy.seen.values()) == 300 * SERIES  # no crash, so no duplicate


def test_full_log_blocks_then_raises(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: every send fails
    w = DurableWriter(
        f"http://127.0.0.1:{port}/api/v1/write",
        tmp_path / "wal",
        shards=2,
        max_bytes=4000,
        full_timeout=0.3,
        retry_wait=0.05,
    )
    try:
        with pytest.raises(WalFull, match="full"):
            for b in range(1000):
                w.append(batch(b))
        assert w.metrics().bytes_on_disk <= 4000
    finally:
        w.close(0.0)


def test_small_log_blocks_until_sent_and_loses_nothing(tmp_path: Path) -> None:
    with serve_process(tmp_path / "db", None) as served:
        url = f"http://127.0.0.1:{served.port}/api/v1/write"
        peak = 0
        with DurableWriter(url, tmp_path / "wal", shards=2, max_bytes=6000) as w:
            for b in range(300):
                w.append(batch(b))  # about 250 bytes each: appends wait for the senders
                peak = max(peak, w.metrics().bytes_on_disk)
        assert peak <= 6000
        assert stored(served.port) == expected(300)


def test_max_age_drops_old_points_instead_of_retrying(tmp_path: Path) -> None:
    with serve_process(tmp_path / "db", None) as served, Proxy(served.port).running() as proxy:
        proxy.down = True
        now = int(time.time() * 1000)
        w = DurableWriter(proxy.url, tmp_path / "wal", shards=1, max_age=1.0, retry_wait=0.05)
        old = TimeSeries([Label("__name__", "old")], samples=[Sample(1.0, now - 10_000)])
        fresh = TimeSeries([Label("__name__", "fresh")], samples=[Sample(2.0, now + 60_000)])
        w.append([old, fresh])
        time.sleep(0.3)
        proxy.down = False
        assert w.flush(30)
        m = w.metrics()
        w.close()
        assert m.dropped_too_old == 1 and m.sent_points == 1
        assert [k for k, _ in proxy.seen] == ["__name__=fresh"]


def test_restart_with_other_shard_count(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    w = DurableWriter(url, tmp_path / "wal", shards=2, retry_wait=0.05)
    w.append(batch(0))
    w.close(0.0)
    with pytest.raises(ValueError, match="shards=2"):
        DurableWriter(url, tmp_path / "wal", shards=3)
    with serve_process(tmp_path / "db", None) as served:
        url = f"http://127.0.0.1:{served.port}/api/v1/write"
        with DurableWriter(url, tmp_path / "wal", shards=2) as w2:
            assert w2.metrics().pending_points == SERIES  # left by the first writer
        w3 = DurableWriter(url, tmp_path / "wal", shards=3)  # drained: a new count is fine
        w3.close()
        assert stored(served.port) == expected(1)


def test_torn_tail_is_cut_off(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path / "s")
    log.append(b"one", 1)
    log.append(b"two", 2)
    log.close()
    seg = next((tmp_path / "s").glob("*.wal"))
    with open(seg, "ab") as f:
        f.write(b"\x09\x00\x00\x00garbage")  # a header cut short by the crash
    again = SegmentLog(tmp_path / "s")
    records, _ = again.read(again.acked, max_points=100, max_bytes=1 << 20)
    assert records == [(b"one", 1), (b"two", 2)] and again.pending_points == 3
    again.close()


def test_shard_is_stable_and_order_independent() -> None:
    a = [Label("__name__", "x"), Label("job", "j")]
    assert shard_of(a, 4) == shard_of(list(reversed(a)), 4)
    spread = Counter(shard_of([Label("i", str(i))], 4) for i in range(400))
    assert len(spread) == 4 and min(spread.values()) > 50


def test_async_front_end(tmp_path: Path) -> None:
    async def run(url: str) -> int:
        async with AsyncDurableWriter(url, tmp_path / "wal", shards=2) as w:
            for b in range(20):
                await w.append(batch(b))
            await w.append_sample({"__name__": "one"}, 1.0, 5000)
            assert await w.flush(30)
            return w.metrics().sent_points

    with serve_process(tmp_path / "db", None) as served:
        sent = asyncio.run(run(f"http://127.0.0.1:{served.port}/api/v1/write"))
        got = stored(served.port)
    assert sent == 20 * SERIES + 1
    assert got == {**expected(20), ("one", 5000): 1.0}


def test_exposition_names_every_metric(tmp_path: Path) -> None:
    w = DurableWriter(f"http://127.0.0.1:{free_port()}/w", tmp_path / "wal", shards=1)
    try:
        text = w.exposition()
    finally:
        w.close(0.0)
    for name in (
        "pending_points",
        "bytes_on_disk",
        "sends_total",
        "retries_total",
        "failures_total",
    ):
        assert f"\npromwire_durable_{name} " in "\n" + text


def test_cli_write_wal_keeps_what_failed_and_sends_it_next_time(tmp_path: Path) -> None:
    wal = str(tmp_path / "wal")
    first = tmp_path / "a.txt"
    first.write_text("first_metric 1 1000\n")
    second = tmp_path / "b.txt"
    second.write_text("second_metric 2 2000\n")

    def write(url: str, src: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "promwire", "write", url, str(src), "--wal", wal]
        argv += ["--wal-timeout", "1"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)

    down = write(f"http://127.0.0.1:{free_port()}/api/v1/write", first)
    assert down.returncode == 1 and "stay in" in down.stderr
    with serve_process(tmp_path / "db", None) as served:
        up = write(f"http://127.0.0.1:{served.port}/api/v1/write", second)
        assert up.returncode == 0, up.stderr
        assert "sent 2 points" in up.stderr
        assert stored(served.port) == {("first_metric", 1000): 1.0, ("second_metric", 2000): 2.0}


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_histograms_exemplars_and_metadata_arrive(tmp_path: Path, protocol: str) -> None:
    hist = Histogram(
        count_int=3,
        sum=4.5,
        schema=0,
        zero_count_int=0,
        positive_spans=[BucketSpan(0, 2)],
        positive_deltas=[1, 1],
        timestamp=5000,
    )
    lat = [Label("__name__", "latency_seconds"), Label("job", "api")]
    req = [
        TimeSeries(lat, histograms=[hist]),
        TimeSeries(
            [Label("__name__", "hits_total"), Label("job", "api")],
            [Sample(7.0, 5000)],
            exemplars=[Exemplar([Label("trace_id", "abc")], 7.0, 5000)],
        ),
    ]
    md = [MetricMetadata(MetricType.HISTOGRAM, "latency_seconds", "Latency.", "seconds")]
    with serve_process(tmp_path / "db", None) as served:
        url = f"http://127.0.0.1:{served.port}/api/v1/write"
        with DurableWriter(url, tmp_path / "wal", shards=2, protocol=protocol) as w:
            assert w.append(req, md) == 3
        with RemoteReadClient(
            f"http://127.0.0.1:{served.port}/api/v1/read", response_types=[ResponseType.SAMPLES]
        ) as client:
            [back] = list(client.query("latency_seconds", 0, 10_000))
        assert back.histograms == [hist]
    store = SQLiteStorage(tmp_path / "db")
    try:
        labels = [e.labels for ts in store.exemplars() for e in ts.exemplars]
        assert labels == [[Label("trace_id", "abc")]]
        assert [(m.metric_family_name, m.help) for m in store.metadata()] == [
            ("latency_seconds", "Latency.")
        ]
    finally:
        store.close()


def test_one_writer_per_directory(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    first = DurableWriter(url, tmp_path / "wal", shards=1)
    try:
        with pytest.raises(WalError, match="in use"):
            DurableWriter(url, tmp_path / "wal", shards=1)
    finally:
        first.close(0.0)
    DurableWriter(url, tmp_path / "wal", shards=1).close(0.0)  # free again


def test_exported_lazily() -> None:
    import promwire
    import promwire.client

    assert promwire.client.DurableWriter is DurableWriter is promwire.DurableWriter
    assert promwire.client.AsyncDurableWriter is AsyncDurableWriter
    code = (
        "import sys, promwire.client.writer\n"
        "assert 'promwire.client.durable' not in sys.modules\n"
        "assert 'promwire.client.migrate' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_garbled_ack_file_resends_rather_than_skips(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path / "s")
    log.append(b"one", 1)
    log.append(b"two", 1)
    records, after = log.read(log.acked, max_points=1, max_bytes=1 << 20)
    log.ack(after, 1)  # "one" was sent
    log.close()
    reopened = SegmentLog(tmp_path / "s")
    assert reopened.pending_points == 1
    reopened.close()
    (tmp_path / "s" / "acked").write_text("")  # as a power loss may leave it
    again = SegmentLog(tmp_path / "s")
    records, _ = again.read(again.acked, max_points=100, max_bytes=1 << 20)
    assert again.ack_lost and [p for p, _ in records] == [b"one", b"two"]
    again.close()


def test_prometheus_down_then_up_gets_everything(tmp_path: Path, prometheus_bin: str) -> None:
    """Prometheus' own receiver starts only after the points were appended."""
    from tests.support.prometheus import PrometheusProcess

    port = free_port()
    now = int(time.time() * 1000)
    with DurableWriter(
        f"http://127.0.0.1:{port}/api/v1/write",
        tmp_path / "wal",
        shards=4,
        retry_wait=0.05,
        max_retry_wait=0.2,
    ) as w:
        for b in range(100):
            w.append(
                [
                    TimeSeries(
                        [Label("__name__", "dstream"), Label("i", str(i))],
                        [Sample(float(b), now - (100 - b) * 1000)],
                    )
                    for i in range(SERIES)
                ]
            )
        assert w.metrics().pending_points == 100 * SERIES
        config = "global:\n  scrape_interval: 1h\nscrape_configs: []\n"
        flags = ["--web.enable-remote-write-receiver"]
        with PrometheusProcess(config, tmp_path / "prom", flags=flags, port=port) as prom:
            assert w.flush(60)
            result = prom.api(
                "/api/v1/query", query="count_over_time(dstream[5m])", time=(now + 1000) / 1000
            )["result"]
            sums = prom.api(
                "/api/v1/query", query="sum_over_time(dstream[5m])", time=(now + 1000) / 1000
            )["result"]
    assert sorted(int(r["metric"]["i"]) for r in result) == list(range(SERIES))
    assert {r["value"][1] for r in result} == {"100"}
    assert {r["value"][1] for r in sums} == {str(sum(range(100)))}
