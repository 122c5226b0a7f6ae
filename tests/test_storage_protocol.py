"""promwire.stores.protocol: the protocols and the default ``read`` of the base classes."""

from __future__ import annotations

import asyncio
from typing import Any

from promwire import Query, QueryResult, ReadRequest, Sample, TimeSeries, WriteRequest
from promwire.stores.protocol import (
    AsyncBaseStorage,
    AsyncRemoteStorage,
    BaseStorage,
    RemoteStorage,
)
from promwire.stores.sqlite import SQLiteStorage


def result_for(query: Query) -> QueryResult:
    return QueryResult([TimeSeries(samples=[Sample(1.0, query.start_timestamp_ms)])])


class Sync(BaseStorage):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, int]] = []

    def write(self, ctx: Any, request: WriteRequest) -> None:
        pass

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        self.seen.append((ctx, query.start_timestamp_ms))
        return result_for(query)


def test_base_read_answers_each_query_in_order_with_the_same_ctx() -> None:
    store = Sync()
    ctx = object()
    queries = [Query(start_timestamp_ms=t) for t in (30, 10, 20)]
    response = store.read(ctx, ReadRequest(queries=queries))
    assert response.results == [result_for(q) for q in queries]
    assert store.seen == [(ctx, 30), (ctx, 10), (ctx, 20)]
    assert store.read(ctx, ReadRequest()).results == []


def test_async_read_runs_queries_concurrently_but_keeps_order() -> None:
    class Async(AsyncBaseStorage):
        def __init__(self) -> None:
            self.started: list[int] = []
            self.all_started = asyncio.Event()

        async def process_query(self, ctx: Any, query: Query) -> QueryResult:
            self.started.append(query.start_timestamp_ms)
            if len(self.started) == 3:
                self.all_started.set()
            # Each query waits until every query has started: only possible if
            # they run concurrently. Earlier queries then finish last.
            await self.all_started.wait()
            await asyncio.sleep(0.01 * (3 - query.start_timestamp_ms))
            return result_for(query)

    async def run() -> list[QueryResult]:
        store = Async()
        queries = [Query(start_timestamp_ms=i) for i in range(3)]
        response = await asyncio.wait_for(store.read(None, ReadRequest(queries=queries)), 2)
        return response.results

    assert asyncio.run(run()) == [result_for(Query(start_timestamp_ms=i)) for i in range(3)]


def test_protocols_are_runtime_checkable() -> None:
    class AsyncStore(AsyncBaseStorage):
        pass

    with SQLiteStorage() as sqlite:
        assert isinstance(sqlite, RemoteStorage)
    assert isinstance(Sync(), RemoteStorage)
    assert isinstance(AsyncStore(), AsyncRemoteStorage)
    assert not isinstance(object(), RemoteStorage)
