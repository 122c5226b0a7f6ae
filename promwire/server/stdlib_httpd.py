"""A threaded WSGI server on the standard library, with timeouts and a connection cap.

``wsgiref.simple_server`` has no timeouts: a client sending its headers one
byte a second (slowloris), or a body shorter than its Content-Length, holds
a thread forever. This server is wsgiref's request handling with:

* a **header deadline**: the request line and headers must arrive within
  ``header_timeout`` seconds of the connection opening; every socket read
  waits at most until then, so trickling bytes does not extend it;
* a **body deadline**: the body must arrive within ``body_timeout`` seconds
  of the headers (a read past it raises ``TimeoutError``, which the app
  answers 408);
* a **connection cap**: at most ``max_connections`` connections are served at
  once (one thread each); more are answered ``503`` at once from the
  accepting thread, without a thread of their own (one shared thread drains
  and closes them);
* no version banner (``Server: promwire``), short ``text/plain`` error
  answers that never echo the request line, and no ``Content-Type`` made up
  when the request has none (wsgiref says ``text/plain``; the receiver
  treats a missing one as remote write 1.0, as Prometheus does);
* ``411`` for a chunked upload (wsgiref cannot de-chunk; Prometheus always
  sends a Content-Length).

It answers HTTP/1.0-style, closing the connection after each response, so a
connection is never idle between requests. After the response it stops
writing and drains what the client still sends for at most ``_LINGER``
seconds, so a client that was refused before it finished sending still
reads the answer instead of a reset.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import queue
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .guards import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS

__all__ = ["GuardedWSGIServer", "make_guarded_server"]

log = logging.getLogger("promwire")

SERVER_NAME = "promwire"
#: Seconds a response may take to be written (per write call).
_WRITE_TIMEOUT = 60.0
#: Seconds, and bytes, drained from a client after the response before closing.
_LINGER = 0.5
_LINGER_BYTES = 256 * 1024


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all end by ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining if remaining != math.inf else None)
        return self.sock.recv_into(buffer)


class _SocketWriter(io.RawIOBase):
    """Writes with a bounded wait, so a client that stops reading frees its thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.settimeout(_WRITE_TIMEOUT)
        self.sock.sendall(data)
        return len(data)


class _ServerHandler(ServerHandler):
    server_software = SERVER_NAME

    def log_exception(self, exc_info: Any) -> None:
        log.error("the WSGI application failed", exc_info=exc_info)


class _GuardedHandler(WSGIRequestHandler):
    server: GuardedWSGIServer
    server_version = SERVER_NAME
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self._reader = _DeadlineReader(self.connection)
        self._reader.deadline = time.monotonic() + self.server.header_timeout
        self.rfile = io.BufferedReader(self._reader, 64 * 1024)
        self.wfile = _SocketWriter(self.connection)  # type: ignore[assignment]

    def version_string(self) -> str:
        return SERVER_NAME

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request of a 1 s scrape loop is noise

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # A short text answer; http.server's HTML page quotes the request line back.
        self._answer(code, HTTPStatus(code).phrase)

    def _answer(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.close_connection = True
        self.send_response_only(code)
        self.send_header("Server", SERVER_NAME)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def get_environ(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_environ()
        if self.headers.get("content-type") is None:
            env.pop("CONTENT_TYPE", None)  # wsgiref would say text/plain
        return env

    def handle(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
        except (TimeoutError, ConnectionError):
            return  # the header deadline passed: close without a word
        if self.headers.get("transfer-encoding") is not None:
            self._answer(411, "chunked request bodies are not supported: send a Content-Length")
            return
        self._reader.deadline = time.monotonic() + self.server.body_timeout
        handler = _ServerHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]
            sys.stderr,
            self.get_environ(),
            multithread=True,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        app = self.server.get_app()
        assert app is not None
        handler.run(app)

    def finish(self) -> None:
        super().finish()
        _linger(self.connection)


def _linger(sock: socket.socket) -> None:
    """Stop writing, then read and drop what the client still sends, briefly."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER
        drained = 0
        while drained < _LINGER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            data = sock.recv(64 * 1024)
            if not data:
                return
            drained += len(data)
    except OSError:
        return


def _busy_answer() -> bytes:
    body = b"too many connections: retry later\n"
    head = (
        "HTTP/1.0 503 Service Unavailable\r\nServer: promwire\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


#: What a connection past ``max_connections`` is sent, built once.
_BUSY = _busy_answer()


class GuardedWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's WSGI server, one thread per connection, with deadlines and a cap."""

    daemon_threads = True
    block_on_close = False
    #: listen() backlog: socketserver's 5 drops connections arriving together
    #: (Prometheus' shards), which then wait for the client's SYN retry.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if header_timeout <= 0 or body_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if max_connections <= 0:
            raise ValueError("max_connections must be > 0")
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.active = 0
        self._count_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        #: refused connections waiting to be closed (at most 64; more are closed at once)
        self._refused: queue.Queue[socket.socket | None] = queue.Queue(maxsize=64)
        threading.Thread(target=self._close_refused, daemon=True).start()
        super().__init__(address, _GuardedHandler)  # on failure, server_close ends the thread

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            admitted = self.active < self.max_connections
            if admitted:
                self.active += 1
        if not admitted:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._leave()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._leave()

    def _leave(self) -> None:
        with self._count_lock:
            self.active -= 1

    def _refuse(self, request: socket.socket) -> None:
        # Answer at once, then let one lingering thread close it (a client
        # still sending would otherwise get a reset instead of the 503).
        try:
            request.setblocking(False)
            request.send(_BUSY)
        except OSError:
            pass
        try:
            self._refused.put_nowait(request)
        except queue.Full:
            self.shutdown_request(request)

    def _close_refused(self) -> None:
        while (sock := self._refused.get()) is not None:
            _linger(sock)
            self.shutdown_request(sock)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(queue.Full):
            self._refused.put_nowait(None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


def make_guarded_server(
    host: str,
    port: int,
    app: Any,
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> GuardedWSGIServer:
    """A :class:`GuardedWSGIServer` bound to ``host:port`` serving the WSGI ``app``."""
    server = GuardedWSGIServer(
        (host, port),
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
    )
    server.set_app(app)
    return server
