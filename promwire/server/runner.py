"""``promwire serve``: a ready-to-run remote storage on SQLite.

    python -m promwire.server.runner --db metrics.db --listen 127.0.0.1:9201

Which server runs it:

* **uvicorn** (ASGI, :mod:`promwire.server.asgi`) when it is installed: one event
  loop with keep-alive connections, which suits Prometheus' sender (several
  shards posting in parallel over persistent connections). SQLite work runs
  in worker threads, so a slow commit never stalls other connections.
* otherwise **wsgiref** from the standard library (WSGI, :mod:`promwire.server.wsgi`),
  because promwire's only runtime dependency is cramjam and ``serve`` must
  work without extras. It runs in :mod:`promwire.server.stdlib_httpd`, wsgiref's
  request handling with a thread per connection (so parallel shards are
  not serialised behind one slow request), deadlines and a connection cap;
  it speaks HTTP/1.0-style close-after-response, which Prometheus handles
  fine. Install uvicorn for production (``pip install 'promwire[serve]'``).

``server="uvicorn"`` or ``"wsgiref"`` forces one. Under uvicorn, ``http``
(``--http``) picks the HTTP/1.1 parser and ``loop`` (``--loop``) the event
loop: ``"auto"`` is httptools and uvloop when importable (both in the
``serve`` extra; about 0.1-0.2 ms less a request, docs/performance.md), else
h11 and asyncio; the same guards hold on either (:mod:`promwire.server.uvicorn_guard`).
``store`` (``--store``) names another store by URL: ``sqlite:///PATH`` or
``clickhouse://HOST:PORT/DATABASE?cluster=NAME`` (:mod:`promwire.stores.clickhouse`;
running several receivers on one cluster: docs/scaling.md).

Guards (defaults in :mod:`promwire.server.guards`; all are keywords of
:func:`serve` and flags of ``promwire serve``): ``header_timeout`` (10 s),
``body_timeout`` (60 s), ``idle_timeout`` (15 s, uvicorn's keep-alive),
``max_connections`` (256), ``max_buffered_bytes`` (256 MiB of request bodies
held at once), ``allowed_origins`` (none: any request with an ``Origin`` header
is refused, 403) and ``allowed_hosts`` (``None``: loopback names when
listening on a loopback address, else any host).

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
import ipaddress
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..stores.regex import DEFAULT_MAX_REGEX_LENGTH
from ..stores.sqlite import SQLiteStorage
from ..stores.sqlite_schema import FormatError
from ._app import (
    DEFAULT_INLINE_READ_SECONDS,
    DEFAULT_MAX_CONCURRENT_READS,
    DEFAULT_READ_QUEUE_TIMEOUT,
)
from .envflags import environment_defaults
from .guards import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    EVENT_LOOPS,
    HTTP_PARSERS,
    LOOPBACK_HOSTS,
)
from .handlers.common import (
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    DEFAULT_MAX_READ_SECONDS,
    DEFAULT_MAX_READ_SERIES,
)
from .logs import configure_logging
from .malloc import DEFAULT_MALLOC_KEEP, keep_freed_memory
from .operator import OperatorOptions, add_operator_options, operator_options
from .units import parse_duration, parse_size
from .workers import bind_socket, run_workers

__all__ = [
    "UnusableDatabase",
    "add_serve_options",
    "main",
    "parse_listen",
    "prometheus_snippet",
    "serve",
    "serve_options",
]

WRITE_PATH = "/api/v1/write"
READ_PATH = "/api/v1/read"


class UnusableDatabase(Exception):
    """``db`` cannot be opened as an SQLite database (the message says why)."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:9201"``) to ``(host, port)``; ``ValueError`` if bad."""
    host, sep, port = listen.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise ValueError(f"listen address must be host:port, got {listen[:100]!r}")
    if int(port) > 65535:
        raise ValueError(f"port must be 0-65535, got {port[:20]}")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to listen on) is a loopback one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prometheus_snippet(host: str, port: int, *, tls: bool = False) -> str:
    """The prometheus.yml lines pointing remote_write and remote_read here."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "https" if tls else "http"
    base = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    return (
        "remote_write:\n"
        f"  - url: {base}{WRITE_PATH}\n"
        "remote_read:\n"
        f"  - url: {base}{READ_PATH}\n"
        "    read_recent: true\n"
    )


def open_store(
    store: str,
    *,
    max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
    retention: float | None = None,
    retention_bytes: int | None = None,
) -> Any:
    """The store a ``--store`` URL names: ``sqlite:///PATH`` (``sqlite:///:memory:``)
    or ``clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME]`` (the
    HTTP port; see :mod:`promwire.stores.clickhouse`). :class:`UnusableDatabase`
    (or ``ValueError`` for a malformed URL) when it cannot be used."""
    scheme, sep, rest = store.partition("://")
    if sep and scheme == "sqlite" and "://" not in rest:
        return open_storage(
            rest[1:] if rest.startswith("/") else rest,
            max_regex_length=max_regex_length,
            retention=retention,
            retention_bytes=retention_bytes,
        )
    if sep and scheme == "clickhouse":
        from ..errors import StorageError
        from ..stores.clickhouse import ClickHouseStorage

        if retention is not None or retention_bytes is not None:
            raise ValueError(
                "--retention/--retention-size apply to the SQLite store; a ClickHouse "
                "store's retention is a TTL on its tables (see docs/scaling.md)"
            )
        try:
            return ClickHouseStorage.from_url(store, max_regex_length=max_regex_length)
        except StorageError as exc:
            raise UnusableDatabase(f"cannot use {store[:200]}: {exc.message}") from None
    raise ValueError(
        f"--store must be sqlite:///PATH or clickhouse://HOST:PORT/DB, got {store[:100]!r}"
    )


def open_storage(
    db: str,
    *,
    max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
    retention: float | None = None,
    retention_bytes: int | None = None,
) -> Any:
    """The SQLite store at ``db`` (or the store a ``--store`` URL names, see
    :func:`open_store`), or :class:`UnusableDatabase` saying why not."""
    if "://" in db:
        return open_store(
            db,
            max_regex_length=max_regex_length,
            retention=retention,
            retention_bytes=retention_bytes,
        )
    if db != ":memory:":
        if os.path.isdir(db):
            raise UnusableDatabase(f"{db} is a directory, not a database file")
        parent = os.path.dirname(os.path.abspath(db))
        if not os.path.isdir(parent):
            raise UnusableDatabase(f"{db}: directory {parent} does not exist")
    try:
        return SQLiteStorage(
            db,
            max_regex_length=max_regex_length,
            retention=retention,
            retention_bytes=retention_bytes,
            # a compaction's planning would hold up the write that started it
            compact_in_background=True,
        )
    except FormatError as exc:
        raise UnusableDatabase(exc.message) from None
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise UnusableDatabase(f"{db} is not an SQLite database") from None
        raise UnusableDatabase(f"cannot open {db} as an SQLite database") from None
    except OSError as exc:
        raise UnusableDatabase(f"cannot open {db}: {exc.strerror or exc}") from None


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    # Let `kill` end the stdlib server's serve_forever like Ctrl-C does, closing
    # the store (uvicorn installs its own handlers).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


@dataclass(frozen=True)
class _Limit:
    """A positive-number keyword of :func:`serve` and its flag (``--name-with-dashes``)."""

    name: str
    default: int | float  # its type is the flag's type
    metavar: str
    help: str


_LIMITS = (
    _Limit(
        "header_timeout",
        DEFAULT_HEADER_TIMEOUT,
        "SECONDS",
        "close a connection whose request headers take longer",
    ),
    _Limit(
        "body_timeout",
        DEFAULT_BODY_TIMEOUT,
        "SECONDS",
        "answer 408 to a request body taking longer",
    ),
    _Limit(
        "idle_timeout",
        DEFAULT_IDLE_TIMEOUT,
        "SECONDS",
        "close a kept-alive connection idle this long",
    ),
    _Limit(
        "max_connections", DEFAULT_MAX_CONNECTIONS, "N", "connections served at once; more get 503"
    ),
    _Limit(
        "max_buffered_bytes",
        DEFAULT_MAX_BUFFERED_BYTES,
        "BYTES",
        "request-body bytes held at once over all requests; a request that would pass it gets 503",
    ),
    _Limit(
        "max_read_queries", DEFAULT_MAX_READ_QUERIES, "N", "queries in one remote read; more is 400"
    ),
    _Limit(
        "max_read_samples",
        DEFAULT_MAX_READ_SAMPLES,
        "N",
        "samples in one SAMPLES answer, counted while the store reads; more is 400",
    ),
    _Limit(
        "max_read_series",
        DEFAULT_MAX_READ_SERIES,
        "N",
        "series one read may examine against its matchers; more is 400",
    ),
    _Limit(
        "max_read_seconds",
        DEFAULT_MAX_READ_SECONDS,
        "SECONDS",
        "time one read may take (streamed: between two frames); longer is 503",
    ),
    _Limit(
        "max_concurrent_reads",
        DEFAULT_MAX_CONCURRENT_READS,
        "N",
        f"remote reads handled at once; another waits up to {DEFAULT_READ_QUEUE_TIMEOUT:g} s "
        "for a slot, then 503",
    ),
    _Limit(
        "max_regex_length",
        DEFAULT_MAX_REGEX_LENGTH,
        "CHARS",
        "longest regex in a label matcher; longer is 400",
    ),
)


def serve(
    db: str = "promwire.db",
    listen: str = "127.0.0.1:9201",
    *,
    server: str = "auto",
    http: str = "auto",
    loop: str = "auto",
    out: TextIO | None = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    allowed_origins: Iterable[str] = (),
    allowed_hosts: Iterable[str] | None = None,
    max_read_queries: int = DEFAULT_MAX_READ_QUERIES,
    max_read_samples: int = DEFAULT_MAX_READ_SAMPLES,
    max_read_series: int = DEFAULT_MAX_READ_SERIES,
    max_read_seconds: float = DEFAULT_MAX_READ_SECONDS,
    max_regex_length: int = DEFAULT_MAX_REGEX_LENGTH,
    max_concurrent_reads: int = DEFAULT_MAX_CONCURRENT_READS,
    operator: OperatorOptions | None = None,
    workers: int = 1,
    shutdown_timeout: float = 30.0,
    store: str | None = None,
    retention: float | None = None,
    retention_bytes: int | None = None,
    malloc_keep: int = DEFAULT_MALLOC_KEEP,
    inline_read_seconds: float = DEFAULT_INLINE_READ_SECONDS,
) -> None:
    """Serve remote write and remote read on ``listen``, storing in the SQLite file ``db``
    (or in the store a ``store`` URL names, see :func:`open_store`).

    ``operator`` holds auth/TLS, tenants, HA and log options
    (:class:`~promwire.server.operator.OperatorOptions`; docs/operations.md);
    ``/metrics``, ``/-/healthy`` and ``/-/ready`` are always served.
    ``workers`` processes share the port (uvicorn only, see
    :mod:`promwire.server.workers`); on SIGTERM each stops accepting, finishes
    in-flight requests within ``shutdown_timeout`` seconds and closes the store.

    Prints the prometheus.yml snippet to ``out`` (stdout) and blocks until
    interrupted. ``malloc_keep`` bytes of freed memory stay with the C
    allocator for the next request (:mod:`promwire.server.malloc`; 0 leaves
    its defaults). ``inline_read_seconds`` (uvicorn): how long a streamed
    read is first tried on the event loop before it starts over in a worker
    thread (0: never; see :class:`~promwire.server._app.AppBase`).
    ``server`` is ``"auto"`` (uvicorn if installed, else
    wsgiref), ``"uvicorn"`` or ``"wsgiref"``; under uvicorn, ``http`` is
    ``"auto"``, ``"h11"`` or ``"httptools"`` and ``loop`` ``"auto"``,
    ``"asyncio"`` or ``"uvloop"`` (``auto``: the fast one when importable).
    The guards are described in the module docstring. Raises ``ValueError``
    for a bad ``listen``, ``server``, ``http``, ``loop`` (or one not
    installed) or limit, :class:`UnusableDatabase` for a ``db`` that cannot be opened,
    ``OSError`` when the address cannot be bound (wsgiref; uvicorn exits).
    """
    arguments = locals()  # the keywords as given, checked against _LIMITS below
    db = store or db  # a --store URL, opened by open_storage like a file name
    host, port = parse_listen(listen)
    if server == "auto":
        server = "uvicorn" if importlib.util.find_spec("uvicorn") else "wsgiref"
    if server not in ("uvicorn", "wsgiref"):
        raise ValueError(f"unknown server {server[:40]!r}: use auto, uvicorn or wsgiref")
    if server == "uvicorn":
        from .uvicorn_guard import choose_stack

        http, loop = choose_stack(http, loop)
        stack = f"uvicorn, {http}, {loop}"
    elif (http, loop) != ("auto", "auto"):
        raise ValueError("--http and --loop choose uvicorn's parser and loop: use --server uvicorn")
    else:
        stack = server
    for limit in _LIMITS:
        if not arguments[limit.name] > 0:
            raise ValueError(f"{limit.name} must be > 0")
    if allowed_hosts is None and is_loopback(host):
        allowed_hosts = (*LOOPBACK_HOSTS, host)
    app_options: dict[str, Any] = {
        "allowed_origins": tuple(allowed_origins),
        "allowed_hosts": None if allowed_hosts is None else tuple(allowed_hosts),
        "body_timeout": body_timeout,
        "max_buffered_bytes": max_buffered_bytes,
        "max_read_queries": max_read_queries,
        "max_read_samples": max_read_samples,
        "max_read_series": max_read_series,
        "max_read_seconds": max_read_seconds,
        "max_concurrent_reads": max_concurrent_reads,
        "inline_read_seconds": inline_read_seconds,
    }
    if workers < 1 or shutdown_timeout <= 0:
        raise ValueError("workers must be >= 1 and shutdown_timeout > 0")
    if malloc_keep < 0 or inline_read_seconds < 0:
        raise ValueError("malloc_keep and inline_read_seconds must be >= 0")
    settings = (operator or OperatorOptions()).load()
    tls = settings.ssl_context()
    if server != "uvicorn" and (workers > 1 or tls is not None):
        raise ValueError("--workers and TLS (--web-config tls_server_config) need uvicorn")
    if server == "uvicorn" and db == ":memory:" and workers > 1:
        raise ValueError("--workers > 1 needs a database file, not :memory:")
    configure_logging(settings.log_level)
    keep_freed_memory(malloc_keep)  # before any worker forks: they inherit it
    out = out or sys.stdout
    storage = open_storage(
        db, max_regex_length=max_regex_length, retention=retention, retention_bytes=retention_bytes
    )
    where = _redacted(db)
    try:
        print(f"promwire: storing in {where}, serving on {listen} ({stack})", file=out)
        unwritable = storage.check_writable()
        if unwritable is not None:
            print(
                f"promwire: WARNING: {where} cannot be written ({unwritable}); "
                "writes are answered 500 until it can, then accepted without a restart",
                file=out,
            )
        print("Add to prometheus.yml:\n", file=out)
        print(prometheus_snippet(host, port, tls=tls is not None), file=out, flush=True)
        if server == "uvicorn":
            from .uvicorn_guard import uvicorn_options

            uv_options = {
                **uvicorn_options(
                    header_timeout=header_timeout,
                    idle_timeout=idle_timeout,
                    max_connections=max_connections,
                    http=http,
                    loop=loop,
                ),
                "timeout_graceful_shutdown": shutdown_timeout,
            }
            sock = bind_socket(host, port)
            if workers == 1:
                with contextlib.closing(sock):
                    _run_uvicorn(storage, sock, settings, app_options, uv_options)
                return
            storage.close()  # each worker opens its own after the fork
            state_dir = tempfile.mkdtemp(prefix="promwire-state-")
            try:

                def run_one(index: int) -> None:
                    own = open_storage(
                        db,
                        max_regex_length=max_regex_length,
                        retention=retention,
                        retention_bytes=retention_bytes,
                    )
                    _run_uvicorn(
                        own,
                        sock,
                        settings,
                        app_options,
                        uv_options,
                        worker=index,
                        workers=workers,
                        state_dir=state_dir,
                    )

                status = run_workers(workers, run_one, shutdown_timeout=shutdown_timeout)
            finally:
                sock.close()
                shutil.rmtree(state_dir, ignore_errors=True)
            if status:
                raise SystemExit(status)
        else:
            from .stdlib_httpd import make_guarded_server
            from .wsgi import RemoteStorageApp as WsgiApp

            wrapped, ops = settings.assemble(storage)
            with make_guarded_server(
                host,
                port,
                WsgiApp(wrapped, WRITE_PATH, READ_PATH, operations=ops, **app_options),
                header_timeout=header_timeout,
                body_timeout=body_timeout,
                max_connections=max_connections,
            ) as httpd:
                _stop_on_sigterm()
                with contextlib.suppress(KeyboardInterrupt):
                    httpd.serve_forever()
                _drain(httpd, shutdown_timeout)
    finally:
        storage.close()


def _drain(httpd: Any, timeout: float) -> None:
    """Stop accepting, then wait up to ``timeout`` s for the requests in flight
    (the standard-library server answers one request per connection)."""
    httpd.socket.close()
    deadline = time.monotonic() + timeout
    while httpd.active > 0 and time.monotonic() < deadline:
        time.sleep(0.02)


def _run_uvicorn(
    storage: Any,
    sock: Any,
    settings: OperatorOptions,
    app_options: dict[str, Any],
    uv_options: dict[str, Any],
    *,
    worker: int = 0,
    workers: int = 1,
    state_dir: str | None = None,
) -> None:
    """One uvicorn server on the bound ``sock`` until SIGTERM/SIGINT; closes ``storage``."""
    import uvicorn

    from .asgi import RemoteStorageApp as AsgiApp

    wrapped, ops = settings.assemble(storage, worker=worker, workers=workers, state_dir=state_dir)
    ops.metrics.start_flusher()
    try:
        app = AsgiApp(wrapped, WRITE_PATH, READ_PATH, operations=ops, **app_options)
        config = uvicorn.Config(app, log_level="warning", access_log=False, **uv_options)
        configure_logging(settings.log_level)  # uvicorn.Config set up its own loggers
        config.load()
        tls = settings.ssl_context()
        if tls is not None:
            config.ssl = tls  # used by uvicorn for the sockets it is given
        # uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down:
        # turned into KeyboardInterrupt here, so the store is closed (its head
        # flushed into chunks) instead of the process just dying.
        _stop_on_sigterm()
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        ops.metrics.flush()
        wrapped.close()


def _redacted(url: str) -> str:
    """``url`` without a password (for the startup line)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.partition("@")
    if at and ":" in userinfo:
        return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hosts}"
    return url


def _positive(kind: type[float] | type[int], *, or_zero: bool = False) -> Any:
    def parse(text: str) -> float | int:
        value = kind(text)
        if not (value >= 0 if or_zero else value > 0):
            raise ValueError(text)
        return value

    # argparse names it in its error
    parse.__name__ = ("non-negative " if or_zero else "positive ") + kind.__name__
    return parse


def _size_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else parse_size(text)


_size_or_zero.__name__ = "size"  # argparse names it in its error


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``promwire serve`` (and ``python -m promwire.server.runner``)."""
    parser.add_argument(
        "--db", default="promwire.db", help="SQLite file, created if missing (default promwire.db)"
    )
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="where to store instead of --db: sqlite:///PATH, or "
        "clickhouse://HOST:PORT[,HOST:PORT]/DATABASE[?cluster=NAME] (ClickHouse's HTTP port)",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:9201", help="HOST:PORT to listen on (default 127.0.0.1:9201)"
    )
    parser.add_argument(
        "--server",
        choices=("auto", "uvicorn", "wsgiref"),
        default="auto",
        help="HTTP server (default auto: uvicorn if installed, else the standard library's)",
    )
    parser.add_argument(
        "--http",
        choices=HTTP_PARSERS,
        default="auto",
        help="uvicorn's HTTP/1.1 parser (default auto: httptools if installed, else h11)",
    )
    parser.add_argument(
        "--loop",
        choices=EVENT_LOOPS,
        default="auto",
        help="uvicorn's event loop (default auto: uvloop if installed, else asyncio)",
    )
    for limit in _LIMITS:
        kind = type(limit.default)
        shown = f"{limit.default:g}" if kind is float else str(limit.default)
        parser.add_argument(
            "--" + limit.name.replace("_", "-"),
            type=_positive(kind),
            default=limit.default,
            metavar=limit.metavar,
            help=f"{limit.help} (default {shown})",
        )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept requests carrying this Origin header, e.g. https://grafana.example "
        "(repeatable; '*' any). Default: refuse every request with an Origin (403)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="accept only requests whose Host header names NAME (repeatable; '*' any). "
        "Default: localhost, 127.0.0.1 and ::1 when listening on loopback, else any",
    )
    parser.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        metavar="N",
        help="processes serving the port, so decoding uses N cores (uvicorn; default 1)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_positive(float),
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, time in-flight requests get to finish (default 30)",
    )
    parser.add_argument(
        "--retention",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="delete samples older than this before the newest (e.g. 15d; default: keep all)",
    )
    parser.add_argument(
        "--retention-size",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="delete the oldest chunks once the database uses more (e.g. 10GB; default: no bound)",
    )
    parser.add_argument(
        "--inline-read-seconds",
        type=_positive(float, or_zero=True),
        default=DEFAULT_INLINE_READ_SECONDS,
        metavar="SECONDS",
        help="a streamed read is first tried on the event loop this long, then started over "
        "in a worker thread (uvicorn; 0: always a thread; default 0.005)",
    )
    parser.add_argument(
        "--malloc-keep",
        type=_size_or_zero,
        default=DEFAULT_MALLOC_KEEP,
        metavar="SIZE",
        help="freed memory the C allocator keeps for the next request, per arena "
        "(glibc; 0: its defaults; default 8MiB)",
    )
    add_operator_options(parser)
    # Keep this last: every flag added above gets its PROMWIRE_* variable.
    environment_defaults(parser)


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`serve` keywords from parsed :func:`add_serve_options` options."""
    return {
        "server": args.server,
        "http": args.http,
        "loop": args.loop,
        "allowed_origins": args.allowed_origin,
        "allowed_hosts": args.allowed_host,
        "workers": args.workers,
        "shutdown_timeout": args.shutdown_timeout,
        "operator": operator_options(args),
        "store": args.store,
        **{limit.name: getattr(args, limit.name) for limit in _LIMITS},
        "retention": args.retention,
        "retention_bytes": args.retention_size,
        "malloc_keep": args.malloc_keep,
        "inline_read_seconds": args.inline_read_seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m promwire.server.runner [options]`` (see ``--help``).

    Errors are one line on stderr: exit 2 for a bad option or address, 3 for
    a database that cannot be opened, 1 when the server cannot start.
    """
    parser = argparse.ArgumentParser(
        prog="python -m promwire.server.runner",
        description="Serve Prometheus remote write/read backed by SQLite.",
    )
    add_serve_options(parser)
    args = parser.parse_args(argv)
    try:
        serve(args.db, args.listen, **serve_options(args))
    except KeyboardInterrupt:
        return 0
    except ValueError as exc:
        print(f"promwire: {exc}", file=sys.stderr)
        return 2
    except UnusableDatabase as exc:
        print(f"promwire: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"promwire: cannot serve on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
