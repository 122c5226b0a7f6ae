"""``serve --workers N``: N processes serving one listening socket.

The parent binds the socket, then forks N workers that all accept on it (the
kernel hands each new connection to one of them), so decoding runs on N
cores. Each worker opens its own storage connection after the fork (SQLite
connections must not cross a fork; SQLite's file locks and busy timeout
order the workers' write transactions). The parent only supervises: SIGTERM
or SIGINT is passed to every worker, which stops accepting, finishes its
in-flight requests within the shutdown timeout and closes its store; when a
worker dies on its own the others are stopped too and the exit status is 1
(let the service manager restart the receiver).

What the workers share, through files in a private state directory (made by
the parent, removed at exit): the self-metrics (each worker's counters are
summed at every scrape, see :mod:`promwire.server.metrics`) and the HA
tracker's elections (:mod:`promwire.server.ha`). Tenant limits are per worker
with ``1/N`` of the limit each (see :mod:`promwire.server.tenant_limits`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

__all__ = ["bind_socket", "run_workers"]


def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on (host, port), IPv6 when ``host`` is an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: connections accepted from a socket of protocol 0
    # say 0 too, and asyncio only turns Nagle's algorithm off (TCP_NODELAY) on
    # sockets that say IPPROTO_TCP. With it on, a response written in two sends
    # (uvicorn: the head, then the body) held the second until the client's
    # delayed ACK came: 40 ms added to every small SAMPLES answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_workers(n: int, run_one: Callable[[int], None], *, shutdown_timeout: float = 30.0) -> int:
    """Fork ``n`` processes calling ``run_one(index)``; wait for them; the exit status."""
    children: dict[int, int] = {}
    for index in range(n):
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_one(index)
            except KeyboardInterrupt:
                pass
            except BaseException as exc:  # report, never return into the parent's code
                print(f"promwire: worker {index} failed: {exc}", file=sys.stderr, flush=True)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        children[pid] = index

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    old_term = signal.signal(signal.SIGTERM, stop)
    old_int = signal.signal(signal.SIGINT, stop)
    status = 0
    deadline: float | None = None
    try:
        while children:
            try:
                pid, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if stopping and deadline is None:
                    deadline = time.monotonic() + shutdown_timeout + 5
                if deadline is not None and time.monotonic() > deadline:
                    for left in children:  # past the grace period: no more waiting
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(left, signal.SIGKILL)
                time.sleep(0.05)
                continue
            children.pop(pid, None)
            if not stopping:
                # A worker died on its own: stop the rest, report failure.
                print("promwire: a worker exited; stopping the others", file=sys.stderr)
                status = 1
                stop(signal.SIGTERM, None)
            elif os.waitstatus_to_exitcode(code) not in (0, -signal.SIGTERM):
                status = 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
    return status
