"""Hostile clients against a real ``promwire serve``: the numbers in docs/robustness.md.

    python scripts/hostile_clients.py [SERVE FLAGS...]

Starts ``python -m promwire serve`` (``$SERVE`` replaces ``promwire serve``,
e.g. ``SERVE=promwire.server.runner`` for a checkout before the ``serve``
flags existed; ``$SRC`` is the directory it runs in, default the repository)
with SERVE FLAGS (e.g. ``--server wsgiref --body-timeout 5``) and reports:
200 slowloris connections, a short body, an endless chunked upload, 30
unfinished 30 MiB uploads (VmRSS), a malformed Content-Length, Origin and
Host headers, a missing Content-Type, the Server header and the text of a
storage failure. Takes 1-2 minutes; needs Linux (/proc) and ~1 GB free.
"""

import contextlib
import http.client
import os
import select
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promwire import Label, Sample, TimeSeries, WriteRequest, encode, snappy

flags = sys.argv[1:]
src = os.environ.get("SRC", str(Path(__file__).resolve().parent.parent))
RW = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
BODY = snappy.compress(
    encode(WriteRequest([TimeSeries([Label("__name__", "ok")], [Sample(1.0, 1000)])]))
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])


def head(length=None, extra=""):
    lines = [
        "POST /api/v1/write HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/x-protobuf",
        "Content-Encoding: snappy",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def start(tmp):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            *os.environ.get("SERVE", "promwire serve").split(),
            "--db",
            f"{tmp}/m.db",
            "--listen",
            f"127.0.0.1:{port}",
            *flags,
        ],
        cwd=src,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def post(port, headers=RW, body=BODY):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/api/v1/write", body, headers)
    r = c.getresponse()
    t = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, t


def closed(s):
    s.setblocking(False)
    try:
        while True:
            if not s.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_answer(sock, limit):
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        data = sock.recv(4096)
    except OSError:
        data = b"(timeout)"
    return time.monotonic() - t0, data[:12]


with tempfile.TemporaryDirectory() as tmp:
    proc, port = start(tmp)
    try:
        # slowloris: 200 connections, one header byte a second, for 15 s
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        req = head(len(BODY))
        threads_peak = 0
        for i in range(15):
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(req[i : i + 1])
            threads_peak = max(threads_peak, status_of(proc.pid, "Threads"))
            if i == 5:
                w = post(port)[0]
            time.sleep(1)
        still = sum(not closed(s) for s in socks)
        for s in socks:
            s.close()
        print(
            f"slowloris 200 conns x 15 s at 1 B/s: still open {still}, "
            f"server threads peak {threads_peak}, write mid-attack {w}"
        )
        # short body
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head(1000) + b"x" * 10)
        took, data = wait_answer(s, 30)
        s.close()
        print(f"Content-Length 1000, 10 bytes sent: answer after {took:.1f} s: {data!r}")
        # endless chunked
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head(None, "Transfer-Encoding: chunked\r\n"))
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 90:
            try:
                s.sendall(b"400\r\n" + b"\0" * 1024 + b"\r\n")
                r, _, _ = select.select([s], [], [], 0.05)
                if r and not s.recv(65536):
                    cut = time.monotonic() - t0
                    break
            except OSError:
                cut = time.monotonic() - t0
                break
        s.close()
        print(
            f"endless chunked upload: cut after {cut if cut is None else round(cut, 1)} s "
            "(None: still read after 90 s)"
        )
        # 30 unfinished 30 MiB uploads
        base = status_of(proc.pid, "VmRSS")
        chunk = b"\0" * (29 * 1024 * 1024)
        held, refused = [], 0
        peak = base
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(head(30 * 1024 * 1024))
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                refused += 1
                s.close()
                continue
            held.append(s)
            with contextlib.suppress(OSError):
                s.sendall(chunk)
            peak = max(peak, status_of(proc.pid, "VmRSS"))
        for _ in range(10):
            time.sleep(0.2)
            peak = max(peak, status_of(proc.pid, "VmRSS"))
        for s in list(held):  # a 503 that came after the 0.5 s wait (not a later 408)
            r, _, _ = select.select([s], [], [], 0)
            if r and b" 503" in wait_answer(s, 1)[1]:
                held.remove(s)
                refused += 1
        for s in held:
            s.close()
        print(
            f"30 uploads declaring 30 MiB, 29 MiB sent each: held {len(held)}, refused {refused}, "
            f"VmRSS {base // 1024} -> peak {peak // 1024} MiB"
        )
        time.sleep(2)
        # Content-Length: ²
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head(None)[:-2] + b"Content-Length: \xb2\r\n\r\n")
        print("Content-Length: \\xb2 ->", wait_answer(s, 10)[1])
        s.close()
        print(
            "Origin: http://evil.example ->", post(port, {**RW, "Origin": "http://evil.example"})[0]
        )
        print("Host: evil.example ->", post(port, {**RW, "Host": "evil.example"})[0])
        print("no Content-Type ->", post(port, {"Content-Encoding": "snappy"})[0])
        print("Server header ->", post(port)[1].get("server"))
        with sqlite3.connect(f"{tmp}/m.db") as db:
            db.execute("DROP TABLE samples")
        st, _, text = post(port)
        print("storage failure ->", st, text)
    finally:
        proc.terminate()
        proc.wait(10)
