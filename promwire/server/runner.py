"""``promwire serve``: a ready-to-run remote storage on SQLite.

    python -m promwire.server.runner --db metrics.db --listen 127.0.0.1:9201

Which server runs it:

* **uvicorn** (ASGI, :mod:`promwire.server.asgi`) when it is installed: one event
  loop with keep-alive connections, which suits Prometheus' sender (several
  shards posting in parallel over persistent connections). SQLite work runs
  in worker threads, so a slow commit never stalls other connections.
* otherwise **wsgiref** from the standard library (WSGI, :mod:`promwire.server.wsgi`),
  because promwire's only runtime dependency is cramjam and ``serve`` must
  work without extras. It is made multi-threaded (one thread per connection)
  so parallel shards are not serialised behind one slow request; it speaks
  HTTP/1.0-style close-after-response, which Prometheus handles fine.

``server="uvicorn"`` or ``"wsgiref"`` forces one.

What it speaks: remote write 1.0 and 2.0 on ``/api/v1/write`` (2.0 answers
carry the ``X-Prometheus-Remote-Write-*-Written`` counts; see
docs/remote-write-2.md) and remote read on ``/api/v1/read``, as SAMPLES or
streamed (``STREAMED_XOR_CHUNKS``, one series fetched from SQLite at a time;
see docs/streamed-read.md), whichever the client prefers. Prometheus 2.x's
remote-read client asks for SAMPLES.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import signal
import socketserver
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..stores.sqlite import SQLiteStorage

__all__ = ["main", "parse_listen", "prometheus_snippet", "serve"]

WRITE_PATH = "/api/v1/write"
READ_PATH = "/api/v1/read"


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:9201"``) to ``(host, port)``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be host:port, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def prometheus_snippet(host: str, port: int) -> str:
    """The prometheus.yml lines pointing remote_write and remote_read here."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return (
        "remote_write:\n"
        f"  - url: {base}{WRITE_PATH}\n"
        "remote_read:\n"
        f"  - url: {base}{READ_PATH}\n"
        "    read_recent: true\n"
    )


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request of a 1 s scrape loop is noise


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    # Let `kill` end wsgiref's serve_forever like Ctrl-C does, closing the store
    # (uvicorn installs its own handlers).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def serve(
    db: str = "promwire.db",
    listen: str = "127.0.0.1:9201",
    *,
    server: str = "auto",
    out: TextIO | None = None,
) -> None:
    """Serve remote write and remote read on ``listen``, storing in the SQLite file ``db``.

    Prints the prometheus.yml snippet to ``out`` (stdout) and blocks until
    interrupted. ``server`` is ``"auto"`` (uvicorn if installed, else
    wsgiref), ``"uvicorn"`` or ``"wsgiref"``.
    """
    host, port = parse_listen(listen)
    if server == "auto":
        server = "uvicorn" if importlib.util.find_spec("uvicorn") else "wsgiref"
    if server not in ("uvicorn", "wsgiref"):
        raise ValueError(f"unknown server {server!r}: use auto, uvicorn or wsgiref")
    out = out or sys.stdout
    storage = SQLiteStorage(db)
    try:
        print(f"promwire: storing in {db}, serving on {listen} ({server})", file=out)
        unwritable = storage.check_writable()
        if unwritable is not None:
            print(
                f"promwire: WARNING: {db} cannot be written ({unwritable}); "
                "writes are answered 500 until it can, then accepted without a restart",
                file=out,
            )
        print("Add to prometheus.yml:\n", file=out)
        print(prometheus_snippet(host, port), file=out, flush=True)
        if server == "uvicorn":
            import uvicorn

            from .asgi import RemoteStorageApp as AsgiApp

            uvicorn.run(
                AsgiApp(storage, WRITE_PATH, READ_PATH),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
            )
        else:
            from .wsgi import RemoteStorageApp as WsgiApp

            with make_server(
                host,
                port,
                WsgiApp(storage, WRITE_PATH, READ_PATH),
                server_class=_ThreadingWSGIServer,
                handler_class=_QuietHandler,
            ) as httpd:
                _stop_on_sigterm()
                with contextlib.suppress(KeyboardInterrupt):
                    httpd.serve_forever()
    finally:
        storage.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m promwire.server.runner [--db FILE] [--listen HOST:PORT]``."""
    parser = argparse.ArgumentParser(
        prog="python -m promwire.server.runner",
        description="Serve Prometheus remote write/read backed by SQLite.",
    )
    parser.add_argument("--db", default="promwire.db", help="SQLite file (default promwire.db)")
    parser.add_argument(
        "--listen", default="127.0.0.1:9201", help="host:port (default 127.0.0.1:9201)"
    )
    parser.add_argument(
        "--server",
        choices=("auto", "uvicorn", "wsgiref"),
        default="auto",
        help="HTTP server (default: uvicorn if installed, else wsgiref)",
    )
    args = parser.parse_args(argv)
    serve(args.db, args.listen, server=args.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
