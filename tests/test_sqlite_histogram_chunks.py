"""The SQLite store keeps native histograms as histogram chunks at rest, losslessly.

The compaction moves the head's histogram rows into HISTOGRAM / FLOAT_HISTOGRAM
chunks (``histogram_chunks``), verified bit for bit; what a chunk cannot give
back stays a row. Every read returns each histogram exactly as written.
"""

from __future__ import annotations

import itertools
import math
import random
import sqlite3
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwire import (
    STALE_NAN_BITS,
    BucketSpan,
    ChunkEncoding,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    ResetHint,
    Sample,
    TimeSeries,
    WriteRequest,
    encode,
)
from promwire.chunks.float_histogram import encode_float_histogram_chunk
from promwire.chunks.histogram import encode_histogram_chunk
from promwire.chunks.histogram_layout import CounterResetHeader
from promwire.chunks.streamed import EncodedSeries
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_blocks import block_span, unseal
from promwire.stores.sqlite_chunks import CHUNK_RANGE_MS
from promwire.stores.sqlite_histograms import compact_histograms
from promwire.testing import valid_histograms

STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
T0 = 1_750_000_000_000 - 1_750_000_000_000 % CHUNK_RANGE_MS  # a 2-hour boundary
EVERYTHING = Query(-(1 << 63), (1 << 63) - 1, [LabelMatcher(MatchType.RE, "__name__", ".*")])


def _counter(
    n: int, *, t0: int = T0, step: int = 15_000, is_float: bool = False, width: int = 12
) -> list[Histogram]:
    """A counter histogram of ``width`` growing buckets (schema 3), hints
    UNKNOWN as Prometheus sends them."""
    rng = random.Random(n)
    buckets = [rng.randint(0, 5) for _ in range(width)]
    zero = 0
    out = []
    for i in range(n):
        for k in range(width):
            buckets[k] += rng.choice([0, 0, 1, 1, 2])
        zero += rng.randint(0, 1)
        h = Histogram(
            sum=sum(buckets) * 0.42,
            schema=3,
            zero_threshold=2.0**-128,
            positive_spans=[BucketSpan(-2, width - 4), BucketSpan(3, 4)],
            timestamp=t0 + i * step,
        )
        if is_float:
            h.count_float, h.zero_count_float = float(sum(buckets) + zero), float(zero)
            h.positive_counts = [float(b) for b in buckets]
        else:
            h.count_int, h.zero_count_int = sum(buckets) + zero, zero
            h.positive_deltas = [b - a for a, b in zip([0, *buckets], buckets, strict=False)]
        out.append(h)
    return out


def _write(store: SQLiteStorage, name: str, hs: list[Histogram]) -> None:
    store.write(None, WriteRequest([TimeSeries([Label("__name__", name)], histograms=hs)]))


def _read(store: SQLiteStorage, name: str | None = None) -> dict[str, list[bytes]]:
    out = {
        ts.labels[0].value: [encode(h) for h in ts.histograms]
        for ts in store.process_query(None, EVERYTHING).timeseries
    }
    return out if name is None else {name: out.get(name, [])}


def _db(store: SQLiteStorage) -> sqlite3.Connection:
    return sqlite3.connect(store.path)


def test_compaction_stores_prometheus_histogram_chunks(tmp_path: Path) -> None:
    hs = _counter(300)
    fhs = _counter(130, is_float=True)
    with SQLiteStorage(tmp_path / "db") as store:
        _write(store, "h_int", hs)
        _write(store, "h_float", fhs)
        store.compact(flush=True)
        assert _read(store) == {"h_int": [encode(h) for h in hs], "h_float": list(map(encode, fhs))}
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histograms").fetchone() == (0,)
            rows = db.execute(
                "SELECT s.id, c.maxt, c.encoding, c.data, c.extra FROM histogram_chunks c "
                "JOIN series s ON s.id = c.series_id ORDER BY c.series_id, c.maxt"
            ).fetchall()
    by_kind: dict[int, list[tuple[int, bytes, bytes | None]]] = {}
    for _, maxt, enc, data, extra in rows:
        by_kind.setdefault(enc, []).append((maxt, data, extra))
    ints, floats = by_kind[ChunkEncoding.HISTOGRAM], by_kind[ChunkEncoding.FLOAT_HISTOGRAM]
    # 120 a chunk (hs spans 75 minutes: no 2-hour boundary), Prometheus' bytes exactly
    assert [maxt for maxt, _, _ in ints] == [hs[i].timestamp for i in (119, 239, 299)]
    for (_, data, extra), lo in zip(ints, (0, 120, 240), strict=True):
        part = hs[lo : lo + 120]
        assert data == encode_histogram_chunk(part, header=CounterResetHeader.UNKNOWN)
        assert extra == bytes([0x80])  # "every hint UNKNOWN": one byte for the chunk
    first = (floats[0][1][0] << 8) | floats[0][1][1]  # float buckets are larger: cut by size
    assert [maxt for maxt, _, _ in floats] == [fhs[first - 1].timestamp, fhs[129].timestamp]
    assert floats[0][1] == encode_float_histogram_chunk(fhs[:first], header=0)


def test_large_histograms_are_cut_at_prometheus_size_target() -> None:
    hs = _counter(300, width=60)
    with SQLiteStorage() as store:
        _write(store, "h", hs)
        store.compact(flush=True)
        assert _read(store) == {"h": [encode(h) for h in hs]}
        rows = [bytes(d) for (d,) in store._writer.execute("SELECT data FROM histogram_chunks")]
    sizes = [(d[0] << 8) | d[1] for d in rows]
    assert sum(sizes) == 300 and max(sizes[:-1]) < 120
    lo = 0
    for data, n in zip(rows[:-1], sizes, strict=False):
        # cut before the first histogram that would have been appended at >= 2 KiB
        assert len(data) >= 2048
        assert len(encode_histogram_chunk(hs[lo : lo + n - 1], header=0)) < 2048
        lo += n


def test_chunk_bytes_per_histogram_are_far_below_rows(tmp_path: Path) -> None:
    hs = _counter(480)
    with SQLiteStorage(tmp_path / "db") as store:
        _write(store, "h", hs)
        with _db(store) as db:
            rows = db.execute("SELECT sum(length(data)) FROM histograms").fetchone()[0]
        store.compact(flush=True)
        with _db(store) as db:
            chunks = db.execute(
                "SELECT sum(length(data) + coalesce(length(extra), 0)) FROM histogram_chunks"
            ).fetchone()[0]
    assert chunks * 4 < rows  # at least 4x smaller


def test_hints_and_absent_counts_come_back_through_extra(tmp_path: Path) -> None:
    hs = _counter(60)
    hs[0].reset_hint = ResetHint.NO
    hs[5].reset_hint = ResetHint.YES  # starts a chunk (COUNTER_RESET header)
    hs[7].reset_hint = ResetHint.NO
    hs[20].zero_count_int = None  # a oneof left out, not a 0
    stale = Histogram(count_int=0, sum=STALE, timestamp=hs[-1].timestamp + 1)  # no zero count
    gauge = [
        Histogram(
            count_int=3, zero_count_int=1, sum=2.0, schema=0, reset_hint=ResetHint.GAUGE,
            positive_spans=[BucketSpan(0, 2)], positive_deltas=[1, 0],
            timestamp=stale.timestamp + 1 + i,
        )
        for i in range(5)
    ]  # fmt: skip
    want = [*hs, stale, *gauge]
    with SQLiteStorage() as store:
        _write(store, "h", want)
        store.compact(flush=True)
        assert _read(store, "h") == {"h": [encode(h) for h in want]}
        extras = [
            (enc, None if extra is None else bytes(extra))
            for enc, extra in store._writer.execute(
                "SELECT encoding, extra FROM histogram_chunks ORDER BY maxt"
            )
        ]
        left = store._writer.execute("SELECT count(*) FROM histograms").fetchone()[0]
    assert left == 0
    # chunks: [0..4] (hint NO first), [5..] (YES), ... the gauges last
    assert len(extras) >= 3
    assert extras[0] == (ChunkEncoding.HISTOGRAM, bytes([2, 0, 0, 0, 0]))  # NO, then UNKNOWNs
    assert extras[-1] == (ChunkEncoding.HISTOGRAM, None)  # gauges decode as GAUGE: nothing to add


def _custom(t: int, n: int) -> Histogram:
    """A custom-bucket histogram (schema -53), as Prometheus 3 converts a classic one."""
    return Histogram(
        count_int=3 * n,
        zero_count_int=0,
        sum=1.5 * n,
        schema=-53,
        positive_spans=[BucketSpan(0, 3)],
        positive_deltas=[n, 0, 0],
        custom_values=[0.25, 0.5, 1.0, 2.5],
        timestamp=t,
    )


def test_custom_bucket_bounds_are_kept_in_extra() -> None:
    hs = [_custom(T0 + 15_000 * i, i) for i in range(150)]
    stale = Histogram(count_int=0, sum=STALE, timestamp=T0 + 15_000 * 150)
    with SQLiteStorage() as store:
        _write(store, "nhcb", [*hs, stale])
        store.compact(flush=True)
        assert _read(store) == {"nhcb": [encode(h) for h in [*hs, stale]]}
        rows = store._writer.execute("SELECT data, extra FROM histogram_chunks").fetchall()
        left = store._writer.execute("SELECT count(*) FROM histograms").fetchone()[0]
    assert left == 0 and len(rows) == 2
    for data, extra in rows:
        n = (data[0] << 8) | data[1]
        bounds = extra[1:] if extra[0] & 0x80 else extra[n:]  # after the flags
        assert struct.unpack("<4d", bounds) == (0.25, 0.5, 1.0, 2.5)
    assert len(rows[1][1]) == 31 + 32  # 30 histograms and the stale marker: one flag byte each


def test_histograms_a_chunk_cannot_give_back_stay_rows(tmp_path: Path) -> None:
    hs = _counter(200)
    odd = {
        # a zero threshold of -0.0: a chunk writes 0
        30: Histogram(count_int=1, zero_count_int=1, sum=1.0, zero_threshold=-0.0),
        # stray float counts on an integer histogram of the chunk's layout: not in a chunk
        31: Histogram(**{**_fields(hs[31]), "negative_counts": [1.0]}),
        # an integer count beside a float zero count: no chunk encodes it
        150: Histogram(count_int=5, zero_count_float=1.0, sum=1.0),
    }
    for i, h in odd.items():
        h.timestamp = hs[i].timestamp
        hs[i] = h
    path = tmp_path / "db"
    store = SQLiteStorage(path)
    try:
        _write(store, "h", hs)
        # The compaction run by hand on the file (rolled back): what it reports.
        with sqlite3.connect(path, isolation_level=None) as db:
            db.execute("BEGIN IMMEDIATE")
            result = compact_histograms(db, ooo_window_ms=0, flush=True)
            db.execute("ROLLBACK")
        assert result.kept_unverified == 3
        assert sorted(t for _, t in result.rejected) == [hs[i].timestamp for i in sorted(odd)]
        assert result.histograms_sealed == 197
        store.compact(flush=True)
        assert _read(store, "h") == {"h": [encode(h) for h in hs]}
        with _db(store) as db:
            kept = [t for (t,) in db.execute("SELECT ts FROM histograms ORDER BY ts")]
            chunks = db.execute("SELECT maxt FROM histogram_chunks ORDER BY maxt").fetchall()
        assert kept == [hs[i].timestamp for i in sorted(odd)]
        # a later compaction leaves them (and the chunks around them) alone
        _write(store, "h", _counter(3, t0=hs[-1].timestamp + CHUNK_RANGE_MS))
        with sqlite3.connect(path, isolation_level=None) as db:
            db.execute("BEGIN IMMEDIATE")
            again = compact_histograms(db, ooo_window_ms=0, flush=True)
            db.execute("ROLLBACK")
        assert (again.chunks_rewritten, again.chunks_written) == (0, 1)
        assert (again.kept_unverified, again.left_alone) == (0, 3)
        store.compact(flush=True)
        with _db(store) as db:
            kept = [t for (t,) in db.execute("SELECT ts FROM histograms ORDER BY ts")]
            now = db.execute("SELECT maxt FROM histogram_chunks ORDER BY maxt").fetchall()
        assert kept == [hs[i].timestamp for i in sorted(odd)]
        assert now[: len(chunks)] == chunks
        assert store.counts()["histograms"] == 203
    finally:
        store.close()


def test_resent_histograms_add_nothing(tmp_path: Path) -> None:
    hs = _counter(250)
    with SQLiteStorage(tmp_path / "db") as store:
        _write(store, "h", hs)
        store.compact(flush=True)
        before = _read(store)
        changed = [Histogram(**{**_fields(h), "sum": h.sum + 1}) for h in hs[100:200]]
        _write(store, "h", changed)  # the same timestamps again: the first write wins
        assert store.counts()["histograms"] == 250
        assert _read(store) == before
        store.compact(flush=True)
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histograms").fetchone() == (0,)
            chunks = db.execute("SELECT count(*) FROM histogram_chunks").fetchone()[0]
        assert chunks == 3
        assert _read(store) == before
        assert store.counts()["histograms"] == 250


def _fields(h: Histogram) -> dict[str, object]:
    return {name: getattr(h, name) for name in Histogram.__slots__}


def test_out_of_order_histograms_are_merged_into_their_chunks(tmp_path: Path) -> None:
    hs = _counter(240)
    late = hs[50:70]
    with SQLiteStorage(tmp_path / "db") as store:
        _write(store, "h", hs[:50] + hs[70:])
        store.compact(flush=True)
        _write(store, "h", late)
        assert _read(store) == {"h": [encode(h) for h in hs]}  # before: chunks + rows
        store.compact(flush=True)
        assert _read(store) == {"h": [encode(h) for h in hs]}
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histograms").fetchone() == (0,)
            counts = [
                (data[0] << 8) | data[1]
                for (data,) in db.execute("SELECT data FROM histogram_chunks ORDER BY maxt")
            ]
        assert counts == [120, 120]


def test_histogram_only_writes_trigger_the_compaction(tmp_path: Path) -> None:
    series = {f"h{i}": _counter(200, t0=T0 + i) for i in range(30)}
    with SQLiteStorage(tmp_path / "db") as store:
        for lo in range(0, 200, 20):
            for name, hs in series.items():
                _write(store, name, hs[lo : lo + 20])
        with _db(store) as db:
            chunked = db.execute("SELECT count(*) FROM histogram_chunks").fetchone()[0]
        assert chunked >= 30  # no flush, no explicit compaction: the writes ran it
        assert _read(store) == {n: [encode(h) for h in hs] for n, hs in series.items()}


def test_retention_deletes_whole_histogram_chunks(tmp_path: Path) -> None:
    hs = _counter(1000, step=60_000)  # 1000 minutes
    with SQLiteStorage(tmp_path / "db", retention=4 * 3600) as store:
        _write(store, "h", hs)
        store.compact(flush=True)
        got = store.process_query(None, EVERYTHING).timeseries[0].histograms
        with _db(store) as db:
            maxts = [t for (t,) in db.execute("SELECT maxt FROM histogram_chunks ORDER BY maxt")]
    newest = hs[-1].timestamp
    assert maxts and maxts[0] >= newest - 4 * 3600_000
    # whole chunks only: what is left starts right after a deleted chunk's end
    assert got[0].timestamp > newest - 4 * 3600_000 - CHUNK_RANGE_MS
    assert [encode(h) for h in got] == [encode(h) for h in hs[-len(got) :]]
    assert len(got) < 400


def test_streamed_read_sends_the_stored_chunk_bytes(tmp_path: Path) -> None:
    hs = _counter(300)
    with SQLiteStorage(tmp_path / "db") as store:
        _write(store, "h", hs)
        store.write(
            None,
            WriteRequest([TimeSeries([Label("__name__", "h")], samples=[Sample(1.0, T0 - 5)])]),
        )
        store.compact(flush=True)
        with _db(store) as db:
            stored = [bytes(d) for (d,) in db.execute("SELECT data FROM histogram_chunks")]
        [series] = list(store.process_query_chunks(None, EVERYTHING))
        kinds = [c.type for c in series.chunks]
        assert kinds == [ChunkEncoding.XOR] + [ChunkEncoding.HISTOGRAM] * 3
        assert [c.data for c in series.chunks[1:]] == stored
        # a range cutting the first and last chunks: those are cut again, the middle one is sent
        q = Query(hs[60].timestamp, hs[250].timestamp, EVERYTHING.matchers)
        [series] = list(store.process_query_chunks(None, q))
        assert stored[1] in [c.data for c in series.chunks]
        assert stored[0] not in [c.data for c in series.chunks]
        assert series.chunks[0].min_time_ms == hs[60].timestamp
        assert series.chunks[-1].max_time_ms == hs[250].timestamp
        # the wire-form read gives the same records (histogram chunks made once)
        for query in (EVERYTHING, q):
            [chunked] = list(store.process_query_chunks(None, query))
            [encoded] = list(store.process_query_encoded(None, query))
            assert encoded == EncodedSeries.of(chunked.labels, chunked.chunks)


def test_restart_keeps_chunks_and_head_rows(tmp_path: Path) -> None:
    hs = _counter(400, step=30_000)
    path = tmp_path / "db"
    with SQLiteStorage(path) as store:
        _write(store, "h", hs[:250])
        store.compact()  # the last, still open 2-hour range stays in the head
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histogram_chunks").fetchone()[0] > 0
            assert db.execute("SELECT count(*) FROM histograms").fetchone()[0] > 0
    with SQLiteStorage(path) as store:
        assert _read(store) == {"h": [encode(h) for h in hs[:250]]}
        _write(store, "h", hs[250:])
    with SQLiteStorage(path) as store:
        assert _read(store) == {"h": [encode(h) for h in hs]}
        assert store.counts()["histograms"] == 400
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histograms").fetchone() == (0,)


def test_a_format_3_file_without_the_table_keeps_its_rows(tmp_path: Path) -> None:
    hs = _counter(150)
    path = tmp_path / "db"
    with SQLiteStorage(path) as store:
        store.write(
            None,
            WriteRequest([TimeSeries([Label("__name__", "h")], samples=[Sample(1.0, T0 - 5)])]),
        )
    with sqlite3.connect(path) as db:  # as promwire wrote format 3 before: rows only
        span = block_span(db)
        unseal(db, {1: span[0] if span else 0}, span)  # format 3 had no sealed ranges
        db.execute("DROP TABLE histogram_chunks")
        db.execute("DROP TABLE blocks")
        db.execute("DELETE FROM meta WHERE key IN ('head_histograms', 'sealed_before')")
        db.execute("PRAGMA user_version = 3")
        db.executemany(
            "INSERT INTO histograms VALUES (1, ?, ?)", [(h.timestamp, encode(h)) for h in hs]
        )
    with SQLiteStorage(path) as store:
        assert _read(store) == {"h": [encode(h) for h in hs]}
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histograms").fetchone() == (150,)
        assert store.counts()["histograms"] == 150
        assert store.counts()["samples"] == 1
        store.compact(flush=True)
        with _db(store) as db:
            assert db.execute("SELECT count(*) FROM histograms").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM histogram_chunks").fetchone() == (2,)
        assert store.counts()["histograms"] == 150


# --------------------------------------------------------------------- generated


@st.composite
def _series(draw: st.DrawFn) -> list[Histogram]:
    """A series that changes in every way a chunk cares about: layouts (valid
    random histograms), growing counters, resets, hints, stale markers, absent
    oneofs, NaN sums, gaps across 2-hour boundaries."""
    out: list[Histogram] = []
    t = T0 + draw(st.integers(0, CHUNK_RANGE_MS))
    for _ in range(draw(st.integers(1, 12))):
        base = draw(valid_histograms())
        for _ in range(draw(st.integers(1, 40))):
            t += draw(st.sampled_from([1, 1000, 15_000, 15_000, 3_600_000]))
            h = Histogram(**{**_fields(base), "timestamp": t})
            kind = draw(st.integers(0, 9))
            if kind == 0:
                h = Histogram(count_int=0, sum=STALE, timestamp=t)
            elif kind == 1:
                h.zero_count_int = h.zero_count_float = None
            elif kind == 2:
                h.sum = math.nan
            h.reset_hint = draw(st.sampled_from(list(ResetHint)))
            out.append(h)
            if h.is_float:  # grow the float counters a little
                base.positive_counts = [c + 1.0 for c in base.positive_counts]
                base.count_float = (base.count_float or 0.0) + len(base.positive_counts)
            elif base.positive_deltas:
                base.positive_deltas = [base.positive_deltas[0] + 1, *base.positive_deltas[1:]]
                base.count_int = (base.count_int or 0) + 1
    return out


@given(
    series=st.lists(_series(), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_series_come_back_bit_for_bit(
    series: list[list[Histogram]], cuts: list[int]
) -> None:
    want = {f"s{i}": [encode(h) for h in hs] for i, hs in enumerate(series)}
    with SQLiteStorage(out_of_order_window=0) as store:
        bounds = sorted({0, *cuts, 10_000})
        for lo, hi in itertools.pairwise(bounds):
            for i, hs in enumerate(series):
                if hs[lo:hi]:
                    _write(store, f"s{i}", hs[lo:hi])
            store.compact()  # complete groups go to chunks, the rest waits
        assert _read(store) == want
        store.compact(flush=True)
        assert _read(store) == want
        assert store.counts()["histograms"] == sum(map(len, series))
        # every histogram of these is one a chunk can give back
        assert store._writer.execute("SELECT count(*) FROM histograms").fetchone() == (0,)


def test_size_benchmark_runs_and_reads_back_exactly() -> None:
    from benchmarks.bench_histogram_store import main

    got = main(["--series", "3", "--histograms", "200"])  # exits if a read-back differs
    assert got["chunks_pages"] < got["rows_pages"]
    assert got["chunks_payload"] * 2 < got["rows_payload"]
