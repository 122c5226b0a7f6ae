"""Issue 12, finding 1: hostile regex matchers against a real ``promwire serve``.

``job=~"(a+)+b"`` against a stored value of 40 a's used to hang the server
(Python's backtracking ``re``); every read and write stalled with it. Both
engines are linear now: the read answers at once and a write sent at the
same time is not held up. Refusals (backreference, lookaround, 2000 nested
groups, huge repeat counts, over-long patterns) are 400 with a short body.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ReadResponse,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from promwire.errors import StorageRejected
from promwire.stores import regex
from tests.support.serve_process import serve_process

REPO = Path(__file__).resolve().parent.parent
RW = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
RR = {**RW, "X-Prometheus-Remote-Read-Version": "0.1.0"}
HOSTILE = [("job", "(a+)+b"), ("__name__", "([a-z_]+)+!"), ("job", "(a|aa)*c"), ("job", "(a*)*b")]
#: The bound the issue sets for an answer.
WITHIN = 1.0


@pytest.mark.parametrize("engine", ["python", "re2"])
@pytest.mark.parametrize(("_name", "pattern"), HOSTILE)
def test_hostile_patterns_match_in_linear_time(engine: str, _name: str, pattern: str) -> None:
    compiled = regex.compile_regex(pattern, engine=engine)  # type: ignore[arg-type]
    for value in ("a" * 40, "a" * 10_000, "node_cpu_seconds_total" * 400):
        started = time.monotonic()
        assert not compiled.matches(value)
        assert time.monotonic() - started < WITHIN


@contextmanager
def serve(db: Path, server: str, engine: str) -> Iterator[int]:
    # A hung server ignores SIGTERM (the bug): serve_process kills it after 10 s.
    with serve_process(db, server, env={"PROMWIRE_REGEX": engine}) as served:
        yield served.port


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - started
    finally:
        conn.close()


def read_body(name: str, pattern: str) -> bytes:
    query = Query(0, 1 << 60, [LabelMatcher(MatchType.RE, name, pattern)])
    return snappy.compress(encode(ReadRequest([query])))


def write_body(job: str, ts: int) -> bytes:
    series = TimeSeries([Label("__name__", "up"), Label("job", job)], [Sample(1.0, ts)])
    return snappy.compress(encode(WriteRequest([series])))


@pytest.mark.parametrize("engine", ["python", "re2"])
@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_hostile_read_does_not_stall_the_server(server: str, engine: str, tmp_path: Path) -> None:
    with serve(tmp_path / "h.db", server, engine) as port:
        assert post(port, "/api/v1/write", write_body("a" * 40, 1000), RW)[0] == 204
        # The stored series is there for a harmless pattern.
        status, body, _ = post(port, "/api/v1/read", read_body("job", "a+"), RR)
        assert status == 200
        answer = decode(ReadResponse, snappy.decompress(body))
        assert len(answer.results[0].timeseries) == 1

        for name, pattern in HOSTILE:
            results: dict[str, tuple[int, bytes, float]] = {}

            def read(n: str = name, p: str = pattern, out: dict[str, Any] = results) -> None:
                out["read"] = post(port, "/api/v1/read", read_body(n, p), RR)

            reader = threading.Thread(target=read)
            reader.start()
            write = post(port, "/api/v1/write", write_body("zz", 2000), RW)
            reader.join(10)
            assert not reader.is_alive(), f"read with {pattern} did not return"
            assert write[0] == 204 and write[2] < WITHIN, (pattern, write)
            status, body, elapsed = results["read"]
            assert elapsed < WITHIN, (pattern, elapsed)
            assert status == 200, body[:200]
            answer = decode(ReadResponse, snappy.decompress(body))
            assert answer.results[0].timeseries == []


REFUSED = {
    "backreference": "(a)\\1",
    "lookahead": "a(?=b)",
    "lookbehind": "(?<=a)b",
    "2000 nested groups": "(" * 2000 + "a" + ")" * 2000,
    "a{4294967295}": "a{4294967295}",
    "a{1001}": "a{1001}",
    "over-long": "a" * (regex.DEFAULT_MAX_REGEX_LENGTH + 1),
    "1 MiB": "(" * (1 << 20),
}


@pytest.mark.parametrize("engine", ["python", "re2"])
@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_refused_patterns_are_400_with_a_short_message(
    server: str, engine: str, tmp_path: Path
) -> None:
    with serve(tmp_path / "r.db", server, engine) as port:
        for what, pattern in REFUSED.items():
            with pytest.raises(StorageRejected):
                regex.compile_regex(pattern, engine=engine)  # type: ignore[arg-type]
            status, body, elapsed = post(port, "/api/v1/read", read_body("job", pattern), RR)
            text = body.decode("utf-8", "replace")
            assert status == 400, (what, text[:200])
            assert "regex" in text, what
            assert len(text) < 300, (what, len(text))
            assert "Error" not in text and "Traceback" not in text, text
            assert elapsed < WITHIN, (what, elapsed)
        # The server still answers normally afterwards.
        assert post(port, "/api/v1/write", write_body("c", 1000), RW)[0] == 204
