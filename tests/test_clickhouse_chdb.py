"""The ClickHouse store's SQL on a current ClickHouse release, in-process through chdb.

The cluster tests (test_clickhouse_cluster.py) run on Debian's ClickHouse
18.16; these run the same store, statement for statement, on the ClickHouse
chdb embeds (26.x), so the SQL is proven on both ends of the range.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promwire.codec.messages import LabelMatcher, MatchType
from promwire.errors import StorageRejected
from promwire.stores._clickhouse_sql import literal, schema_statements
from promwire.stores.clickhouse import ClickHouseStorage
from promwire.stores.protocol import RequestContext
from tests.support.chdb_client import ChdbClient
from tests.support.clickhouse_cases import (
    MATCHERS,
    check_budget,
    check_columns,
    check_matcher,
    check_round_trip,
    check_tenants,
    query,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClickHouseStorage:
    path = tmp_path_factory.mktemp("chdb")
    return ClickHouseStorage(database="promwire", client=ChdbClient(Path(path)))


def test_the_server_is_a_current_release(store: ClickHouseStorage) -> None:
    major = int(store.client.query("SELECT version() FORMAT TSV").split(b".")[0])
    assert major >= 24


def test_round_trip_is_bit_exact_and_resends_are_not_read_twice(store: ClickHouseStorage) -> None:
    check_round_trip(store)


@pytest.mark.parametrize("matcher", MATCHERS, ids=repr)
def test_matchers_select_what_prometheus_selects(
    store: ClickHouseStorage, matcher: LabelMatcher
) -> None:
    check_matcher(store, matcher)


def test_samples_reads_from_columns(store: ClickHouseStorage) -> None:
    check_columns(store)


def test_reads_spend_the_budget(store: ClickHouseStorage) -> None:
    check_budget(store)


def test_tenants_are_kept_apart_and_columns_write(store: ClickHouseStorage) -> None:
    check_tenants(store)


def test_an_invalid_regex_is_refused_before_any_sql(store: ClickHouseStorage) -> None:
    with pytest.raises(StorageRejected):
        store.process_query(RequestContext(), query(LabelMatcher(MatchType.RE, "v", "(a")))


def test_the_cluster_schema_parses_on_a_current_release(store: ClickHouseStorage) -> None:
    """chdb has no cluster or ZooKeeper to run the ON CLUSTER statements, so a
    current release at least parses them (``formatQuery``); 18.16 runs them in
    test_clickhouse_cluster.py."""
    for statement in schema_statements("metrics", "promwire", replicated=True):
        formatted = store.client.query(f"SELECT formatQuery({literal(statement)}) FORMAT TSV")
        assert b"ON CLUSTER promwire" in formatted


def test_every_setting_the_store_sends_is_known_to_a_current_release(
    store: ClickHouseStorage,
) -> None:
    cluster_store = ClickHouseStorage(
        "h:1", "metrics", cluster="promwire", insert_quorum=2, create_schema=False
    )
    settings = {
        **cluster_store._insert_settings,
        **cluster_store._read_settings,
        "max_execution_time": 3,
        "distributed_ddl_task_timeout": 120,
    }
    assert "insert_distributed_sync" in settings
    assert store.client.query("SELECT 1 FORMAT TSV", settings=settings).strip() == b"1"
