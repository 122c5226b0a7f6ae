"""The promwire command line: encode/decode round trips, exit codes, time parsing,
the text form, and write/read/serve end to end (real Prometheus, real `promwire serve`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    Label,
    MetricType,
    ReadRequest,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
    to_dict,
)
from promwire.cli import EXIT_INPUT, EXIT_REMOTE, EXIT_USAGE, CliError, main, parse_time
from promwire.codec.messages import STALE_NAN_BITS
from promwire.codec.textform import TextFormatError, format_series, parse_text
from promwire.codec.wire import double_bits
from tests.conftest import FIXTURES
from tests.support.prometheus import PrometheusProcess, free_port

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "promwire", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )


# ------------------------------------------------------------------ encode/decode


def test_encode_decode_roundtrip(tmp_path: Path) -> None:
    req = WriteRequest(
        timeseries=[
            TimeSeries(
                [Label("__name__", "a"), Label("x", "é")], [Sample(-1.5, -1000), Sample(2, 5)]
            )
        ]
    )
    src = tmp_path / "req.json"
    src.write_text(json.dumps(to_dict(req)))
    body = tmp_path / "req.bin"
    proc = run("encode", str(src), "-o", str(body))
    assert proc.returncode == 0, proc.stderr
    assert decode(WriteRequest, snappy.decompress(body.read_bytes())) == req
    proc = run("decode", str(body))
    assert proc.returncode == 0 and json.loads(proc.stdout) == to_dict(req)
    assert b": write, snappy" in proc.stderr
    # Raw protobuf through stdin/stdout.
    raw = run("encode", "--raw", stdin=src.read_bytes())
    assert raw.returncode == 0 and raw.stdout == encode(req)
    back = run("decode", "--raw", "--type", "write", stdin=raw.stdout)
    assert json.loads(back.stdout) == to_dict(req)


def test_chunked_stream_roundtrip(tmp_path: Path) -> None:
    stream = FIXTURES / "rr_server" / "rr_two_queries_streamed.response.bin"
    doc = run("decode", str(stream))
    assert doc.returncode == 0
    again = run("encode", "-o", str(tmp_path / "s.bin"), stdin=doc.stdout)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "s.bin").read_bytes() == stream.read_bytes()


def test_decode_streamed_to_samples() -> None:
    path = FIXTURES / "rr_server" / "rr_up_streamed.response.bin"
    sidecar = json.loads((FIXTURES / "rr_server" / "rr_up_streamed.json").read_text())
    proc = run("decode", "--samples", str(path))
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)["results"]
    for ts, exp in zip(result["timeseries"], sidecar["response_decoded"]["series"], strict=True):
        assert {lb["name"]: lb["value"] for lb in ts["labels"]} == exp["labels"]
        samples = [(int(s["timestamp"]), s.get("value", 0.0)) for s in ts["samples"]]
        assert len(samples) == sum(c["xor_decoded_n"] for c in exp["chunks"])
        assert list(samples[0]) == exp["chunks"][0]["xor_first"]
        assert list(samples[-1]) == exp["chunks"][-1]["xor_last"]


def test_decode_detects_type_from_content() -> None:
    # A ReadRequest body: same leading tag as a WriteRequest; detection must not confuse them.
    path = FIXTURES / "rr_client" / "req_03.bin"
    proc = run("decode", str(path))
    assert b"read-request" in proc.stderr
    req = decode(ReadRequest, snappy.decompress(path.read_bytes()))
    assert json.loads(proc.stdout) == to_dict(req)


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["decode", "/nonexistent/x.bin"], b"", EXIT_INPUT, b"cannot read"),
        (["decode"], b"\x05\xff\xff\xff\xff\xff", EXIT_INPUT, b"no message type"),
        (["decode", "--type", "write"], b"\x10garbage", EXIT_INPUT, b"--raw"),
        (["encode"], b"{not json", EXIT_INPUT, b"invalid JSON"),
        (["encode", "--type", "write"], b'{"bogus": 1}', EXIT_INPUT, b"unknown field"),
        (["read", "http://127.0.0.1:1/r", "up{"], b"", EXIT_USAGE, b"missing '}'"),
        (
            ["read", "http://127.0.0.1:1/r", "up", "--start", "yesterday"],
            b"",
            EXIT_USAGE,
            b"bad time",
        ),
        (
            ["write", "http://127.0.0.1:1/w", "-H", "User-Agent: x"],
            b"up 1",
            EXIT_USAGE,
            b"reserved",
        ),
        (["write", "http://127.0.0.1:1/w"], b"up{a=b} 1", EXIT_INPUT, b"line 1"),
        (["nosuch"], b"", EXIT_USAGE, b"invalid choice"),
    ],
)
def test_exit_codes(args: list[str], stdin: bytes, code: int, message: bytes) -> None:
    proc = run(*args, stdin=stdin)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert proc.stdout == b""


def test_write_network_error_exit_code() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    proc = run("write", url, "--max-retries", "0", "--timeout", "2", stdin=b"up 1 1000")
    assert proc.returncode == EXIT_REMOTE and b"no answer" in proc.stderr


def test_parse_time() -> None:
    now = 1_800_000_000_000
    assert parse_time("now", now_ms=now) == now
    assert parse_time("now-1h30m", now_ms=now) == now - 5_400_000
    assert parse_time("-15m", now_ms=now) == now - 900_000
    assert parse_time("now+10s", now_ms=now) == now + 10_000
    assert parse_time("1700000000123", now_ms=now) == 1_700_000_000_123
    assert parse_time("-5", now_ms=now) == -5  # a plain integer is epoch milliseconds
    assert parse_time("2026-11-25T06:00:00Z", now_ms=now) == 1_795_586_400_000
    assert parse_time("2026-11-25T07:00:00+01:00", now_ms=now) == 1_795_586_400_000
    for bad in ("soon", "now-1x", "-", "now-"):
        with pytest.raises(CliError):
            parse_time(bad, now_ms=now)


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "rw_sender" / "A_05_metadata_only_tail.bin"
    assert main(["decode", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert doc == sidecar["decoded"]


# ---------------------------------------------------------------------- text form


def test_text_form() -> None:
    text = """
    # HELP reqs_total Requests.\\nAll of them.
    # TYPE reqs_total counter
    reqs_total{method="GET",code="200"} 10 1000
    reqs_total{code="200",method="GET"} 12 2000
    reqs_total{method="POST", code="500",} 1e3 1000
    temp -0.5
    {"my.metric", q="a\\"b\\\\c\\nd"} +Inf 7
    nan_metric NaN 1
    stale_metric stale 1
    """
    req = parse_text(text, now_ms=42)
    [md] = req.metadata
    assert (md.metric_family_name, md.type, md.help) == (
        "reqs_total",
        MetricType.COUNTER,
        "Requests.\nAll of them.",
    )
    labels = [[(lb.name, lb.value) for lb in ts.labels] for ts in req.timeseries]
    assert labels == [
        [("__name__", "reqs_total"), ("code", "200"), ("method", "GET")],
        [("__name__", "reqs_total"), ("code", "500"), ("method", "POST")],
        [("__name__", "temp")],
        [("__name__", "my.metric"), ("q", 'a"b\\c\nd')],
        [("__name__", "nan_metric")],
        [("__name__", "stale_metric")],
    ]
    assert req.timeseries[0].samples == [Sample(10, 1000), Sample(12, 2000)]
    assert req.timeseries[2].samples == [Sample(-0.5, 42)]
    assert req.timeseries[3].samples == [Sample(math.inf, 7)]
    assert math.isnan(req.timeseries[4].samples[0].value)
    assert double_bits(req.timeseries[5].samples[0].value) == STALE_NAN_BITS
    # Printing and parsing again gives the same series.
    lines = "\n".join(line for ts in req.timeseries for line in format_series(ts))
    again = parse_text(lines, now_ms=0)
    assert [ts.labels for ts in again.timeseries] == [ts.labels for ts in req.timeseries]
    assert [len(ts.samples) for ts in again.timeseries] == [2, 1, 1, 1, 1, 1]
    assert double_bits(again.timeseries[5].samples[0].value) == STALE_NAN_BITS


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("up", "missing value"),
        ("up x", "not a number"),
        ("up 1 1.5", "integer milliseconds"),
        ("up 1 2 3", "after the timestamp"),
        ('up{a="1",a="2"} 1', "given twice"),
        ('up{a=~"1"} 1', "only equality"),
        ('up{a="1} 1', "unterminated"),
        ('{a=""} 1', "at least one non-empty label"),
    ],
)
def test_text_form_errors(line: str, message: str) -> None:
    with pytest.raises(TextFormatError, match=message):
        parse_text(f"# ok\n{line}\n", now_ms=0)


# -------------------------------------------------------------- against Prometheus


@pytest.fixture(scope="module")
def prom(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    flags = ["--web.enable-remote-write-receiver"]
    with PrometheusProcess(
        "global:\n  scrape_interval: 1h\n", tmp_path_factory.mktemp("p"), flags=flags
    ) as p:
        yield p


def _text_lines(out: bytes) -> list[str]:
    return sorted(out.decode().splitlines())


@pytest.mark.prometheus
def test_write_then_read_prometheus(prom: PrometheusProcess, tmp_path: Path) -> None:
    t = int(time.time() * 1000) - 60_000
    text = "".join(
        f'pw_cli_metric{{job="j",n="{n}"}} {v} {t + 1000 * i}\n'
        for n in range(2)
        for i, v in enumerate([0.5, 1, -3.25, 1e10])
    )
    src = tmp_path / "in.txt"
    src.write_text(text)
    w = run("write", prom.url + "/api/v1/write", str(src), "--max-samples-per-send", "3")
    assert w.returncode == 0, w.stderr
    assert b"sent 2 series, 8 points in 3 request(s)" in w.stderr

    for rtype in ("samples", "streamed"):
        r = run(
            "read",
            prom.url + "/api/v1/read",
            'pw_cli_metric{job="j"}',
            "--start",
            str(t),
            "--end",
            str(t + 10_000),
            "--response-type",
            rtype,
        )
        assert r.returncode == 0, r.stderr
        got = _text_lines(r.stdout)
        want = _text_lines(
            "\n".join(
                line for ts in parse_text(text, now_ms=0).timeseries for line in format_series(ts)
            ).encode()
        )
        assert got == want
        assert b"2 series, 8 samples" in r.stderr

    # Same data through PromQL.
    data = prom.api("/api/v1/query", query='pw_cli_metric{n="1"}[1m]', time=(t + 5000) / 1000)
    [series] = data["result"]
    assert [float(v) for _, v in series["values"]] == [0.5, 1.0, -3.25, 1e10]

    # An out-of-order write is refused: exit code 1, Prometheus' reason on stderr.
    late = run(
        "write", prom.url + "/api/v1/write", stdin=f'pw_cli_metric{{job="j",n="0"}} 1 {t}'.encode()
    )
    assert late.returncode == EXIT_REMOTE and b"400" in late.stderr


# --------------------------------------------------------------- promwire serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promwire",
            "serve",
            "--db",
            str(tmp_path / "pw.db"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (404/405): up
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_write_read(served: str) -> None:
    text = 'pw_served{a="1"} 1.5 1000\npw_served{a="1"} 2.5 2000\npw_served{a="2"} 7 1500\n'
    w = run("write", served + "/api/v1/write", "--format", "text", stdin=text.encode())
    assert w.returncode == 0, w.stderr
    r = run(
        "read", served + "/api/v1/read", "pw_served", "--start", "0", "--end", "5000", "-o", "json"
    )
    assert r.returncode == 0, r.stderr
    doc: Any = json.loads(r.stdout)
    got = {
        tuple((lb["name"], lb["value"]) for lb in ts["labels"]): [
            (int(s["timestamp"]), s["value"]) for s in ts["samples"]
        ]
        for ts in doc["results"][0]["timeseries"]
    }
    assert got == {
        (("__name__", "pw_served"), ("a", "1")): [(1000, 1.5), (2000, 2.5)],
        (("__name__", "pw_served"), ("a", "2")): [(1500, 7.0)],
    }


def test_serve_bad_listen() -> None:
    proc = run("serve", "--listen", "nonsense")
    assert proc.returncode == EXIT_USAGE and b"host:port" in proc.stderr


def test_serve_without_server_module() -> None:
    code = (
        "import sys\n"
        "sys.modules['promwire.server.runner'] = None\n"  # as if the module did not exist
        "from promwire.cli import main\n"
        "sys.exit(main(['serve']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=30)
    assert proc.returncode == 4 and b"needs promwire.server.runner" in proc.stderr


def test_serve_port_in_use(served: str) -> None:
    # The port `served` holds: the second server cannot bind.
    proc = run("serve", "--db", ":memory:", "--listen", served.removeprefix("http://"))
    assert proc.returncode == EXIT_REMOTE
    assert b"stopped" in proc.stderr or b"cannot serve" in proc.stderr
