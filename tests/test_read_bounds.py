"""The memory and time one remote read may cost (issue 12, finding 2).

A read's limits are spent while the storage produces the answer
(``ReadBudget``), not checked on a finished answer: a 92-byte read of 52
queries over a million stored samples used to grow ``promwire serve`` to
6 GB and take two minutes before its 400; a read whose matchers have no
equality scanned every series once per query, for up to 1000 queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promwire import (
    LabelMatcher,
    LimitExceeded,
    MatchType,
    Query,
    QueryResult,
    ReadRequest,
    ReadResponse,
    ResponseType,
    Sample,
    TimeSeries,
    decode,
    encode,
    snappy,
)
from promwire.server.handlers import (
    DEFAULT_MAX_READ_QUERIES,
    DEFAULT_MAX_READ_SAMPLES,
    Response,
    handle_read,
    handle_read_async,
    prime_response,
)
from promwire.stores.protocol import AsyncBaseStorage, BaseStorage, ReadBudget, RequestContext
from promwire.stores.sqlite import SQLiteStorage
from tests.support.serve_process import PeakRss, fill_store, post, rss_mb, serve_process

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
#: How much a refused read may grow ``promwire serve`` (measured: about +120 MB).
RSS_BOUND_MB = 300
#: Series in the store for the scan tests (no equality matcher scans them all).
SCAN_SERIES = 200_000


def everything(n: int) -> ReadRequest:
    """``n`` queries each selecting every series of the filled store, all time."""
    return ReadRequest(
        queries=[Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "m")])] * n
    )


def scan(n: int, accepted: list[ResponseType] | None = None) -> ReadRequest:
    """``n`` queries without an equality matcher that match nothing: a full scan each."""
    q = Query(0, 1 << 62, [LabelMatcher(MatchType.NEQ, "__name__", "m")])
    return ReadRequest(queries=[q] * n, accepted_response_types=accepted or [])


def body(request: ReadRequest) -> bytes:
    return snappy.compress(encode(request))


def text(resp: Response) -> str:
    assert isinstance(resp.body, bytes)
    return resp.body.decode()


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1000 series x 1000 samples."""
    db = tmp_path_factory.mktemp("million") / "m.db"
    fill_store(db, 1000, 1000)
    return db


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 000 series of one sample each."""
    db = tmp_path_factory.mktemp("wide") / "w.db"
    fill_store(db, SCAN_SERIES, 1)
    return db


def test_read_budget_counts() -> None:
    budget = ReadBudget(max_samples=10, max_series=3, seconds=60)
    budget.take_samples(6)
    budget.at_least_samples(6)  # a storage already counted these: not twice
    budget.at_least_samples(4)
    assert budget.samples == 6
    budget.at_least_samples(10)
    with pytest.raises(LimitExceeded, match="at least 11 samples") as info:
        budget.take_samples(1)
    assert info.value.status == 400
    budget.examine(3)
    with pytest.raises(LimitExceeded, match="max_read_series") as info:
        budget.examine()
    assert info.value.status == 400
    late = ReadBudget(seconds=0.05)
    time.sleep(0.1)
    assert late.expired()
    with pytest.raises(LimitExceeded, match="max_read_seconds") as info:
        late.check_time()
    assert info.value.status == 503
    late.restart_clock()
    late.check_time()
    unlimited = ReadBudget()
    unlimited.take_samples(10**12)
    unlimited.examine(10**12)
    assert not unlimited.expired()


def test_defaults_hold_the_issue_read() -> None:
    # The issue's read: 52 queries, each over the whole store.
    assert DEFAULT_MAX_READ_QUERIES >= 52
    assert DEFAULT_MAX_READ_SAMPLES == 1_000_000
    assert len(body(everything(52))) < 100


@pytest.mark.parametrize("server", ["wsgiref", "uvicorn"])
def test_a_small_read_of_many_queries_stops_at_the_sample_limit(million: Path, server: str) -> None:
    with serve_process(million, server) as served:
        base = rss_mb(served.pid)
        peak = PeakRss(served.pid)
        status, answer = post(served.port, "/api/v1/read", everything(52), timeout=60)
        grown = peak.stop() - base
        assert status == 400
        assert answer.startswith(b"exceeded sample limit")
        assert b"(max_read_samples)" in answer and len(answer) < 200
        assert grown < RSS_BOUND_MB, f"serve grew {grown:.0f} MB answering a refused read"

        # One query for the whole store is exactly the limit: answered in full.
        peak = PeakRss(served.pid)
        status, answer = post(served.port, "/api/v1/read", everything(1), timeout=60)
        grown = peak.stop() - base
        assert status == 200
        result = decode(ReadResponse, snappy.decompress(answer)).results[0]
        assert len(result.timeseries) == 1000
        assert sum(len(ts.samples) for ts in result.timeseries) == DEFAULT_MAX_READ_SAMPLES
        assert grown < RSS_BOUND_MB, f"serve grew {grown:.0f} MB answering 1M samples"


def test_the_sample_limit_stops_sqlite_while_it_reads(million: Path) -> None:
    with SQLiteStorage(million) as store:
        budget = ReadBudget(max_samples=2500)
        with pytest.raises(Exception, match="exceeded sample limit") as info:
            store.process_query(RequestContext(budget=budget), everything(1).queries[0])
        assert getattr(info.value, "status", None) == 400
        # Stopped within one fetch batch of the limit, not after a million samples.
        assert budget.samples < 2500 + 5000


def test_matcher_only_scans_are_cut_off_by_the_series_budget(wide: Path) -> None:
    with serve_process(wide, "wsgiref") as served:
        # One full scan is within the budget (and matches nothing).
        status, answer = post(served.port, "/api/v1/read", scan(1), timeout=30)
        assert status == 200
        assert decode(ReadResponse, snappy.decompress(answer)).results[0].timeseries == []

        started = time.monotonic()
        status, answer = post(served.port, "/api/v1/read", scan(100), timeout=30)
        took = time.monotonic() - started
        assert status == 400
        assert answer.startswith(b"read examined more than 1000000 series")
        assert b"(max_read_series)" in answer
        assert took < 15, f"a refused scan held the server {took:.1f} s"

        # Streamed answers spend the same series budget.
        status, answer = post(
            served.port,
            "/api/v1/read",
            scan(100, [ResponseType.STREAMED_XOR_CHUNKS]),
            timeout=30,
        )
        assert status == 400 and b"(max_read_series)" in answer


def test_more_queries_than_max_read_queries_never_reach_the_storage(wide: Path) -> None:
    with SQLiteStorage(wide) as store:
        started = time.monotonic()
        resp = handle_read(body(scan(DEFAULT_MAX_READ_QUERIES + 1)), HEADERS, store)
        assert resp.status == 400 and "(max_read_queries)" in text(resp)
        assert time.monotonic() - started < 1


@pytest.mark.parametrize("flavour", ["sync", "async", "streamed"])
def test_max_read_seconds_answers_503(wide: Path, flavour: str) -> None:
    limits: dict[str, Any] = {"max_read_series": 10**12, "max_read_seconds": 0.3}
    with SQLiteStorage(wide) as store:
        started = time.monotonic()
        if flavour == "sync":
            resp = handle_read(body(scan(100)), HEADERS, store, **limits)
        elif flavour == "async":
            resp = asyncio.run(handle_read_async(body(scan(100)), HEADERS, store, **limits))
        else:
            request = scan(100, [ResponseType.STREAMED_XOR_CHUNKS])
            resp = prime_response(handle_read(body(request), HEADERS, store, **limits))
        took = time.monotonic() - started
    assert resp.status == 503
    assert text(resp).startswith("read took longer than 0.3 s")
    assert "(max_read_seconds)" in text(resp)
    assert took < 5, f"a 0.3 s budget took {took:.1f} s to stop"


class Chatty(BaseStorage):
    """A storage that knows nothing of budgets: 600 samples per query."""

    def __init__(self) -> None:
        self.calls = 0

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        self.calls += 1
        samples = [Sample(1.0, t) for t in range(600)]
        return QueryResult(timeseries=[TimeSeries(samples=samples)])


def test_a_storage_ignoring_the_budget_stops_between_queries() -> None:
    store = Chatty()
    resp = handle_read(body(everything(10)), HEADERS, store, max_read_samples=1000)
    assert resp.status == 400 and "exceeded sample limit" in text(resp)
    assert store.calls == 2  # not 10


class SlowTail(AsyncBaseStorage):
    """Async: the first two queries answer at once with 600 samples, the rest take 30 s."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0

    async def process_query(self, ctx: Any, query: Query) -> QueryResult:
        self.started += 1
        if self.started > 2:
            await asyncio.sleep(30)
        self.finished += 1
        return QueryResult(timeseries=[TimeSeries(samples=[Sample(1.0, t) for t in range(600)])])


def test_an_async_storage_ignoring_the_budget_is_cancelled_once_it_is_spent() -> None:
    store = SlowTail()
    started = time.monotonic()
    resp = asyncio.run(
        handle_read_async(body(everything(10)), HEADERS, store, max_read_samples=1000)
    )
    assert resp.status == 400 and "exceeded sample limit" in text(resp)
    assert store.finished == 2
    assert time.monotonic() - started < 10  # the 30 s queries were cancelled


class FakeClock:
    """``time.monotonic`` for the read budget: it moves only when a test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class TickingStore(SQLiteStorage):
    """The SQLite store, spending ``tick`` seconds of ``clock`` on every series
    it makes (``slow_at``: on that one series, ``slow`` seconds instead)."""

    def __init__(
        self, path: Path, clock: FakeClock, tick: float, slow_at: int = -1, slow: float = 0.0
    ) -> None:
        super().__init__(path)
        self.clock, self.tick, self.slow_at, self.slow = clock, tick, slow_at, slow
        self.made = 0

    def process_query_encoded(self, ctx: Any, query: Query) -> Iterator[Any]:
        for one in super().process_query_encoded(ctx, query):
            self.made += 1
            yield one
            # resumed: the next series' work (or the query's end) takes this long
            self.clock.now += self.slow if self.made == self.slow_at else self.tick


@pytest.mark.parametrize("slow", [0.0, 0.3], ids=["steady", "one-long-silence"])
def test_a_streamed_answer_restarts_the_clock_with_every_frame(
    million: Path, monkeypatch: pytest.MonkeyPatch, slow: float
) -> None:
    # Each series costs 0.15 s of the budget's clock: 2 x 1000 of them take 300 s
    # to stream against a 0.2 s limit, which bounds the silence between two
    # frames, not the stream. One silence of 0.3 s ends the stream with the
    # limit's message (the status was sent with the first frame). The clock is
    # the test's, so a slow or busy machine cannot change the outcome.
    clock = FakeClock()
    monkeypatch.setattr("promwire.stores.protocol.time", clock)
    request = ReadRequest(
        queries=everything(2).queries, accepted_response_types=[ResponseType.STREAMED_XOR_CHUNKS]
    )
    with TickingStore(million, clock, tick=0.15, slow_at=1500 if slow else -1, slow=slow) as store:
        started = clock.now
        resp = prime_response(handle_read(body(request), HEADERS, store, max_read_seconds=0.2))
        assert resp.status == 200
        frames = list(resp.body)  # type: ignore[arg-type]
    assert clock.now - started > 200 * 0.2  # the stream took far longer than the limit
    if not slow:
        assert len(frames) == 2000 == store.made
        assert not any(b"max_read_seconds" in f for f in frames)
    else:
        assert len(frames) == 1501  # 1500 series, then the message
        assert frames[-1].endswith(b"over the limit (max_read_seconds)\n")
