"""DurableWriter throughput: 1 shard against 4, into ``promwire serve`` and into
Prometheus' own receiver (``--web.enable-remote-write-receiver``).

Two measures per receiver and shard count:

* **live**: append ``--samples`` samples (batches of ``--batch`` points, fsync
  per append) while the receiver is up; samples/s from the first append to
  the last 2xx;
* **backlog**: the receiver is down while the same amount is appended (and
  ``--down`` seconds more), then it starts; samples/s from the moment it
  accepts connections until the log is empty (the drain after an outage).

Series: ``--series`` series ``bench_durable{run=..., i=...}``, one sample per
second per series ending now (Prometheus accepts them in its head block).
Every run checks that the receiver holds exactly what was appended.

Run: ``python -m benchmarks.bench_durable [--samples 200000 --down 60 --repeat 1]``
(a quick run: ``--samples 20000 --down 1``; ``--repeat 3`` shows medians).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from promwire import Label, Sample, TimeSeries
from promwire.client.durable import DurableWriter
from promwire.client.reader import RemoteReadClient
from tests.support.prometheus import PrometheusProcess, free_port

PROM_CONFIG = "global:\n  scrape_interval: 1h\nscrape_configs: []\n"


def stream(run: str, series: int, samples: int, batch: int) -> Iterator[list[TimeSeries]]:
    """Batches of ``batch`` points: round-robin over series, time ascending."""
    per_series = samples // series
    end = int(time.time() * 1000)
    start = end - per_series * 1000
    out: list[TimeSeries] = []
    points = 0
    for k in range(per_series):
        for i in range(series):
            out.append(
                TimeSeries(
                    [Label("__name__", "bench_durable"), Label("i", str(i)), Label("run", run)],
                    [Sample(float(k), start + k * 1000)],
                )
            )
            points += 1
            if points == batch:
                yield out
                out, points = [], 0
    if out:
        yield out


class Receiver:
    """A receiver started on a fixed free port, possibly later than the writer."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._stop: Callable[[], None] = lambda: None

    def start(self) -> None:
        if self.kind == "prometheus":
            prom = PrometheusProcess(
                PROM_CONFIG,
                self.workdir / "prom",
                flags=["--web.enable-remote-write-receiver"],
                port=self.port,
            ).start()
            self._stop = prom.stop
            return
        log = (self.workdir / "serve.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "promwire.server.runner", "--db",
                str(self.workdir / "serve.db"), "--listen", f"127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        def stop() -> None:
            proc.terminate()
            proc.wait(10)
            log.close()

        self._stop = stop
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        stop()
        tail = (self.workdir / "serve.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"promwire serve did not start on port {self.port}; its output:\n{tail}")

    def stop(self) -> None:
        self._stop()

    def count(self, run: str) -> int:
        with RemoteReadClient(self.base + "/api/v1/read") as c:
            q = c.query(f'bench_durable{{run="{run}"}}', 0, int(time.time() * 1000) + 60_000)
            return sum(len(ts.samples) for ts in q)


def one(
    kind: str, shards: int, mode: str, args: argparse.Namespace, tmp: Path, rep: int = 0
) -> float:
    work = tmp / f"{kind}-{shards}-{mode}-{rep}"
    work.mkdir()
    receiver = Receiver(kind, work)
    run = f"{mode}-{shards}-{rep}"
    if mode == "live":
        receiver.start()
    writer = DurableWriter(
        receiver.base + "/api/v1/write",
        work / "wal",
        shards=shards,
        retry_wait=0.1,
        max_retry_wait=0.25,
        min_backoff=0.01,
        max_backoff=0.1,
    )
    try:
        t0 = time.perf_counter()
        for part in stream(run, args.series, args.samples, args.batch):
            writer.append(part)
        if mode == "backlog":
            time.sleep(args.down)
            receiver.start()
            t0 = time.perf_counter()
        assert writer.flush(600), "not drained"
        seconds = time.perf_counter() - t0
        writer.close()
        got = receiver.count(run)
        expected = (args.samples // args.series) * args.series
        assert got == expected, f"{kind} holds {got} samples of {run}, expected {expected}"
    finally:
        writer.close(0.0)
        receiver.stop()
    return float(expected / seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000, help="points per append")
    ap.add_argument("--down", type=float, default=60.0, help="seconds the receiver stays down")
    ap.add_argument("--receivers", default="serve,prometheus")
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    args = ap.parse_args()
    print(
        f"{args.samples} samples, {args.series} series, {args.batch} points per append, "
        f"receiver down {args.down} s, median of {args.repeat}"
    )
    print("| receiver | mode | 1 shard (samples/s) | 4 shards (samples/s) | 4 / 1 |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in args.receivers.split(","):
            for mode in ("live", "backlog"):
                rates = [
                    statistics.median(one(kind, n, mode, args, tmp, r) for r in range(args.repeat))
                    for n in (1, 4)
                ]
                print(
                    f"| {kind} | {mode} | {rates[0]:,.0f} | {rates[1]:,.0f} | "
                    f"{rates[1] / rates[0]:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
