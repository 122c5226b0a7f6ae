"""Reads and writes on SQLite (issue 12, finding 5).

Reads never wait for writes: a reader thread used to take the writer's lock
to register its connection, so a read waited behind a write stuck on
SQLite's lock (28 s seen). A store whose file was read-only answered 500
forever, even after its permissions came back: its writer connection stayed
read-only.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ReadRequest,
    ReadResponse,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    snappy,
)
from promwire.stores.sqlite import SQLiteStorage
from tests.support.serve_process import post, serve_process

#: How long a read may take while a write is stuck on SQLite's lock.
READ_BOUND_S = 3.0  # a read that waited would wait for the write: 30 s here


def series(name: str, *points: tuple[int, float]) -> TimeSeries:
    return TimeSeries(labels=[Label("__name__", name)], samples=[Sample(v, t) for t, v in points])


def query(name: str) -> Query:
    return Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", name)])


def names(resp: ReadResponse) -> list[str]:
    return [lb.value for ts in resp.results[0].timeseries for lb in ts.labels]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    with SQLiteStorage(path) as store:
        store.write(None, WriteRequest([series("old", (1, 1.0))]))
    return path


@pytest.fixture
def sqlite_write_lock(db: Path) -> Iterator[Callable[[], None]]:
    """Another connection holding SQLite's write lock on ``db``; call to release it."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        if other.in_transaction:
            other.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()
        other.close()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Run ``fn`` in a new thread (a new thread needs a new reader connection)."""
    out: list[object] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(30)
    assert out, "the read did not finish in 30 s"
    return time.monotonic() - started, out[0]


def test_reads_do_not_wait_for_a_write_stuck_on_the_sqlite_lock(
    db: Path, sqlite_write_lock: Callable[[], None]
) -> None:
    with SQLiteStorage(db) as store:
        done: list[BaseException | None] = []

        def write() -> None:
            try:
                store.write(None, WriteRequest([series("new", (2, 2.0))]))
                done.append(None)
            except BaseException as exc:
                done.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        deadline = time.monotonic() + 5
        while not store._lock.locked():  # the write is in, waiting for SQLite's lock
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        assert writer.is_alive() and not done

        took, got = timed(lambda: store.process_query(None, query("old")))
        assert took < READ_BOUND_S, f"a read waited {took:.1f} s for a stuck write"
        assert len(got.timeseries) == 1  # type: ignore[attr-defined]

        took, streamed = timed(lambda: list(store.process_query_chunks(None, query("old"))))
        assert took < READ_BOUND_S, f"a streamed read waited {took:.1f} s for a stuck write"
        assert len(streamed) == 1  # type: ignore[arg-type]

        sqlite_write_lock()
        writer.join(30)
        assert done == [None]
        assert len(store.process_query(None, query("new")).timeseries) == 1


@pytest.mark.parametrize("server", ["wsgiref", "uvicorn"])
def test_serve_answers_reads_while_a_write_is_stuck(
    db: Path, sqlite_write_lock: Callable[[], None], server: str
) -> None:
    with serve_process(db, server) as served:
        # Another process' lock at startup is no reason to warn: writes wait for it.
        assert not [line for line in served.lines if "WARNING" in line], served.lines
        written: list[int] = []
        writer = threading.Thread(
            target=lambda: written.append(
                post(served.port, "/api/v1/write", WriteRequest([series("new", (2, 2.0))]))[0]
            ),
            daemon=True,
        )
        writer.start()
        time.sleep(0.5)  # the write is now waiting for SQLite's lock
        assert not written
        for _ in range(3):  # several reads: each may land on a new thread
            started = time.monotonic()
            status, answer = post(served.port, "/api/v1/read", ReadRequest([query("old")]), 10)
            took = time.monotonic() - started
            assert status == 200
            assert names(decode(ReadResponse, snappy.decompress(answer))) == ["old"]
            assert took < READ_BOUND_S, f"a read waited {took:.1f} s for a stuck write"
        sqlite_write_lock()
        writer.join(30)
        assert written == [204]


def _without_file_permission_override() -> list[str]:
    """A command prefix under which the server cannot write a read-only file.

    Root ignores permission bits through CAP_DAC_OVERRIDE (and can chmod any
    file through CAP_FOWNER): drop those from the server's capabilities.
    Anyone else is bound by the bits already.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run the server without root's overrides"
    caps = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


@pytest.mark.parametrize("server", ["wsgiref", "uvicorn"])
def test_a_read_only_store_accepts_writes_once_it_is_writable_again(db: Path, server: str) -> None:
    mode = stat.S_IMODE(db.stat().st_mode)
    db.chmod(0o444)
    try:
        with serve_process(db, server, _without_file_permission_override()) as served:
            warning = [line for line in served.lines if "WARNING" in line]
            assert warning and "cannot be written" in warning[0], served.lines
            assert "readonly" in warning[0]

            write = WriteRequest([series("new", (2, 2.0))])
            for _ in range(2):  # every write while unwritable: 5xx, so the sender retries
                status, answer = post(served.port, "/api/v1/write", write)
                # the cause goes to the server's log, not to the sender
                assert status == 500 and answer.startswith(b"sqlite write failed")
                assert b"readonly" not in answer
            status, answer = post(served.port, "/api/v1/read", ReadRequest([query("old")]))
            assert status == 200  # reads go on meanwhile

            db.chmod(mode)  # only the database file: its -wal/-shm stay as SQLite made them
            status, answer = post(served.port, "/api/v1/write", write)
            assert status == 204, answer
            status, answer = post(served.port, "/api/v1/read", ReadRequest([query("new")]))
            assert status == 200
            assert names(decode(ReadResponse, snappy.decompress(answer))) == ["new"]
    finally:
        db.chmod(mode)
    with SQLiteStorage(db) as store:  # and it was really stored
        assert len(store.process_query(None, query("new")).timeseries) == 1


def test_check_writable(db: Path, sqlite_write_lock: Callable[[], None]) -> None:
    with SQLiteStorage(db) as store:
        # Another connection's lock is no reason: a write waits for it. Quickly answered.
        started = time.monotonic()
        assert store.check_writable() is None
        assert time.monotonic() - started < READ_BOUND_S
        sqlite_write_lock()
        assert store.check_writable() is None
        store.write(None, WriteRequest([series("new", (2, 2.0))]))
        assert store.counts()["samples"] == 2
        assert store.check_writable() is None  # and it changed nothing
        assert store.counts()["samples"] == 2
    with SQLiteStorage(":memory:") as memory:
        assert memory.check_writable() is None


def test_series_id_cache_is_bounded_by_bytes(tmp_path: Path) -> None:
    budget = 2 * 1024 * 1024
    with SQLiteStorage(tmp_path / "c.db", max_cached_series_bytes=budget) as store:
        # 400 series with 2 KiB label values: about 3.6 MB estimated if all were kept.
        for i in range(40):
            batch = [
                TimeSeries(
                    [Label("__name__", "big"), Label("i", f"{i}-{j}"), Label("pad", "x" * 2048)],
                    [Sample(1.0, 1)],
                )
                for j in range(10)
            ]
            store.write(None, WriteRequest(batch))
            entries, held = store.cached_series()
            assert held <= budget
        assert entries > 0  # it still caches
        # a label set over 16 KiB is looked up every time, never kept
        huge = TimeSeries([Label("__name__", "huge"), Label("pad", "y" * 20_000)], [Sample(1.0, 1)])
        before = store.cached_series()
        store.write(None, WriteRequest([huge]))
        assert store.cached_series() == before
        store.write(None, WriteRequest([huge]))  # found again in SQLite: same series
        answer = store.process_query(None, query("huge"))
        assert len(answer.timeseries) == 1 and len(answer.timeseries[0].samples) == 1
