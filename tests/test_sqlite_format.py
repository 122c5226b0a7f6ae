"""The SQLite store's format: migrating real format-2, -3 and -4 files bit for bit, a
failed migration leaving the file as it was, and posting blocks (pending ids
merged at compaction, blocks bounded, every matcher kind equal before and after)."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from promwire import (
    ChunkEncoding,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    Sample,
    TimeSeries,
    WriteRequest,
    encode,
)
from promwire.chunks.xor import decode_xor_bits
from promwire.stores.sqlite import PAGE_SIZE, SQLiteStorage
from promwire.stores.sqlite_blocks import _pack_directory, _pack_entries, split_key, unpack_records
from promwire.stores.sqlite_chunks import chunk_count, chunk_mint, stored_chunks
from promwire.stores.sqlite_head import HeadCache
from promwire.stores.sqlite_index import BLOCK_BYTES, series_labels, unpack_ids
from promwire.stores.sqlite_schema import FormatError, _v4_pack_entries, prepare
from tests.support.old_formats import (
    T0,
    V2_FILE,
    V3_FILE,
    V4_ANSWERS,
    V4_FILE,
    answers,
    expected_v2,
    expected_v3,
    expected_v4,
    v3_histograms,
)

ALL = Query(-(1 << 62), 1 << 62, [LabelMatcher(MatchType.RE, "__name__", ".+")])
Stored = dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]


def _bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def _read(store: SQLiteStorage, query: Query = ALL) -> Stored:
    return {
        tuple((lb.name, lb.value) for lb in ts.labels): [
            (s.timestamp, _bits(s.value)) for s in ts.samples
        ]
        for ts in store.process_query(None, query).timeseries
    }


def _streamed(store: SQLiteStorage) -> Stored:
    """The float samples of a streamed read (histogram chunks left out)."""
    out: Stored = {}
    for cs in store.process_query_chunks(None, ALL):
        floats = [c for c in cs.chunks if c.type == ChunkEncoding.XOR]
        if not floats:
            continue
        points = out.setdefault(tuple((lb.name, lb.value) for lb in cs.labels), [])
        for chunk in floats:
            ts, bits = decode_xor_bits(chunk.data)
            points.extend(zip(ts, bits, strict=True))
    return out


def _v2_contents(path: Path) -> Stored:
    """What a format-2 file holds, read with format 2's own SQL (JSON label
    sets, chunk rows, head records; the first value written wins)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        labels = {int(i): json.loads(k) for i, k in conn.execute("SELECT id, labels FROM series")}
        points: dict[int, dict[int, int]] = {}
        for sid, n, data in conn.execute("SELECT series_id, n, data FROM chunks ORDER BY maxt"):
            ts, bits = decode_xor_bits(data)
            assert len(ts) == n
            for t, b in zip(ts, bits, strict=True):
                points.setdefault(int(sid), {}).setdefault(t, b)
        conn.execute("BEGIN")
        view = HeadCache().view(conn)
        for sid in labels:
            for t, b in zip(*view.samples(sid), strict=True):
                points.setdefault(sid, {}).setdefault(t, b)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {
        tuple((str(n), str(v)) for n, v in labels[sid]): sorted(got.items())
        for sid, got in points.items()
    }


def test_the_v2_fixture_holds_chunks_head_records_and_the_expected_samples() -> None:
    with sqlite3.connect(V2_FILE) as conn:
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] > 0
        assert conn.execute("SELECT sum(n) FROM head").fetchone()[0] > 0
    assert _v2_contents(V2_FILE) == expected_v2()


def test_a_v2_file_is_migrated_and_reads_back_bit_for_bit(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    shutil.copy(V2_FILE, db)
    before = _v2_contents(db)
    with SQLiteStorage(db) as store:
        assert _read(store) == before  # the head records are read too
        assert _streamed(store) == before
        assert store.counts()["samples"] == sum(map(len, before.values()))
        # Matchers resolve through the rebuilt postings (a non-ASCII label too).
        q = Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "héllo", "wörld")])
        assert set(_read(store, q)) == {k for k in before if ("héllo", "wörld") in k}
        q = Query(0, 1 << 62, [LabelMatcher(MatchType.NRE, "s", "[0-3]")])
        assert set(_read(store, q)) == {k for k in before if dict(k)["s"] in "45"}
        (exemplar_series,) = store.exemplars()
        assert [e.timestamp for e in exemplar_series.exemplars] == [
            T0 + lo * 15_000 for lo in range(0, 400, 50)
        ]
        assert [m.metric_family_name for m in store.metadata()] == ["m0"]
        # A write after the migration finds the migrated series (no second copy).
        key = next(iter(before))
        extra = (T0 + 400 * 15_000, _bits(0.25))
        store.write(
            None,
            WriteRequest([TimeSeries([Label(n, v) for n, v in key], [Sample(0.25, extra[0])])]),
        )
        assert _read(store)[key] == [*before[key], extra]
        assert len(_read(store)) == len(before)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (5,)
        assert conn.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"series_v2", "chunks_v2", "label_values"}.isdisjoint(tables)
    with SQLiteStorage(db) as store:  # closed and reopened: the same, in chunks now
        after = _read(store)
        assert after == {**before, key: [*before[key], extra]}


def test_a_v2_file_that_cannot_be_migrated_is_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    shutil.copy(V2_FILE, db)
    with sqlite3.connect(db) as conn:  # two chunks of one series ending together: damaged
        conn.execute(
            "INSERT INTO chunks(series_id, mint, maxt, n, data) "
            "SELECT series_id, mint, maxt, n, data FROM chunks LIMIT 1"
        )
    original = db.read_bytes()
    with pytest.raises(FormatError, match=r"two chunks ending at .* not migrated") as info:
        SQLiteStorage(db)
    assert "\n" not in str(info.value)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM label_values").fetchone()[0] > 0
    assert _v2_contents(db) == expected_v2()  # nothing lost
    assert len(db.read_bytes()) == len(original)


def test_an_unknown_or_damaged_older_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "odd.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE chunks (x)")
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(FormatError, match="format 1, which no promwire wrote"):
        SQLiteStorage(db)
    partial = tmp_path / "partial.db"
    with sqlite3.connect(partial) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER)")
        conn.execute("PRAGMA user_version = 2")
    with pytest.raises(FormatError, match="without its series or chunks table"):
        SQLiteStorage(partial)


def _posting_rows(db: Path) -> tuple[int, list[tuple[int, bytes]]]:
    """(pending rows, [(first, ids blob)] of the pair env="prod")."""
    with sqlite3.connect(db) as conn:
        pending = conn.execute("SELECT count(*) FROM postings_new").fetchone()[0]
        rows = conn.execute(
            "SELECT p.first, p.ids FROM postings p JOIN symbols n ON n.id = p.name "
            "JOIN symbols v ON v.id = p.value WHERE n.text = 'env' AND v.text = 'prod' "
            "ORDER BY p.first"
        ).fetchall()
    return int(pending), [(int(f), bytes(b)) for f, b in rows]


def test_postings_are_pending_until_a_compaction_then_bounded_blocks(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    rng = random.Random(7)
    labels: dict[str, dict[str, str]] = {}
    with SQLiteStorage(db) as store:
        for batch in range(30):
            series = []
            for k in range(100):
                i = batch * 100 + k
                lbs = {"__name__": f"m{i % 3}", "env": "prod", "i": str(i)}
                if rng.random() < 0.5:
                    lbs["pod"] = f"p{rng.randrange(20)}"
                labels[str(i)] = lbs
                series.append(
                    TimeSeries(
                        [Label(n, v) for n, v in sorted(lbs.items())], [Sample(1.0, 1000 * batch)]
                    )
                )
            store.write(None, WriteRequest(series))
            queries = [
                [("=", "env", "prod")],
                [("=", "__name__", "m1"), ("!=", "pod", "")],
                [("=~", "pod", "p1.*"), ("!~", "__name__", "m[02]")],
                [("!=", "pod", "p3")],
                [("=", "pod", "")],
                [("=~", "i", "1.5")],
            ]
            if batch % 10 == 9:
                pending, _ = _posting_rows(db)
                assert pending > 0  # this batch's new series: pending rows, no blob rewritten
                answers = [_names(store, q) for q in queries]
                store.compact()
                assert _posting_rows(db)[0] == 0
                assert [_names(store, q) for q in queries] == answers
                assert answers == [_brute(labels, q) for q in queries]
            elif batch % 3 == 0:
                store.compact()
        _, blocks = _posting_rows(db)
        ids = []
        for first, blob in blocks:
            assert len(blob) <= BLOCK_BYTES + 9  # closed at the first delta past the bound
            ids.append(first)
            for d in unpack_ids(blob):
                ids.append(ids[-1] + d)
        assert ids == list(range(1, 3001))  # every series, once, in order
        # Consecutive ids: one byte a delta, so 1,025 ids a full block.
        assert [len(blob) for _, blob in blocks] == [BLOCK_BYTES, BLOCK_BYTES, 3000 - 2051]
        with sqlite3.connect(db) as conn:
            got = dict(series_labels(conn, list(range(1, 3001))))
        assert {dict(pairs)["i"]: dict(pairs) for pairs in got.values()} == labels


def _names(store: SQLiteStorage, spec: list[tuple[str, str, str]]) -> list[str]:
    types = {"=": MatchType.EQ, "!=": MatchType.NEQ, "=~": MatchType.RE, "!~": MatchType.NRE}
    q = Query(0, 1 << 40, [LabelMatcher(types[t], n, v) for t, n, v in spec])
    return sorted(dict(k)["i"] for k in _read(store, q))


def _brute(labels: dict[str, dict[str, str]], spec: list[tuple[str, str, str]]) -> list[str]:
    import re

    def ok(lbs: dict[str, str]) -> bool:
        for t, n, v in spec:
            have = lbs.get(n, "")
            full = re.fullmatch(v, have) is not None
            if {"=": have != v, "!=": have == v, "=~": not full, "!~": full}[t]:
                return False
        return True

    return sorted(i for i, lbs in labels.items() if ok(lbs))


def test_chunk_header_helpers_read_count_and_first_timestamp() -> None:
    from promwire.chunks.xor import encode_xor_bits

    data = encode_xor_bits([-5, 10, 20], [1, 2, 3])
    assert (chunk_count(data), chunk_mint(data)) == (3, -5)


def test_a_v1_series_is_found_again_by_a_write_of_the_same_labels(tmp_path: Path) -> None:
    from tests.test_sqlite_chunks import _v1_file  # its label JSON has spaces: not canonical

    db = tmp_path / "v1.db"
    _v1_file(db)
    with SQLiteStorage(db) as store:
        labels = [Label("__name__", "m"), Label("s", "old")]
        store.write(None, WriteRequest([TimeSeries(labels, [Sample(3.0, 300 * 15_000)])]))
        (only,) = _read(store).values()  # one series, not a second copy
        assert len(only) == 301 and only[-1] == (300 * 15_000, _bits(3.0))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM series").fetchone() == (1,)


def test_a_v3_file_is_migrated_sealed_and_reads_back_bit_for_bit(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    shutil.copy(V3_FILE, db)
    with sqlite3.connect(db) as conn:  # what format 3 holds: chunk rows, a head, histogram rows
        assert conn.execute("PRAGMA user_version").fetchone() == (3,)
        old_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        assert old_chunks > 0
        assert conn.execute("SELECT sum(n) FROM head").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM histograms").fetchone() == (200,)
    want = expected_v3()
    hist = [encode(h) for h in v3_histograms()]
    hist_labels = (("__name__", "hist"), ("job", "j"))

    def histograms(store: SQLiteStorage) -> list[bytes]:
        q = Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "hist")])
        (found,) = store.process_query(None, q).timeseries
        return [encode(h) for h in found.histograms]

    with SQLiteStorage(db) as store:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (5,)
            # every old chunk sealed, in three ranges of the five-hour series
            assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
            sealed = list(stored_chunks(conn))
            assert len(sealed) == old_chunks
            assert (
                len({split_key(int(k))[0] for (k,) in conn.execute("SELECT id FROM blocks")}) == 3
            )
        got = _read(store)
        assert {k: v for k, v in got.items() if k != hist_labels} == want
        assert _streamed(store) == want
        assert histograms(store) == hist
        assert store.counts()["samples"] == sum(map(len, want.values()))
        assert store.counts()["histograms"] == 200
    with SQLiteStorage(db) as store:  # closed: head flushed, histograms chunked, all sealed
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM head").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM histograms").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM histogram_chunks").fetchone()[0] >= 10
        assert {k: v for k, v in _read(store).items() if k != hist_labels} == want
        assert histograms(store) == hist


Rows = dict[int, bytes]


def _blocks(db: Path) -> Rows:
    with sqlite3.connect(db) as conn:
        return {int(k): bytes(d) for k, d in conn.execute("SELECT id, data FROM blocks")}


def _sealed_samples(
    db: Path, rows: Rows, entries: Callable[[bytes], list[tuple[int, bytes]]]
) -> Stored:
    """Every sample ``rows`` of ``blocks`` hold, read with the pack reader
    ``entries`` (format 4's or 5's): a continued pack's first entry joined to
    the end of the pack before, own rows as they are."""
    runs: dict[tuple[int, int], bytes] = {}
    for key in sorted(rows):
        rng, own, sid, _ = split_key(key)
        for s, rec in [(sid, rows[key])] if own else entries(rows[key]):
            runs[rng, s] = runs.get((rng, s), b"") + rec
    points: dict[int, list[tuple[int, int]]] = {}
    for (_, sid), rec in sorted(runs.items()):
        for _, _, _, data in unpack_records(rec):
            ts, bits = decode_xor_bits(data)
            points.setdefault(sid, []).extend(zip(ts, bits, strict=True))
    with sqlite3.connect(db) as conn:
        labels = dict(series_labels(conn, sorted(points)))
    return {tuple(labels[sid]): sorted(got) for sid, got in points.items()}


def _v4_entries(blob: bytes) -> list[tuple[int, bytes]]:
    return _v4_pack_entries(blob)[0]


def test_the_v4_fixture_holds_continued_packs_own_rows_and_the_expected_samples() -> None:
    with sqlite3.connect(V4_FILE) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
    rows = _blocks(V4_FILE)
    keys = [split_key(k) for k in rows]
    assert len({rng for rng, _, _, _ in keys}) == 3
    assert sum(own for _, own, _, _ in keys) >= 6  # too big for a pack, and resealed
    flags = [_v4_pack_entries(rows[k])[1] for k in rows if not split_key(k)[1]]
    assert flags.count(True) >= 3 and flags.count(False) >= 3
    assert _sealed_samples(V4_FILE, rows, _v4_entries) == expected_v4()


def test_a_v4_file_is_repacked_in_place_and_answers_as_before(tmp_path: Path) -> None:
    db = tmp_path / "v4.db"
    shutil.copy(V4_FILE, db)
    old = _blocks(db)
    with SQLiteStorage(db) as store:
        assert answers(store) == V4_ANSWERS  # what commit 045d97b answered from the v4 file
        assert _read(store, Query(0, 1 << 62, [LabelMatcher(MatchType.EQ, "__name__", "pk")])) == (
            expected_v4()
        )
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (5,)
        new = _blocks(db)
        assert new.keys() == old.keys()  # the same rows, under the same keys
        for key, blob in new.items():
            if split_key(key)[1]:
                assert blob == old[key]  # own rows: chunk records, the same in both formats
                continue
            entries, continued = _v4_pack_entries(old[key])
            assert _pack_entries(blob) == entries
            assert _pack_directory(blob)[2] == continued
            # 6 bytes a series and 4 of offsets before; about 3 a series now
            assert len(blob) <= len(old[key]) - 2 - 2 * len(entries)
        assert _sealed_samples(db, new, _pack_entries) == expected_v4()
    with sqlite3.connect(db, isolation_level=None) as conn:
        generation = conn.execute("SELECT value FROM meta WHERE key = 'blocks_generation'")
        before = generation.fetchone()
        assert prepare(conn, str(db)) is False  # a format-5 file: nothing to do
        assert conn.execute(
            "SELECT value FROM meta WHERE key = 'blocks_generation'"
        ).fetchone() == (before)
    assert _blocks(db) == new
    with SQLiteStorage(db) as store:  # and reopened, the same answers
        assert answers(store) == V4_ANSWERS


def test_a_v4_file_with_a_damaged_pack_is_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "v4.db"
    shutil.copy(V4_FILE, db)
    old = _blocks(db)
    # The last pack loses its last byte: packs before it are rewritten first.
    last = max(k for k in old if not split_key(k)[1])
    assert sum(1 for k in old if k < last and not split_key(k)[1]) >= 5
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE blocks SET data = ? WHERE id = ?", (old[last][:-1], last))
    damaged = _blocks(db)
    size = db.stat().st_size
    with pytest.raises(
        FormatError, match=rf"format-4 pack {last} is unreadable .* not migrated"
    ) as info:
        SQLiteStorage(db)
    assert "\n" not in str(info.value)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (4,)
    assert _blocks(db) == damaged  # no pack rewritten
    assert db.stat().st_size == size
    with sqlite3.connect(db) as conn:  # repaired, it migrates
        conn.execute("UPDATE blocks SET data = ? WHERE id = ?", (old[last], last))
    with SQLiteStorage(db) as store:
        assert answers(store) == V4_ANSWERS


def test_a_v4_file_migrated_by_another_process_meanwhile_is_not_migrated_again(
    tmp_path: Path,
) -> None:
    """Two processes open a format-4 file at once: the second read the old
    version, then waits for the first one's migration; once it has the lock
    it finds format 5 and leaves the file alone (no error, no second rewrite)."""
    import threading

    from promwire.stores.sqlite_schema import FORMAT_VERSION, _add_generation, _repack_v4

    db = tmp_path / "v4.db"
    shutil.copy(V4_FILE, db)
    first = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    second = sqlite3.connect(db, isolation_level=None, timeout=30, check_same_thread=False)
    statements: list[str] = []
    second.set_trace_callback(statements.append)
    first.execute("BEGIN IMMEDIATE")  # the first process holds the write lock
    outcome: list[object] = []

    def open_second() -> None:
        try:
            outcome.append(prepare(second, str(db)))
        except BaseException as exc:  # reported below
            outcome.append(exc)

    thread = threading.Thread(target=open_second)
    thread.start()
    for _ in range(3000):  # until the second one waits for the lock
        if "BEGIN IMMEDIATE" in statements:
            break
        threading.Event().wait(0.01)
    assert "BEGIN IMMEDIATE" in statements
    # The first one migrates under the lock it holds (what prepare() does).
    _repack_v4(first, str(db))
    _add_generation(first)
    first.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
    first.execute("COMMIT")
    migrated = _blocks(db)
    thread.join(60)
    assert outcome == [False]
    assert _blocks(db) == migrated
    assert first.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION,)
    first.close()
    second.close()
