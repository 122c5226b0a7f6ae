"""WriterLock: writers of several processes take turns through an flock, never depend on it."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import promwire as p
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_writer_lock import WriterLock

NOW = 1795582338992


def _hold(path: str, ready: mp.synchronize.Event, release: mp.synchronize.Event) -> None:
    lock = WriterLock(path)
    with lock.held(5.0) as held:
        assert held
        ready.set()
        release.wait(10)
    lock.close()


def test_a_held_lock_is_waited_for_then_given_up(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(path, ready, release))
    other.start()
    try:
        assert ready.wait(30)
        lock = WriterLock(path)
        started = time.monotonic()
        with lock.held(0.3) as held:
            waited = time.monotonic() - started
            assert not held  # another process holds it: the block ran anyway
        assert waited >= 0.3
        release.set()
        other.join(10)
        with lock.held(5.0) as held:
            assert held  # free again: taken
        lock.close()
    finally:
        release.set()
        other.join(10)


def test_no_sidecar_means_no_ordering_and_no_error(tmp_path: Path) -> None:
    with WriterLock(None).held(1.0) as held:
        assert not held
    missing = str(tmp_path / "no" / "such" / "dir" / "x.db")
    with WriterLock(missing).held(1.0) as held:
        assert not held


def _writer(path: str, k: int, n: int) -> None:
    with SQLiteStorage(path) as store:
        for r in range(n):
            ts = p.TimeSeries(
                [p.Label("__name__", "m"), p.Label("w", str(k))], [p.Sample(r, NOW + r)]
            )
            store.write(None, p.WriteRequest([ts]))


def test_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStorage(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, k, 60)) for k in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    assert os.path.exists(path + "-writer")
    with SQLiteStorage(path) as store:
        q = p.Query(0, NOW + 1000, [p.LabelMatcher(p.MatchType.EQ, "__name__", "m")])
        got = store.process_query(None, q).timeseries
        assert sorted(len(ts.samples) for ts in got) == [60, 60, 60]
