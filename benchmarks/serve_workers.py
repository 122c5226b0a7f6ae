"""Ingest samples/s of ``promwire serve --workers N`` over HTTP, for several N.

    python benchmarks/serve_workers.py --workers 1 2 [--seconds 10] [--clients 4]

For each N: starts ``promwire serve --workers N`` on a fresh SQLite file and a
free port, then ``--clients`` client processes post remote write 1.0 requests
(Prometheus-shaped: 500 series of one sample each, distinct timestamps, so
every sample is new) for ``--seconds`` and count the samples acknowledged
(204). Prints samples/s per N and the ratio to N=1. The clients run on the
same machine and take CPU too: on a small machine the figure is a lower bound
of what the receiver does, and the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promwire import Label, Sample, TimeSeries, WriteRequest, encode, snappy

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
SERIES_PER_REQUEST = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(client: int, n: int) -> bytes:
    series = [
        TimeSeries(
            [Label("__name__", "bench"), Label("client", str(client)), Label("i", str(i))],
            [Sample(float(n), 1000 * n)],
        )
        for i in range(SERIES_PER_REQUEST)
    ]
    return snappy.compress(encode(WriteRequest(series)))


def client(port: int, index: int, seconds: float, out: multiprocessing.Queue[int]) -> None:
    bodies = [body(index, n) for n in range(200)]  # built before the clock starts
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    done = 0
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if n == len(bodies):
            bodies.append(body(index, n))
        conn.request("POST", "/api/v1/write", bodies[n], HEADERS)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 204:
            done += SERIES_PER_REQUEST
        n += 1
    conn.close()
    out.put(done)


def measure(workers: int, seconds: float, clients: int) -> float:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        command = [sys.executable, "-m", "promwire.server.runner", "--db", str(db)]
        command += ["--listen", f"127.0.0.1:{port}", "--workers", str(workers)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            queue: multiprocessing.Queue[int] = multiprocessing.Queue()
            procs = [
                multiprocessing.Process(target=client, args=(port, i, seconds, queue))
                for i in range(clients)
            ]
            start = time.monotonic()
            for p in procs:
                p.start()
            total = sum(queue.get() for _ in procs)
            for p in procs:
                p.join()
            elapsed = time.monotonic() - start
        finally:
            server.terminate()
            server.wait(60)
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, clients: {args.clients}, {args.seconds:g} s each")
    first = None
    for n in args.workers:
        rate = measure(n, args.seconds, args.clients)
        first = first or rate
        print(
            f"--workers {n}: {rate:,.0f} samples/s "
            f"({rate / first:.2f}x of --workers {args.workers[0]})"
        )


if __name__ == "__main__":
    main()
