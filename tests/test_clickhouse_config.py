"""The ClickHouse store's configuration and error mapping, without a server:
``--store`` URLs, ``clickhouse://`` parsing, ClickHouse error answers to HTTP
statuses, and ``serve --store sqlite:///`` (the spelled-out default)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from promwire import Label, Sample, TimeSeries, WriteRequest
from promwire.errors import StorageError
from promwire.server.runner import UnusableDatabase, open_store
from promwire.stores._clickhouse_http import ClickHouseHTTP, _error
from promwire.stores._clickhouse_sql import literal
from promwire.stores.clickhouse import ClickHouseStorage
from promwire.stores.sqlite import SQLiteStorage
from tests.support.prometheus import free_port
from tests.support.serve_process import REPO, SERVE, post, serve_process


@pytest.mark.parametrize(
    ("status", "header", "body", "expected"),
    [
        # 18.16's form: a whole shard down behind a Distributed table.
        (
            500,
            None,
            b"Code: 279, e.displayText() = DB::NetException: All connection tries failed",
            503,
        ),
        # a current release's form, with the code in a header too.
        (500, "999", b"Code: 999. Coordination::Exception: Session expired", 503),
        (500, None, b"Code: 242, e.displayText() = DB::Exception: Table is in readonly mode", 503),
        (500, None, b"Code: 252, e.displayText() = DB::Exception: Too many parts (300)", 503),
        (500, None, b"Code: 62, e.displayText() = DB::Exception: Syntax error", 500),
        (503, None, b"overloaded", 503),
    ],
)
def test_clickhouse_errors_become_statuses_senders_retry(
    status: int, header: str | None, body: bytes, expected: int
) -> None:
    error = _error(status, header, body)
    assert isinstance(error, StorageError)
    assert error.status == expected
    assert len(error.message) < 400


def test_an_unreachable_server_is_503_after_every_host_is_tried() -> None:
    client = ClickHouseHTTP([("127.0.0.1", free_port()), ("127.0.0.1", free_port())], timeout=5)
    with pytest.raises(StorageError) as raised:
        client.query("SELECT 1")
    assert raised.value.status == 503
    assert raised.value.message.count("127.0.0.1:") == 2


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("clickhouse://h:8123/bad-name", "database name"),
        ("clickhouse://h:8123/db?cluster=x;DROP", "cluster name"),
        ("clickhouse://h:8123/db?clustr=x", "unknown clickhouse:// parameter"),
        ("clickhouse://h/db", "HOST:PORT"),
        ("clickhouse://h:8123/db?insert_quorum=two", "insert_quorum"),
        ("postgres://h/db", "--store must be"),
    ],
)
def test_bad_store_urls_are_refused_with_a_reason(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_store(url)


def test_a_store_url_configures_the_store() -> None:
    store = ClickHouseStorage.from_url(
        "clickhouse://u%40x:p%3Aw@a:1,[::1]:2/metrics?cluster=c1&insert_quorum=2",
        create_schema=False,
    )
    assert store.client.hosts == [("a", 1), ("::1", 2)]
    assert (store.database, store.cluster) == ("metrics", "c1")
    assert store._insert_settings["insert_quorum"] == 2


def test_unreachable_clickhouse_is_an_unusable_store() -> None:
    with pytest.raises(UnusableDatabase, match="clickhouse unreachable"):
        open_store(f"clickhouse://127.0.0.1:{free_port()}/x")


def test_literals_escape_everything_that_ends_a_string() -> None:
    assert literal("a'b\\c\x00\n\x7f") == "'a\\'b\\\\c\\x00\\x0a\\x7f'"
    assert literal("é") == "'é'"


def test_serve_store_sqlite_url_is_the_db_flag(tmp_path: Path) -> None:
    db = tmp_path / "spelled.db"
    with serve_process(
        tmp_path / "not-this.db", None, options=["--store", f"sqlite:///{db}"]
    ) as served:
        request = WriteRequest(timeseries=[TimeSeries([Label("__name__", "x")], [Sample(1, 1)])])
        assert post(served.port, "/api/v1/write", request)[0] == 204
    assert SQLiteStorage(db).counts()["samples"] == 1
    assert not (tmp_path / "not-this.db").exists()


def test_serve_refuses_an_unreachable_clickhouse() -> None:
    """A --store that cannot be reached is a one-line error at startup (exit 3)."""
    proc = subprocess.run(
        [*SERVE, "--store", f"clickhouse://127.0.0.1:{free_port()}/x", "--listen", "127.0.0.1:0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert "clickhouse unreachable" in proc.stderr


class Recording:
    """A client that keeps the statements it is given (no server)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, bytes | None]] = []

    def query(self, sql: str, data: bytes | None = None, settings: object = None) -> bytes:
        self.statements.append((sql, data))
        return b""

    def close(self) -> None:
        pass


def test_series_memory_is_bounded_and_known_series_are_not_resent() -> None:
    client = Recording()
    store = ClickHouseStorage(
        client=client, create_schema=False, max_cached_series=50, max_cached_series_bytes=4096
    )
    from promwire.stores.protocol import RequestContext

    request = WriteRequest(
        timeseries=[
            TimeSeries([Label("__name__", "m"), Label("i", str(i))], [Sample(1, 1)])
            for i in range(40)
        ]
    )
    store.write(RequestContext(), request)
    assert [sql.split()[2] for sql, _ in client.statements] == [
        "promwire.series",
        "promwire.samples",
    ]
    assert store._keys_bytes <= 4096 and len(store._keys) < 40
    client.statements.clear()
    store.write(RequestContext(), request)  # the same series again: samples only
    assert [sql.split()[2] for sql, _ in client.statements] == ["promwire.samples"]
