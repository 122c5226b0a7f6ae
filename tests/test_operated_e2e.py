"""The operated receiver with real processes: a real Prometheus 2.42 writing over TLS
with basic auth and scraping /metrics, tenants, an HA pair of Prometheus
replicas, and ``--workers 2`` under concurrent load with a SIGTERM in the middle."""

from __future__ import annotations

import base64
import http.client
import itertools
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from promwire import (
    Label,
    LabelMatcher,
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
from promwire.codec.messages import MatchType
from promwire.stores.protocol import RequestContext
from promwire.stores.sqlite import SQLiteStorage
from tests.support.prometheus import PrometheusProcess
from tests.support.serve_process import PROTOBUF_HEADERS, serve_process


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it (openssl)."""
    d = directory
    run = [
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(d / "ca.key"),
            "-out",
            str(d / "ca.crt"),
            "-subj",
            "/CN=promwire test CA",
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(d / "server.key"),
            "-out",
            str(d / "server.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    for command in run:
        subprocess.run(command, check=True, capture_output=True)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(d / "server.csr"),
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(d / "server.crt"),
            "-extfile",
            str(d / "san.ext"),
        ],
        check=True,
        capture_output=True,
    )
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key"}


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the values of ``name`` whose labels include ``labels`` in exposition ``text``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head))
        if head.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def get(url: str, *, context: ssl.SSLContext | None = None, auth: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    with urllib.request.urlopen(request, timeout=10, context=context) as r:
        return str(r.read().decode())


def stored(db: Path, name: str, tenant_label: str | None = None) -> list[TimeSeries]:
    with SQLiteStorage(db) as store:
        query = Query(0, 2**62, [LabelMatcher(MatchType.EQ, "__name__", name)])
        return list(store.process_query(RequestContext(), query).timeseries)


def test_prometheus_writes_over_tls_with_basic_auth_and_scrapes_metrics(
    prometheus_bin: str, tmp_path: Path
) -> None:
    certs = make_certs(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {certs['cert']}\n  key_file: {certs['key']}\n"
        f"basic_auth_users:\n  alice: '{hashed}'\n"
    )
    db = tmp_path / "s.db"
    with serve_process(db, "uvicorn", options=["--web-config", str(web)]) as served:
        base = f"https://127.0.0.1:{served.port}"
        tls = f"tls_config:\n      ca_file: {certs['ca']}\n"
        config = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: promwire
    scheme: https
    basic_auth: {{username: alice, password: s3cret}}
    {tls}    static_configs: [{{targets: ['127.0.0.1:{served.port}']}}]
remote_write:
  - url: {base}/api/v1/write
    name: good
    basic_auth: {{username: alice, password: s3cret}}
    {tls}    queue_config: {{batch_send_deadline: 1s, max_shards: 1}}
  - url: {base}/api/v1/write
    name: bad
    basic_auth: {{username: alice, password: wrong}}
    {tls}    queue_config: {{batch_send_deadline: 1s, max_shards: 1}}
"""
        client_tls = ssl.create_default_context(cafile=str(certs["ca"]))
        auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        with PrometheusProcess(config, tmp_path / "prom") as prom:
            # The scrape of /metrics over TLS works and carries promwire's counters.
            got = prom.wait_for('promwire_samples_received_total > 0 and up{job="promwire"} == 1')
            assert got
            deadline = time.monotonic() + 30
            equal = None
            while time.monotonic() < deadline and equal is None:
                before = metric(
                    get(prom.url + "/metrics"),
                    "prometheus_remote_storage_samples_total",
                    remote_name="good",
                )
                ours = get(base + "/metrics", context=client_tls, auth=auth)
                after = metric(
                    get(prom.url + "/metrics"),
                    "prometheus_remote_storage_samples_total",
                    remote_name="good",
                )
                received = metric(ours, "promwire_samples_received_total")
                if before == after == received and received > 0:
                    equal = ours
                time.sleep(0.2)
            assert equal is not None, "promwire never counted what Prometheus sent"
            prom_text = get(prom.url + "/metrics")
            failed = metric(
                prom_text, "prometheus_remote_storage_samples_failed_total", remote_name="bad"
            )
            assert failed > 0  # the wrong password: 401, dropped by Prometheus
            assert metric(equal, "promwire_http_requests_total", code="401") > 0
            assert metric(equal, "promwire_request_bytes_total", endpoint="write") > 0
        ours = get(base + "/metrics", context=client_tls, auth=auth)
        # No credentials: 401 with the challenge, before anything is decoded.
        conn = http.client.HTTPSConnection("127.0.0.1", served.port, context=client_tls)
        conn.request("POST", "/api/v1/write", b"x", PROTOBUF_HEADERS)
        answer = conn.getresponse()
        assert answer.status == 401 and answer.getheader("WWW-Authenticate", "").startswith("Basic")
        conn.close()
    with SQLiteStorage(db) as store:
        # Everything promwire counted as received is stored (nothing acknowledged lost).
        assert store.counts()["samples"] == metric(ours, "promwire_samples_received_total")
    log = "".join(served.lines)
    assert "status=401" in log and "Traceback" not in log


def post(
    port: int, message: WriteRequest | ReadRequest, path: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST", path, snappy.compress(encode(message)), {**PROTOBUF_HEADERS, **headers}
        )
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def one(name: str, ts: int, value: float, **labels: str) -> WriteRequest:
    pairs = sorted({"__name__": name, **labels}.items())
    return WriteRequest([TimeSeries([Label(k, v) for k, v in pairs], [Sample(value, ts)])])


def read_series(port: int, tenant: str, name: str) -> list[TimeSeries]:
    query = Query(0, 10**13, [LabelMatcher(MatchType.EQ, "__name__", name)])
    status, _, body = post(port, ReadRequest([query]), "/api/v1/read", **{"X-Scope-OrgID": tenant})
    assert status == 200, body
    return list(decode(ReadResponse, snappy.decompress(body)).results[0].timeseries)


def test_tenants_are_kept_apart_and_limited(tmp_path: Path) -> None:
    options = ["--tenant-header", "X-Scope-OrgID", "--tenant-ingestion-rate", "5"]
    options += ["--tenant-max-series", "3", "--access-log", "--log-level", "info"]
    with serve_process(tmp_path / "t.db", "uvicorn", options=options) as served:
        port = served.port
        write = "/api/v1/write"
        assert post(port, one("m", 1000, 1.0), write)[0] == 401
        assert post(port, one("m", 1000, 1.0), write, **{"X-Scope-OrgID": "a"})[0] == 204
        forged = one("m", 1000, 2.0, __promwire_tenant__="a")
        assert post(port, forged, write, **{"X-Scope-OrgID": "b"})[0] == 204
        seen_a = read_series(port, "a", "m")
        seen_b = read_series(port, "b", "m")
        assert [s.samples for s in seen_a] == [[Sample(1.0, 1000)]]
        assert [s.samples for s in seen_b] == [[Sample(2.0, 1000)]]
        assert [x.name for x in seen_b[0].labels] == ["__name__"]
        assert read_series(port, "c", "m") == []
        # Series limit: 3 active per tenant; a 4th new series is refused with 400.
        for i in range(2):
            assert (
                post(port, one("s", 1000, 1.0, i=str(i)), write, **{"X-Scope-OrgID": "a"})[0] == 204
            )
        status, _, body = post(port, one("s", 1000, 1.0, i="9"), write, **{"X-Scope-OrgID": "a"})
        assert status == 400 and b"series limit" in body
        # Rate limit: 5 samples/s, burst 5: tenant a has used 4, b is separate.
        big = WriteRequest(
            [TimeSeries([Label("__name__", "m")], [Sample(1.0, t) for t in range(2000, 2006)])]
        )
        status, headers, _ = post(port, big, write, **{"X-Scope-OrgID": "a"})
        assert status == 429 and int(headers["retry-after"]) >= 1
        text = get(f"http://127.0.0.1:{port}/metrics")
        assert (
            metric(text, "promwire_samples_rejected_total", tenant="a", reason="rate_limited") == 6
        )
        assert (
            metric(text, "promwire_samples_rejected_total", tenant="a", reason="series_limit") == 1
        )
        assert metric(text, "promwire_samples_received_total", tenant="b") == 1
        time.sleep(0.3)
    log = "".join(served.lines)
    assert re.search(r"status=429 tenant=a", log) and "Traceback" not in log
    assert re.search(r"level=info logger=promwire.access msg=request endpoint=/api/v1/read", log)


def test_ha_pair_stores_one_copy_and_fails_over(prometheus_bin: str, tmp_path: Path) -> None:
    timeout = 4.0
    db = tmp_path / "ha.db"
    options = ["--ha-cluster-label", "cluster", "--ha-replica-label", "__replica__"]
    options += ["--ha-failover-timeout", str(timeout)]
    with serve_process(db, "uvicorn", options=options) as served:
        target = f"127.0.0.1:{served.port}"

        def config(replica: str) -> str:
            return f"""
global:
  scrape_interval: 1s
  external_labels: {{cluster: c1, __replica__: {replica}}}
scrape_configs:
  - job_name: target
    metrics_path: /-/healthy
    static_configs: [{{targets: ['{target}']}}]
remote_write:
  - url: http://{target}/api/v1/write
    queue_config: {{batch_send_deadline: 500ms, max_shards: 1}}
"""

        replicas = {
            name: PrometheusProcess(config(name), tmp_path / name).start() for name in ("a", "b")
        }
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                series = stored(db, "up")
                if series and len(series[0].samples) >= 6:
                    break
                time.sleep(0.5)
            text = get(f"http://{target}/metrics")
            elected = re.search(r'promwire_ha_elected_replica\{[^}]*replica="(\w)"\} 1', text)
            assert elected is not None, text
            first = elected.group(1)
            assert metric(text, "promwire_samples_rejected_total", reason="ha_deduplicated") > 0
            killed_at = time.time() * 1000
            killed = replicas[first].proc
            assert killed is not None
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                series = stored(db, "up")
                if series and series[0].samples[-1].timestamp > killed_at + 4000:
                    break
                time.sleep(0.5)
            text = get(f"http://{target}/metrics")
            assert metric(text, "promwire_ha_elections_total") == 2
            assert f'replica="{"b" if first == "a" else "a"}"' in text
        finally:
            for prom in replicas.values():
                prom.stop()
    [up] = stored(db, "up")
    names = {label.name for label in up.labels}
    assert "__replica__" not in names and {"cluster", "job", "instance"} <= names
    stamps = [s.timestamp for s in up.samples]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # One copy: two replicas' scrapes would interleave with gaps under half the interval.
    assert min(gaps) >= 500, gaps
    # The takeover came within the failover timeout (plus a scrape and a send).
    assert max(gaps) <= (timeout + 2) * 1000, gaps
    assert stamps[-1] > killed_at


@pytest.mark.parametrize(("server", "workers"), [("uvicorn", 2), ("wsgiref", 1)])
def test_workers_lose_and_duplicate_nothing_and_drain_on_sigterm(
    server: str, workers: int, tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    threads, per_thread, samples = 6, 30, 20
    acknowledged: list[tuple[int, int]] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def request(t: int, i: int) -> WriteRequest:
        labels = [Label("__name__", "load"), Label("i", str(i)), Label("t", str(t))]
        return WriteRequest(
            [TimeSeries(labels, [Sample(float(k), 1000 * k) for k in range(samples)])]
        )

    def sender(port: int, t: int, count: int, stop: threading.Event | None) -> None:
        for i in range(count):
            if stop is not None and stop.is_set():
                return
            try:
                status = post(port, request(t, i), "/api/v1/write")[0]
            except OSError:
                if stop is not None:
                    return  # the server went away during shutdown: not acknowledged
                raise
            with lock:
                statuses.append(status)
                if status == 204:
                    acknowledged.append((t, i))
            if i == 0:  # the same request again: idempotent
                assert post(port, request(t, i), "/api/v1/write")[0] == 204

    with serve_process(db, server, options=["--workers", str(workers)]) as served:
        pids = set()
        senders = [
            threading.Thread(target=sender, args=(served.port, t, per_thread, None))
            for t in range(threads)
        ]
        for w in senders:
            w.start()
        for w in senders:
            w.join()
        assert statuses == [204] * (threads * per_thread)
        time.sleep(1.5)  # each worker's counters reach the shared files within 1 s
        text = get(f"http://127.0.0.1:{served.port}/metrics")
        sent = threads * (per_thread + 1) * samples
        assert metric(text, "promwire_samples_received_total") == sent
        for child in Path(f"/proc/{served.pid}/task/{served.pid}/children").read_text().split():
            pids.add(int(child))
        assert len(pids) == (workers if workers > 1 else 0)
        # Second phase: load while SIGTERM arrives; what was acknowledged must be stored.
        stop = threading.Event()
        acknowledged.clear()
        late = [
            threading.Thread(target=sender, args=(served.port, 100 + t, 1000, stop))
            for t in range(threads)
        ]
        for w in late:
            w.start()
        time.sleep(1.0)
        os.kill(served.pid, signal.SIGTERM)
        served.proc.wait(30)
        stop.set()
        for w in late:
            w.join()
        assert served.proc.returncode == 0
    assert acknowledged, "no request was acknowledged during the second phase"
    with SQLiteStorage(db) as store:
        for t, i in acknowledged:
            matchers = [
                LabelMatcher(MatchType.EQ, "t", str(t)),
                LabelMatcher(MatchType.EQ, "i", str(i)),
            ]
            [got] = store.process_query(RequestContext(), Query(0, 2**62, matchers)).timeseries
            assert len(got.samples) == samples
        first_phase = [
            LabelMatcher(MatchType.EQ, "__name__", "load"),
            LabelMatcher(MatchType.RE, "t", "[0-9]"),
        ]
        result = store.process_query(RequestContext(), Query(0, 2**62, first_phase))
        assert len(result.timeseries) == threads * per_thread
        assert sum(len(s.samples) for s in result.timeseries) == threads * per_thread * samples
    log = "".join(served.lines)
    assert "database is locked" not in log and "status=5" not in log
