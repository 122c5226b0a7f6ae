"""Run ``python -m promwire.server.runner`` in a subprocess for a test, and talk to it.

:func:`serve_process` starts it on a free port and yields a :class:`Served`
(port, pid, output lines); :func:`post` sends one request; :func:`fill_store`
writes a large store straight through SQL (seconds, not minutes);
:func:`rss_mb` reads a process' resident set size from ``/proc``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from promwire import ReadRequest, WriteRequest, encode, snappy
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_chunks import cut_groups, encode_groups
from promwire.stores.sqlite_index import label_hash, pack_ids, write_postings
from tests.support.prometheus import free_port

REPO = Path(__file__).resolve().parent.parent.parent
PROTOBUF_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}


SERVE = (sys.executable, "-m", "promwire.server.runner")


@dataclass
class Served:
    port: int
    pid: int
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)


@contextmanager
def serve_process(
    db: Path,
    server: str | None,
    prefix: Sequence[str] = (),
    options: Sequence[str] = (),
    *,
    command: Sequence[str] = SERVE,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Iterator[Served]:
    """``command`` (``promwire serve``) on ``db`` with ``server`` (uvicorn or
    wsgiref; None: its default) and further command-line ``options``, run
    under ``prefix`` (e.g. a ``setpriv`` command line) with ``env`` added to
    the environment; yields once it accepts connections, stopped at the end."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *prefix,
            *command,
            *("--db", str(db), "--listen", f"127.0.0.1:{port}"),
            *(("--server", server) if server else ()),
            *options,
        ],
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(port, proc.pid, proc)
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: served.lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"promwire serve exited: {served.lines}"
            assert time.monotonic() < deadline, "promwire serve did not start listening"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()  # stuck (the behaviour under test failed): do not hang the suite
            proc.wait(10)
        reader.join(5)


def post(
    port: int, path: str, message: ReadRequest | WriteRequest, timeout: float = 60
) -> tuple[int, bytes]:
    """POST one snappy-compressed message; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, snappy.compress(encode(message)), PROTOBUF_HEADERS)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def fill_store(path: Path, series: int, samples_per_series: int) -> None:
    """A store of ``series`` series ``{__name__="m", i="<n>"}`` with
    ``samples_per_series`` samples each (every 15 s from 0, value 1.5),
    inserted with SQL in one transaction in the store's own format (symbols,
    label blobs, posting blocks, chunks; all series share the same chunk
    bytes): a million samples in about a second."""
    SQLiteStorage(path).close()  # the schema
    ts = [k * 15000 for k in range(samples_per_series)]
    groups, _ = cut_groups(ts, None)
    chunks = list(encode_groups(ts, [0x3FF8000000000000] * len(ts), groups))  # bits of 1.5
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        texts = ["__name__", "m", "i", *(str(i) for i in range(series))]
        conn.executemany("INSERT INTO symbols(id, text) VALUES (?, ?)", enumerate(texts, 1))
        name, m, i_name = 1, 2, 3  # symbol ids; str(i) is i + 4
        conn.executemany(
            "INSERT INTO series(id, hash, labels) VALUES (?, ?, ?)",
            [
                (
                    i + 1,
                    label_hash(
                        json.dumps([["__name__", "m"], ["i", str(i)]], separators=(",", ":"))
                    ),
                    pack_ids([name, m, i_name, i + 4]),
                )
                for i in range(series)
            ],
        )
        write_postings(conn, name, m, range(1, series + 1))
        conn.executemany(
            "INSERT INTO postings VALUES (?, ?, ?, x'')",
            [(i_name, i + 4, i + 1) for i in range(series)],
        )
        conn.executemany(
            "INSERT INTO chunks(series_id, maxt, data) VALUES (?, ?, ?)",
            [(i + 1, maxt, data) for i in range(series) for _, maxt, _, data in chunks],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process' VmRSS every 20 ms in a thread until stopped; ``peak`` in MB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, AssertionError):
                return  # the process ended

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak
