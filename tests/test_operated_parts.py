"""The operated receiver's parts in-process: auth, web config, tenancy, HA tracker,
tenant limits, metrics text, env defaults, the apps' 401/health/metrics answers."""

from __future__ import annotations

import argparse
import base64
import io
import re
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from promwire import Label, Sample, TimeSeries, WriteRequest, encode, snappy
from promwire.codec.columns import SeriesColumns
from promwire.codec.messages import LabelMatcher, MatchType, Query
from promwire.server.auth import Authenticator
from promwire.server.envflags import environment_defaults
from promwire.server.ha import HATracker
from promwire.server.metrics import Metrics
from promwire.server.operated import operated_storage
from promwire.server.operator import OperatorOptions
from promwire.server.tenant_limits import TenantLimits
from promwire.server.webconfig import WebConfigError, load_web_config
from promwire.server.wsgi import RemoteStorageApp
from promwire.stores.protocol import RequestContext
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.tenancy import TENANT_LABEL, tenant_storage

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def series(name: str, ts: int, value: float = 1.0, **labels: str) -> TimeSeries:
    pairs = sorted({"__name__": name, **labels}.items())
    return TimeSeries([Label(k, v) for k, v in pairs], [Sample(value, ts)])


def read_all(store: Any, ctx: Any, name: str) -> list[TimeSeries]:
    query = Query(0, 10**13, [LabelMatcher(MatchType.EQ, "__name__", name)])
    return list(store.process_query(ctx, query).timeseries)


# ------------------------------------------------------------------ auth


def test_basic_auth_and_bearer_tokens() -> None:
    auth = Authenticator({"alice": HASH.encode()}, ["tok-1", "tok-2"])
    assert auth.check(basic("alice", "s3cret")) is None
    assert auth.check(basic("alice", "s3cret")) is None  # the cached success
    assert auth.check(basic("alice", "wrong")) == "wrong user or password"
    assert auth.check(basic("bob", "s3cret")) == "wrong user or password"
    assert auth.check("Bearer tok-2") is None
    assert auth.check("Bearer tok-3") == "wrong bearer token"
    assert auth.check(None) == "no credentials"
    assert auth.check("Basic !!!") == "malformed basic credentials"
    assert auth.check("Digest x") is not None
    assert len(auth._cache) == 1  # one remembered success, no password kept
    assert auth.remembered(basic("alice", "s3cret"))
    assert not auth.remembered(basic("alice", "wrong"))
    assert not auth.remembered(basic("bob", "s3cret")) and not auth.remembered("Bearer tok-1")
    assert Authenticator().check(None) is None  # nothing configured: open


def test_web_config_semantics(tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    loaded = load_web_config(str(cfg))
    assert loaded.tls is None and set(loaded.users) == {"alice"}
    bad = {
        "tls_server_config:\n  key_file: k\n": "missing cert_file",
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n": (
            "without a client_auth_type"
        ),
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Nope\n": (
            "invalid client_auth_type"
        ),
        "tls_server_config:\n  cert_file: c\n  key_file: k\n"
        "  client_auth_type: RequireAnyClientCert\n": "not supported",
        "basic_auth_users:\n  bob: plain\n": "not a bcrypt hash",
        "rate_limit:\n  burst: 1\n": "not supported",
        "surprise: 1\n": "unknown key",
        "tls_server_config:\n  cert_file: c\n  key_file: k\n": "cannot load TLS files",
    }
    for text, message in bad.items():
        cfg.write_text(text)
        with pytest.raises(WebConfigError, match=message):
            load_web_config(str(cfg))


# -------------------------------------------------------------- tenancy


class ColumnStore(SQLiteStorage):
    """SQLite plus a ``write_columns`` member (storing through ``write``)."""

    columns_calls = 0

    def write_columns(self, ctx: Any, series: Sequence[SeriesColumns]) -> None:
        self.columns_calls += 1
        self.write(
            ctx,
            WriteRequest(
                [
                    TimeSeries(
                        list(s.labels),
                        [Sample(v, t) for t, v in zip(s.timestamps, s.values, strict=True)],
                    )
                    for s in series
                ]
            ),
        )


def test_tenants_cannot_read_each_other() -> None:
    inner = SQLiteStorage()
    store = tenant_storage(inner)
    a, b = RequestContext(tenant="a"), RequestContext(tenant="b")
    store.write(a, WriteRequest([series("m", 1000, 1.0, job="x")]))
    # b tries to forge a's label: it is replaced by b's own tenant.
    store.write(b, WriteRequest([series("m", 2000, 2.0, job="x", **{TENANT_LABEL: "a"})]))
    seen_a = read_all(store, a, "m")
    seen_b = read_all(store, b, "m")
    assert [s.samples for s in seen_a] == [[Sample(1.0, 1000)]]
    assert [s.samples for s in seen_b] == [[Sample(2.0, 2000)]]
    assert all(label.name != TENANT_LABEL for s in seen_a + seen_b for label in s.labels)
    streamed = list(store.process_query_chunks(b, Query(0, 10**13, [])))
    assert [[(x.name, x.value) for x in s.labels] for s in streamed] == [
        [("__name__", "m"), ("job", "x")]
    ]
    raw = read_all(inner, RequestContext(), "m")  # the store itself holds both, labelled
    assert sorted(dict((x.name, x.value) for x in s.labels)[TENANT_LABEL] for s in raw) == [
        "a",
        "b",
    ]


def test_tenancy_and_ha_on_the_columnar_shape() -> None:
    inner = ColumnStore()
    metrics = Metrics()
    ha = HATracker("cluster", "__replica__", 30, clock=lambda: 100.0)
    store = operated_storage(tenant_storage(inner), metrics, ha=ha)
    ctx = RequestContext(tenant="t1")

    def cols(replica: str, ts: int) -> list[SeriesColumns]:
        labels = (Label("__name__", "m"), Label("__replica__", replica), Label("cluster", "c"))
        return [SeriesColumns(labels, array("q", [ts]), array("d", [1.0]))]

    store.write_columns(ctx, cols("r1", 1000))
    store.write_columns(ctx, cols("r2", 1000))  # the other replica: dropped
    store.write_columns(ctx, cols("r1", 2000))
    assert inner.columns_calls == 2
    stored = read_all(tenant_storage(inner), ctx, "m")
    assert [(x.name, x.value) for x in stored[0].labels] == [("__name__", "m"), ("cluster", "c")]
    assert [s.timestamp for s in stored[0].samples] == [1000, 2000]
    assert metrics.value("promwire_samples_rejected_total", ("t1", "ha_deduplicated")) == 1
    assert metrics.value("promwire_samples_received_total", ("t1",)) == 3


# ------------------------------------------------------------------- HA


def test_ha_tracker_elects_fails_over_and_shares_state(tmp_path: Path) -> None:
    now = [0.0]
    one = HATracker("c", "r", 5, state_path=str(tmp_path / "ha"), clock=lambda: now[0])
    two = HATracker("c", "r", 5, state_path=str(tmp_path / "ha"), clock=lambda: now[0])
    assert one.accept("", "k", "a") == (True, True)
    assert two.accept("", "k", "b") == (False, False)  # the other worker follows the election
    now[0] = 4.0
    assert one.accept("", "k", "a") == (True, False)
    now[0] = 8.0
    assert two.accept("", "k", "b") == (False, False)  # a was seen 4 s ago: no failover
    assert two.accept("", "k2", "b") == (True, True)  # clusters are separate
    assert two.accept("other", "k", "b") == (True, True)  # and tenants
    now[0] = 9.5
    assert two.accept("", "k", "b") == (True, True)  # 5.5 s of silence: failover
    assert one.accept("", "k", "a") == (False, False)
    one.close()
    two.close()


def test_ha_requests_without_labels_pass_untouched() -> None:
    inner = SQLiteStorage()
    store = operated_storage(inner, Metrics(), ha=HATracker("cluster", "__replica__", 30))
    store.write(RequestContext(), WriteRequest([series("m", 1, __replica__="x")]))
    [stored] = read_all(inner, RequestContext(), "m")
    assert Label("__replica__", "x") in stored.labels  # no cluster label: not an HA request


# --------------------------------------------------------------- limits


def test_rate_limit_answers_with_the_wait() -> None:
    now = [0.0]
    limits = TenantLimits(ingestion_rate=100, clock=lambda: now[0])
    assert limits.take("t", 60) is None
    assert limits.take("t", 60) == pytest.approx(1.0)  # 20 left, 40 missing: at least 1 s
    assert limits.take("u", 100) is None  # another tenant has its own bucket
    now[0] = 0.5
    assert limits.take("t", 60) is None  # 20 + 50 refilled
    assert TenantLimits(ingestion_rate=100, share=2).rate == 50


def test_series_limit_keeps_active_series_and_forgets_idle_ones() -> None:
    now = [0.0]
    limits = TenantLimits(max_series=2, series_idle_timeout=10, clock=lambda: now[0])
    assert limits.admit_series("t", ["a", "b", "c"]) == [True, True, False]
    assert limits.admit_series("t", ["a", "c"]) == [True, False]
    now[0] = 5.0
    assert limits.admit_series("t", ["a"]) == [True]
    now[0] = 12.0  # b idle for 12 s, a for 7 s
    assert limits.admit_series("t", ["c", "d"]) == [True, False]


def test_limits_in_the_storage_path() -> None:
    inner = SQLiteStorage()
    metrics = Metrics()
    limits = TenantLimits(ingestion_rate=3, max_series=1)
    store = operated_storage(tenant_storage(inner), metrics, limits=limits)
    ctx = RequestContext(tenant="t")
    from promwire.errors import StorageOverloaded, StorageRejected

    with pytest.raises(StorageRejected, match="series limit"):
        store.write(ctx, WriteRequest([series("m", 1), series("n", 1)]))
    assert [s.labels[0].value for s in read_all(tenant_storage(inner), ctx, "m")] == ["m"]
    with pytest.raises(StorageOverloaded) as refused:
        store.write(ctx, WriteRequest([series("m", 2), series("m", 3, x="1")]))
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert metrics.value("promwire_samples_rejected_total", ("t", "series_limit")) == 1
    assert metrics.value("promwire_samples_rejected_total", ("t", "rate_limited")) == 2


# -------------------------------------------------------------- metrics


def test_metrics_text_and_worker_merge(tmp_path: Path) -> None:
    one = Metrics(state_dir=str(tmp_path), worker=0)
    two = Metrics(state_dir=str(tmp_path), worker=1)
    one.inc("promwire_http_requests_total", ("write", "204"), 3)
    two.inc("promwire_http_requests_total", ("write", "204"), 4)
    two.inc("promwire_samples_received_total", ('a"b\\c',), 2)
    one.observe("promwire_decode_duration_seconds", 0.003)
    two.observe("promwire_decode_duration_seconds", 20.0)
    two.flush()
    text = one.render()
    assert 'promwire_http_requests_total{endpoint="write",code="204"} 7' in text
    assert 'promwire_samples_received_total{tenant="a\\"b\\\\c"} 2' in text
    assert 'promwire_decode_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'promwire_decode_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "promwire_decode_duration_seconds_count 2" in text
    line = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? [0-9.e+-]+$|^# (HELP|TYPE) ')
    assert all(line.match(x) for x in text.splitlines()), text


# ----------------------------------------------------------- env flags


def test_every_serve_flag_reads_its_environment_variable() -> None:
    from promwire.server.runner import add_serve_options, serve_options

    env = {
        "PROMWIRE_TENANT_HEADER": "X-Scope-OrgID",
        "PROMWIRE_WORKERS": "2",
        "PROMWIRE_ACCESS_LOG": "yes",
        "PROMWIRE_ALLOWED_HOST": "a.example, b.example",
        "PROMWIRE_MAX_CONNECTIONS": "7",
        "PROMWIRE_LOG_LEVEL": "debug",
    }
    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    environment_defaults(parser, env)
    args = parser.parse_args([])
    options = serve_options(args)
    assert options["workers"] == 2 and options["max_connections"] == 7
    assert options["allowed_hosts"] == ["a.example", "b.example"]
    assert options["operator"].tenant_header == "X-Scope-OrgID"
    assert options["operator"].access_log is True
    assert options["operator"].log_level == "debug"
    assert parser.parse_args(["--workers", "3"]).workers == 3  # the flag wins
    bad = argparse.ArgumentParser(exit_on_error=False)
    add_serve_options(bad)
    with pytest.raises(SystemExit):
        environment_defaults(bad, {"PROMWIRE_WORKERS": "many"})
    # Every long option has a variable (help text names it).
    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    sample = {"DURATION": "15d", "SIZE": "10GB"}  # a value each flag's type takes
    everything = {
        "PROMWIRE_" + a.option_strings[-1][2:].replace("-", "_").upper(): sample.get(
            str(a.metavar), "1"
        )
        for a in parser._actions
        if a.option_strings and a.dest != "help" and not a.choices
    }
    environment_defaults(parser, everything)
    assert all(
        "[env PROMWIRE_" in (a.help or "")
        for a in parser._actions
        if a.option_strings and a.dest != "help" and not a.choices
    )


# ----------------------------------------------------------------- app


def call(app: RemoteStorageApp, path: str, method: str = "GET", **headers: str) -> Any:
    body = snappy.compress(encode(WriteRequest([series("m", 5)])))
    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "CONTENT_TYPE": "application/x-protobuf",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper(): v for k, v in headers.items()},
    }
    answer: list[Any] = []
    chunks = app(environ, lambda status, hdrs: answer.extend([status, dict(hdrs)]))
    return int(answer[0].split()[0]), answer[1], b"".join(chunks)


def test_app_refuses_before_decoding_and_serves_metrics(tmp_path: Path) -> None:
    cfg = tmp_path / "web.yml"
    cfg.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    options = OperatorOptions(web_config=str(cfg), tenant_header="X-Scope-OrgID").load()
    inner = SQLiteStorage()
    storage, ops = options.assemble(inner)
    app = RemoteStorageApp(storage, operations=ops)
    good = basic("alice", "s3cret")
    status, headers, _ = call(app, "/api/v1/write", "POST", AUTHORIZATION=basic("alice", "x"))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    status, _, body = call(app, "/api/v1/write", "POST", AUTHORIZATION=good)
    assert status == 401 and b"X-Scope-OrgID".lower() in body.lower()
    assert inner.counts()["samples"] == 0  # nothing decoded, nothing stored
    status, _, _ = call(app, "/api/v1/write", "POST", AUTHORIZATION=good, X_SCOPE_ORGID="t")
    assert status == 204
    assert call(app, "/metrics")[0] == 401  # auth covers every path
    status, headers, text = call(app, "/metrics", AUTHORIZATION=good)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'promwire_samples_received_total{tenant="t"} 1' in text
    assert b'promwire_http_requests_total{endpoint="write",code="401"} 2' in text
    assert b'promwire_requests_rejected_total{endpoint="write",reason="unauthorized"} 2' in text
    assert call(app, "/-/ready", AUTHORIZATION=good)[:2][0] == 200
    assert call(app, "/-/healthy", AUTHORIZATION=good)[0] == 200
    inner.close()
    assert call(app, "/-/ready", AUTHORIZATION=good)[0] == 503


def test_serve_refuses_bad_operator_options_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promwire.server.runner import main

    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    db = str(tmp_path / "x.db")
    assert main(["--db", db, "--listen", "127.0.0.1:0", "--web-config", str(web)]) == 2
    assert "--web-config: cannot load TLS files" in capsys.readouterr().err
    assert main(["--db", db, "--tenant-ingestion-rate", "5"]) == 2
    assert "need --tenant-header" in capsys.readouterr().err
    assert main(["--db", db, "--ha-cluster-label", "cluster"]) == 2
    assert main(["--db", db, "--bearer-token-file", str(tmp_path / "missing")]) == 2
    assert "--bearer-token-file" in capsys.readouterr().err
