"""Sealed ranges of the SQLite store (``promwire.stores.sqlite_blocks``): when
chunks move to packed rows, that reads, restarts and out-of-order writes see
the same samples as before, and that the packed pages are full."""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promwire import Label, LabelMatcher, MatchType, Query, Sample, TimeSeries, WriteRequest
from promwire.errors import StorageRejected
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_blocks import pack_series, records, split_key, unpack_records
from promwire.stores.sqlite_chunks import CHUNK_RANGE_MS, stored_chunks

ALL = Query(-(1 << 62), 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "m")])
STEP = 15_000
T0 = 1_700_000_000_000 // CHUNK_RANGE_MS * CHUNK_RANGE_MS  # a range boundary


def series(name: str, points: list[tuple[int, float]]) -> TimeSeries:
    return TimeSeries(
        labels=[Label("__name__", "m"), Label("s", name)],
        samples=[Sample(v, t) for t, v in points],
    )


def read(store: SQLiteStorage, query: Query = ALL) -> dict[str, list[tuple[int, float]]]:
    return {
        dict((lb.name, lb.value) for lb in ts.labels)["s"]: [
            (s.timestamp, s.value) for s in ts.samples
        ]
        for ts in store.process_query(None, query).timeseries
    }


def streamed(store: SQLiteStorage, query: Query = ALL) -> dict[str, list[tuple[int, int]]]:
    from promwire.chunks.xor import decode_xor_bits

    out: dict[str, list[tuple[int, int]]] = {}
    for cs in store.process_query_chunks(None, query):
        key = dict((lb.name, lb.value) for lb in cs.labels)["s"]
        for chunk in cs.chunks:
            ts, bits = decode_xor_bits(chunk.data)
            assert (ts[0], ts[-1]) == (chunk.min_time_ms, chunk.max_time_ms)
            out.setdefault(key, []).extend(zip(ts, bits, strict=True))
    return out


def assert_encoded_reads_match(store: SQLiteStorage) -> None:
    """``process_query_encoded`` frames the same bytes as ``process_query_chunks``,
    for the whole store and for a window that cuts sealed ranges, in frames
    of any size (a small one splits series between frames)."""
    from promwire.chunks.streamed import stream_chunked_response

    windows = [(T0 + 300 * STEP, T0 + 700 * STEP), (T0 + 479 * STEP, T0 + 961 * STEP)]
    for query in (ALL, *(Query(a, b, ALL.matchers) for a, b in windows)):
        for frame in (1 << 20, 300):
            direct = b"".join(
                stream_chunked_response(
                    [(0, store.process_query_chunks(None, query))], max_bytes_in_frame=frame
                )
            )
            encoded = b"".join(
                stream_chunked_response(
                    [(0, store.process_query_encoded(None, query))], max_bytes_in_frame=frame
                )
            )
            assert encoded == direct


def tables(db: Path) -> tuple[int, int, list[tuple[int, bool, int, int]]]:
    """Rows in ``chunks``, rows in ``blocks``, and the blocks' keys split."""
    with closing(sqlite3.connect(db)) as conn:
        loose = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        keys = [split_key(int(k)) for (k,) in conn.execute("SELECT id FROM blocks ORDER BY id")]
    return int(loose), len(keys), keys


def value(name: int, t: int) -> float:
    # constant, counter or noisy gauge by series: chunks of very different sizes
    kind = name % 3
    if kind == 0:
        return 1.0
    if kind == 1:
        return float((t - T0) // STEP * (name + 1))
    return ((t * 7919 + name * 104729) % 1000003) / 7.0


def test_records_keep_every_chunk_and_its_exact_newest_time() -> None:
    from promwire.chunks.xor import cut_chunks

    samples = [Sample(float(k % 7), T0 + k * STEP + (k % 5 == 0) * 3) for k in range(500)]
    chunks = [(c.min_time_ms, c.max_time_ms, c.data) for c in cut_chunks(samples)]
    chunks.append((T0 + 10**9, T0 + 10**9, cut_chunks([Sample(2.0, T0 + 10**9)])[0].data))
    got = unpack_records(records([(maxt, data) for _, maxt, data in chunks]))
    assert [(mint, maxt, data) for mint, maxt, _, data in got] == chunks
    # a regular scrape's newest time costs one byte: len varint, 1 byte, data
    regular = cut_chunks([Sample(1.0, T0 + k * STEP) for k in range(120)])[0]
    assert len(records([(regular.max_time_ms, regular.data)])) == (
        len(regular.data) + (1 if len(regular.data) < 128 else 2) + 1
    )
    pack = pack_series([(3, b"abc"), (9, b""), (70000, b"xyz")])
    assert pack[:2] == b"\x03\x00" and pack.endswith(b"abcxyz")


def test_ended_ranges_are_sealed_into_full_packs_and_close_seals_the_rest(
    tmp_path: Path,
) -> None:
    db = tmp_path / "b.db"
    n_series = 600
    written: dict[str, list[tuple[int, float]]] = {}
    with SQLiteStorage(db, out_of_order_window=600) as store:
        for r in range(0, 4 * 240):  # 4 hours at 15 s: two ranges end, a third starts
            if r % 40 == 0 or r == 4 * 240 - 1:
                store.write(
                    None,
                    WriteRequest(
                        [
                            series(str(i), [(t2, value(i, t2)) for t2 in stamps])
                            for i in range(n_series)
                            for stamps in [[T0 + k * STEP for k in range(max(0, r - 39), r + 1)]]
                        ]
                    ),
                )
                for i in range(n_series):
                    written[str(i)] = [
                        (T0 + k * STEP, value(i, T0 + k * STEP)) for k in range(r + 1)
                    ]
                store.compact()
        loose, rows, keys = tables(db)
        # The first range ended (plus the 10-minute window) long ago: sealed as packs.
        assert {rng for rng, own, _, _ in keys} == {T0 // CHUNK_RANGE_MS}
        assert not any(own for _, own, _, _ in keys)
        assert rows < n_series / 4, "several series per pack"
        assert loose > 0, "the current ranges stay in chunks"
        assert read(store) == written
    loose, rows, keys = tables(db)
    assert loose == 0, "a graceful close seals every range"
    assert {rng - T0 // CHUNK_RANGE_MS for rng, _, _, _ in keys} == {0, 1}
    with closing(sqlite3.connect(db)) as conn:
        pages, unused, payload = conn.execute(
            "SELECT count(*), sum(unused), sum(payload) FROM dbstat WHERE name = 'blocks' "
            "AND pagetype = 'leaf'"
        ).fetchone()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        entries = [sid for sid, *_ in stored_chunks(conn)]
        # Packs are filled to the page: some series go on in the next pack.
        continued = [
            split_key(int(k))[2]
            for k, data in conn.execute("SELECT id, data FROM blocks")
            if struct.unpack_from("<H", data)[0] & 0x8000
        ]
    assert unused < 0.05 * pages * page, (unused, pages)
    assert payload > 0.9 * pages * page
    assert len(entries) > n_series * 4
    assert continued
    with SQLiteStorage(db, out_of_order_window=8 * 3600) as store:
        assert read(store) == written
        assert {k: [t for t, _ in v] for k, v in streamed(store).items()} == {
            k: [t for t, _ in v] for k, v in written.items()
        }
        q = Query(T0 + 100 * STEP, T0 + 700 * STEP, ALL.matchers)
        assert read(store, q) == {
            k: [p for p in v if q.start_timestamp_ms <= p[0] <= q.end_timestamp_ms]
            for k, v in written.items()
        }
        # Out-of-order samples for a series split over two packs and its
        # neighbours: taken out of both packs, merged, read back whole.
        names = {str(sid - 1 + d) for sid in continued[:3] for d in (-1, 0, 1)} & set(written)
        late = {n: [(T0 + k * STEP + 7, -1.0) for k in range(3, 400, 37)] for n in names}
        store.write(None, WriteRequest([series(n, pts) for n, pts in late.items()]))
        store.compact()
        for n, pts in late.items():
            written[n] = sorted(written[n] + pts)
        assert read(store) == written
    with SQLiteStorage(db) as store:
        assert read(store) == written


def test_a_restart_continues_the_sealed_range_and_keeps_the_bound(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    first = [(T0 + k * STEP, float(k)) for k in range(60)]
    with SQLiteStorage(db) as store:
        store.write(None, WriteRequest([series("a", first), series("b", first)]))
    assert tables(db)[0] == 0  # sealed on close, the last chunk half full
    more = [(T0 + k * STEP, float(k)) for k in range(60, 200)]
    with SQLiteStorage(db, out_of_order_window=60) as store:
        # A cold cache finds the newest sealed sample: too old is still refused.
        with pytest.raises(StorageRejected, match="older than the out-of-order window"):
            store.write(None, WriteRequest([series("a", [(T0 + 5 * STEP, 9.0)])]))
        store.write(None, WriteRequest([series("a", more)]))
        store.compact(flush=True)
        assert read(store) == {"a": first + more, "b": first}
        with closing(sqlite3.connect(db)) as conn:
            counts = sorted(n for sid, _, _, n, _ in stored_chunks(conn) if sid == 1)
        # The half-full chunk was taken back and continued: 120 + 80, not 60 + 120 + 20.
        assert counts == [80, 120]
    loose, _, keys = tables(db)
    assert loose == 0
    assert any(own for _, own, _, _ in keys), "resealed into a range with a pack: own rows"
    with SQLiteStorage(db) as store:
        assert read(store) == {"a": first + more, "b": first}


def test_out_of_order_samples_into_a_sealed_range_merge_and_resends_add_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "o.db"
    pts = [(T0 + k * STEP, float(k)) for k in range(0, 600, 2)]  # every 30 s, 2.5 h
    with SQLiteStorage(db, out_of_order_window=3 * 3600) as store:
        store.write(None, WriteRequest([series("a", pts)]))
        store.close()
    gaps = [(T0 + k * STEP, -float(k)) for k in range(1, 600, 6)]
    with SQLiteStorage(db, out_of_order_window=3 * 3600) as store:
        store.write(None, WriteRequest([series("a", gaps + pts[:10])]))  # new + resent
        store.compact()
        want = sorted(pts + gaps)
        assert read(store) == {"a": want}
        store.write(None, WriteRequest([series("a", gaps)]))
    with SQLiteStorage(db) as store:
        assert read(store) == {"a": want}
        assert store.counts()["samples"] == len(want)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["write", "write", "write", "compact", "reopen"]),
            st.integers(0, 7),  # series
            st.integers(-40, 1200),  # start step
            st.integers(1, 150),  # samples
        ),
        min_size=1,
        max_size=14,
    )
)
def test_any_mix_of_writes_compactions_and_restarts_reads_what_was_accepted(
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[str, int, int, int]],
) -> None:
    db = tmp_path_factory.mktemp("p") / "p.db"
    model: dict[str, dict[int, float]] = {}
    store = SQLiteStorage(db, out_of_order_window=1800)
    try:
        for op, s, start, n in ops:
            if op == "compact":
                store.compact()
            elif op == "reopen":
                store.close()
                store = SQLiteStorage(db, out_of_order_window=1800)
            else:
                pts = [(T0 + k * STEP, float(k * (s + 1))) for k in range(start, start + n)]
                try:
                    store.write(None, WriteRequest([series(str(s), pts)]))
                except StorageRejected:
                    continue
                got = model.setdefault(str(s), {})
                for t, v in pts:
                    got.setdefault(t, v)  # first write wins
        want = {k: sorted(v.items()) for k, v in model.items()}
        assert read(store) == want
        assert {k: [t for t, _ in v] for k, v in streamed(store).items()} == {
            k: [t for t, _ in v] for k, v in want.items()
        }
        assert_encoded_reads_match(store)
        store.close()
        store = SQLiteStorage(db)
        assert read(store) == want
        assert_encoded_reads_match(store)  # sealed ranges read twice: from the cache
        assert_encoded_reads_match(store)
        assert store.counts()["samples"] == sum(map(len, want.values()))
    finally:
        store.close()


def generation(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(
            conn.execute("SELECT value FROM meta WHERE key = 'blocks_generation'").fetchone()[0]
        )


def streamed_points(store: SQLiteStorage, query: Query = ALL) -> dict[str, list[float]]:
    """A streamed read through ``process_query_encoded``, decoded back and
    filtered by time as a client must (stored chunks go whole)."""
    from promwire.chunks.streamed import read_streamed_response, stream_chunked_response

    body = b"".join(stream_chunked_response([(0, store.process_query_encoded(None, query))]))
    within = read_streamed_response(
        body, start_ms=query.start_timestamp_ms, end_ms=query.end_timestamp_ms
    )
    return {
        dict((lb.name, lb.value) for lb in ts.labels)["s"]: [s.value for s in ts.samples]
        for _, ts in within
    }


def test_cached_sealed_reads_see_every_change_to_blocks_from_any_writer(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    pts = [(T0 + k * STEP, float(k)) for k in range(0, 1200)]  # 5 h: three ranges
    with SQLiteStorage(db, out_of_order_window=3 * 3600) as store:
        store.write(None, WriteRequest([series("a", pts), series("b", pts)]))
    sealed = generation(db)
    assert sealed > 0  # sealing on close counted
    reader = SQLiteStorage(db, out_of_order_window=3 * 3600)
    writer = SQLiteStorage(db, out_of_order_window=3 * 3600)  # another writer of the file
    try:
        want = [v for _, v in pts]
        for _ in range(2):  # the second read comes from the cache
            assert streamed_points(reader) == {"a": want, "b": want}
            assert {k: [v for _, v in p] for k, p in read(reader).items()} == {"a": want, "b": want}
        assert len(reader._runs.cache), "the sealed runs were remembered"
        with SQLiteStorage(db, max_sealed_cache_bytes=0) as uncached:
            assert streamed_points(uncached) == {"a": want, "b": want}
            assert uncached._runs.cache.weight == 0  # no run's bytes kept (empty walks weigh 0)
        with pytest.raises(ValueError, match="max_sealed_cache_bytes"):
            SQLiteStorage(db, max_sealed_cache_bytes=-1)
        # The other writer continues the last sealed range (it unseals, merges).
        more = [(T0 + k * STEP, float(k)) for k in range(1200, 1300)]
        writer.write(None, WriteRequest([series("a", more)]))
        writer.compact(flush=True)
        assert generation(db) > sealed
        want_a = want + [v for _, v in more]
        assert streamed_points(reader) == {"a": want_a, "b": want}
        assert [v for _, v in read(reader)["a"]] == want_a
        assert_encoded_reads_match(reader)
        # Retention by time drops whole old ranges: the cached ones go too.
        before = generation(db)
        late = [(T0 + k * STEP, float(k)) for k in range(1300, 1620, 60)]  # to 6.75 h
        with SQLiteStorage(db, retention=4 * 3600, out_of_order_window=3 * 3600) as keeper:
            keeper.write(None, WriteRequest([series("b", late)]))
            keeper.compact(flush=True)
        assert generation(db) > before
        # the first range (0-2 h) ended before 6.75 h - 4 h: gone; the rest stays
        want_b = want + [v for _, v in late]
        assert streamed_points(reader) == {"a": want_a[480:], "b": want_b[480:]}
        assert {k: [v for _, v in p] for k, p in read(reader).items()} == {
            "a": want_a[480:],
            "b": want_b[480:],
        }
    finally:
        reader.close()
        writer.close()


def test_a_format_4_file_without_the_change_counter_gets_it_and_reads_alike(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old4.db"
    pts = [(T0 + k * STEP, float(k)) for k in range(0, 600)]
    with SQLiteStorage(db) as store:
        store.write(None, WriteRequest([series("a", pts)]))
    with closing(sqlite3.connect(db)) as conn:  # as the first format-4 files were
        for event in ("insert", "update", "delete"):
            conn.execute(f"DROP TRIGGER blocks_{event}")
        conn.execute("DELETE FROM meta WHERE key = 'blocks_generation'")
        conn.commit()
    with SQLiteStorage(db) as store:
        assert generation(db) == 0
        assert streamed_points(store) == {"a": [v for _, v in pts]}
        store.write(None, WriteRequest([series("a", [(T0 + 600 * STEP, 1.5)])]))
        store.compact(flush=True)  # unseals and reseals the last range
        assert generation(db) > 0
        assert streamed_points(store) == {"a": [v for _, v in pts] + [1.5]}


def test_run_cache_keeps_one_generation_within_its_byte_bound() -> None:
    from promwire.stores.sqlite_blocks import RecordRun, RunCache, Walk

    def run(size: int) -> Walk:
        return Walk((RecordRun(((0, 0, 1, b"x"),), size),))

    cache = RunCache(max_bytes=100, max_entries=3)
    cache.put(5, (1, 0, 0), run(40))
    cache.put(5, (2, 0, 0), run(40))
    assert cache.get(5, (1, 0, 0)) is not None
    assert cache.get(4, (1, 0, 0)) is None  # another snapshot's generation
    cache.put(5, (3, 0, 0), run(40))  # over 100 bytes: the oldest goes
    assert cache.get(5, (1, 0, 0)) is None and cache.get(5, (3, 0, 0)) is not None
    cache.put(4, (9, 0, 0), run(1))  # an older snapshot's read is not kept
    assert cache.get(4, (9, 0, 0)) is None and cache.get(5, (2, 0, 0)) is not None
    cache.put(6, (9, 0, 0), run(1))  # a newer generation replaces everything
    assert cache.get(5, (2, 0, 0)) is None and cache.get(6, (9, 0, 0)) is not None
    cache.put(6, (10, 0, 0), run(101))  # bigger than the bound: never kept
    assert cache.get(6, (10, 0, 0)) is None
    for sid in range(11, 15):  # at most max_entries
        cache.put(6, (sid, 0, 0), run(1))
    assert sum(cache.get(6, (sid, 0, 0)) is not None for sid in (9, *range(11, 15))) == 3


def test_encoded_reads_of_own_rows_cut_anywhere_match_the_chunks(tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    # a noisy gauge every second for 5 h: ~57 KB a range, sealed as own rows
    pts = [(T0 + k * 1000, value(2, T0 + k * 1000)) for k in range(5 * 3600)]
    with SQLiteStorage(db) as store:
        for lo in range(0, len(pts), 3600):
            store.write(None, WriteRequest([series("g", pts[lo : lo + 3600])]))
    keys = tables(db)[2]
    assert sum(own for _, own, _, _ in keys) > 100  # many parts per range
    with SQLiteStorage(db) as store:
        for _ in range(2):  # the second time from the cache
            assert_encoded_reads_match(store)
            for a, b in [(1, 5 * 3600), (3599, 7201), (7200, 7200), (100, 14_000)]:
                query = Query(T0 + a * 1000, T0 + b * 1000, ALL.matchers)
                got = streamed_points(store, query)["g"]
                assert got == [
                    v for t, v in pts if query.start_timestamp_ms <= t <= query.end_timestamp_ms
                ]


# ----------------------------------------------------------- pack directories

_sids = st.lists(st.integers(0, 2**32 - 1), unique=True, max_size=40).map(sorted)


@given(_sids, st.data(), st.booleans())
def test_any_pack_reads_back_its_entries_and_flag(
    sids: list[int], data: st.DataObject, continued: bool
) -> None:
    from promwire.stores.sqlite_blocks import _pack_directory, _pack_entries

    entries = [(sid, data.draw(st.binary(max_size=300))) for sid in sids]
    pack = pack_series(entries, continued=continued)
    assert _pack_entries(pack) == entries
    assert _pack_directory(pack)[2] == continued
    assert pack.endswith(b"".join(rec for _, rec in entries))


def test_a_pack_of_consecutive_series_costs_three_bytes_a_series() -> None:
    entries = [(1000 + i, bytes(200)) for i in range(50)]
    pack = pack_series(entries)
    # count, first id (2 bytes), 49 one-byte gaps, 50 two-byte lengths
    assert len(pack) - 50 * 200 == 2 + 2 + 49 + 100
    with pytest.raises(ValueError, match="after"):
        pack_series([(5, b""), (5, b"")])
    with pytest.raises(ValueError, match="after"):
        pack_series([(2**32, b"")])


@given(
    st.lists(st.integers(0, 2**32 - 1), unique=True, min_size=1, max_size=30).map(sorted),
    st.data(),
    st.booleans(),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_finding_one_series_in_a_pack_agrees_with_the_whole_directory(
    sids: list[int], data: st.DataObject, continued: bool
) -> None:
    from promwire.stores.sqlite_blocks import _pack_directory, _pack_find

    consecutive = data.draw(st.booleans())
    if consecutive:
        sids = list(range(sids[0], min(sids[0] + len(sids), 2**32)))
    sizes = st.one_of(st.integers(0, 200), st.integers(100, 20000))  # 1, 2 or 3 length bytes
    entries = [(sid, bytes([sid % 251]) * data.draw(sizes)) for sid in sids]
    pack = pack_series(entries, continued=continued)
    got, offsets, _ = _pack_directory(pack)
    for i, sid in enumerate(got):
        assert _pack_find(pack, sid) == (i, offsets[i], offsets[i + 1], len(sids), continued)
    absent = data.draw(st.integers(0, 2**32 - 1).filter(lambda s: s not in sids))
    assert _pack_find(pack, absent) is None


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_damaged_pack_bytes_raise_only_storage_errors(blob: bytes) -> None:
    from promwire.errors import StorageError
    from promwire.stores.sqlite_blocks import _pack_directory, _pack_find

    for sid in (0, 1, 5, blob[-1] if blob else 7):
        try:
            _pack_find(blob, sid)
        except StorageError as exc:
            assert str(exc).startswith("damaged promwire database: an unreadable pack")
    try:
        sids, offsets, _ = _pack_directory(blob)
    except StorageError as exc:
        assert str(exc).startswith("damaged promwire database: an unreadable pack")
        return
    # What reads as a directory is a consistent one.
    assert all(a < b for a, b in pairwise(sids))
    assert len(offsets) == len(sids) + 1 and offsets[-1] == len(blob)
    assert all(a <= b for a, b in pairwise(offsets))


@given(_sids.filter(bool), st.data(), st.integers(120, 2000))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_the_packer_fills_packs_within_capacity_and_keeps_every_entry(
    sids: list[int], data: st.DataObject, capacity: int
) -> None:
    from promwire.stores.sqlite_blocks import _pack_directory, _pack_entries, _Packer

    entries = [
        (sid, data.draw(st.binary(min_size=1, max_size=capacity // 2), label="rec")) for sid in sids
    ]
    packer = _Packer(7, capacity)
    for sid, rec in entries:
        packer.add(sid, rec)
    rows = packer.finish()
    joined: list[tuple[int, bytes]] = []
    for i, (key, pack) in enumerate(rows):
        assert len(pack) <= capacity
        if i < len(rows) - 1:  # full but for an id's and a length's varint at most
            assert len(pack) >= capacity - 6
        got = _pack_entries(pack)
        assert split_key(key) == (7, False, got[0][0], 0)
        if _pack_directory(pack)[2]:  # continued: its first entry ends the last one
            assert joined[-1][0] == got[0][0]
            joined[-1] = (got[0][0], joined[-1][1] + got.pop(0)[1])
        joined += got
    assert joined == entries


@given(
    st.lists(st.binary(max_size=400), min_size=1, max_size=12),
    st.data(),
)
@settings(max_examples=300)
def test_a_pack_with_any_byte_changed_or_cut_raises_only_storage_errors(
    recs: list[bytes], data: st.DataObject
) -> None:
    from promwire.errors import StorageError
    from promwire.stores.sqlite_blocks import _pack_directory, _pack_find

    entries = [(1000 + 3 * i, rec) for i, rec in enumerate(recs)]
    pack = bytearray(pack_series(entries, continued=data.draw(st.booleans())))
    at = data.draw(st.integers(0, len(pack) - 1))
    if data.draw(st.booleans()):
        pack[at] = data.draw(st.integers(0, 255))
    else:
        del pack[at:]
    blob = bytes(pack)
    for sid, _ in entries:
        try:
            place = _pack_find(blob, sid)
        except StorageError:
            continue
        if place is not None:  # what is found lies within the pack
            assert 0 <= place[1] <= place[2] <= len(blob)
    try:
        _, offsets, _ = _pack_directory(blob)
    except StorageError:
        return
    assert offsets[-1] == len(blob)
