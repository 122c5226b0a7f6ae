"""The sender cases of prometheus/compliance (``remotewrite/sender/*_test.go``),
ported as tables and run against :class:`RemoteWriteClient` and ``promwire write``.

Each row names the Go case it comes from. The Go suite drives a Prometheus
binary through scrapes; here the client is driven directly against a scripted
loopback receiver (``tests.test_client_retry.server``), which answers what
the Go case's mock receiver answers and records every request.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    Label,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    snappy,
    v2,
)
from promwire.client.writer import RemoteWriteClient, RemoteWriteError, RetryPolicy
from promwire.v2.convert import from_v1
from tests.support.prometheus import free_port
from tests.test_client_retry import Recorder, Script, server  # noqa: F401  (fixture)

V1_CT = "application/x-protobuf"
V2_CT = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
WRITTEN = {
    "X-Prometheus-Remote-Write-Samples-Written": "1",
    "X-Prometheus-Remote-Write-Histograms-Written": "0",
    "X-Prometheus-Remote-Write-Exemplars-Written": "0",
}


def _request() -> WriteRequest:
    return WriteRequest(
        timeseries=[TimeSeries([Label("__name__", "test_metric")], [Sample(42.0, 1000)])]
    )


# --------------------------------------------------------------- retry_test.go


@dataclass(frozen=True)
class RetryCase:
    go_name: str
    level: str
    status: int
    retried: bool
    retry_on_429: bool = False


RETRY_CASES = [
    RetryCase("no_retry_on_400", "MUST", 400, False),
    RetryCase("no_retry_on_401", "MUST", 401, False),
    RetryCase("no_retry_on_404", "MUST", 404, False),
    RetryCase("no_retry_on_413", "SHOULD", 413, False),
    RetryCase("may_retry_on_429 (retry_on_http_429 on)", "MAY", 429, True, True),
    RetryCase("may_retry_on_429 (off, Prometheus' default)", "MAY", 429, False),
    RetryCase("retry_on_500", "MUST", 500, True),
    RetryCase("retry_on_502", "SHOULD", 502, True),
    RetryCase("retry_on_503", "MUST", 503, True),
    RetryCase("retry_on_504", "SHOULD", 504, True),
    # error_handling_test.go handle_invalid_status_code: Prometheus retries
    # only status/100 == 5, so 999 (and 600) are final like a 4xx.
    RetryCase("handle_invalid_status_code (999)", "SHOULD", 999, False),
    RetryCase("handle_invalid_status_code (600)", "SHOULD", 600, False),
]


@pytest.mark.parametrize("case", RETRY_CASES, ids=lambda c: c.go_name)
def test_retry_cases(server: tuple[str, Script], case: RetryCase) -> None:  # noqa: F811
    url, script = server
    script.answers = [(case.status, {}, b"no"), (204, {}, b"")]
    rec = Recorder()
    with RemoteWriteClient(url, sleep=rec, retry_on_429=case.retry_on_429) as c:
        if case.retried:
            assert c.send(_request()).attempts == 2
        else:
            with pytest.raises(RemoteWriteError) as info:
                c.send(_request())
            assert info.value.status == case.status and not info.value.retryable
    assert len(script.seen) == (2 if case.retried else 1)
    assert len(rec.sleeps) == (1 if case.retried else 0)


# ------------------------------------------------------------- backoff_test.go


@pytest.mark.parametrize("seed", range(20))
def test_backoff_cases(seed: int) -> None:
    """exponential_backoff_on_retries (each interval >= 0.8 x the previous),
    backoff_required (every interval >= 1 ms), backoff_max_delay (<= 60 s),
    backoff_with_jitter (intervals are not exact doublings), over many
    jitter draws; and min_backoff is a real minimum."""
    import random

    rng = random.Random(seed)
    policy = RetryPolicy(min_backoff=0.03, max_backoff=5.0, random=rng.uniform)
    delays = [policy.backoff(n) for n in range(1, 12)]
    assert all(d >= 0.03 for d in delays)  # backoff_required, min_backoff
    assert all(d <= 5.0 <= 60 for d in delays)  # backoff_max_delay
    assert all(b >= 0.8 * a for a, b in itertools.pairwise(delays))
    assert all(b >= a for a, b in itertools.pairwise(delays))  # never shrinking
    growing = [d for d in delays if d < 5.0]
    assert any(b != 2 * a for a, b in itertools.pairwise(growing))  # jitter


# ------------------------------------------------------------ fallback_test.go


def test_fallback_cases(server: tuple[str, Script]) -> None:  # noqa: F811
    """fallback_on_415_unsupported_media_type, retry_with_different_version,
    fallback_header_changes (MUST), accept_success_after_fallback,
    persistent_fallback_choice; and no fallback on a 2xx (MUST NOT)."""
    url, script = server
    script.answers = [(415, {}, b"v2 not supported"), (204, {}, b"")]
    rec = Recorder()
    with RemoteWriteClient(url, protocol="v2", sleep=rec) as c:
        first = c.send(_request())
        assert first.status == 204 and c.active_protocol == "v1"
        c.send(_request())  # persistent: the second request is v1 from the start
    versions = [s.headers["X-Prometheus-Remote-Write-Version"] for s in script.seen]
    types = [s.headers["Content-Type"] for s in script.seen]
    assert versions == ["2.0.0", "0.1.0", "0.1.0"]
    assert types == [V2_CT, V1_CT, V1_CT]
    assert rec.sleeps == []  # re-sent at once: a 415 is no overload
    resent = decode(WriteRequest, snappy.decompress(script.seen[1].body))
    assert resent.timeseries == _request().timeseries


def test_no_fallback_on_2xx(server: tuple[str, Script]) -> None:  # noqa: F811
    url, script = server
    script.answers = [(204, WRITTEN, b"")]
    with RemoteWriteClient(url, protocol="v2") as c:
        c.send(_request())
        c.send(_request())
        assert c.active_protocol == "v2"
    assert [s.headers["Content-Type"] for s in script.seen] == [V2_CT, V2_CT]


def test_v1_client_does_not_fall_anywhere_on_415(server: tuple[str, Script]) -> None:  # noqa: F811
    url, script = server
    script.answers = [(415, {}, b"no")]
    with RemoteWriteClient(url) as c, pytest.raises(RemoteWriteError) as info:
        c.send(_request())
    assert info.value.status == 415 and len(script.seen) == 1


# ------------------------------------------------------- error_handling_test.go


def test_connection_refused_is_retried_then_reported() -> None:
    """handle_connection_refused; sender_continues_after_errors."""
    rec = Recorder()
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    with RemoteWriteClient(url, max_retries=2, sleep=rec) as c:
        with pytest.raises(RemoteWriteError) as info:
            c.send(_request())
        assert info.value.status == 0 and info.value.retryable and info.value.data_kept is None
        assert len(rec.sleeps) == 2


def test_large_error_body_is_cut(server: tuple[str, Script]) -> None:  # noqa: F811
    """handle_large_error_response: the body is read up to 1 KiB only."""
    url, script = server
    script.answers = [(400, {}, b"e" * 1_000_000)]
    with RemoteWriteClient(url) as c, pytest.raises(RemoteWriteError) as info:
        c.send(_request())
    assert len(info.value.body) == 1024


# ---------------------------------------------------------------- labels_test.go


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_empty_label_value_dropped(server: tuple[str, Script], protocol: str) -> None:  # noqa: F811
    """label_values_may_be_empty: Prometheus drops a label whose value is empty
    (an empty value means the label is absent); the spec says senders MUST NOT
    send one."""
    url, script = server
    script.answers = [(204, WRITTEN, b"")]
    labels = [Label("__name__", "test_metric"), Label("empty", ""), Label("job", "j")]
    req = WriteRequest(timeseries=[TimeSeries(labels, [Sample(42.0, 1000)])])
    with RemoteWriteClient(url, protocol=protocol) as c:
        c.send(req)
    body = snappy.decompress(script.seen[0].body)
    if protocol == "v1":
        sent = decode(WriteRequest, body).timeseries[0].labels
    else:
        sent = v2.to_v1(decode(v2.Request, body)).timeseries[0].labels
    assert sent == [Label("__name__", "test_metric"), Label("job", "j")]


# -------------------------------------------------------------- metadata_test.go


@dataclass(frozen=True)
class MetadataCase:
    go_name: str
    family: str
    kind: MetricType
    series: tuple[str, ...]
    untyped: tuple[str, ...] = field(default=())


METADATA_CASES = [
    MetadataCase("metadata_type_counter", "http_requests_total", MetricType.COUNTER,
                 ("http_requests_total",)),
    MetadataCase("metadata_type_counter (family without _total)", "http_requests",
                 MetricType.COUNTER, ("http_requests_total", "http_requests_created")),
    MetadataCase("metadata_type_gauge", "memory_usage_bytes", MetricType.GAUGE,
                 ("memory_usage_bytes",), ("memory_usage_bytes_total",)),
    MetadataCase("metadata_type_histogram", "request_duration_seconds", MetricType.HISTOGRAM,
                 ("request_duration_seconds_bucket", "request_duration_seconds_count",
                  "request_duration_seconds_sum", "request_duration_seconds",
                  "request_duration_seconds_created"),
                 ("request_duration_seconds_total",)),
    MetadataCase("metadata_type_summary", "rpc_duration_seconds", MetricType.SUMMARY,
                 ("rpc_duration_seconds", "rpc_duration_seconds_count",
                  "rpc_duration_seconds_sum"),
                 ("rpc_duration_seconds_bucket",)),
    MetadataCase("gauge histogram", "queue_size", MetricType.GAUGEHISTOGRAM,
                 ("queue_size_bucket", "queue_size_gcount", "queue_size_gsum"),
                 ("queue_size_count",)),
    MetadataCase("info", "build", MetricType.INFO, ("build_info",)),
]  # fmt: skip


@pytest.mark.parametrize("case", METADATA_CASES, ids=lambda c: c.go_name)
def test_metadata_cases(case: MetadataCase) -> None:
    """metadata_type_*, metadata_help_text, metadata_unit,
    metadata_consistent_across_series: every series of a family carries the
    family's type, help and unit in v2; a name whose suffix the type does not
    have stays untyped."""
    md = MetricMetadata(
        type=case.kind, metric_family_name=case.family, help="Help text.", unit="seconds"
    )
    names = case.series + case.untyped
    req = WriteRequest(
        timeseries=[TimeSeries([Label("__name__", n)], [Sample(1.0, 1000)]) for n in names],
        metadata=[md],
    )
    out = from_v1(req)
    for name, ts in zip(names, out.timeseries, strict=True):
        got = ts.metadata
        assert got is not None
        if name in case.series:
            assert int(got.type) == int(case.kind), name
            assert out.symbols[got.help_ref] == "Help text.", name
            assert out.symbols[got.unit_ref] == "seconds", name
        else:
            assert int(got.type) == 0 and got.help_ref == 0, name


# ---------------------------------------- the command line: promwire write --protocol v2


TEXT = """\
# HELP request_duration_seconds Request duration.
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{le="+Inf"} 100 1000
request_duration_seconds_count 100 1000
request_duration_seconds_sum 5 1000
"""


def test_cli_write_v2_keeps_metadata_and_sends_one_request(
    server: tuple[str, Script],  # noqa: F811
    tmp_path: Path,
) -> None:
    url, script = server
    script.answers = [(204, {**WRITTEN, "X-Prometheus-Remote-Write-Samples-Written": "3"}, b"")]
    src = tmp_path / "in.txt"
    src.write_text(TEXT)
    done = subprocess.run(
        [sys.executable, "-m", "promwire", "write", url, str(src), "--protocol", "v2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(script.seen) == 1  # no second, empty request for the metadata
    req = decode(v2.Request, snappy.decompress(script.seen[0].body))
    assert len(req.timeseries) == 3
    for ts in req.timeseries:
        assert ts.metadata is not None and ts.metadata.type == v2.MetricType.METRIC_TYPE_HISTOGRAM
        assert req.symbols[ts.metadata.help_ref] == "Request duration."


# ------------------------------- protocol_test.go, symbols_test.go, samples_test.go


VERSION = "x-prometheus-remote-write-version"
HISTOGRAMS_WRITTEN = "X-Prometheus-Remote-Write-Histograms-Written"


def _values_request() -> WriteRequest:
    values = [42.0, 7.0, 0.0, -3.25, float("inf"), float("-inf"), float("nan"), 1e308, 5e-324]
    return WriteRequest(
        timeseries=[
            TimeSeries(
                [Label("__name__", "m"), Label("job", "j")],
                [Sample(v, 1_700_000_000_000 + k) for k, v in enumerate(values)],
            ),
            TimeSeries([Label("__name__", "m"), Label("job", "k")], [Sample(1.0, 1)]),
        ]
    )


def _bits(v: float) -> bytes:
    import struct

    return struct.pack("<d", v)


REQUEST_CASES: list[tuple[str, str, Any]] = [
    ("content_type_protobuf", "v1", lambda h, req: h["content-type"] == V1_CT),
    ("content_type_with_proto_param", "v2", lambda h, req: h["content-type"] == V2_CT),
    ("content_encoding_snappy", "v1", lambda h, req: h["content-encoding"] == "snappy"),
    ("content_encoding_snappy", "v2", lambda h, req: h["content-encoding"] == "snappy"),
    ("version_header_value", "v1", lambda h, req: h[VERSION] == "0.1.0"),
    ("version_header_value", "v2", lambda h, req: h[VERSION] == "2.0.0"),
    ("user_agent_present", "v1", lambda h, req: h["user-agent"].startswith("promwire/")),
    ("empty_string_at_index_zero", "v2", lambda h, req: req.symbols[0] == ""),
    ("string_deduplication", "v2", lambda h, req: len(set(req.symbols)) == len(req.symbols)),
    (
        "labels_refs_even_length",
        "v2",
        lambda h, req: all(len(ts.labels_refs) % 2 == 0 for ts in req.timeseries),
    ),
    (
        "labels_refs_valid_indices",
        "v2",
        lambda h, req: all(0 < r < len(req.symbols) for t in req.timeseries for r in t.labels_refs),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("go_name", "protocol", "check"), REQUEST_CASES, ids=[f"{c[0]}-{c[1]}" for c in REQUEST_CASES]
)
def test_request_cases(
    server: tuple[str, Script],  # noqa: F811
    go_name: str,
    protocol: str,
    check: Any,
) -> None:
    url, script = server
    script.answers = [(204, {**WRITTEN, "X-Prometheus-Remote-Write-Samples-Written": "10"}, b"")]
    with RemoteWriteClient(url, protocol=protocol) as c:
        c.send(_values_request())
    [seen] = script.seen
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert seen.body[:1] != b"\xff"  # snappy_block_format: a block, not the framed format
    raw = snappy.decompress(seen.body)  # protobuf_parseable
    req = decode(WriteRequest if protocol == "v1" else v2.Request, raw)
    assert check(headers, req), go_name
    # samples_test.go: every value (infinities, NaN, extremes) arrives bit for bit.
    back = req if protocol == "v1" else v2.to_v1(req)
    sent = [_bits(s.value) for ts in _values_request().timeseries for s in ts.samples]
    assert [_bits(s.value) for ts in back.timeseries for s in ts.samples] == sent


# ---------------------------------------------------------------- response_test.go


RESPONSE_CASES = [
    # (go name, status, headers, ok?, written)
    ("handle_204_no_content", 204, WRITTEN, True, {"samples": 1, "histograms": 0, "exemplars": 0}),
    ("handle_200_ok", 200, WRITTEN, True, {"samples": 1, "histograms": 0, "exemplars": 0}),
    # An unparsable count reads as 0 (the spec).
    ("process_written_count_headers", 204, {**WRITTEN, HISTOGRAMS_WRITTEN: "junk"},
     True, {"samples": 1, "histograms": 0, "exemplars": 0}),
    ("handle_missing_written_headers", 204, {}, False, {}),
]  # fmt: skip


@pytest.mark.parametrize("case", RESPONSE_CASES, ids=[c[0] for c in RESPONSE_CASES])
def test_response_cases(server: tuple[str, Script], case: Any) -> None:  # noqa: F811
    go_name, status, headers, ok, written = case
    url, script = server
    script.answers = [(status, headers, b"ignored body" if status == 200 else b"")]
    with RemoteWriteClient(url, protocol="v2") as c:
        if ok:
            assert c.send(_request()).written == written, go_name
        else:
            # A 2xx without Written headers to a v2 request: a 1.0-only
            # receiver dropped the data; reported, not taken as success.
            with pytest.raises(RemoteWriteError, match=r"1\.0"):
                c.send(_request())


def test_fallback_async_client(server: tuple[str, Script]) -> None:  # noqa: F811
    import asyncio

    from promwire.client.writer import AsyncRemoteWriteClient

    url, script = server
    script.answers = [(415, {}, b"v2 not supported"), (204, {}, b"")]

    async def run() -> str:
        async with AsyncRemoteWriteClient(url, protocol="v2") as c:
            await c.send(_request())
            return c.active_protocol

    assert asyncio.run(run()) == "v1"
    assert [s.headers["Content-Type"] for s in script.seen] == [V2_CT, V1_CT]


def test_fallback_of_a_v2_request_and_send_encoded(server: tuple[str, Script]) -> None:  # noqa: F811
    """A v2 ``Request`` falls back too (converted to v1, labels sorted), and
    ``send_encoded`` of v1 bytes goes out as v2 from a v2 client."""
    from promwire import encode

    url, script = server
    script.answers = [(204, WRITTEN, b"")]
    with RemoteWriteClient(url, protocol="v2") as c:
        c.send_encoded(encode(_request()), 1)
    first = decode(v2.Request, snappy.decompress(script.seen[0].body))
    assert v2.to_v1(first).timeseries == _request().timeseries
    script.answers = [(415, {}, b""), (204, {}, b"")]
    with RemoteWriteClient(url, protocol="v2") as c:
        c.send(from_v1(_request()))
    assert [s.headers["Content-Type"] for s in script.seen] == [V2_CT, V2_CT, V1_CT]
    back = decode(WriteRequest, snappy.decompress(script.seen[2].body))
    assert back.timeseries == _request().timeseries
