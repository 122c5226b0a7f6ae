"""Request latency of ``promwire serve`` on each uvicorn stack (HTTP parser x event loop).

    python -m benchmarks.serve_stack [--rounds 61]

Writes one series of 7 days at 15 s (40,320 samples: 337 XOR chunks, about
326 KB streamed) into a fresh SQLite file through ``promwire serve``, then
starts ``promwire serve --http H --loop L`` on that file for each of h11 and
httptools, asyncio and uvloop (four servers at once, on free ports) and
times three requests on one kept-alive connection per server: ``GET
/-/healthy``, the streamed remote read (``STREAMED_XOR_CHUNKS``) of the
whole series, and a streamed read matching nothing. The servers are visited
in turn every round, so a burst of load from elsewhere on the machine falls
on all of them alike; each visit sends a request three times back to back
and times the third (the first wakes a process that sat idle while the
others ran, which adds the same ~0.3 ms to every server here and hides the
difference between them). The table gives each cell's median over the
rounds (ms) and, per column, the ratio to h11/asyncio (what ``serve`` ran
before it chose httptools and uvloop by default).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.ingest import (
    HEADERS,
    READ_HEADERS,
    READ_SAMPLES,
    STEP_MS,
    free_port,
    read_series_writes,
)
from promwire import (
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ResponseType,
    encode,
    snappy,
)

STACKS = [("h11", "asyncio"), ("httptools", "asyncio"), ("httptools", "uvloop"), ("h11", "uvloop")]
REQUESTS = ["GET /-/healthy", "streamed read", "empty streamed read"]
# Requests sent back to back per timing; the last is timed (see the docstring).
BURST = 3


class Server:
    """``promwire serve --http parser --loop loop`` on ``db``, a free port and one connection."""

    def __init__(self, db: Path, parser: str = "auto", loop: str = "auto") -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "promwire", "serve", "--db", str(db)),
                *("--listen", f"127.0.0.1:{self.port}", "--server", "uvicorn"),
                *("--http", parser, "--loop", loop),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.request("GET", "/-/healthy")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None) -> float:
        """Seconds from sending the request to the answer's last byte."""
        headers = READ_HEADERS if path.endswith("read") else HEADERS
        started = time.perf_counter()
        self.conn.request(method, path, body, headers if body else {})
        resp = self.conn.getresponse()
        answer = resp.read()
        took = time.perf_counter() - started
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {answer[:200]!r}")
        return took

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(30)


def read_body(name: str, start: int, end: int) -> bytes:
    query = Query(start, end, [LabelMatcher(MatchType.EQ, "__name__", name)])
    accepted: list[ResponseType | int] = [ResponseType.STREAMED_XOR_CHUNKS]
    return snappy.compress(encode(ReadRequest([query], accepted_response_types=accepted)))


def fill(db: Path, start: int) -> None:
    """The series, written through a server in requests of 2,000 samples."""
    server = Server(db)
    try:
        for body in read_series_writes(start):
            server.request("POST", "/api/v1/write", body)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    cli.add_argument("--rounds", type=int, default=61, help="timings per cell (default 61)")
    rounds = cli.parse_args(argv).rounds
    end = (int(time.time() * 1000) // STEP_MS) * STEP_MS
    start = end - (READ_SAMPLES - 1) * STEP_MS
    with tempfile.TemporaryDirectory(prefix="promwire-stack-") as tmp:
        db = Path(tmp) / "bench.db"
        fill(db, start)
        bodies = [read_body("read_bench", start, end), read_body("nothing", start, end)]
        calls: list[Callable[[Server], float]] = [
            lambda s: s.request("GET", "/-/healthy"),
            lambda s: s.request("POST", "/api/v1/read", bodies[0]),
            lambda s: s.request("POST", "/api/v1/read", bodies[1]),
        ]
        servers = [Server(db, parser, loop) for parser, loop in STACKS]
        try:
            for server in servers:  # warm up: imports, SQLite's page cache
                for call in calls:
                    call(server)
            times = [[[0.0] * rounds for _ in calls] for _ in servers]
            for r in range(rounds):
                for s, server in enumerate(servers):
                    for c, call in enumerate(calls):
                        for _ in range(BURST - 1):
                            call(server)
                        times[s][c][r] = call(server)
        finally:
            for server in servers:
                server.stop()
    medians = [[statistics.median(cell) * 1000 for cell in row] for row in times]
    print(f"median ms over {rounds} rounds (ratio to h11/asyncio)")
    print("| http / loop | " + " | ".join(REQUESTS) + " |")
    print("|---|" + "---|" * len(REQUESTS))
    for (parser, loop), row in zip(STACKS, medians, strict=True):
        cells = [f"{ms:.3f} ({ms / base:.2f}x)" for ms, base in zip(row, medians[0], strict=True)]
        print(f"| {parser} / {loop} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
