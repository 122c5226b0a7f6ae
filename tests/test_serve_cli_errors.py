"""``promwire serve`` refuses bad command lines with one line and its exit code (issue 11).

Exit codes are cli.py's table: 2 usage (a bad option or address), 3 invalid
input (a ``--db`` that is not a usable SQLite file), 1 the server cannot start.
Never a traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from promwire.cli import EXIT_INPUT, EXIT_REMOTE, EXIT_USAGE, build_parser

REPO = Path(__file__).resolve().parent.parent
SERVERS = ["uvicorn", "wsgiref"]


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promwire", "serve", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]
    assert proc.returncode == code, (proc.returncode, proc.stderr)


@pytest.mark.parametrize("server", SERVERS)
def test_a_port_out_of_range_is_a_usage_error(server: str, tmp_path: Path) -> None:
    proc = serve("--server", server, "--db", str(tmp_path / "x.db"), "--listen", "127.0.0.1:99999")
    assert_one_line(proc, EXIT_USAGE, "99999")
    assert not (tmp_path / "x.db").exists()  # refused before anything was created


@pytest.mark.parametrize("server", SERVERS)
def test_a_db_in_a_missing_directory_is_invalid_input(server: str) -> None:
    proc = serve("--server", server, "--db", "/nonexistent/dir/x.db", "--listen", "127.0.0.1:0")
    assert_one_line(proc, EXIT_INPUT, "/nonexistent/dir")


@pytest.mark.parametrize("server", SERVERS)
def test_a_db_that_is_a_directory_is_invalid_input(server: str, tmp_path: Path) -> None:
    proc = serve("--server", server, "--db", str(tmp_path), "--listen", "127.0.0.1:0")
    assert_one_line(proc, EXIT_INPUT, "is a directory")


@pytest.mark.parametrize("server", SERVERS)
def test_a_db_that_is_not_sqlite_is_invalid_input(server: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database\n" * 200)
    proc = serve("--server", server, "--db", str(junk), "--listen", "127.0.0.1:0")
    assert_one_line(proc, EXIT_INPUT, "not an SQLite database")
    assert junk.read_bytes() == b"this is not an SQLite database\n" * 200  # left alone


@pytest.mark.parametrize("server", SERVERS)
def test_a_port_in_use_is_a_one_line_failure_to_start(server: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve(
            "--server", server, "--db", str(tmp_path / "x.db"), "--listen", f"127.0.0.1:{port}"
        )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == EXIT_REMOTE, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("promwire: ")


@pytest.mark.parametrize(
    "flag", ["--header-timeout", "--body-timeout", "--idle-timeout", "--max-connections"]
)
def test_a_limit_that_is_not_positive_is_a_usage_error(flag: str) -> None:
    proc = serve(flag, "0", "--listen", "127.0.0.1:0", "--db", ":memory:")
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" not in proc.stderr
    assert flag in proc.stderr


def test_every_serve_option_has_help_text() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve_parser = sub.choices["serve"]  # type: ignore[index]
    options = [a for a in serve_parser._actions if a.option_strings and a.dest != "help"]
    names = {a.option_strings[0] for a in options}
    assert {
        "--db",
        "--listen",
        "--server",
        "--header-timeout",
        "--body-timeout",
        "--idle-timeout",
        "--max-connections",
        "--max-buffered-bytes",
        "--allowed-origin",
        "--allowed-host",
    } <= names
    for action in options:
        assert action.help and len(action.help) > 10, action.option_strings
