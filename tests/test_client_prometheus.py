"""The write and read clients against a real Prometheus (Debian's 2.42).

Data goes in with RemoteWriteClient; PromQL (raw range selectors, the
exemplar API) and /api/v1/read via RemoteReadClient must give back exactly
what was written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    ResponseType,
    Sample,
    TimeSeries,
    WriteRequest,
)
from promwire.client.reader import RemoteReadClient, RemoteReadError
from promwire.client.writer import RemoteWriteClient, RemoteWriteError
from tests.support.prometheus import PrometheusProcess

pytestmark = pytest.mark.prometheus

CONFIG = "global:\n  scrape_interval: 1h\n"
FLAGS = [
    "--web.enable-remote-write-receiver",
    "--enable-feature=native-histograms,exemplar-storage",
]


@pytest.fixture(scope="module")
def prom(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    workdir: Path = tmp_path_factory.mktemp("prom")
    with PrometheusProcess(CONFIG, workdir, flags=FLAGS) as p:
        yield p


def _now_ms() -> int:
    return int(time.time() * 1000)


def _prom_value(v: float) -> float | str:
    """A sample value in comparable form (NaN != NaN, so it becomes a string)."""
    return "NaN" if math.isnan(v) else v


def _raw_range(prom: PrometheusProcess, selector: str, at_ms: int, window: str) -> dict[str, Any]:
    """``selector[window]`` evaluated at ``at_ms``: the raw stored samples per series."""
    data = prom.api("/api/v1/query", query=f"{selector}[{window}]", time=at_ms / 1000)
    assert data["resultType"] == "matrix"
    return {
        tuple(sorted(r["metric"].items())): [
            (round(float(t) * 1000), _prom_value(float(v))) for t, v in r["values"]
        ]
        for r in data["result"]
    }


def test_written_samples_come_back_from_promql(prom: PrometheusProcess) -> None:
    base = _now_ms() - 120_000
    values = [0.0, 1.5, -2.25, 1e-300, 123456789.0, math.inf, -math.inf, math.nan]
    series = [
        TimeSeries(
            labels=[Label("__name__", "pw_e2e_float"), Label("job", job)],
            samples=[
                Sample(v, base + 1000 * i + k) for i, v in enumerate(values * 3) for _ in [None]
            ],
        )
        for k, job in enumerate(["a", "b"])
    ]
    with RemoteWriteClient(prom.url + "/api/v1/write") as client:
        # Small batches: the series are cut and arrive over several requests.
        results = client.send_series(series, max_samples_per_send=10)
    assert len(results) == 5 and all(r.status == 204 for r in results)

    got = _raw_range(prom, "pw_e2e_float", base + 60_000, "2m")
    want = {
        (("__name__", "pw_e2e_float"), ("job", ts.labels[1].value)): [
            (s.timestamp, _prom_value(s.value)) for s in ts.samples
        ]
        for ts in series
    }
    assert got == want


def test_rejected_write_is_reported(prom: PrometheusProcess) -> None:
    # An older sample after a newer one on the same series: Prometheus 2.42
    # (no out-of-order window) answers 400 and the client does not retry.
    t = _now_ms() - 60_000
    labels = [Label("__name__", "pw_e2e_ooo")]
    with RemoteWriteClient(prom.url + "/api/v1/write") as client:
        client.send(WriteRequest(timeseries=[TimeSeries(labels, [Sample(1.0, t)])]))
        with pytest.raises(RemoteWriteError) as info:
            client.send(WriteRequest(timeseries=[TimeSeries(labels, [Sample(2.0, t - 1000)])]))
    err = info.value
    assert err.status == 400 and not err.retryable and err.attempts == 1
    assert err.data_kept is False
    assert "out of order" in str(err)
    assert _raw_range(prom, "pw_e2e_ooo", t + 1, "5m") == {
        (("__name__", "pw_e2e_ooo"),): [(t, 1.0)]
    }


def test_native_histogram_and_exemplars(prom: PrometheusProcess) -> None:
    t = _now_ms() - 30_000
    hist = Histogram(
        count_int=13,
        sum=18.4,
        schema=1,
        zero_threshold=0.001,
        zero_count_int=2,
        positive_spans=[BucketSpan(0, 2), BucketSpan(1, 2)],
        positive_deltas=[2, 1, -1, 2],  # bucket counts 2, 3, 2, 4
        timestamp=t,
    )
    bucket_counts = [2, 3, 2, 4]
    assert hist.count_int == 2 + sum(bucket_counts)  # zero bucket + buckets
    req = WriteRequest(
        timeseries=[
            TimeSeries(labels=[Label("__name__", "pw_e2e_native")], histograms=[hist]),
            TimeSeries(
                labels=[Label("__name__", "pw_e2e_with_exemplar"), Label("job", "x")],
                samples=[Sample(42.0, t)],
                exemplars=[Exemplar([Label("trace_id", "abc123")], 41.5, t)],
            ),
        ]
    )
    with RemoteWriteClient(prom.url + "/api/v1/write") as client:
        assert client.send(req).status == 204

    data = prom.api("/api/v1/query", query="pw_e2e_native[1m]", time=(t + 1000) / 1000)
    [result] = data["result"]
    [(ts_s, h)] = result["histograms"]
    assert round(float(ts_s) * 1000) == t
    assert h["count"] == str(hist.count_int) and float(h["sum"]) == 18.4
    # Buckets as [boundary rule, lower, upper, count]; zero bucket first.
    counts = [float(b[3]) for b in h["buckets"]]
    assert counts == [2.0, *[float(c) for c in bucket_counts]]

    ex = prom.api(
        "/api/v1/query_exemplars",
        query="pw_e2e_with_exemplar",
        start=(t - 1000) / 1000,
        end=(t + 1000) / 1000,
    )
    [entry] = ex
    assert entry["seriesLabels"] == {"__name__": "pw_e2e_with_exemplar", "job": "x"}
    [exemplar] = entry["exemplars"]
    assert exemplar["labels"] == {"trace_id": "abc123"}
    assert float(exemplar["value"]) == 41.5
    assert round(float(exemplar["timestamp"]) * 1000) == t


@pytest.mark.parametrize(
    "types",
    [
        [ResponseType.SAMPLES],
        [ResponseType.STREAMED_XOR_CHUNKS, ResponseType.SAMPLES],
    ],
    ids=["samples", "streamed"],
)
def test_read_client_matches_promql(prom: PrometheusProcess, types: list[ResponseType]) -> None:
    name = f"pw_e2e_read_{len(types)}"
    base = _now_ms() - 300_000
    written = [
        TimeSeries(
            labels=[Label("__name__", name), Label("instance", inst), Label("job", "r")],
            samples=[Sample(float(i * i) / 7 + k, base + 1500 * i) for i in range(150)],
        )
        for k, inst in enumerate(["a:1", "a:2", "b:1"])
    ]
    with RemoteWriteClient(prom.url + "/api/v1/write") as client:
        client.send_series(written)
    start, end = base + 10_000, base + 200_000

    reader = RemoteReadClient(prom.url + "/api/v1/read", response_types=types)
    got = {
        tuple((lb.name, lb.value) for lb in ts.labels): [(s.timestamp, s.value) for s in ts.samples]
        for ts in reader.query(f'{name}{{instance=~"a:.*"}}', start, end)
    }
    media = (reader.last_content_type or "").split(";")[0]
    want_media = (
        "application/x-streamed-protobuf"
        if types[0] == ResponseType.STREAMED_XOR_CHUNKS
        else "application/x-protobuf"
    )
    assert media == want_media
    # The same window through PromQL: a raw range selector ending at `end`.
    window_ms = end - start
    promql = _raw_range(prom, f'{name}{{instance=~"a:.*"}}', end, f"{window_ms}ms")
    assert set(got) == set(promql) and len(got) == 2
    for key, samples in got.items():
        # PromQL's range is left-open (start, end]; remote read is [start, end].
        in_promql = [(t, v) for t, v in samples if t > start]
        assert [(t, _prom_value(v)) for t, v in in_promql] == promql[key]
        expect = next(ts for ts in written if tuple((lb.name, lb.value) for lb in ts.labels) == key)
        assert samples == [
            (s.timestamp, s.value) for s in expect.samples if start <= s.timestamp <= end
        ]


def test_read_client_error_status(prom: PrometheusProcess) -> None:
    reader = RemoteReadClient(prom.url + "/api/v1/read", response_types=[ResponseType.SAMPLES])
    # An unparsable regex fails on the server: a plain-text 4xx/5xx, read before any snappy.
    with pytest.raises(RemoteReadError) as info:
        list(reader.query('pw_e2e_x{job=~"("}', 0, _now_ms()))
    assert info.value.status >= 400
    assert b"error parsing regexp" in info.value.body


def test_async_client_and_v2_fallback_detection(prom: PrometheusProcess) -> None:
    import asyncio

    from promwire.client.writer import AsyncRemoteWriteClient

    t = _now_ms() - 20_000
    req = WriteRequest(
        timeseries=[TimeSeries([Label("__name__", "pw_e2e_async")], [Sample(3.5, t)])]
    )

    async def run() -> RemoteWriteError:
        async with AsyncRemoteWriteClient(prom.url + "/api/v1/write") as client:
            assert (await client.send(req)).status == 204
        # Prometheus 2.42 only speaks remote write 1.0: it ignores the v2
        # Content-Type, reads the body as an empty v1 request and answers 204
        # with no Written headers. The client must not call that a success.
        async with AsyncRemoteWriteClient(prom.url + "/api/v1/write", protocol="v2") as client:
            with pytest.raises(RemoteWriteError) as info:
                await client.send(req)
            return info.value

    err = asyncio.run(run())
    assert err.status == 204 and err.data_kept is False and "1.0" in str(err)
    assert _raw_range(prom, "pw_e2e_async", t + 1, "1m") == {
        (("__name__", "pw_e2e_async"),): [(t, 3.5)]
    }
