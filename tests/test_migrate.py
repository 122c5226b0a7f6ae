"""``promwire migrate``: a real Prometheus 2.42 -> ``promwire serve`` -> a second
real Prometheus; PromQL on the last equals PromQL on the first, and a run killed
halfway then restarted ends with the same result."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promwire import Label, ResponseType, Sample, TimeSeries
from promwire.client.migrate import Migration, MigrationStats, Progress
from promwire.client.reader import RemoteReadClient
from promwire.client.writer import RemoteWriteClient
from tests.support.prometheus import PrometheusProcess, free_port
from tests.support.serve_process import REPO, serve_process

CONFIG = "global:\n  scrape_interval: 1h\nscrape_configs: []\n"
FLAGS = ["--web.enable-remote-write-receiver"]
SERIES = 10
STEP = 15_000
#: 50 minutes: inside one Prometheus head block's window, so the destination
#: Prometheus accepts the copied samples in whatever order the shards send.
SPAN = 50 * 60_000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str) -> Iterator[Any]:
    """A Prometheus holding ``m{i="0".."9"}`` every 15 s over the last 50 minutes."""
    end = (int(time.time() * 1000) // STEP) * STEP
    start = end - SPAN
    with PrometheusProcess(CONFIG, tmp_path_factory.mktemp("src"), flags=FLAGS) as prom:
        series = [
            TimeSeries(
                [Label("__name__", "m"), Label("i", str(i)), Label("job", "mig")],
                [Sample(float(k * (i + 1)), start + k * STEP) for k in range(SPAN // STEP + 1)],
            )
            for i in range(SERIES)
        ]
        with RemoteWriteClient(prom.url + "/api/v1/write") as c:
            c.send_series(series)
        prom.wait_for('count(m{job="mig"}) == 10')
        yield prom, start, end


def raw(url: str, start: int, end: int) -> dict[str, list[tuple[int, float]]]:
    """Every sample of ``m`` a remote read answers with, by label set."""
    with RemoteReadClient(url) as client:
        return {
            ",".join(f"{lb.name}={lb.value}" for lb in sorted(ts.labels, key=lambda x: x.name)): [
                (s.timestamp, s.value) for s in ts.samples
            ]
            for ts in client.query('m{job="mig"}', start, end)
        }


def promql(prom: PrometheusProcess, start: int, end: int) -> list[Any]:
    out = []
    for q in ('m{job="mig"}', 'sum by (i) (rate(m{job="mig"}[5m]))', "max_over_time(m[10m])"):
        data = prom.api(
            "/api/v1/query_range", query=q, start=start / 1000, end=end / 1000, step="15s"
        )
        out.append(sorted(data["result"], key=lambda r: json.dumps(r["metric"], sort_keys=True)))
    return out


def test_prometheus_to_serve_to_prometheus(source: Any, tmp_path: Path) -> None:
    prom, start, end = source
    with serve_process(tmp_path / "db", None) as served:
        serve = f"http://127.0.0.1:{served.port}"
        out = io.StringIO()
        stats = Migration(
            prom.url + "/api/v1/read",
            serve + "/api/v1/write",
            selector='{job="mig"}',
            start_ms=start,
            end_ms=end,
            directory=tmp_path / "m1",
            slice_ms=10 * 60_000,
        ).run(Progress(out, tty=False))
        n = SERIES * (SPAN // STEP + 1)
        assert (stats.series, stats.samples, stats.histograms) == (SERIES, n, 0)
        assert stats.slices_done == stats.slices == 6
        assert out.getvalue().count("migrate: ") == 6 and "samples/s" in out.getvalue()
        assert raw(serve + "/api/v1/read", start, end) == raw(prom.url + "/api/v1/read", start, end)
        with PrometheusProcess(CONFIG, tmp_path / "dst", flags=FLAGS) as dst:
            done = subprocess.run(
                [
                    sys.executable, "-m", "promwire", "migrate", serve + "/api/v1/read",
                    dst.url + "/api/v1/write", "--selector", '{job="mig"}',
                    "--start", str(start), "--end", str(end), "--slice", "7m",
                    "--dir", str(tmp_path / "m2"),
                ],
                capture_output=True, text=True, timeout=120, cwd=REPO,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert f"migrated {SERIES} series, {n} samples, 0 histograms" in done.stderr
            assert "migrate: 8/8 slices" in done.stderr  # plain lines: stderr is no TTY
            expected = promql(prom, start, end)
            assert all(len(r) == SERIES for r in expected)  # 10 series in every query
            assert promql(dst, start, end) == expected


def test_killed_run_resumes_to_the_same_result(source: Any, tmp_path: Path) -> None:
    prom, start, end = source
    with serve_process(tmp_path / "db", None) as served:
        serve = f"http://127.0.0.1:{served.port}"
        argv = [
            sys.executable, "-m", "promwire", "migrate", prom.url + "/api/v1/read",
            serve + "/api/v1/write", "--selector", '{job="mig"}', "--start", str(start),
            "--end", str(end), "--slice", "30s", "--dir", str(tmp_path / "m"),
        ]  # fmt: skip
        proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
        checkpoint = tmp_path / "m" / "checkpoint.json"
        deadline = time.monotonic() + 60
        done = 0
        while done < 30 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            with contextlib.suppress(OSError, ValueError):  # not written yet, or mid-replace
                done = json.loads(checkpoint.read_text())["stats"]["slices_done"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert 30 <= done < 101, done  # killed halfway (101 slices in all)
        again = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert again.returncode == 0, again.stderr
        n = SERIES * (SPAN // STEP + 1)
        # The summary counts over both runs: every sample once, series once.
        assert f"migrated {SERIES} series, {n} samples, 0 histograms" in again.stderr
        assert "(101 slices)" in again.stderr
        assert raw(serve + "/api/v1/read", start, end) == raw(prom.url + "/api/v1/read", start, end)
        # Resumed from the checkpoint: the second run read only what was left.
        first_line = next(x for x in again.stderr.splitlines() if x.startswith("migrate: "))
        assert int(first_line.split()[1].split("/")[0]) > done


def test_checkpoint_of_another_migration_is_refused(tmp_path: Path) -> None:
    m = Migration(
        "http://127.0.0.1:1/api/v1/read",
        "http://127.0.0.1:1/api/v1/write",
        selector="up",
        start_ms=0,
        end_ms=10,
        directory=tmp_path,
    )
    m._save(5, MigrationStats())
    other = Migration(
        "http://127.0.0.1:1/api/v1/read",
        "http://127.0.0.1:1/api/v1/write",
        selector="down",
        start_ms=0,
        end_ms=10,
        directory=tmp_path,
    )
    with pytest.raises(ValueError, match="another migration"):
        other.run()


def test_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(out, tty=True)
    p.begin(MigrationStats(slices=4))
    p.update(MigrationStats(series=3, samples=300, slices_done=2, slices=4))
    p.waiting(40, "connection refused")
    p.finish()
    text = out.getvalue()
    assert "\rall slices read, 40 points still to send (last error: connection refused)" in text
    assert text.startswith("\r[" + "#" * 15 + "." * 15 + "]  50%")
    assert "samples/s" in text and "ETA" in text and text.endswith("\n")


def test_bad_selector_is_a_usage_error(tmp_path: Path) -> None:
    from promwire.cli import main

    code = main(
        [
            "migrate", "http://127.0.0.1:1/api/v1/read", "http://127.0.0.1:1/api/v1/write",
            "--selector", "{job=", "--start", "0", "--end", "10", "--dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 2


def test_histogram_chunks_from_prometheus_do_not_stop_a_migration(
    tmp_path: Path, prometheus_bin: str
) -> None:
    """Prometheus 2.42 streams native histograms as HISTOGRAM chunks, which
    promwire decodes: the histogram and the float series next to it arrive
    (2.42's SAMPLES answers would have left the histogram out)."""
    from promwire import BucketSpan, Histogram

    now = int(time.time() * 1000)
    flags = [*FLAGS, "--enable-feature=native-histograms"]
    with PrometheusProcess(CONFIG, tmp_path / "src", flags=flags) as prom:
        hist = Histogram(
            count_int=2, sum=3.0, zero_count_int=0, positive_spans=[BucketSpan(0, 1)],
            positive_deltas=[2], timestamp=now,
        )  # fmt: skip
        with RemoteWriteClient(prom.url + "/api/v1/write") as c:
            c.send_series(
                [
                    TimeSeries([Label("__name__", "f"), Label("job", "h")], [Sample(1.5, now)]),
                    TimeSeries([Label("__name__", "h"), Label("job", "h")], histograms=[hist]),
                ]
            )
        prom.wait_for('h{job="h"}')
        # promwire decodes Prometheus' HISTOGRAM chunks (a streamed read alone)
        streamed_only = RemoteReadClient(
            prom.url + "/api/v1/read", response_types=[ResponseType.STREAMED_XOR_CHUNKS]
        )
        got = list(streamed_only.query('{job="h"}', now - 60_000, now + 1000))
        assert sum(len(ts.histograms) for ts in got) == 1  # series f and h
        with serve_process(tmp_path / "db", None) as served:
            stats = Migration(
                prom.url + "/api/v1/read",
                f"http://127.0.0.1:{served.port}/api/v1/write",
                selector='{job="h"}',
                start_ms=now - 60_000,
                end_ms=now + 1000,
                directory=tmp_path / "m",
            ).run()
            assert stats.samples == 1
            # 2.42's SAMPLES answers hold no histograms: they travel streamed.
            assert stats.histograms == 1
            with RemoteReadClient(f"http://127.0.0.1:{served.port}/api/v1/read") as client:
                got = [(ts.labels, ts.samples) for ts in client.query('f{job="h"}', 0, now + 1000)]
            assert got == [([Label("__name__", "f"), Label("job", "h")], [Sample(1.5, now)])]


def test_unreachable_ends_give_exit_1_and_say_why(source: Any, tmp_path: Path) -> None:
    prom, start, end = source
    dead = f"http://127.0.0.1:{free_port()}"
    common = ["--selector", '{job="mig"}', "--start", str(start), "--end", str(end)]
    no_source = subprocess.run(
        [sys.executable, "-m", "promwire", "migrate", dead + "/api/v1/read",
         dead + "/api/v1/write", *common, "--dir", str(tmp_path / "a"), "--read-retries", "0"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert no_source.returncode == 1 and "migrate stopped" in no_source.stderr
    no_destination = subprocess.run(
        [sys.executable, "-m", "promwire", "migrate", prom.url + "/api/v1/read",
         dead + "/api/v1/write", *common, "--dir", str(tmp_path / "b"), "--drain-timeout", "1"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert no_destination.returncode == 1
    assert "run the same migration again" in no_destination.stderr
    # Everything read is kept for that next run.
    assert f"{SERIES * (SPAN // STEP + 1)} points not yet acknowledged" in no_destination.stderr


def test_a_failed_slice_read_is_retried(tmp_path: Path) -> None:
    """A source answering 503 once: the slice is read again, nothing is lost."""
    import http.server
    import threading

    from promwire import QueryResult, ReadResponse, encode, snappy

    answers = [503]
    body = snappy.compress(
        encode(
            ReadResponse(
                results=[QueryResult([TimeSeries([Label("__name__", "m")], [Sample(2.0, 5)])])]
            )
        )
    )

    class Source(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status = answers.pop(0) if answers else 200
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Source)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with serve_process(tmp_path / "db", None) as served:
            stats = Migration(
                f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/read",
                f"http://127.0.0.1:{served.port}/api/v1/write",
                selector="m",
                start_ms=0,
                end_ms=10,
                directory=tmp_path / "m",
                response_types=[ResponseType.SAMPLES],
                read_backoff=0.01,
            ).run()
            assert (stats.series, stats.samples) == (1, 1)
            assert raw_all(served.port) == [([Label("__name__", "m")], [Sample(2.0, 5)])]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert answers == []  # the 503 was answered, and the read repeated


def raw_all(port: int) -> list[Any]:
    with RemoteReadClient(f"http://127.0.0.1:{port}/api/v1/read") as client:
        return [(ts.labels, ts.samples) for ts in client.query("m", 0, 10)]
