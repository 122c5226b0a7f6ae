"""Crash safety of the chunked SQLite store: SIGKILL between the head write and
the compaction (and inside the compaction), every acknowledged sample survives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from promwire import Label, LabelMatcher, MatchType, Query, Sample, TimeSeries, WriteRequest
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_chunks import stored_chunks
from tests.support.serve_process import post, serve_process

ROOT = Path(__file__).resolve().parents[1]
STEP = 15_000
SERIES = 50
PER_REQUEST = 100  # samples per series per request: 5000 a request, compactions every ~2

# Writes acknowledged batches (printing "ack i" after each returns), then
# SIGKILLs itself at the chosen point of the first compaction.
_VICTIM = (
    textwrap.dedent(
        """
    import os, signal, sys
    import promwire.stores.sqlite as sqlite_store
    from promwire import Label, Sample, TimeSeries, WriteRequest

    db, where = sys.argv[1], sys.argv[2]
    real_plan = sqlite_store.plan_compaction
    real_apply = sqlite_store.apply_compaction
    real_compact = sqlite_store.compact

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def plan(conn, **kw):
        if where == "before":  # the head is committed, the compaction has not begun
            die()
        if where == "inside-inline":  # as if another process had compacted: no plan
            return None
        result = real_plan(conn, **kw)
        if where == "planned":  # planned from a snapshot, nothing written yet
            die()
        return result

    def apply(conn, plan):
        result = real_apply(conn, plan)
        # Chunks written and the head deleted, inside the uncommitted transaction.
        die()

    def compact(conn, cache, **kw):  # the compaction made inside the write lock
        result = real_compact(conn, cache, **kw)
        die()

    sqlite_store.plan_compaction = plan
    sqlite_store.apply_compaction = apply
    sqlite_store.compact = compact
    store = sqlite_store.SQLiteStorage(db)
    for r in range(1000):
        store.write(None, WriteRequest([
            TimeSeries(
                labels=[Label("__name__", "m"), Label("i", str(i))],
                samples=[Sample(float(r * 1000 + k), (r * PER + k) * 15000) for k in range(PER)],
            )
            for i in range(SERIES)
        ]))
        print("ack", r, flush=True)
    """
    )
    .replace("PER", str(PER_REQUEST))
    .replace("SERIES", str(SERIES))
)


def expected(acked: int) -> list[tuple[int, float]]:
    return [
        ((r * PER_REQUEST + k) * STEP, float(r * 1000 + k))
        for r in range(acked)
        for k in range(PER_REQUEST)
    ]


def stored(db: Path) -> dict[str, list[tuple[int, float]]]:
    with SQLiteStorage(db) as store:
        result = store.process_query(
            None, Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "m")])
        )
    return {
        ts.labels[1].value: [(s.timestamp, s.value) for s in ts.samples] for ts in result.timeseries
    }


@pytest.mark.parametrize("where", ["before", "planned", "inside", "inside-inline"])
def test_sigkill_around_the_compaction_loses_no_acknowledged_sample(
    tmp_path: Path, where: str
) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.run(
        [sys.executable, "-c", _VICTIM, str(db), where],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    acked = sum(1 for line in proc.stdout.splitlines() if line.startswith("ack"))
    assert acked >= 1
    got = stored(db)
    # The request whose write triggered the compaction was committed before
    # the kill but never acknowledged: it may be there, nothing else may.
    for i in range(SERIES):
        points = got[str(i)]
        assert points[: acked * PER_REQUEST] == expected(acked)
        assert points in (expected(acked), expected(acked + 1))
    # A restart compacts as usual and still finds everything.
    with SQLiteStorage(db) as store:
        store.compact(flush=True)
    assert got == stored(db)


def test_sigkill_of_promwire_serve_under_load_keeps_every_acknowledged_sample(
    tmp_path: Path,
) -> None:
    db = tmp_path / "serve.db"
    acked: list[int] = []
    stop = threading.Event()

    def batch(r: int) -> WriteRequest:
        return WriteRequest(
            [
                TimeSeries(
                    labels=[Label("__name__", "m"), Label("i", str(i))],
                    samples=[
                        Sample(float(r * 1000 + k), (r * PER_REQUEST + k) * STEP)
                        for k in range(PER_REQUEST)
                    ],
                )
                for i in range(SERIES)
            ]
        )

    with serve_process(db, "uvicorn") as served:

        def sender() -> None:
            r = 0
            while not stop.is_set():
                try:
                    status, _ = post(served.port, "/api/v1/write", batch(r), timeout=30)
                except OSError:
                    return  # the server died
                if status == 204:
                    acked.append(r)
                    r += 1

        thread = threading.Thread(target=sender)
        thread.start()
        deadline = time.monotonic() + 120
        while len(acked) < 25 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(served.pid, signal.SIGKILL)
        stop.set()
        thread.join(60)
        served.proc.wait(10)
    assert len(acked) >= 25, "the load did not reach several compactions"
    got = stored(db)
    n = len(acked)
    for i in range(SERIES):
        points = got[str(i)]
        assert points[: n * PER_REQUEST] == expected(n)
        assert points in (expected(n), expected(n + 1))


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_a_graceful_stop_flushes_the_head_into_chunks(tmp_path: Path, server: str) -> None:
    db = tmp_path / "stop.db"
    with serve_process(db, server) as served:
        for r in range(3):
            batch = WriteRequest(
                [
                    TimeSeries(
                        labels=[Label("__name__", "m"), Label("i", str(i))],
                        samples=[Sample(float(r), r * STEP)],
                    )
                    for i in range(SERIES)
                ]
            )
            assert post(served.port, "/api/v1/write", batch)[0] == 204
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(30) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM head").fetchone() == (0,)
        stored = [n for *_, n, _ in stored_chunks(conn)]
        assert sum(stored) == 3 * SERIES
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


def test_two_promwire_serve_processes_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    statuses: list[int] = []

    def batch(owner: str, r: int) -> WriteRequest:
        return WriteRequest(
            [
                TimeSeries(
                    labels=[Label("__name__", "m"), Label("i", f"{name}{i}")],
                    samples=[
                        Sample(float(r * 1000 + k), (r * PER_REQUEST + k) * STEP)
                        for k in range(PER_REQUEST)
                    ],
                )
                for name in (owner, "both")
                for i in range(SERIES // 2)
            ]
        )

    # The senders go round by round: the "both" series get the same timestamps
    # from each, and a sender running hours of sample time ahead would push the
    # other's samples out of the out-of-order window (a 400, not this test's subject).
    rounds = threading.Barrier(2, timeout=120)
    with serve_process(db, "uvicorn") as one, serve_process(db, "wsgiref") as two:

        def send(port: int, owner: str) -> None:
            for r in range(20):
                try:
                    rounds.wait()
                except threading.BrokenBarrierError:
                    return  # the other sender failed: the status check below says so
                statuses.append(post(port, "/api/v1/write", batch(owner, r))[0])

        threads = [
            threading.Thread(target=send, args=(one.port, "a")),
            threading.Thread(target=send, args=(two.port, "b")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for served in (one, two):
            served.proc.send_signal(signal.SIGTERM)
        assert one.proc.wait(60) == 0 and two.proc.wait(60) == 0
    assert statuses == [204] * 40  # no "database is locked" 5xx
    got = stored(db)
    assert len(got) == 3 * (SERIES // 2)
    assert all(points == expected(20) for points in got.values())
