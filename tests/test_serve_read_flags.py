"""The read limits of ``promwire serve`` are flags that reach the handlers and the store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    Sample,
    TimeSeries,
    WriteRequest,
)
from tests.support.serve_process import post, serve_process

NOW = int(time.time() * 1000)


def _query(*matchers: LabelMatcher) -> Query:
    return Query(NOW - 60_000, NOW + 60_000, list(matchers))


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_read_limit_flags_take_effect(tmp_path: Path, server: str) -> None:
    options = ["--max-read-queries", "2", "--max-read-samples", "3", "--max-regex-length", "8"]
    with serve_process(tmp_path / "m.db", server, options=options) as served:
        write = WriteRequest(
            [
                TimeSeries(
                    [Label("__name__", "up"), Label("job", "a")],
                    [Sample(float(i), NOW - 1000 * i) for i in range(5)],
                )
            ]
        )
        assert post(served.port, "/api/v1/write", write)[0] == 204
        eq = LabelMatcher(MatchType.EQ, "__name__", "up")

        status, body = post(served.port, "/api/v1/read", ReadRequest([_query(eq)] * 3))
        assert status == 400 and b"queries" in body

        status, body = post(served.port, "/api/v1/read", ReadRequest([_query(eq)]))
        assert status == 400 and b"sample limit" in body  # 5 samples > 3

        long_re = LabelMatcher(MatchType.RE, "job", "a|b|c|d|e")  # 9 characters > 8
        status, body = post(served.port, "/api/v1/read", ReadRequest([_query(eq, long_re)]))
        assert status == 400 and b"regex" in body

        short_re = LabelMatcher(MatchType.RE, "job", "b|c")
        status, _ = post(served.port, "/api/v1/read", ReadRequest([_query(eq, short_re)]))
        assert status == 200
