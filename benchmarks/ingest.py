"""``python -m benchmarks.ingest``: remote-write ingest and remote read, Prometheus vs promwire.

One run starts each server as its own process: Prometheus 2.42 with
``--web.enable-remote-write-receiver`` and ``promwire serve`` (uvicorn, SQLite;
extra ``serve`` arguments with ``--serve-args``, e.g. ``"--workers 2"``), and
sends both the same load from separate sender processes, bodies encoded by
Google's protobuf runtime (benchmarks/peers/protobuf_peer.py), not by promwire:

* ``--senders`` (4) senders like Prometheus' shards, each with ``--series``
  (2,000) series of ~10 labels, one sample per series per request, 15 s apart
  in sample time, ``--requests`` (300) requests each; values 40% constant,
  45% integer counters, 15% float gauges;
* reported per server: samples per server CPU-second (user + system of the
  server and its child processes, shutdown included), samples/s wall, peak
  RSS, bytes on disk per sample after a graceful shutdown, and the bare
  XOR-chunk floor of the same samples (each series cut into 120-sample
  chunks with promwire's bit-exact encoder, chunk bytes only);
* then a remote read of one series over 7 days at 15 s (40,320 samples), as
  SAMPLES and as STREAMED_XOR_CHUNKS, median wall time of ``--reads`` reads
  on one connection (what a dashboard refreshing does; both servers keep
  what they read, so the median is a warm read), and the first read of each
  kind, from freshly started servers holding that series.

``--quick`` is a smaller smoke run; ``--variant 20k`` sends 20,000 series in
all (5,000 a sender) instead of 8,000. ``--only promwire`` or
``--only prometheus`` runs one server. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEP_MS = 15_000
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
READ_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Read-Version": "0.1.0",
}


# ------------------------------------------------------------------ the load


def series_labels(sender: int, i: int) -> list[tuple[str, str]]:
    """~10 labels, as a node/app exporter's series carry them."""
    return sorted(
        [
            ("__name__", f"app_metric_{i % 97}_total"),
            ("job", f"job-{i % 7}"),
            ("instance", f"10.0.{sender}.{i % 50}:9100"),
            ("env", "prod"),
            ("region", f"eu-{i % 3}"),
            ("cluster", f"c{i % 5}"),
            ("service", f"svc-{i % 23}"),
            ("pod", f"pod-{sender}-{i // 4}"),
            ("handler", f"/api/v{i % 4}/items"),
            ("code", ("200", "404", "500")[i % 3]),
        ]
    )


def series_values(sender: int, i: int, requests: int) -> list[float]:
    """One series' values: 40% constant, 45% integer counters, 15% float gauges."""
    rng = random.Random(sender * 1_000_003 + i)
    kind = rng.random()
    if kind < 0.40:
        return [float(rng.choice((0, 1, 2, 1024)))] * requests
    if kind < 0.85:
        value = float(rng.randrange(1_000_000))
        out = []
        for _ in range(requests):
            value += rng.choice((0, 0, 1, 2, 5, 17, 120))
            out.append(value)
        return out
    return [rng.uniform(0, 100) for _ in range(requests)]


def sender_main(args: argparse.Namespace) -> int:
    """One sender: build every body first, say ``ready``, post them on ``go``."""
    from benchmarks.peers import protobuf_peer
    from promwire.chunks.xor import cut_chunks
    from promwire.codec.messages import Sample

    labels = [series_labels(args.index, i) for i in range(args.series)]
    values = [series_values(args.index, i, args.requests) for i in range(args.series)]
    bodies = []
    for r in range(args.requests):
        t = args.t0 + r * STEP_MS
        plain = (
            [(labels[i], ((values[i][r], t),), (), ()) for i in range(args.series)],
            (),
        )
        bodies.append(protobuf_peer.encode(protobuf_peer.build(plain)))
    floor = sum(
        len(c.data)
        for v in values
        for c in cut_chunks([Sample(x, args.t0 + r * STEP_MS) for r, x in enumerate(v)])
    )
    print("ready", flush=True)
    sys.stdin.readline()
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
    errors = 0
    latencies = []  # seconds from a body's first POST to its 2xx, retries included
    started = time.perf_counter()
    for body in bodies:
        sent = time.perf_counter()
        for _attempt in range(20):
            conn.request("POST", args.path, body, HEADERS)
            resp = conn.getresponse()
            resp.read()
            if resp.status < 300:
                break
            errors += 1
            time.sleep(0.05)
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    conn.close()
    print(
        json.dumps(
            {
                "elapsed": elapsed,
                "errors": errors,
                "samples": args.series * args.requests,
                "floor": floor,
                "latencies": latencies,
            }
        ),
        flush=True,
    )
    return 0


# ------------------------------------------------------------ process stats


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user + system seconds of ``pids`` (and their reaped children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def peak_rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return sum(
            os.path.getsize(str(path) + s)
            for s in ("", "-wal", "-shm")
            if Path(str(path) + s).exists()
        )
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ servers


class Server:
    """A server process: Prometheus or promwire serve."""

    def __init__(self, kind: str, workdir: Path, serve_args: list[str]) -> None:
        self.kind = kind
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        if kind == "prometheus":
            (workdir / "prometheus.yml").write_text("global: {scrape_interval: 1h}\n")
            self.data = workdir / "data"
            cmd = [
                "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
                "--storage.tsdb.retention.time=30d",
            ]
            self.write_path, self.read_path = "/api/v1/write", "/api/v1/read"
        else:
            self.data = workdir / "promwire.db"
            cmd = [
                sys.executable,
                "-m",
                "promwire.server.runner",
                "--db",
                str(self.data),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--server",
                "uvicorn",
                *serve_args,
            ]
            self.write_path, self.read_path = "/api/v1/write", "/api/v1/read"
        self.log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/-/ready" if kind == "prometheus" else "/")
                c.getresponse().read()
                c.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.1)

    def pids(self) -> list[int]:
        return _tree(self.proc.pid)

    def stop(self) -> tuple[float, float]:
        """Graceful stop (SIGTERM); returns (CPU seconds, peak RSS MB) measured
        just before the processes are reaped, shutdown work included."""
        pids = self.pids()
        cpu = rss = 0.0
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            # The largest seen: workers that exit first leave the sums (their
            # CPU moves into the parent's cutime once reaped, their RSS is gone).
            cpu = max(cpu, cpu_seconds(pids))
            rss = max(rss, peak_rss_mb(pids))
            state = _state(self.proc.pid)
            if state in ("Z", None):
                cpu = max(cpu, cpu_seconds([self.proc.pid]))
                break
            time.sleep(0.02)
        self.proc.wait(60)
        self.log.close()
        return cpu, rss


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


# ------------------------------------------------------------------- phases


def ingest(kind: str, opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = Server(kind, workdir / kind, opts.serve_args)
    t0 = (int(time.time() * 1000) // STEP_MS) * STEP_MS - opts.requests * STEP_MS
    senders = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.ingest",
                "--sender",
                "--index",
                str(k),
                "--port",
                str(server.port),
                "--path",
                server.write_path,
                "--series",
                str(opts.series),
                "--requests",
                str(opts.requests),
                "--t0",
                str(t0),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(opts.senders)
    ]
    for s in senders:
        assert s.stdout is not None
        assert s.stdout.readline().strip() == "ready"
    cpu0 = cpu_seconds(server.pids())
    started = time.perf_counter()
    for s in senders:
        assert s.stdin is not None
        s.stdin.write("go\n")
        s.stdin.flush()
    results = []
    for s in senders:
        assert s.stdout is not None
        results.append(json.loads(s.stdout.readline()))
        s.wait(60)
    wall = time.perf_counter() - started
    cpu1, rss = server.stop()
    samples = sum(r["samples"] for r in results)
    disk = disk_bytes(server.data)
    # Each sender's first request creates its series: reported on its own.
    latencies = sorted(x for r in results for x in r["latencies"][1:])
    first = max(r["latencies"][0] for r in results)
    return {
        "server": kind,
        "samples": samples,
        "errors": sum(r["errors"] for r in results),
        "cpu_s": cpu1 - cpu0,
        "samples_per_cpu_s": samples / max(cpu1 - cpu0, 1e-9),
        "samples_per_s_wall": samples / wall,
        "peak_rss_mb": rss,
        "disk_bytes": disk,
        "bytes_per_sample": disk / samples,
        "floor_bytes_per_sample": sum(r["floor"] for r in results) / samples,
        "write_ms_median": 1000 * latencies[len(latencies) // 2],
        "write_ms_p99": 1000 * latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)],
        "write_ms_max": 1000 * latencies[-1],
        "write_ms_first": 1000 * first,
    }


#: The read benchmark's series: 7 days at 15 s.
READ_SAMPLES = 7 * 86400 * 1000 // STEP_MS


def read_series_writes(start: int) -> list[bytes]:
    """The read benchmark's series (``read_bench``, from ``start``) as remote
    write bodies of 2,000 samples each, encoded by promwire."""
    from promwire import Label, Sample, TimeSeries, WriteRequest, encode, snappy

    labels = [Label("__name__", "read_bench"), Label("job", "bench")]
    values = series_values(9, 1, READ_SAMPLES)
    return [
        snappy.compress(
            encode(
                WriteRequest(
                    [
                        TimeSeries(
                            labels=labels,
                            samples=[
                                Sample(values[k], start + k * STEP_MS)
                                for k in range(lo, min(READ_SAMPLES, lo + 2000))
                            ],
                        )
                    ]
                )
            )
        )
        for lo in range(0, READ_SAMPLES, 2000)
    ]


def read_phase(kinds: list[str], opts: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """One series, 7 days at 15 s, written to each server, then read back
    ``opts.reads`` times from each in turn (request by request, the servers
    alternating, so that both medians come from the same minutes of a
    machine whose speed drifts), after a first (cold) read of each."""
    from promwire import LabelMatcher, MatchType, Query, ReadRequest, ResponseType, encode, snappy

    n = READ_SAMPLES
    end = (int(time.time() * 1000) // STEP_MS) * STEP_MS
    start = end - (n - 1) * STEP_MS
    writes = read_series_writes(start)
    servers: list[Server] = []
    try:
        conns = []
        for kind in kinds:
            server = Server(kind, workdir / f"read-{kind}", opts.serve_args)
            servers.append(server)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            conns.append(conn)
            for body in writes:
                conn.request("POST", server.write_path, body, HEADERS)
                resp = conn.getresponse()
                resp.read()
                assert resp.status < 300, (resp.status, kind)
        query = Query(start, end, [LabelMatcher(MatchType.EQ, "__name__", "read_bench")])
        out: list[dict[str, Any]] = [{"server": kind, "samples": n} for kind in kinds]
        kinds_of_read: list[tuple[str, list[ResponseType | int]]] = [
            ("samples_ms", [ResponseType.SAMPLES]),
            ("streamed_ms", [ResponseType.STREAMED_XOR_CHUNKS]),
        ]
        for name, types in kinds_of_read:
            body = snappy.compress(encode(ReadRequest([query], accepted_response_types=types)))
            times: list[list[float]] = [[] for _ in kinds]
            for _ in range(opts.reads):
                for i, (server, conn) in enumerate(zip(servers, conns, strict=True)):
                    t = time.perf_counter()
                    conn.request("POST", server.read_path, body, READ_HEADERS)
                    resp = conn.getresponse()
                    data = resp.read()
                    times[i].append(time.perf_counter() - t)
                    assert resp.status == 200, (resp.status, data[:200])
                    out[i][name.replace("_ms", "_bytes")] = len(data)
            for i in range(len(kinds)):
                out[i][name] = statistics.median(times[i][1:]) * 1000
                out[i][name.replace("_ms", "_first_ms")] = times[i][0] * 1000  # caches cold
        for conn in conns:
            conn.close()
    finally:
        for server in servers:
            server.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__)
    parser.add_argument("--sender", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/api/v1/write", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--series", type=int, default=2000, help="series per sender")
    parser.add_argument("--requests", type=int, default=300, help="requests per sender")
    parser.add_argument("--variant", choices=("8k", "20k"), default="8k")
    parser.add_argument("--reads", type=int, default=41, help="reads per server and kind")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--only", choices=("prometheus", "promwire"), default=None)
    parser.add_argument("--no-read", action="store_true", help="skip the remote read phase")
    parser.add_argument("--serve-args", default="", help="extra promwire serve arguments")
    parser.add_argument("--json", default=None, help="also write the results here")
    opts = parser.parse_args(argv)
    if opts.sender:
        return sender_main(opts)
    opts.serve_args = shlex.split(opts.serve_args)
    if opts.variant == "20k":
        opts.series = 20_000 // opts.senders
    if opts.quick:
        opts.series, opts.requests, opts.reads = 200, 40, 3
    kinds = [opts.only] if opts.only else ["prometheus", "promwire"]
    results: dict[str, Any] = {"ingest": [], "read": []}
    with tempfile.TemporaryDirectory(prefix="promwire-ingest-") as tmp:
        for kind in kinds:
            results["ingest"].append(ingest(kind, opts, Path(tmp)))
        if not opts.no_read:
            results["read"] = read_phase(kinds, opts, Path(tmp))
    print(report(results, opts))
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return 0


def report(results: dict[str, Any], opts: argparse.Namespace) -> str:
    lines = [
        f"ingest: {opts.senders} senders x {opts.series} series x {opts.requests} requests, "
        f"serve args {opts.serve_args or 'none'}",
        "",
        "| server | samples/CPU-s | samples/s wall | peak RSS MB | disk B/sample | "
        "XOR floor B/sample | disk/floor | 5xx retried | write ms: median / p99 / max | "
        "first write ms (new series) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["ingest"]:
        lines.append(
            f"| {r['server']} | {r['samples_per_cpu_s']:,.0f} | {r['samples_per_s_wall']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['bytes_per_sample']:.2f} | "
            f"{r['floor_bytes_per_sample']:.2f} | "
            f"{r['bytes_per_sample'] / r['floor_bytes_per_sample']:.2f}x | {r['errors']} | "
            f"{r['write_ms_median']:.1f} / {r['write_ms_p99']:.0f} / {r['write_ms_max']:.0f} | "
            f"{r['write_ms_first']:.0f} |"
        )
    if results["read"]:
        lines += [
            "",
            "| server | read 1 series x 7 d, SAMPLES (ms, median) | first read | "
            "STREAMED_XOR_CHUNKS (ms, median) | first read |",
            "|---|---|---|---|---|",
        ]
        for r in results["read"]:
            lines.append(
                f"| {r['server']} | {r['samples_ms']:.1f} | {r.get('samples_first_ms', 0):.1f} | "
                f"{r['streamed_ms']:.1f} | {r.get('streamed_first_ms', 0):.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
