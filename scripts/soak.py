#!/usr/bin/env python3
"""Fault soak test: a real Prometheus remote-writes into a failing, crashing promwire receiver.

    python3 scripts/soak.py --minutes 5 --fail-rate 0.2

What runs (all on 127.0.0.1):

* a **receiver** subprocess (this script with ``receiver`` as first argument):
  :class:`promwire.stores.sqlite.SQLiteStorage` wrapped in :class:`FailingStorage`,
  served by :class:`promwire.server.asgi.RemoteStorageApp` under uvicorn (or
  :class:`promwire.server.wsgi.RemoteStorageApp` under a threaded wsgiref server).
  ``FailingStorage`` raises :class:`promwire.errors.StorageError` (answered 500,
  which Prometheus retries) for ``--fail-rate`` of the writes: half of them
  *before* the write reaches SQLite, half *after* SQLite committed it, so the
  retry resends samples the store already holds.
* a **Prometheus** (the Debian 2.42 binary) scraping itself and a synthetic
  target (``--extra-series`` gauges with awkward values and label values) every
  second and remote-writing everything to the receiver with
  ``min_backoff 50ms``, ``max_backoff 1s``, ``batch_send_deadline 1s``.
* half-way through (``--kill-at``), the receiver is **SIGKILLed**, stays down
  ``--down-seconds``, and is restarted on the same port and database.

At the end scraping is stopped by reloading Prometheus with no scrape jobs (its
remote-write queue is left untouched, since its config is unchanged), and the
script waits until Prometheus says its queue is empty and has sent its highest
timestamp, and the store's row count has gone flat. Only then is Prometheus'
own TSDB compared with the store, series by series and in time chunks: every
raw sample of every series (``{__name__="..."}[range]`` range vectors give the
exact samples) must be in the store once, with the same float bits (any NaN
matches any NaN, as Prometheus' JSON has no NaN payloads), and the store must
hold nothing else apart from staleness markers. Prometheus is then stopped with
SIGTERM (``--storage.remote.flush-deadline=1s``).

Why not just SIGTERM Prometheus and compare? On shutdown Prometheus waits at
most the flush deadline for its queues and then drops what is left; with a
receiver failing 20% of requests that tail can be seconds long, and the loss
would be Prometheus' choice, not the receiver's. Stopping the scrapes first and
draining explicitly tests the receiver and nothing else.

Prints a summary (samples/s held, missing, duplicates) and exits 1 if anything
was lost, duplicated, altered or added; 2 if the run itself broke.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Runnable from a checkout without installing promwire.
sys.path.insert(0, str(REPO))

from promwire import STALE_NAN_BITS, Query, QueryResult, StorageError, WriteRequest  # noqa: E402
from promwire.chunks.xor import decode_xor_bits  # noqa: E402
from promwire.stores.protocol import BaseStorage  # noqa: E402
from promwire.stores.sqlite import SQLiteStorage  # noqa: E402
from promwire.stores.sqlite_chunks import chunk_mint  # noqa: E402
from promwire.stores.sqlite_head import HeadCache  # noqa: E402
from promwire.stores.sqlite_index import series_labels  # noqa: E402

PROMETHEUS = "prometheus"
WRITE_PATH = "/api/v1/write"

_d = struct.Struct("<d")
_q = struct.Struct("<q")


NEGATIVE_ZERO_BITS = -(1 << 63)


def float_bits(value: float) -> int:
    """The IEEE-754 bits of ``value`` as a signed int64 (how SQLiteStorage stores them)."""
    return int(_q.unpack(_d.pack(value))[0])


def is_nan_bits(bits: int) -> bool:
    return math.isnan(_d.unpack(_q.pack(bits))[0])


# =================================================================== the receiver


class EventLog:
    """Append-only text file of what the receiver did, one short line per write.

    Both receiver incarnations append to the same file; a line is written with
    a single ``write`` on an ``O_APPEND`` descriptor, so it survives SIGKILL
    whole or not at all (at most the last line is lost).
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, kind: str, n: int) -> None:
        os.write(self.fd, f"{kind} {n}\n".encode())


def batch_signature(request: WriteRequest) -> tuple[Any, ...]:
    """Identifies a batch when Prometheus resends it (it resends the very same request)."""
    first = request.timeseries[0] if request.timeseries else None
    last = request.timeseries[-1] if request.timeseries else None
    return (
        len(request.timeseries),
        sum(len(ts.samples) for ts in request.timeseries),
        tuple(first.labels) if first else (),
        first.samples[0].timestamp if first and first.samples else None,
        last.samples[-1].timestamp if last and last.samples else None,
    )


class FailingStorage(BaseStorage):
    """Fails ``rate`` of the writes with :class:`StorageError` (a 500 the sender retries).

    Half of the failures happen before ``inner.write`` (nothing stored), half
    after it returned (committed, but the sender is told it failed, like a lost
    response). Event kinds logged: ``B``/``A`` failure before/after commit,
    ``O`` success, ``R`` a resend of a batch that had failed after commit; the
    number is the batch's sample count.
    """

    def __init__(self, inner: SQLiteStorage, rate: float, seed: int, log: EventLog) -> None:
        self.inner = inner
        self.rate = rate
        self.rng = random.Random(seed)
        self.log = log
        self.lock = threading.Lock()
        self.committed_but_failed: set[tuple[Any, ...]] = set()

    def write(self, ctx: Any, request: WriteRequest) -> None:
        n = sum(len(ts.samples) for ts in request.timeseries)
        sig = batch_signature(request)
        with self.lock:
            roll = self.rng.random()
            if sig in self.committed_but_failed:
                self.log("R", n)
        if roll < self.rate / 2:
            self.log("B", n)
            raise StorageError("soak: injected failure before committing")
        self.inner.write(ctx, request)
        if roll < self.rate:
            with self.lock:
                if len(self.committed_but_failed) > 100_000:
                    self.committed_but_failed.clear()
                self.committed_but_failed.add(sig)
            self.log("A", n)
            raise StorageError("soak: injected failure after committing")
        self.log("O", n)

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        return self.inner.process_query(ctx, query)


def run_receiver(argv: Sequence[str]) -> int:
    """``soak.py receiver --db F --port P --fail-rate R --seed S --events F [--server S]``."""
    p = argparse.ArgumentParser(prog="soak.py receiver")
    p.add_argument("--db", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fail-rate", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--server", choices=("uvicorn", "wsgiref"), default="uvicorn")
    args = p.parse_args(argv)
    log = EventLog(args.events)
    log("S", os.getpid())
    storage = FailingStorage(SQLiteStorage(args.db), args.fail_rate, args.seed, log)
    try:
        if args.server == "uvicorn":
            import uvicorn

            from promwire.server.asgi import RemoteStorageApp as AsgiApp

            uvicorn.run(
                AsgiApp(storage, WRITE_PATH, None),
                host="127.0.0.1",
                port=args.port,
                log_level="warning",
                access_log=False,
            )
        else:
            import socketserver
            from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

            from promwire.server.wsgi import RemoteStorageApp as WsgiApp

            class Server(socketserver.ThreadingMixIn, WSGIServer):
                daemon_threads = True

            class Quiet(WSGIRequestHandler):
                def log_message(self, format: str, *a: Any) -> None:
                    pass

            def stop(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt

            signal.signal(signal.SIGTERM, stop)
            with (
                make_server(
                    "127.0.0.1",
                    args.port,
                    WsgiApp(storage, WRITE_PATH, None),
                    server_class=Server,
                    handler_class=Quiet,
                ) as httpd,
                suppress(KeyboardInterrupt),
            ):
                httpd.serve_forever()
    finally:
        storage.inner.close()
    return 0


class Receiver:
    """The receiver subprocess, restartable on the same port and database."""

    def __init__(self, workdir: Path, port: int, fail_rate: float, seed: int, server: str) -> None:
        self.db = workdir / "soak.db"
        self.events = workdir / "receiver.events"
        self.log_path = workdir / "receiver.log"
        self.port = port
        self.fail_rate = fail_rate
        self.seed = seed
        self.server = server
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "receiver",
                    *("--db", str(self.db), "--port", str(self.port)),
                    *("--fail-rate", str(self.fail_rate), "--events", str(self.events)),
                    # A new seed per incarnation, so a restart does not replay the same rolls.
                    *("--seed", str(self.seed + self.starts), "--server", self.server),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"receiver not listening after 20 s: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def event_counts(self) -> dict[str, Any]:
        """Writes (requests) and samples per event kind, and process starts, from the event log."""
        requests: Counter[str] = Counter()
        samples: Counter[str] = Counter()
        starts = 0
        with open(self.events) as f:
            for line in f:
                kind, _, n = line.partition(" ")
                if kind == "S":
                    starts += 1
                elif n.strip().isdigit():
                    requests[kind] += 1
                    samples[kind] += int(n)
        return {"requests": dict(requests), "samples": dict(samples), "starts": starts}


# ============================================================ the synthetic target

# Label values that need escaping in the text format or are not ASCII.
LABEL_VALUES = ["plain", 'quote " and backslash \\', "caf\u00e9 \u2603", "new\nline"]


def awkward_value(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.05:
        return rng.choice([-0.0, 5e-324, 1e-300, 1.7976931348623157e308, math.inf, -math.inf])
    if pick < 0.5:
        return float(rng.randrange(-(10**6), 10**6))
    return rng.uniform(-1e9, 1e9) * 10.0 ** rng.randrange(-20, 20)


def text_value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)  # shortest round-trip form: Go's ParseFloat reads back the same bits


def escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@contextmanager
def synthetic_target(series: int, seed: int) -> Iterator[int]:
    """An exposition (text format) with ``series`` gauges whose values change every scrape."""
    rng = random.Random(seed)
    lock = threading.Lock()
    scrapes = [0]

    def body() -> bytes:
        with lock:
            scrapes[0] += 1
            lines = [
                "# HELP soak_value Random values.",
                "# TYPE soak_value gauge",
                *(
                    f'soak_value{{i="{i}",kind="{escape(LABEL_VALUES[i % len(LABEL_VALUES)])}"}} '
                    f"{text_value(awkward_value(rng))}"
                    for i in range(series)
                ),
                "# TYPE soak_scrapes_total counter",
                f"soak_scrapes_total {scrapes[0]}",
            ]
        return ("\n".join(lines) + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# =================================================================== Prometheus


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A Prometheus on loopback with its own data dir; ``reload`` rewrites its config."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, config: str) -> None:
        self.config_path.write_text(config)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    # On shutdown, wait at most 1 s for the remote-write queue.
                    "--storage.remote.flush-deadline=1s",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after 30 s: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)

    def reload(self, config: str) -> None:
        """Apply ``config`` (SIGHUP) and wait until Prometheus reports the reload succeeded."""
        before = time.time()
        self.config_path.write_text(config)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = self.metrics()
            reloaded_at = m.get("prometheus_config_last_reload_success_timestamp_seconds", 0)
            if (
                m.get("prometheus_config_last_reload_successful", 0) == 1
                and reloaded_at >= before - 1
            ):
                return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus did not reload: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def api(self, path: str, **params: Any) -> Any:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=60) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def metrics(self) -> dict[str, float]:
        """Prometheus' own /metrics, summed per metric name (labels dropped)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
        return out


def prometheus_config(prom_port: int, receiver_port: int, target_port: int | None) -> str:
    jobs = [
        f"  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]\n"
    ]
    if target_port is not None:
        jobs.append(
            f"  - job_name: soak\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
    return (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n" + "".join(jobs) + remote_write_config(receiver_port)
    )


def remote_write_config(receiver_port: int) -> str:
    # Kept byte-identical across the final reload: an unchanged remote_write
    # block keeps its queue (and everything pending in it) across a reload.
    return (
        "remote_write:\n"
        f"  - url: http://127.0.0.1:{receiver_port}{WRITE_PATH}\n"
        "    queue_config: {min_backoff: 50ms, max_backoff: 1s, batch_send_deadline: 1s}\n"
    )


# =================================================================== comparison


@dataclass
class Comparison:
    series: int = 0
    expected: int = 0  # raw samples in Prometheus' TSDB
    matched: int = 0
    missing: int = 0
    mismatched: int = 0  # same (series, ts), different value
    signed_zeros: int = 0  # -0.0 in Prometheus stored as +0.0: the sender's doing, see below
    stored_total: int = 0  # rows in the store (stale markers included)
    stored_stale: int = 0
    extra: int = 0  # stored non-stale samples Prometheus does not have
    duplicates: int = 0  # (series, ts) with more than one row
    missing_examples: list[str] = field(default_factory=list)
    mismatch_examples: list[str] = field(default_factory=list)


def labels_key(labels: dict[str, str]) -> str:
    """SQLiteStorage's series key: JSON [[name, value], ...] sorted, empty values dropped."""
    pairs = sorted((k, v) for k, v in labels.items() if v != "")
    return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))


def compare(prom: Prometheus, db: Path, start_ms: int, end_ms: int, chunk_s: int) -> Comparison:
    """Check every raw sample Prometheus holds in ``[start_ms, end_ms)`` against the store."""
    result = Comparison()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        every = [int(r[0]) for r in conn.execute("SELECT id FROM series")]
        ids = {
            json.dumps(pairs, ensure_ascii=False, separators=(",", ":")): sid
            for sid, pairs in series_labels(conn, every)
        }
        samples = stored_samples(conn)
        seen_series: set[str] = set()
        names = prom.api("/api/v1/label/__name__/values")
        chunk_ms = chunk_s * 1000
        for lo in range(start_ms, end_ms, chunk_ms):
            hi = min(lo + chunk_ms, end_ms)
            # Range vectors give raw samples; ask a little more than the chunk
            # and cut it here, so boundary inclusiveness does not matter.
            span = f"{(hi - lo) // 1000 + 2}s"
            for name in names:
                data = prom.api(
                    "/api/v1/query",
                    query=f'{{__name__="{name}"}}[{span}]',
                    time=f"{(hi - 1) / 1000:.3f}",
                )
                for series in data["result"]:
                    points = [
                        (round(float(t) * 1000), float(v))
                        for t, v in series.get("values", [])
                        if lo <= round(float(t) * 1000) < hi
                    ]
                    if not points:
                        continue
                    key = labels_key(series["metric"])
                    seen_series.add(key)
                    result.expected += len(points)
                    sid = ids.get(key)
                    everything = samples.get(sid, {}) if sid is not None else {}
                    stored = {t: b for t, b in everything.items() if lo <= t < hi}
                    for t, v in points:
                        bits = stored.get(t)
                        if bits is None:
                            result.missing += 1
                            if len(result.missing_examples) < 5:
                                result.missing_examples.append(f"{key} @ {t}")
                        elif bits == float_bits(v) or (math.isnan(v) and is_nan_bits(bits)):
                            result.matched += 1
                        elif bits == 0 and float_bits(v) == NEGATIVE_ZERO_BITS:
                            # Prometheus' gogo-generated marshaller skips a double
                            # field when `value != 0`, which -0.0 is not: -0.0 goes
                            # out as an absent field and arrives as +0.0.
                            result.matched += 1
                            result.signed_zeros += 1
                        else:
                            result.mismatched += 1
                            if len(result.mismatch_examples) < 5:
                                result.mismatch_examples.append(
                                    f"{key} @ {t}: prometheus {v!r}, stored bits {bits:#x}"
                                )
        result.series = len(seen_series)
        result.stored_total = sum(len(points) for points in samples.values())
        result.stored_stale = sum(
            1 for points in samples.values() for b in points.values() if b == STALE_NAN_BITS
        )
        # Impossible by the format (one value per series and timestamp); counted
        # anyway, it is what the soak promises: chunks of one series overlapping.
        result.duplicates = duplicate_chunks(conn)
        nonstale = result.stored_total - result.stored_stale
        result.extra = max(0, nonstale - result.matched - result.mismatched)
    finally:
        conn.close()
    return result


def stored_samples(conn: sqlite3.Connection) -> dict[int, dict[int, int]]:
    """Every float sample in the store as ``{series id: {ts: value bits}}``, read
    from the file as SQLiteStorage keeps it (XOR chunks, then head records;
    the first value written for a timestamp wins), in one read transaction.
    Bits as int64, as :func:`float_bits` gives them."""
    out = _stored_samples_unsigned(conn)
    for points in out.values():
        for t, b in points.items():
            if b >= 1 << 63:
                points[t] = b - (1 << 64)
    return out


def _stored_samples_unsigned(conn: sqlite3.Connection) -> dict[int, dict[int, int]]:
    out: dict[int, dict[int, int]] = {}
    conn.execute("BEGIN")
    try:
        for sid, data in conn.execute(
            "SELECT series_id, data FROM chunks ORDER BY series_id, maxt"
        ):
            ts, bits = decode_xor_bits(data)
            points = out.setdefault(int(sid), {})
            for t, b in zip(ts, bits, strict=True):
                points.setdefault(t, b)
        view = HeadCache().view(conn)
        for sid in {s for rec in view.records for s in rec.series_ids()}:
            points = out.setdefault(sid, {})
            for t, b in zip(*view.samples(sid), strict=True):
                points.setdefault(t, b)
    finally:
        conn.execute("COMMIT")
    return out


def duplicate_chunks(conn: sqlite3.Connection) -> int:
    """Pairs of chunks of one series whose time ranges overlap (the format forbids it)."""
    conn.create_function("chunk_mint", 1, chunk_mint, deterministic=True)
    return int(
        conn.execute(
            "SELECT count(*) FROM chunks a JOIN chunks b ON a.series_id = b.series_id "
            "AND a.maxt < b.maxt AND chunk_mint(b.data) <= a.maxt"
        ).fetchone()[0]
    )


def stored_count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        return sum(len(points) for points in stored_samples(conn).values())
    finally:
        conn.close()


def drain(prom: Prometheus, db: Path, timeout: float) -> dict[str, float]:
    """Wait until Prometheus' queue is empty, caught up, and the store is flat for 2 s.

    Called after scraping stopped. Staleness markers for the removed targets
    are written one scrape interval or so after the reload, so give them 3 s first.
    """
    time.sleep(3)
    deadline = time.monotonic() + timeout
    last_count, flat_since = -1, time.monotonic()
    while True:
        m = prom.metrics()
        pending = m.get("prometheus_remote_storage_samples_pending", -1)
        highest = m.get("prometheus_remote_storage_highest_timestamp_in_seconds", 0)
        sent = m.get("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", 0)
        count = stored_count(db)
        now = time.monotonic()
        if count != last_count:
            last_count, flat_since = count, now
        if pending == 0 and sent >= highest > 0 and now - flat_since >= 2:
            return m
        if now > deadline:
            raise RuntimeError(
                f"queue did not drain in {timeout:.0f} s: pending={pending} "
                f"highest={highest} sent={sent} stored={count}"
            )
        time.sleep(0.5)


# ======================================================================== the run


@dataclass
class Summary:
    minutes: float
    fail_rate: float
    server: str
    extra_series: int
    duration_s: float = 0.0
    kill_at_s: float | None = None
    down_s: float = 0.0
    drain_s: float = 0.0
    window_ms: tuple[int, int] = (0, 0)  # the compared window [start, end)
    samples_per_s: float = 0.0
    comparison: dict[str, Any] = field(default_factory=dict)
    receiver: dict[str, Any] = field(default_factory=dict)
    prometheus: dict[str, float] = field(default_factory=dict)
    ok: bool = False


PROM_COUNTERS = (
    "prometheus_remote_storage_samples_total",
    "prometheus_remote_storage_samples_retried_total",
    "prometheus_remote_storage_samples_failed_total",
    "prometheus_remote_storage_samples_dropped_total",
    "prometheus_remote_storage_shards",
)


def run(args: argparse.Namespace, workdir: Path) -> Summary:
    summary = Summary(args.minutes, args.fail_rate, args.server, args.extra_series)
    binary = args.prometheus
    receiver = Receiver(workdir, free_port(), args.fail_rate, args.seed, args.server)
    prom = Prometheus(binary, workdir / "prom")
    prom.workdir.mkdir(parents=True, exist_ok=True)
    duration = args.minutes * 60
    with synthetic_target(args.extra_series, args.seed) as target_port:
        receiver.start()
        try:
            start_ms = int(time.time() * 1000) - 1000
            t0 = time.monotonic()
            prom.start(
                prometheus_config(
                    prom.port, receiver.port, target_port if args.extra_series else None
                )
            )
            try:
                kill_at = t0 + duration * args.kill_at
                killed = False
                while (now := time.monotonic()) < t0 + duration:
                    if not killed and now >= kill_at:
                        receiver.kill()
                        summary.kill_at_s = round(now - t0, 1)
                        log(args, f"receiver SIGKILLed at {summary.kill_at_s} s")
                        time.sleep(args.down_seconds)
                        receiver.start()
                        summary.down_s = round(time.monotonic() - now, 1)
                        log(args, f"receiver restarted after {summary.down_s} s down")
                        killed = True
                        continue
                    if prom.proc is not None and prom.proc.poll() is not None:
                        raise RuntimeError(f"prometheus died: {prom.log_tail()}")
                    if receiver.proc is not None and receiver.proc.poll() is not None:
                        raise RuntimeError(f"receiver died: {receiver.log_tail()}")
                    time.sleep(0.2)
                summary.duration_s = round(time.monotonic() - t0, 1)
                log(args, "stopping the scrapes (reload without scrape jobs)")
                prom.reload(
                    "global: {scrape_interval: 1s}\nscrape_configs: []\n"
                    + remote_write_config(receiver.port)
                )
                t_drain = time.monotonic()
                metrics = drain(prom, receiver.db, timeout=max(60.0, duration))
                summary.drain_s = round(time.monotonic() - t_drain, 1)
                summary.prometheus = {k: metrics.get(k, 0.0) for k in PROM_COUNTERS}
                log(args, f"queue drained in {summary.drain_s} s; comparing")
                end_ms = int(time.time() * 1000)
                summary.window_ms = (start_ms, end_ms)
                cmp = compare(prom, receiver.db, start_ms, end_ms, args.chunk_seconds)
            finally:
                prom.stop()
        finally:
            receiver.stop()
    summary.receiver = receiver.event_counts()
    summary.comparison = asdict(cmp)
    summary.samples_per_s = round(cmp.matched / summary.duration_s, 1)
    summary.ok = (
        cmp.missing == 0
        and cmp.mismatched == 0
        and cmp.extra == 0
        and cmp.duplicates == 0
        and cmp.expected > 0
        and summary.kill_at_s is not None
    )
    return summary


def log(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def report(s: Summary) -> str:
    c = s.comparison
    r = s.receiver
    req, smp = r.get("requests", {}), r.get("samples", {})
    p = s.prometheus
    return "\n".join(
        [
            f"promwire soak: {s.duration_s:.0f} s of scraping ({s.server}), fail rate "
            f"{s.fail_rate:.2f}, receiver SIGKILLed at {s.kill_at_s} s and down {s.down_s} s, "
            f"queue drained {s.drain_s} s after scraping stopped",
            f"  prometheus TSDB : {c['expected']:,} samples in {c['series']:,} series",
            f"  stored          : {c['matched']:,} of them, bit-exact "
            f"(+ {c['stored_stale']:,} staleness markers; {c['stored_total']:,} rows)",
            f"  held            : {s.samples_per_s:,.1f} samples/s",
            f"  missing         : {c['missing']}",
            f"  duplicates      : {c['duplicates']}",
            f"  altered values  : {c['mismatched']} (and {c['signed_zeros']:,} -0.0 sent as "
            "+0.0 by Prometheus itself)",
            f"  extra samples   : {c['extra']}",
            f"  receiver writes : {req.get('O', 0):,} ok, {req.get('B', 0):,} failed before "
            f"commit, {req.get('A', 0):,} failed after commit ({smp.get('A', 0):,} samples "
            f"committed then refused); {req.get('R', 0):,} resends of committed batches seen",
            "  prometheus      : "
            + ", ".join(
                f"{k.removeprefix('prometheus_remote_storage_')}={v:g}" for k, v in p.items()
            ),
            *(f"  missing e.g.    : {e}" for e in c["missing_examples"]),
            *(f"  altered e.g.    : {e}" for e in c["mismatch_examples"]),
            f"RESULT: {'PASS' if s.ok else 'FAIL'}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["receiver"]:
        return run_receiver(argv[1:])
    p = argparse.ArgumentParser(
        prog="scripts/soak.py",
        description="Fault soak: Prometheus remote-writes into a failing, SIGKILLed promwire "
        "receiver; every scraped sample must be stored exactly once.",
    )
    p.add_argument("--minutes", type=float, default=5.0, help="scraping time (default 5)")
    p.add_argument(
        "--fail-rate",
        type=float,
        default=0.2,
        help="share of writes answered 500, half before and half after commit (default 0.2)",
    )
    p.add_argument(
        "--extra-series",
        type=int,
        default=1000,
        help="gauges on the synthetic second target, 0 for none (default 1000)",
    )
    p.add_argument(
        "--kill-at", type=float, default=0.5, help="SIGKILL point, share of the run (0.5)"
    )
    p.add_argument("--down-seconds", type=float, default=3.0, help="receiver downtime (3)")
    p.add_argument("--server", choices=("uvicorn", "wsgiref"), default="uvicorn")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--chunk-seconds", type=int, default=60, help="compare window piece (60)")
    p.add_argument("--prometheus", default=PROMETHEUS, help="prometheus binary (default: on PATH)")
    p.add_argument("--workdir", help="keep files here (default: a temporary dir, removed on PASS)")
    p.add_argument("--json", dest="json_out", help="also write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="only the final summary")
    args = p.parse_args(argv)
    if not 0 <= args.fail_rate < 1:
        p.error("--fail-rate must be in [0, 1)")
    if not 0 < args.kill_at < 1:
        p.error("--kill-at must be in (0, 1)")

    keep = args.workdir is not None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="promwire-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(args, f"workdir {workdir}")
    try:
        summary = run(args, workdir)
    except RuntimeError as exc:
        print(f"soak: run broke: {exc}\n(files kept in {workdir})", file=sys.stderr)
        return 2
    print(report(summary), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(asdict(summary), indent=2) + "\n")
    if summary.ok and not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    elif not summary.ok:
        print(f"(files kept in {workdir})", file=sys.stderr)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
