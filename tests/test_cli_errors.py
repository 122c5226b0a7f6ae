"""The command line on bad configuration and empty input (one-line errors with the
documented exit codes, no tracebacks), help text on every option, and
``decode | encode`` giving back every real capture byte for byte (NaN bits kept)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promwire.cli import EXIT_INPUT, EXIT_MISSING, EXIT_USAGE, build_parser
from promwire.codec.messages import STALE_NAN_BITS
from promwire.codec.textform import TextFormatError, format_series, parse_text
from promwire.codec.wire import double_bits
from tests.conftest import FIXTURES
from tests.test_snappy_backends import BLOCK_CRAMJAM

REPO = Path(__file__).resolve().parent.parent


def run(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full = dict(os.environ)
    full.pop("PROMWIRE_SNAPPY", None)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "promwire", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=full,
        timeout=60,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("promwire: "), err
    assert proc.stdout == b""
    return err.strip()


# --------------------------------------------------------- decode | encode


CAPTURES = sorted(FIXTURES.glob("*/*.bin"))


def test_every_kind_of_capture_is_there() -> None:
    names = {p.name for p in CAPTURES}
    assert len(CAPTURES) >= 30
    assert "A_01_first_request.bin" in names  # remote write
    assert "rr_up_streamed.response.bin" in names  # a stream of frames
    assert "req_01.response.bin" in names  # a read response


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_decode_then_encode_gives_the_same_bytes(path: Path) -> None:
    decoded = run("decode", str(path))
    assert decoded.returncode == 0, decoded.stderr
    encoded = run("encode", stdin=decoded.stdout)
    assert encoded.returncode == 0, encoded.stderr
    assert encoded.stdout == path.read_bytes()


def test_decode_keeps_nan_bits_in_the_json() -> None:
    # Prometheus sends summary quantiles without observations as Go's math.NaN().
    decoded = run("decode", str(FIXTURES / "rw_sender" / "A_01_first_request.bin"))
    doc = json.loads(decoded.stdout)
    values = [s.get("value") for ts in doc["timeseries"] for s in ts.get("samples", [])]
    assert "NaN:0x7ff8000000000001" in values
    assert "NaN" not in values


def test_stale_marker_survives_json_and_text(tmp_path: Path) -> None:
    text = 'up{job="a"} stale 1000\nup{job="a"} NaN:0x7ff8000000000001 2000\nup{job="a"} NaN 3000\n'
    request = parse_text(text, now_ms=0)
    bits = [double_bits(s.value) for s in request.timeseries[0].samples]
    assert bits == [STALE_NAN_BITS, 0x7FF8000000000001, 0x7FF8000000000000]
    assert "\n".join(format_series(request.timeseries[0])) + "\n" == text
    # Through the command line: text -> JSON -> body -> JSON keeps the bits.
    src = tmp_path / "stale.json"
    src.write_text(
        json.dumps(
            {
                "timeseries": [
                    {
                        "labels": [{"name": "a", "value": "b"}],
                        "samples": [{"value": "NaN:0x7ff0000000000002"}],
                    }
                ]
            }
        )
    )
    body = run("encode", str(src))
    assert body.returncode == 0, body.stderr
    again = json.loads(run("decode", stdin=body.stdout).stdout)
    assert again["timeseries"][0]["samples"] == [{"value": "NaN:0x7ff0000000000002"}]


def test_text_form_relative_timestamps() -> None:
    request = parse_text("a 1 now\na 2 now-30s\na 3 now-1h5m\na 4 now+250ms\na 5 17", now_ms=10**7)
    got = [(s.value, s.timestamp) for s in request.timeseries[0].samples]
    assert got == [
        (1, 10**7),
        (2, 10**7 - 30_000),
        (3, 10**7 - 3_900_000),
        (4, 10**7 + 250),
        (5, 17),
    ]
    with pytest.raises(TextFormatError, match="now-<duration>"):
        parse_text("a 1 now-30x", now_ms=0)


# ------------------------------------------------------------- PROMWIRE_SNAPPY


@pytest.mark.parametrize("command", [["decode"], ["encode"], ["write", "http://127.0.0.1:1/w"]])
def test_bogus_snappy_backend_is_a_usage_error(command: list[str]) -> None:
    proc = run(*command, stdin=b"up 1", env={"PROMWIRE_SNAPPY": "bogus"})
    err = assert_one_line_error(proc, EXIT_USAGE)
    assert err == (
        "promwire: PROMWIRE_SNAPPY='bogus' is not a snappy backend: "
        "use one of cramjam, python or auto"
    )


def test_forced_cramjam_missing_is_exit_4() -> None:
    code = BLOCK_CRAMJAM + "from promwire.cli import main\nsys.exit(main(['decode']))\n"
    env = dict(os.environ, PROMWIRE_SNAPPY="cramjam", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", code], input=b"x", capture_output=True, env=env, timeout=60
    )
    err = assert_one_line_error(proc, EXIT_MISSING)
    assert "cramjam is not installed" in err


@pytest.mark.parametrize("value", ["python", "cramjam", "auto", ""])
def test_valid_snappy_backends_work(value: str) -> None:
    path = FIXTURES / "rw_sender" / "A_04_metadata_only.bin"
    proc = run("decode", str(path), env={"PROMWIRE_SNAPPY": value})
    assert proc.returncode == 0, proc.stderr
    assert b"Warning" not in proc.stderr


# ------------------------------------------------------------------ empty input


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["decode"], b"", "promwire: stdin: empty input, nothing to decode"),
        (["decode", "--raw"], b"", "promwire: stdin: empty input, nothing to decode"),
        (["decode", "-t", "write"], b"", "promwire: stdin: empty input, nothing to decode"),
        (["encode"], b"", "promwire: empty input: expected a JSON document"),
        (["encode"], b" \n", "promwire: empty input: expected a JSON document"),
        (["write", "http://127.0.0.1:1/w"], b"", "promwire: stdin: empty input, nothing to send"),
        (
            ["write", "http://127.0.0.1:1/w"],
            b"\n\n",
            "promwire: stdin: empty input, nothing to send",
        ),
        (
            ["write", "http://127.0.0.1:1/w"],
            b"# just a comment\n",
            "promwire: stdin: no samples or metadata in the input, nothing to send",
        ),
        (
            ["write", "http://127.0.0.1:1/w", "--format", "json"],
            b"{}",
            "promwire: stdin: no samples or metadata in the input, nothing to send",
        ),
    ],
)
def test_empty_input(args: list[str], stdin: bytes, message: str) -> None:
    # Port 1 is closed: reaching the network would give exit 1, not 3.
    assert assert_one_line_error(run(*args, stdin=stdin), EXIT_INPUT) == message


def test_empty_file_to_decode(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    err = assert_one_line_error(run("decode", str(empty)), EXIT_INPUT)
    assert err == f"promwire: {empty}: empty input, nothing to decode"


def test_empty_raw_body_of_a_named_type_is_an_empty_message() -> None:
    proc = run("decode", "--raw", "--type", "write", stdin=b"")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {}


# ---------------------------------------------------------------------- --help

OWNED_ELSEWHERE = {"serve"}  # its flags are documented with serve itself


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_option_has_help_text() -> None:
    subs = _subparsers()
    assert {"decode", "encode", "write", "read"} <= set(subs)
    missing = []
    for parser_name, parser in [("promwire", build_parser()), *sorted(subs.items())]:
        if parser_name in OWNED_ELSEWHERE:
            continue
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{parser_name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help text: {missing}"


@pytest.mark.parametrize("command", ["decode", "encode", "write", "read"])
def test_help_lists_every_option_with_its_text(command: str) -> None:
    proc = run(command, "--help")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    for action in _subparsers()[command]._actions:
        for option in action.option_strings:
            assert option in out
        if action.help:
            assert action.help.split("(")[0].split()[0] in out
