"""The SQLite store's chunked format: head, compaction, out-of-order, retention,
migration, streamed chunks as stored, write_columns, two processes at once."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from array import array
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
    Label,
    LabelMatcher,
    MatchType,
    Query,
    Sample,
    TimeSeries,
    WriteRequest,
)
from promwire.chunks.xor import decode_xor_bits, encode_xor_bits
from promwire.codec.columns import SeriesColumns
from promwire.codec.messages import ChunkEncoding
from promwire.errors import StorageRejected
from promwire.server.runner import UnusableDatabase, open_storage
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_chunks import CHUNK_RANGE_MS, chunk_end, cut_groups, stored_chunks
from promwire.stores.sqlite_head import first_wins
from promwire.stores.sqlite_schema import FormatError

EQ = MatchType.EQ
ALL = Query(-(1 << 62), 1 << 62, [LabelMatcher(EQ, "__name__", "m")])
STEP = 15_000
ROOT = Path(__file__).resolve().parents[1]


def series(name: str, points: list[tuple[int, float]], **labels: str) -> TimeSeries:
    lbs = [Label("__name__", "m"), Label("s", name), *(Label(k, v) for k, v in labels.items())]
    return TimeSeries(labels=lbs, samples=[Sample(v, t) for t, v in points])


def read(store: SQLiteStorage, query: Query = ALL) -> dict[str, list[tuple[int, float]]]:
    return {
        dict((lb.name, lb.value) for lb in ts.labels)["s"]: [
            (s.timestamp, s.value) for s in ts.samples
        ]
        for ts in store.process_query(None, query).timeseries
    }


def streamed(store: SQLiteStorage, query: Query = ALL) -> dict[str, list[tuple[int, float]]]:
    """A streamed read's samples, filtered by time as a client must (stored
    chunks that overlap the range go whole, as Prometheus sends them)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for cs in store.process_query_chunks(None, query):
        key = dict((lb.name, lb.value) for lb in cs.labels)["s"]
        for chunk in cs.chunks:
            assert chunk.type == ChunkEncoding.XOR
            ts, bits = decode_xor_bits(chunk.data)
            assert (ts[0], ts[-1]) == (chunk.min_time_ms, chunk.max_time_ms)
            values = list(array("d", array("Q", bits).tobytes()))
            out.setdefault(key, []).extend(
                (t, v)
                for t, v in zip(ts, values, strict=True)
                if query.start_timestamp_ms <= t <= query.end_timestamp_ms
            )
    return out


def chunk_table(path: Path) -> list[tuple[int, int, int, int]]:
    """Every stored chunk (sealed or not): ``(series id, mint, maxt, count)``."""
    with sqlite3.connect(path) as conn:
        return sorted((sid, mint, maxt, n) for sid, mint, maxt, n, _ in stored_chunks(conn))


def test_samples_are_cut_into_chunks_of_120_within_2h_ranges(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    points = [(k * STEP, float(k)) for k in range(1000)]  # 4 h 10 min
    with SQLiteStorage(db) as store:
        for lo in range(0, 1000, 100):
            store.write(None, WriteRequest([series("a", points[lo : lo + 100])]))
        store.compact()
        rows = chunk_table(db)
        assert rows, "a compaction writes chunks"
        assert all(n <= 120 for *_, n in rows)
        assert all(mint // CHUNK_RANGE_MS == maxt // CHUNK_RANGE_MS for _, mint, maxt, _ in rows)
        # The 2 h boundary cuts: 480 samples a range = 4 chunks of 120 each.
        assert [n for *_, n in rows[:4]] == [120, 120, 120, 120]
        assert read(store) == {"a": points}
        assert streamed(store) == {"a": points}
    # Closing flushes the head: every sample is in a chunk.
    assert sum(n for *_, n in chunk_table(db)) == 1000
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM head").fetchone() == (0,)
    with SQLiteStorage(db) as store:
        assert read(store) == {"a": points}
        assert store.counts()["samples"] == 1000


def test_streamed_reads_send_stored_chunks_as_they_are(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    points = [(k * STEP + 7, float(k % 13)) for k in range(600)]
    with SQLiteStorage(db) as store:
        store.write(None, WriteRequest([series("a", points)]))
        store.compact(flush=True)
        with sqlite3.connect(db) as conn:
            stored = {data for *_, data in stored_chunks(conn)}
        whole = [c for cs in store.process_query_chunks(None, ALL) for c in cs.chunks]
        assert {c.data for c in whole} == stored
        # A range cutting two chunks: every chunk that overlaps it, as stored
        # (Prometheus 2.42 re-encodes only its open head chunk).
        q = Query(points[50][0], points[400][0], ALL.matchers)
        part = [c for cs in store.process_query_chunks(None, q) for c in cs.chunks]
        assert [c.data for c in part] == [
            c.data
            for c in whole
            if c.max_time_ms >= q.start_timestamp_ms and c.min_time_ms <= q.end_timestamp_ms
        ]
        assert part[0].min_time_ms < q.start_timestamp_ms < part[0].max_time_ms
        assert part[-1].min_time_ms < q.end_timestamp_ms < part[-1].max_time_ms
        assert streamed(store, q) == {"a": points[50:401]}
        assert read(store, q) == {"a": points[50:401]}


def test_a_resent_batch_adds_nothing_before_and_after_compaction(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    batch = WriteRequest([series("a", [(k * STEP, 1.0) for k in range(300)])])
    other = WriteRequest([series("a", [(k * STEP, 2.0) for k in range(300)])])
    with SQLiteStorage(db) as store:
        store.write(None, batch)
        store.write(None, batch)
        store.write(None, other)  # same timestamps, other values: the first write wins
        assert store.counts()["samples"] == 300
        store.compact()
        store.write(None, batch)  # resent after its samples went into chunks
        store.write(None, other)
        assert store.counts()["samples"] == 300
        assert read(store) == {"a": [(k * STEP, 1.0) for k in range(300)]}
        store.compact(flush=True)
        assert sum(n for *_, n in chunk_table(db)) == 300
        assert read(store) == {"a": [(k * STEP, 1.0) for k in range(300)]}


@pytest.mark.parametrize("minutes_before_boundary", [20, 40, 55])
def test_a_long_open_chunk_does_not_compact_the_head_on_every_write(
    tmp_path: Path, minutes_before_boundary: int
) -> None:
    """Series that start 38-58 minutes before a 2-hour boundary have a first
    chunk of 150-232 samples, open until the boundary (Prometheus' chunk-end
    rule gives them one chunk to it; a start 115 minutes before gives three
    of 154): a compaction keeps it
    in the head. Counting what the head holds, every write after the 150th
    compacted the whole head again (26 s of 110 s in the ingest benchmark).
    Counting what was written since the last compaction, it runs every 150."""
    db = tmp_path / "c.db"
    t0 = 100 * CHUNK_RANGE_MS - minutes_before_boundary * 60_000
    n_series, rounds = 40, 300  # 40 x 150 = 6,000: over the 4,096-sample floor
    compactions = 0
    with SQLiteStorage(db) as store:
        for r in range(rounds):
            t = t0 + r * STEP
            store.write(
                None, WriteRequest([series(str(i), [(t, float(r + i))]) for i in range(n_series)])
            )
            with closing(sqlite3.connect(db)) as conn:
                # A compaction leaves one record (what it kept), a write adds one.
                compactions += conn.execute("SELECT count(*) FROM head").fetchone()[0] <= 1
        assert compactions <= rounds // 150 + 1, compactions
        store.compact(flush=True)
        got = read(store)
    assert got == {
        str(i): [(t0 + r * STEP, float(r + i)) for r in range(rounds)] for i in range(n_series)
    }


def test_out_of_order_within_the_window_is_merged_older_is_400(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    even = [(k * STEP, float(k)) for k in range(0, 600, 2)]
    with SQLiteStorage(db, out_of_order_window=600) as store:
        store.write(None, WriteRequest([series("a", even)]))
        store.compact(flush=True)
        newest = even[-1][0]
        # 10 minutes back is inside the window: accepted, merged into the chunks.
        late = [(newest - 20 * STEP - STEP, -1.0), (newest - STEP, -2.0)]
        store.write(None, WriteRequest([series("a", late)]))
        want = sorted(even + late)
        assert read(store) == {"a": want}
        assert streamed(store) == {"a": want}
        store.compact(flush=True)
        assert read(store) == {"a": want}
        # Older than the window: 400, and nothing of the request is kept.
        with pytest.raises(StorageRejected, match="out of bounds") as info:
            store.write(
                None,
                WriteRequest(
                    [series("b", [(newest, 5.0)]), series("a", [(newest - 3600_000, 1.0)])]
                ),
            )
        assert info.value.status == 400
        assert "b" not in read(store)
        rows = chunk_table(db)
        # Chunks of one series never overlap after a merge.
        spans = [(mint, maxt) for _, mint, maxt, _ in rows]
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


def test_write_columns_matches_write(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    stamps = [k * STEP for k in range(250)]
    values = [float("nan"), -0.0, 1e308, 5.0] * 62 + [1.0, 2.0]
    with SQLiteStorage(a) as s1, SQLiteStorage(b) as s2:
        labels = (Label("__name__", "m"), Label("s", "x"))
        s1.write_columns(None, [SeriesColumns(labels, array("q", stamps), array("d", values))])
        s2.write(None, WriteRequest([series("x", list(zip(stamps, values, strict=True)))]))
        for store in (s1, s2):
            store.compact(flush=True)
        got1, got2 = read(s1)["x"], read(s2)["x"]
    assert [t for t, _ in got1] == stamps
    assert array("d", [v for _, v in got1]).tobytes() == array("d", values).tobytes()
    assert array("d", [v for _, v in got2]).tobytes() == array("d", values).tobytes()


def test_matchers_go_through_postings(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "p.db") as store:
        store.write(
            None,
            WriteRequest(
                [
                    series(
                        str(i),
                        [(0, float(i))],
                        job="j" + str(i % 3),
                        **({"x": "1"} if i % 2 else {}),
                    )
                    for i in range(12)
                ]
            ),
        )

        def names(*matchers: tuple[MatchType, str, str]) -> list[int]:
            q = Query(0, 1, [LabelMatcher(t, n, v) for t, n, v in matchers])
            return sorted(int(k) for k in read(store, q))

        assert names((EQ, "job", "j1")) == [1, 4, 7, 10]
        assert names((MatchType.RE, "job", "j[12]"), (EQ, "x", "1")) == [1, 5, 7, 11]
        assert names((MatchType.NEQ, "job", "j0"), (EQ, "x", "")) == [2, 4, 8, 10]
        assert names((MatchType.NRE, "s", "1.*|.*2")) == [0, 3, 4, 5, 6, 7, 8, 9]
        assert names((MatchType.RE, "nope", ".*")) == list(range(12))
        assert names((MatchType.RE, "job", "")) == []


def _v1_file(path: Path) -> None:
    """A database in promwire's first format (one row per sample)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        """
        CREATE TABLE series (id INTEGER PRIMARY KEY, labels TEXT NOT NULL UNIQUE);
        CREATE TABLE series_labels (series_id INTEGER NOT NULL, name TEXT NOT NULL,
            value TEXT NOT NULL, PRIMARY KEY (series_id, name)) WITHOUT ROWID;
        CREATE TABLE samples (series_id INTEGER NOT NULL, ts INTEGER NOT NULL,
            bits INTEGER NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
        CREATE TABLE histograms (series_id INTEGER NOT NULL, ts INTEGER NOT NULL,
            data BLOB NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
        CREATE TABLE exemplars (series_id INTEGER NOT NULL, ts INTEGER NOT NULL,
            bits INTEGER NOT NULL, labels TEXT NOT NULL,
            PRIMARY KEY (series_id, ts, bits, labels)) WITHOUT ROWID;
        CREATE TABLE metadata (metric_family_name TEXT PRIMARY KEY, type INTEGER NOT NULL,
            help TEXT NOT NULL, unit TEXT NOT NULL);
        """
    )
    conn.execute(
        "INSERT INTO series VALUES (1, ?)", (json.dumps([["__name__", "m"], ["s", "old"]]),)
    )
    conn.executemany(
        "INSERT INTO series_labels VALUES (1, ?, ?)", [("__name__", "m"), ("s", "old")]
    )
    # Bits as int64, as version 1 kept them: -0.0 is negative there.
    neg_zero = -(1 << 63)
    conn.executemany(
        "INSERT INTO samples VALUES (1, ?, ?)",
        [(k * STEP, neg_zero if k == 7 else 0x4000000000000000) for k in range(300)],
    )
    conn.close()


def test_an_old_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _v1_file(db)
    with SQLiteStorage(db) as store:
        got = read(store)["old"]
        assert [t for t, _ in got] == [k * STEP for k in range(300)]
        assert all(v == 2.0 for k, (_, v) in enumerate(got) if k != 7)
        assert str(got[7][1]) == "-0.0"
        store.write(None, WriteRequest([series("old", [(300 * STEP, 3.0)])]))
        assert store.counts()["samples"] == 301
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "samples" not in tables and "chunks" in tables
        assert conn.execute("PRAGMA user_version").fetchone() == (5,)


def test_newer_or_foreign_files_are_refused_in_one_line(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE chunks (x)")
        conn.execute("PRAGMA user_version = 9")
    with pytest.raises(FormatError, match=r"newer than this promwire reads .*upgrade promwire"):
        SQLiteStorage(newer)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (x)")
    with pytest.raises(UnusableDatabase, match="did not create") as info:
        open_storage(str(foreign))
    assert "\n" not in str(info.value)
    with sqlite3.connect(foreign) as conn:  # left untouched
        assert conn.execute("PRAGMA user_version").fetchone() == (0,)


def test_time_retention_deletes_whole_old_chunks_and_the_file_stops_growing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    day = 86_400_000
    sizes = []
    with SQLiteStorage(db, retention=2 * 86400) as store:
        t = 0
        for _hour in range(24 * 10):  # 10 days of 20 series every 15 s, an hour a request
            stamps = [t + k * STEP for k in range(240)]
            store.write(
                None,
                WriteRequest(
                    [series(str(i), [(x, float(x % 1000 + i)) for x in stamps]) for i in range(20)]
                ),
            )
            store.compact()
            t += 240 * STEP
            sizes.append(os.path.getsize(db))
        got = read(store)
    newest = t - STEP
    for points in got.values():
        # Only whole 2-hour ranges go: nothing older than the retention minus one range.
        assert points[0][0] >= newest - 2 * day - CHUNK_RANGE_MS
        assert points[-1][0] == newest
    assert len(got) == 20
    # Steady state a few days after the retention started deleting: no more growth.
    # (The chunk B-tree, keyed by series, settles within a few days of deleting
    # and reusing: with 16 KiB pages this small file takes 27, then 29 pages.)
    assert max(sizes[24 * 7 :]) <= sizes[24 * 6] * 1.05


def test_size_retention_keeps_the_used_size_under_the_bound(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    bound = 600 * 1024
    sizes = []
    with SQLiteStorage(db, retention_bytes=bound) as store:
        t = 0
        for _ in range(60):
            stamps = [t + k * STEP for k in range(240)]
            store.write(
                None,
                WriteRequest(
                    [
                        series(str(i), [(x, float((x * 7919) % 10007)) for x in stamps])
                        for i in range(30)
                    ]
                ),
            )
            store.compact()
            t += 240 * STEP
            with closing(sqlite3.connect(db)) as conn:  # the pages into the file itself
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(os.path.getsize(db))
        first = min(p[0][0] for p in read(store).values())
    assert first > 0, "the oldest chunks were deleted"
    assert max(sizes[30:]) <= max(sizes[:30]) * 1.1
    assert max(sizes) < 3 * bound


_WRITER = textwrap.dedent(
    """
    import sys
    from promwire import Label, Sample, TimeSeries, WriteRequest
    from promwire.stores.sqlite import SQLiteStorage

    db, who = sys.argv[1], sys.argv[2]
    store = SQLiteStorage(db, timeout=60)
    for r in range(150):
        ts = [
            TimeSeries(
                labels=[Label("__name__", "m"), Label("s", f"{owner}{i}")],
                samples=[Sample(float(r), r * 15000)],
            )
            for owner in (who, "shared") for i in range(40)
        ]
        store.write(None, WriteRequest(ts))
    store.close()
    print("done")
    """
)


def test_two_processes_write_one_file_without_loss_or_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    SQLiteStorage(db).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db), who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for who in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "done"
    with SQLiteStorage(db) as store:
        got = read(store)
        assert store.counts()["samples"] == 120 * 150
    assert len(got) == 120
    want = [(r * STEP, float(r)) for r in range(150)]
    assert all(points == want for points in got.values())
    assert sum(n for *_, n in chunk_table(db)) == 120 * 150  # closing flushed all


def test_retention_flags_parse_durations_and_sizes() -> None:
    import argparse

    from promwire.server.runner import add_serve_options, serve_options
    from promwire.server.units import parse_duration, parse_size

    assert parse_duration("15d") == 15 * 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_size("10GB") == 10 * 1024**3
    assert parse_size("512MB") == 512 * 1024**2
    assert parse_size("1.5KiB") == 1536
    for bad in ("", "15", "d", "-1d", "0s", "1x"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    for bad in ("", "GB", "0MB", "10 XB", "-1GB"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)
    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    opts = serve_options(parser.parse_args(["--retention", "15d", "--retention-size", "10GB"]))
    assert (opts["retention"], opts["retention_bytes"]) == (15 * 86400, 10 * 1024**3)
    defaults = serve_options(parser.parse_args([]))
    assert (defaults["retention"], defaults["retention_bytes"]) == (None, None)


def test_decoded_chunks_cache_is_keyed_by_content_and_bounded() -> None:
    from promwire.stores.sqlite_chunks import DecodedChunks

    cache = DecodedChunks(max_chunks=2)
    chunks = [encode_xor_bits([k, k + 1, k + 5], [k, 7, 0x7FF0000000000002]) for k in range(3)]
    for data in chunks * 2:
        ts, values = cache.decode(data)  # arrays; the values' bits exact (a NaN payload)
        assert (list(ts), list(array("Q", values.tobytes()))) == decode_xor_bits(data)
    assert len(cache.cache) == 2
    assert cache.cache.held_keys() == chunks[1:]  # the oldest went first


def test_chunks_are_cut_where_prometheus_2_42s_head_cuts_them() -> None:
    # appendPreprocessor: once a chunk holds 30 samples, its end is the range's
    # end split into n equal parts, n = (range end - start) // (4 * (30th - start + 1)).
    r = CHUNK_RANGE_MS

    def cuts(ts: list[int]) -> list[int]:
        return [hi - lo for lo, hi in cut_groups(ts, None)[0]]

    # 70 minutes into a range: 50 minutes (200 samples) left, n = 1: one chunk to
    # the boundary, then the next range from its start: n = 4, 30 minutes a chunk.
    assert cuts([r + 70 * 60_000 + k * STEP for k in range(300)]) == [200, 100]
    assert cuts([r + k * STEP for k in range(1000)]) == [120] * 8 + [40]
    # 10 minutes in: 110 minutes left, n = 3: chunks of 36 min 40 s (147 samples).
    assert cuts([r + 10 * 60_000 + k * STEP for k in range(300)]) == [147, 147, 6]
    # The rate jumps after the prediction: 240 samples at most, then a new prediction.
    burst = [r + k * STEP for k in range(30)] + [r + 29 * STEP + 1 + k for k in range(400)]
    assert cuts(burst) == [240, 120, 70]
    # The incomplete rest stays in the head until a later sample, the cutoff or a flush.
    ts = [r + k * STEP for k in range(130)]
    groups, rest = cut_groups(ts, cutoff=ts[-1])
    assert (groups, rest) == ([(0, 120)], 120)
    assert cut_groups(ts, cutoff=r + 30 * 60_000)[0] == [(0, 120)]
    # (the second chunk has too few samples for a prediction: its end is the range's)
    assert cut_groups(ts, cutoff=r + 60 * 60_000)[0] == [(0, 120)]
    assert cut_groups(ts, cutoff=2 * r)[0] == [(0, 120), (120, 130)]


def _appended_one_by_one(ts: list[int], cutoff: int | None) -> tuple[list[tuple[int, int]], int]:
    """Prometheus' appendPreprocessor, a sample at a time (the bisecting
    cut_groups must find the same groups)."""
    groups: list[tuple[int, int]] = []
    lo = 0
    while lo < len(ts):
        end = (ts[lo] // CHUNK_RANGE_MS + 1) * CHUNK_RANGE_MS
        hi = lo + 1
        while hi < len(ts) and hi - lo < 240:
            if hi - lo == 30:
                end = chunk_end(ts[lo], ts[hi - 1], end)
            if ts[hi] >= end:
                break
            hi += 1
        if not (hi - lo == 240 or hi < len(ts) or cutoff is None or end <= cutoff):
            break
        groups.append((lo, hi))
        lo = hi
    return groups, lo


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-(10**10), 10**10),
    st.lists(st.sampled_from([1, 15_000, 15_000, 60_000, 3_600_000, 5_000_000]), max_size=700),
    st.one_of(st.none(), st.integers(0, 8 * 3_600_000)),
)
def test_cut_groups_is_prometheus_append_loop(t0: int, steps: list[int], back: int | None) -> None:
    ts = list(itertools.accumulate(steps, initial=t0))
    cutoff = None if back is None else ts[-1] - back
    assert cut_groups(ts, cutoff) == _appended_one_by_one(ts, cutoff)


_runs = st.lists(
    st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 2**64 - 1)), max_size=12), max_size=5
)


@given(_runs, st.booleans())
@settings(max_examples=400, deadline=None)
def test_first_wins_keeps_the_first_written_value_of_each_timestamp(
    runs: list[list[tuple[int, int]]], in_order: bool
) -> None:
    """The head's merge, on in-order runs (its fast path: laid end to end)
    and on any runs (overlapping, repeated, unsorted): the reference is a
    dict that keeps each timestamp's first value, sorted."""
    if in_order:  # each run strictly increasing, after the run before
        base, shaped = 0, []
        for run in runs:
            shaped.append([(base + 3 * k + t % 3, b) for k, (t, b) in enumerate(run)])
            base += 3 * len(run) + 1
        runs = shaped
    expected: dict[int, int] = {}
    for run in runs:
        for t, b in run:
            expected.setdefault(t, b)
    parts = [(array("q", [t for t, _ in run]), array("Q", [b for _, b in run])) for run in runs]
    ts, bits = first_wins(parts)
    assert (ts, bits) == (sorted(expected), [expected[t] for t in sorted(expected)])
    assert type(ts) is list and type(bits) is list


def encoded(store: SQLiteStorage, query: Query = ALL) -> list[bytes]:
    """The wire pieces of each series of a streamed read, joined."""
    return [b"".join(s.pieces) for s in store.process_query_encoded(None, query)]


def test_a_series_read_again_reuses_its_merged_head_and_sees_every_write(tmp_path: Path) -> None:
    """A series' merged head samples are kept by the ids of its head records
    (and its chunk groups by those lists): read again, the same lists; after
    a write to it, a duplicate timestamp, a compaction, the answers follow.
    Two stores in one process hold the same series and record ids with other
    samples: each reads its own (the memo is the store's)."""
    one_db, two_db = tmp_path / "1.db", tmp_path / "2.db"
    with SQLiteStorage(one_db) as one, SQLiteStorage(two_db) as two:
        a = [(k * STEP, float(k)) for k in range(300)]
        one.write(None, WriteRequest([series("a", a)]))
        two.write(None, WriteRequest([series("a", [(t, -v) for t, v in a])]))
        for store, want in ((one, a), (two, [(t, -v) for t, v in a])):
            assert read(store) == streamed(store) == {"a": want}
        first = encoded(one)
        with closing(sqlite3.connect(one_db)) as conn:
            conn.execute("BEGIN")
            view = one._head.view(conn)
            again = one._head.view(conn)
            assert view.samples(1) is again.samples(1)  # from the memo: the same lists
        assert encoded(one) == first
        # a write to the series: its key changes, the new sample is read
        one.write(None, WriteRequest([series("a", [(300 * STEP, 300.0)])]))
        a.append((300 * STEP, 300.0))
        assert read(one) == streamed(one) == {"a": a}
        # a second value for a timestamp in the head: the first written stays
        one.write(None, WriteRequest([series("a", [(299 * STEP, -1.0)])]))
        assert read(one) == streamed(one) == {"a": a}
        one.compact()
        assert read(one) == streamed(one) == {"a": a}
        assert read(two) == {"a": [(t, -v) for t, v in a[:300]]}
