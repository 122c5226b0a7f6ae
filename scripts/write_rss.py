#!/usr/bin/env python3
"""RSS of ``promwire serve`` after refused writes, each carrying one huge label value.

    python3 scripts/write_rss.py --server uvicorn --requests 20 --mib 30

Starts ``python -m promwire.server.runner`` (from this checkout) on a free
port with a fresh SQLite file, sends one normal write, reads the server's
``VmRSS`` from ``/proc/<pid>/status``, then sends ``--requests`` remote write
1.0 requests, each a series ``up{big="<value>"}`` whose value is ``--mib`` MiB
of one repeated byte (distinct per request; snappy shrinks it to ~1.5 MB, under
``max_body_size``). Each is refused (400, ``max_label_bytes``). Prints the RSS
after each request and the growth over the baseline, then checks a normal
write still gets 204. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from promwire import snappy  # noqa: E402
from promwire.codec.wire import varint  # noqa: E402

MiB = 1024 * 1024


def _record(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + varint(len(payload)) + payload


def body(value: bytes) -> bytes:
    """A snappy remote write 1.0 body: ``up{big=<value>}`` with one sample."""
    label = _record(1, _record(1, b"big") + _record(2, value))
    name = _record(1, _record(1, b"__name__") + _record(2, b"up"))
    sample = _record(2, b"\x09" + b"\x00" * 7 + b"\x3f" + b"\x10\x80\xa0\xd6\xea\xbc\x31")
    return snappy.compress(_record(1, name + label + sample))


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def post(port: int, data: bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
        conn.request("POST", "/api/v1/write", data, headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()[:120]
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "wsgiref"), default="uvicorn")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--mib", type=int, default=30, help="MiB of the label value")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "promwire.server.runner", "--db", f"{tmp}/db"]
        cmd += ["--listen", f"127.0.0.1:{port}", "--server", args.server]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.05)
            print("normal write:", post(port, body(b"ok"))[0])
            base = rss(proc.pid)
            print(f"baseline RSS {base / MiB:.0f} MiB")
            for i in range(args.requests):
                value = bytes([0x61 + i % 26]) * (args.mib * MiB - 1) + bytes([0x30 + i // 26])
                status, text = post(port, body(value))
                print(f"request {i + 1}: {status} RSS {rss(proc.pid) / MiB:.0f} MiB  {text!r}")
            grown = rss(proc.pid) - base
            print(f"after {args.requests} refused requests: RSS +{grown / MiB:.0f} MiB")
            print("normal write:", post(port, body(b"still ok"))[0])
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
