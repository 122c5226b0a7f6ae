"""A compaction planned outside the write lock (and, for ``serve``, on a thread
of its own): writes go on while it cuts and encodes, what they add survives
it, the first write of a timestamp still wins, and a plan that another
compaction made stale is never applied."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import promwire.stores.sqlite as sqlite_store
from promwire import Label, LabelMatcher, MatchType, Query, Sample, TimeSeries, WriteRequest
from promwire.stores.sqlite import SQLiteStorage

ROOT = Path(__file__).resolve().parents[1]
STEP = 15_000
SERIES = 40  # x 150 rounds = 6,000 samples: the head is due at the 150th round
ALL = Query(-(1 << 62), 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "m")])


def batch(r: int, value: Callable[[int, int], float] = lambda r, i: float(r * 100 + i)) -> Any:
    return WriteRequest(
        [
            TimeSeries(
                [Label("__name__", "m"), Label("i", str(i))], [Sample(value(r, i), r * STEP)]
            )
            for i in range(SERIES)
        ]
    )


def read(store: SQLiteStorage) -> dict[str, list[tuple[int, float]]]:
    result = store.process_query(None, ALL)
    return {
        ts.labels[1].value: [(s.timestamp, s.value) for s in ts.samples] for ts in result.timeseries
    }


def expected(rounds: int) -> dict[str, list[tuple[int, float]]]:
    return {str(i): [(r * STEP, float(r * 100 + i)) for r in range(rounds)] for i in range(SERIES)}


def meta(db: Path, key: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def head_ids(db: Path) -> list[int]:
    with closing(sqlite3.connect(db)) as conn:
        return [int(r[0]) for r in conn.execute("SELECT id FROM head ORDER BY id")]


class Held:
    """Holds the planning of compactions (on threads whose name starts with
    ``only``) after the plan is made, until :meth:`release`; counts the plans
    of those threads that the store applies."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, only: str = "") -> None:
        self.planned = threading.Event()
        self.go = threading.Event()
        self.applied = 0
        real_plan, real_apply = sqlite_store.plan_compaction, sqlite_store.apply_compaction

        def plan(conn: sqlite3.Connection, **kw: Any) -> Any:
            result = real_plan(conn, **kw)
            if threading.current_thread().name.startswith(only):
                self.planned.set()
                assert self.go.wait(30)
            return result

        def apply(conn: sqlite3.Connection, plan: Any) -> Any:
            self.applied += threading.current_thread().name.startswith(only)
            return real_apply(conn, plan)

        monkeypatch.setattr(sqlite_store, "plan_compaction", plan)
        monkeypatch.setattr(sqlite_store, "apply_compaction", apply)

    def release(self) -> None:
        self.go.set()


def in_thread(fn: Callable[[], None], name: str = "writer") -> Iterator[threading.Thread]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    yield thread
    thread.join(30)
    assert not thread.is_alive() and not errors, errors


@pytest.mark.parametrize("background", [False, True], ids=["in-the-write", "own-thread"])
def test_writes_go_on_while_a_compaction_is_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    db = tmp_path / "p.db"
    held = Held(monkeypatch)
    store = SQLiteStorage(db, compact_in_background=background)

    def first_rounds() -> None:
        for r in range(150):  # the last one makes the head due
            store.write(None, batch(r))

    writer = in_thread(first_rounds)
    next(writer)
    assert held.planned.wait(30)
    # While the compaction is planned: ten more rounds, and a second value for
    # a timestamp that the compaction keeps in the head (the open chunk).
    done = threading.Event()

    def more_rounds() -> None:
        for r in range(150, 160):
            store.write(None, batch(r))
        store.write(
            None,
            WriteRequest([TimeSeries(batch(149).timeseries[0].labels, [Sample(-1.0, 149 * STEP)])]),
        )
        done.set()

    more = in_thread(more_rounds, name="more")
    next(more)
    assert done.wait(30), "a write waited for the compaction being planned"
    assert held.applied == 0
    if background:
        # close() waits for the compaction under way
        closer = in_thread(store.close, name="closer")
        closing_thread = next(closer)
        closing_thread.join(0.3)
        assert closing_thread.is_alive()
        held.release()
        next(closer, None)
        next(writer, None)
        next(more, None)
    else:
        held.release()
        next(writer, None)
        next(more, None)
        ids = head_ids(db)
        assert ids[0] < 0 < ids[1], ids  # what it kept comes first, then the ten rounds
        # the trigger counts what was written while the plan was made: 10 rounds + 1
        assert meta(db, "head_samples") == 10 * SERIES + 1
        store.close()
    assert held.applied == 1
    with SQLiteStorage(db) as again:
        assert read(again) == expected(160)  # the first value written at 149 * STEP stays


def test_a_plan_made_stale_by_another_compaction_is_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two stores on one file stand for two processes (serve --workers).
    db = tmp_path / "s.db"
    held = Held(monkeypatch, only="held")
    one = SQLiteStorage(db)
    other = SQLiteStorage(db)

    def rounds() -> None:
        for r in range(150):
            one.write(None, batch(r))

    writer = in_thread(rounds, name="held-writer")
    next(writer)
    assert held.planned.wait(30)
    other.write(None, batch(150))  # due: it compacts (planned and applied on this thread)
    other.compact()
    compacted = head_ids(db)
    held.release()
    next(writer, None)
    assert held.applied == 0  # the stale plan was dropped
    assert head_ids(db) == compacted  # and nothing compacted again: the head was not due
    for store in (one, other):
        assert read(store) == expected(151)
    one.close()
    other.close()
    with SQLiteStorage(db) as again:
        assert read(again) == expected(151)


_HOLDER = """
import sys
from promwire.stores.sqlite_writer_lock import WriterLock
lock = WriterLock(sys.argv[1])
with lock.planning() as ours:
    print("held" if ours else "refused", flush=True)
    sys.stdin.readline()
"""


def test_one_process_at_a_time_plans_a_compaction(tmp_path: Path) -> None:
    # Another process planning (it holds the planning lock): a write that makes
    # the head due leaves it the work instead of planning the same again.
    db = tmp_path / "x.db"
    with SQLiteStorage(db) as store:
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "held"
            for r in range(160):
                store.write(None, batch(r))
            assert min(head_ids(db)) > 0 and len(head_ids(db)) == 160  # nothing compacted
            with sqlite_store.WriterLock(str(db)).planning() as ours:
                assert not ours  # (this process's own try, on another descriptor: refused too)
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(30)
        store.write(None, batch(160))  # now it plans and applies
        ids = head_ids(db)
        assert ids[0] < 0 and len(ids) == 1, ids
        assert read(store) == expected(161)
