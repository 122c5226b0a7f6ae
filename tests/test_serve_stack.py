"""``promwire serve``'s uvicorn stack: the ``--http``/``--loop`` flags, how
``auto`` resolves, and the header deadline around a request in flight.

The attacks themselves (slow headers, large heads, blank lines, pipelining)
run against a real ``serve`` on both parsers in tests/test_hostile_connections.py.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from promwire.server import runner
from promwire.server.uvicorn_guard import choose_stack, guarded_protocol, uvicorn_options
from tests.support.prometheus import free_port

HEALTHY = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _parse(*argv: str) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    runner.add_serve_options(parser)
    return runner.serve_options(parser.parse_args(argv))


# ----------------------------------------------------------------- the flags


def test_the_flags_reach_serve_and_default_to_auto() -> None:
    assert (_parse()["http"], _parse()["loop"]) == ("auto", "auto")
    options = _parse("--http", "h11", "--loop", "asyncio")
    assert (options["http"], options["loop"]) == ("h11", "asyncio")
    options = _parse("--http", "httptools", "--loop", "uvloop")
    assert (options["http"], options["loop"]) == ("httptools", "uvloop")


@pytest.mark.parametrize("argv", [("--http", "h2"), ("--loop", "trio"), ("--http",)])
def test_an_unknown_parser_or_loop_is_a_usage_error(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        runner.main(["--db", ":memory:", *argv])
    assert exited.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_the_flags_have_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMWIRE_HTTP", "h11")
    monkeypatch.setenv("PROMWIRE_LOOP", "asyncio")
    options = _parse()
    assert (options["http"], options["loop"]) == ("h11", "asyncio")
    assert _parse("--http", "httptools")["http"] == "httptools"  # the flag wins


def test_the_stdlib_server_refuses_a_parser_or_loop(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("--http", "h11"), ("--loop", "uvloop")):
        code = runner.main(["--db", ":memory:", "--server", "wsgiref", *argv])
        assert code == 2
        assert "--http and --loop choose uvicorn's" in capsys.readouterr().err


# ------------------------------------------------------------ auto resolved


def test_auto_is_the_fast_one_when_importable() -> None:
    have_httptools = importlib.util.find_spec("httptools") is not None
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    assert choose_stack() == (
        "httptools" if have_httptools else "h11",
        "uvloop" if have_uvloop else "asyncio",
    )
    assert choose_stack("h11", "asyncio") == ("h11", "asyncio")
    assert choose_stack("auto", "asyncio")[1] == "asyncio"


@pytest.mark.parametrize("missing", ["httptools", "uvloop"])
def test_auto_falls_back_when_not_installed_and_asking_for_it_fails(
    missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == missing else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    http, loop = choose_stack()
    assert (http == "h11") == (missing == "httptools")
    assert (loop == "asyncio") == (missing == "uvloop")
    with pytest.raises(ValueError, match=f"{missing} is not installed"):
        choose_stack(http=missing) if missing == "httptools" else choose_stack(loop=missing)


def test_unknown_names_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown --http"):
        choose_stack(http="zttp")
    with pytest.raises(ValueError, match="unknown --loop"):
        choose_stack(loop="zuvloop")
    with pytest.raises(ValueError, match="unknown HTTP parser"):
        guarded_protocol(1.0, "auto")
    with pytest.raises(ValueError, match="header_timeout"):
        guarded_protocol(0, "httptools")


def test_the_options_carry_the_guards_to_either_parser() -> None:
    for http, base in (("h11", H11Protocol), ("httptools", HttpToolsProtocol)):
        options = uvicorn_options(
            header_timeout=3, idle_timeout=4, max_connections=5, http=http, loop="asyncio"
        )
        protocol = options.pop("http")
        assert issubclass(protocol, base) and protocol.header_timeout == 3
        assert options == {
            "loop": "asyncio",
            "timeout_keep_alive": 4,
            "limit_concurrency": 6,
            "server_header": False,
            "headers": [("Server", "promwire")],
        }


# ------------------------------------- the header deadline and a busy server


async def _slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers each request after 3 s (a long remote read, say)."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(3)
    headers = [(b"content-length", b"4")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"done"})


@contextmanager
def _uvicorn(http: str, **guards: float) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _slow_app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        lifespan="off",
        **uvicorn_options(http=http, loop="asyncio", **guards),  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_request_in_flight_is_not_cut_by_the_next_heads_deadline(http: str) -> None:
    """A pipelined head that cannot be read while the server answers the
    request before it is not timed meanwhile: the 3 s answer arrives (header
    deadline 1 s), and the connection is closed soon after, as that head
    never completes."""
    with (
        _uvicorn(http, header_timeout=1, idle_timeout=2) as port,
        socket.create_connection(("127.0.0.1", port), timeout=15) as sock,
    ):
        sock.sendall(HEALTHY + b"GET / HT")
        started = time.monotonic()
        data = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        took = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"done"), data
    assert 2.9 < took < 9, took


def test_the_stack_benchmark_times_every_stack(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.serve_stack`` runs (one round): a row per stack,
    each cell a positive time; no timing is asserted."""
    from benchmarks import serve_stack

    assert serve_stack.main(["--rounds", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        f"| {parser} / {loop}" for parser, loop in serve_stack.STACKS
    ]
    for row in rows[1:]:
        cells = row.strip("| ").split(" | ")[1:]
        assert len(cells) == 3 and all(float(cell.split()[0]) > 0 for cell in cells)
