"""The ClickHouse store on a real cluster: ZooKeeper + 2 shards x 2 replicas (ClickHouse 18.16).

One cluster serves the whole module (tests/support/clickhouse.py starts and
stops it); each test uses a database of its own. Receivers are real
``promwire serve --store clickhouse://...`` processes, each pointed at a
different ClickHouse node, and the sender a real Prometheus 2.42.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ReadResponse,
    ResponseType,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from promwire.chunks.streamed import read_streamed_response
from promwire.stores.clickhouse import ClickHouseStorage
from tests.conftest import FIXTURES
from tests.support.clickhouse import (
    UNREPLICATED,
    USERS_XML,
    ClickHouseCluster,
    clickhouse_query,
    example_nodes,
    node_config,
    zookeeper_config,
)
from tests.support.clickhouse_cases import (
    MATCHERS,
    check_budget,
    check_columns,
    check_matcher,
    check_round_trip,
    check_tenants,
)
from tests.support.prometheus import PrometheusProcess
from tests.support.serve_process import REPO, post, serve_process

T = TypeVar("T")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseCluster]:
    with ClickHouseCluster(tmp_path_factory.mktemp("clickhouse")) as running:
        yield running


def eventually(check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def receiver(cluster: ClickHouseCluster, node: int, database: str, tmp: Path) -> Any:
    """``promwire serve`` storing into ``database`` through ClickHouse node ``node``."""
    return serve_process(
        tmp / f"unused-{node}.db", None, options=["--store", cluster.store_url(node, database)]
    )


TABLES = ("series", "samples", "histograms", "exemplars")


def sync_replicas(cluster: ClickHouseCluster, database: str) -> None:
    """Wait until both replicas of each shard hold the same rows in every table
    (replication is asynchronous: SYNC REPLICA alone may return before a replica
    has even seen the newest log entries)."""

    def agree() -> bool:
        for node in cluster.nodes:
            for table in TABLES:
                clickhouse_query(node, f"SYSTEM SYNC REPLICA {database}.{table}_local", timeout=60)
        counts = per_node(
            cluster,
            "SELECT "
            + ", ".join(f"(SELECT count() FROM {database}.{t}_local)" for t in TABLES)
            + " FORMAT TSV",
        )
        return counts[0] == counts[1] and counts[2] == counts[3]

    eventually(agree, 60, "replicas to agree")


def per_node(cluster: ClickHouseCluster, sql: str) -> list[str]:
    return [clickhouse_query(n, sql).strip() for n in cluster.nodes]


def read(port: int, *matchers: LabelMatcher, start: int = 0, end: int = 2**62) -> ReadResponse:
    status, body = post(
        port, "/api/v1/read", ReadRequest(queries=[Query(start, end, list(matchers))])
    )
    assert status == 200, body[:300]
    return decode(ReadResponse, snappy.decompress(body))


def read_streamed(port: int, *matchers: LabelMatcher) -> list[TimeSeries]:
    request = ReadRequest(
        queries=[Query(0, 2**62, list(matchers))],
        accepted_response_types=[ResponseType.STREAMED_XOR_CHUNKS],
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            "/api/v1/read",
            snappy.compress(encode(request)),
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        )
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("application/x-streamed-protobuf")
        return [series for _, series in read_streamed_response(resp.read())]
    finally:
        conn.close()


# ------------------------------------------------------------------ the store itself


@pytest.fixture(scope="module")
def store(cluster: ClickHouseCluster) -> ClickHouseStorage:
    return ClickHouseStorage(f"127.0.0.1:{cluster.nodes[1].http_port}", "cases", cluster="promwire")


def test_the_store_makes_a_replicated_sharded_schema(store: ClickHouseStorage) -> None:
    assert store.replicated
    engines = store.client.query(
        "SELECT name, engine FROM system.tables WHERE database = 'cases' ORDER BY name FORMAT TSV"
    ).decode()
    assert "samples\tDistributed" in engines
    assert "samples_local\tReplicatedReplacingMergeTree" in engines


def test_round_trip_is_bit_exact_on_18_16(store: ClickHouseStorage) -> None:
    check_round_trip(store)


@pytest.mark.parametrize("matcher", MATCHERS, ids=repr)
def test_matchers_select_what_prometheus_selects_on_18_16(
    store: ClickHouseStorage, matcher: LabelMatcher
) -> None:
    check_matcher(store, matcher)


def test_samples_reads_from_columns_on_18_16(store: ClickHouseStorage) -> None:
    check_columns(store)


def test_reads_spend_the_budget_on_18_16(store: ClickHouseStorage) -> None:
    check_budget(store)


def test_tenants_are_kept_apart_on_the_cluster(store: ClickHouseStorage) -> None:
    check_tenants(store)


def test_a_cluster_without_replicas(cluster: ClickHouseCluster) -> None:
    """Sharded but not replicated: ReplacingMergeTree local tables on the first
    replicas only, a Distributed table over them, reads deduplicated all the same."""
    plain = ClickHouseStorage(
        f"127.0.0.1:{cluster.nodes[2].http_port}", "sharded", cluster=UNREPLICATED
    )
    assert not plain.replicated
    check_round_trip(plain)
    engines = per_node(
        cluster,
        "SELECT engine FROM system.tables WHERE database = 'sharded' "
        "AND name = 'samples_local' FORMAT TSV",
    )
    assert engines == ["ReplacingMergeTree", "", "ReplacingMergeTree", ""]
    stored = per_node(cluster, "SELECT count() FROM system.tables WHERE database = 'sharded'")
    assert stored[1] == stored[3] == "0"


def test_one_server_without_a_cluster(cluster: ClickHouseCluster) -> None:
    single = ClickHouseStorage(f"127.0.0.1:{cluster.nodes[0].http_port}", "single")
    assert not single.replicated
    check_round_trip(single)
    engines = per_node(
        cluster, "SELECT count() FROM system.tables WHERE database = 'single' FORMAT TSV"
    )
    assert engines == ["5", "0", "0", "0"]  # only on the node it was pointed at


# ------------------------------------------------------------------ Prometheus, two receivers


PROMETHEUS_YML = """
global:
  scrape_interval: 500ms
scrape_configs:
  - job_name: self
    static_configs: [{targets: ['127.0.0.1:{PORT}']}]
remote_write:
  - url: http://127.0.0.1:A_PORT/api/v1/write
    queue_config: {min_backoff: 50ms, max_backoff: 500ms, batch_send_deadline: 500ms}
    write_relabel_configs:
      - {source_labels: [__name__], regex: 'prometheus_.*', action: keep}
  - url: http://127.0.0.1:B_PORT/api/v1/write
    queue_config: {min_backoff: 50ms, max_backoff: 500ms, batch_send_deadline: 500ms}
    write_relabel_configs:
      - {source_labels: [__name__], regex: 'prometheus_.*', action: drop}
"""

READER_YML = """
global:
  scrape_interval: 1h
remote_read:
  - url: http://127.0.0.1:R_PORT/api/v1/read
    read_recent: true
"""


def raw(prom: PrometheusProcess, at: float) -> dict[str, list[Any]]:
    """Every series' raw samples in the two minutes before ``at``, keyed by label set."""
    result = prom.api("/api/v1/query", query='{__name__=~".+"}[2m]', time=f"{at:.3f}")["result"]
    return {json.dumps(r["metric"], sort_keys=True): r["values"] for r in result}


def test_prometheus_through_two_receivers_survives_a_shard_outage(
    cluster: ClickHouseCluster, tmp_path: Path, prometheus_bin: str
) -> None:
    """Prometheus writes half its series through a receiver on shard 1's first node and
    half through one on shard 2's; a whole shard is killed and restarted meanwhile.
    PromQL over remote read from either receiver then equals Prometheus' raw data;
    each shard holds a non-empty, disjoint set of series, its replicas agree, and
    no sample is stored twice."""
    with (
        receiver(cluster, 0, "e2e", tmp_path) as a,
        receiver(cluster, 2, "e2e", tmp_path) as b,
    ):
        config = PROMETHEUS_YML.replace("A_PORT", str(a.port)).replace("B_PORT", str(b.port))
        with PrometheusProcess(config, tmp_path / "source") as source:
            written = "prometheus_remote_storage_samples_total"
            eventually(
                lambda: (
                    len(source.api("/api/v1/query", query=written)["result"]) == 2
                    and all(
                        float(r["value"][1]) > 0
                        for r in source.api("/api/v1/query", query=written)["result"]
                    )
                ),
                60,
                "both remote writes to deliver",
            )
            time.sleep(2)
            # A whole shard down: both receivers answer 5xx and Prometheus retries.
            cluster.stop_node(2)
            cluster.stop_node(3)
            probe = WriteRequest(
                timeseries=[
                    TimeSeries([Label("__name__", f"probe_{i}")], [Sample(1.0, 1)])
                    for i in range(20)
                ]
            )
            status_a, _ = post(a.port, "/api/v1/write", probe)
            status_b, _ = post(b.port, "/api/v1/write", probe)
            assert status_a == 503 and status_b == 503
            time.sleep(3)
            cluster.start_node(2)
            cluster.start_node(3)
            time.sleep(3)
            retried = source.api(
                "/api/v1/query", query="sum(prometheus_remote_storage_samples_retried_total)"
            )["result"]
            assert float(retried[0]["value"][1]) > 0
            cut = time.time() - 2
            expected = raw(source, cut)
            assert len(expected) > 100
            for served in (a, b):
                reader_yml = READER_YML.replace("R_PORT", str(served.port))
                with PrometheusProcess(reader_yml, tmp_path / f"reader-{served.port}") as reader:
                    eventually(
                        lambda reader=reader: raw(reader, cut) == expected,  # type: ignore[misc]
                        60,
                        f"remote read through receiver {served.port} to equal Prometheus",
                    )
            failed = source.api(
                "/api/v1/query", query="sum(prometheus_remote_storage_samples_failed_total)"
            )["result"]
            assert float(failed[0]["value"][1]) == 0

    sync_replicas(cluster, "e2e")
    series = [
        set(clickhouse_query(n, "SELECT fingerprint FROM e2e.series_local").split())
        for n in cluster.nodes
    ]
    assert series[0] and series[2]
    assert series[0] == series[1] and series[2] == series[3]  # replicas agree
    assert not series[0] & series[2]  # shards are disjoint
    samples = per_node(
        cluster,
        "SELECT count(), uniqExact(tenant, fingerprint, ts) FROM e2e.samples_local FORMAT TSV",
    )
    assert samples[0] == samples[1] and samples[2] == samples[3]
    for line in samples:
        stored, distinct = line.split()
        assert stored == distinct  # no sample stored twice, outage and retries included


# ------------------------------------------------------------------ resends


def _fixture_requests() -> list[bytes]:
    return [p.read_bytes() for p in sorted((FIXTURES / "rw_sender").glob("*.bin"))]


def _post_raw(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            "/api/v1/write",
            body,
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_resending_every_request_changes_no_count(
    cluster: ClickHouseCluster, tmp_path: Path
) -> None:
    """Prometheus' own requests (captured from 2.42) sent once, then every one again
    through the same receiver and through another: no table's stored row count moves."""
    bodies = _fixture_requests()
    assert len(bodies) >= 5
    counted = (
        "SELECT "
        + ", ".join(f"(SELECT count() FROM resend.{t}_local)" for t in TABLES)
        + " FORMAT TSV"
    )
    with (
        receiver(cluster, 0, "resend", tmp_path) as a,
        receiver(cluster, 2, "resend", tmp_path) as b,
    ):
        for body in bodies:
            assert _post_raw(a.port, body) == 204
        sync_replicas(cluster, "resend")
        first = per_node(cluster, counted)
        assert all(int(n) > 0 for line in first for n in line.split()[:2])
        for port in (a.port, b.port):
            for body in bodies:
                assert _post_raw(port, body) == 204
        sync_replicas(cluster, "resend")
        assert per_node(cluster, counted) == first
    # What Prometheus sent is what is stored, histograms and exemplars included.
    store = ClickHouseStorage(
        f"127.0.0.1:{cluster.nodes[1].http_port}", "resend", cluster="promwire"
    )
    sent = [decode(WriteRequest, snappy.decompress(body)) for body in bodies]
    histograms = [(ts.labels, h) for req in sent for ts in req.timeseries for h in ts.histograms]
    exemplars = [(ts.labels, e) for req in sent for ts in req.timeseries for e in ts.exemplars]
    assert histograms and exemplars
    for labels, histogram in histograms:
        matchers = [LabelMatcher(MatchType.EQ, lb.name, lb.value) for lb in labels]
        query = Query(histogram.timestamp, histogram.timestamp, matchers)
        (got,) = store.process_query(None, query).timeseries
        assert got.histograms == [histogram]
    for labels, exemplar in exemplars:
        matchers = [LabelMatcher(MatchType.EQ, lb.name, lb.value) for lb in labels]
        (got,) = store.exemplars(matchers, exemplar.timestamp, exemplar.timestamp)
        assert exemplar in got.exemplars
    assert {m.metric_family_name for m in store.metadata()} == {
        m.metric_family_name for req in sent for m in req.metadata
    }


# ------------------------------------------------------------------ a replica down under load


def test_killing_a_replica_mid_load(cluster: ClickHouseCluster, tmp_path: Path) -> None:
    """Two senders write through two receivers (on shard 1's first node and shard 2's
    second) while shard 2's first replica, the one every write and read prefers, is
    killed and restarted: every write is acknowledged (a 5xx retried as Prometheus
    does), reads answer meanwhile, the restarted replica catches up, and every
    acknowledged sample is there once."""
    stop = threading.Event()
    acknowledged: list[int] = []
    refused: list[int] = []

    def send(port: int, offset: int) -> None:
        batch = offset
        while not stop.is_set():
            request = WriteRequest(
                timeseries=[
                    TimeSeries(
                        [Label("__name__", "load"), Label("s", str(i))],
                        [Sample(float(batch), batch * 1000 + k) for k in range(10)],
                    )
                    for i in range(50)
                ]
            )
            while True:
                status, _ = post(port, "/api/v1/write", request)
                if status == 204:
                    break
                refused.append(status)
                if status < 500:
                    return  # a 4xx would be dropped by Prometheus: the test fails below
                time.sleep(0.1)
            acknowledged.append(batch)
            batch += 2

    load = LabelMatcher(MatchType.EQ, "__name__", "load")
    with receiver(cluster, 0, "load", tmp_path) as a, receiver(cluster, 3, "load", tmp_path) as b:
        threads = [
            threading.Thread(target=send, args=(a.port, 0)),
            threading.Thread(target=send, args=(b.port, 1)),
        ]
        for t in threads:
            t.start()
        try:
            eventually(lambda: len(acknowledged) >= 4, 60, "writes before the kill")
            cluster.stop_node(2)
            before = len(acknowledged)
            eventually(lambda: len(acknowledged) >= before + 6, 60, "writes with a replica down")
            for port in (a.port, b.port):
                assert read(port, load).results[0].timeseries  # reads answer
            cluster.start_node(2)
            after = len(acknowledged)
            eventually(lambda: len(acknowledged) >= after + 4, 60, "writes after the restart")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert all(status >= 500 for status in refused), refused
        sync_replicas(cluster, "load")  # the restarted replica catches up
        final = read(b.port, load)
        assert len(final.results[0].timeseries) == 50
        for ts in final.results[0].timeseries:
            assert sorted({s.timestamp // 1000 for s in ts.samples}) == sorted(acknowledged)
            assert len(ts.samples) == 10 * len(acknowledged)
        # A streamed read (process_query_chunks, cut into XOR chunks) gives the same.
        assert read_streamed(a.port, load) == final.results[0].timeseries
    counts = per_node(cluster, "SELECT count() FROM load.samples_local FORMAT TSV")
    assert counts[2] == counts[3]
    assert int(counts[0]) + int(counts[2]) == 50 * 10 * len(acknowledged)  # none twice


# ------------------------------------------------------------------ hostile regex


def test_a_hostile_regex_returns(cluster: ClickHouseCluster, tmp_path: Path) -> None:
    """``(a+)+b`` against a long run of ``a``: exponential for a backtracking
    engine, linear for RE2 (ClickHouse's and promwire's re-check)."""
    with receiver(cluster, 1, "hostile", tmp_path) as served:
        long_a = "a" * 5000
        status, _ = post(
            served.port,
            "/api/v1/write",
            WriteRequest(
                timeseries=[
                    TimeSeries([Label("__name__", "h"), Label("x", long_a)], [Sample(1, 1)])
                ]
            ),
        )
        assert status == 204
        got = read(served.port, LabelMatcher(MatchType.RE, "x", "(a+)+b"))
        assert got.results[0].timeseries == []
        got = read(served.port, LabelMatcher(MatchType.RE, "x", "(a+)+"))
        assert len(got.results[0].timeseries) == 1


# ------------------------------------------------------------------ the benchmark


def test_the_ingest_benchmark_runs(cluster: ClickHouseCluster, tmp_path: Path) -> None:
    """benchmarks/ingest_clickhouse.py on a tiny load: it measures, and what it
    sent arrived (every sample once, through 1 and through 2 receivers)."""
    from benchmarks.ingest_clickhouse import measure_cluster

    rates = measure_cluster(
        cluster, tmp_path, senders=2, requests=2, series=5, samples=3, with_workers=False
    )
    assert len(rates) == 2 and all(rate > 0 for rate in rates.values())
    for n in (1, 2):
        total = clickhouse_query(
            cluster.nodes[0],
            f"SELECT count() FROM bench{n}.samples FORMAT TSV",
            load_balancing="in_order",
        )
        assert int(total) == 2 * 2 * 5 * 3


# ------------------------------------------------------------------ docs/scaling.md


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def test_docs_show_the_files_the_tests_run() -> None:
    """docs/scaling.md's config.xml, users.xml, zoo.cfg and prometheus.yml are
    the ones tests/support/clickhouse.py and this module generate."""
    doc = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")
    nodes = example_nodes()
    config, users = _blocks(doc, "xml")
    assert config.strip() == node_config(nodes[0], nodes, 2181).strip()
    assert users.strip() == USERS_XML.strip()
    zoo = zookeeper_config(Path("/srv/zookeeper/data"), 2181).strip()
    assert zoo in [b.strip() for b in _blocks(doc, "text")]
    (prometheus_yml,) = _blocks(doc, "yaml")
    assert prometheus_yml.strip() == (
        PROMETHEUS_YML.replace("127.0.0.1:{PORT}", "localhost:9090")
        .replace("127.0.0.1:A_PORT", "promwire-a:9201")
        .replace("127.0.0.1:B_PORT", "promwire-b:9201")
        .strip()
    )
