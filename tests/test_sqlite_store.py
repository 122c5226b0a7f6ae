"""promwire.stores.sqlite: durability, idempotence, exact floats, matchers, concurrency."""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
    STALE_NAN_BITS,
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    MetricMetadata,
    MetricType,
    Query,
    ReadRequest,
    ReadResponse,
    Sample,
    StorageError,
    StorageRejected,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
)
from promwire.codec.wire import double_bits
from promwire.server.handlers import handle_read, handle_write
from promwire.stores.matchers import compile_matchers
from promwire.stores.sqlite import SQLiteStorage
from promwire.testing import prometheus_write_requests

EQ, NEQ, RE, NRE = MatchType.EQ, MatchType.NEQ, MatchType.RE, MatchType.NRE
ALL = (-(1 << 63), (1 << 63) - 1)


def ts(labels: dict[str, str], *points: tuple[int, float]) -> TimeSeries:
    return TimeSeries(
        labels=[Label(k, v) for k, v in sorted(labels.items())],
        samples=[Sample(v, t) for t, v in points],
    )


def query(*matchers: tuple[MatchType, str, str], start: int = ALL[0], end: int = ALL[1]) -> Query:
    return Query(start, end, [LabelMatcher(t, n, v) for t, n, v in matchers])


def names(store: SQLiteStorage, *matchers: tuple[MatchType, str, str]) -> list[str]:
    result = store.process_query(None, query(*matchers))
    return [",".join(f"{lb.name}={lb.value}" for lb in s.labels) for s in result.timeseries]


def bits_of(series: TimeSeries) -> list[tuple[int, int]]:
    return [(s.timestamp, double_bits(s.value)) for s in series.samples]


def float_from_bits(bits: int) -> float:
    import struct

    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStorage:
    s = SQLiteStorage(tmp_path / "m.db")
    yield s  # type: ignore[misc]
    s.close()


def test_roundtrip_keeps_nan_bits_and_sorts_samples(store: SQLiteStorage) -> None:
    weird_nan = float_from_bits(0x7FF8000000000001)
    stale = float_from_bits(STALE_NAN_BITS)
    store.write(None, WriteRequest([ts({"__name__": "m"}, (30, stale), (10, -0.0))]))
    store.write(None, WriteRequest([ts({"__name__": "m"}, (20, weird_nan), (5, math.inf))]))
    (series,) = store.process_query(None, query((EQ, "__name__", "m"))).timeseries
    assert bits_of(series) == [
        (5, double_bits(math.inf)),
        (10, double_bits(-0.0)),
        (20, 0x7FF8000000000001),
        (30, STALE_NAN_BITS),
    ]


def test_durable_across_reopen_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with SQLiteStorage(path) as s:
        s.write(None, WriteRequest([ts({"__name__": "m"}, (1, 1.5))]))
        # Read through an independent connection: the data is committed, not just cached.
        raw = sqlite3.connect(path)
        assert raw.execute("SELECT sum(n) FROM head").fetchone() == (1,)  # the head record
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        raw.close()
        assert s._writer.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with SQLiteStorage(path) as s:
        (series,) = s.process_query(None, query((EQ, "__name__", "m"))).timeseries
        assert series.samples == [Sample(1.5, 1)]
        s.write(None, WriteRequest([ts({"__name__": "m"}, (2, 2.5))]))  # reuses the series
        assert s.counts()["series"] == 1


def test_retried_batch_adds_no_duplicates(store: SQLiteStorage) -> None:
    batch = WriteRequest(
        [
            ts({"__name__": "a", "x": "1"}, (1, 1.0), (2, 2.0)),
            ts({"__name__": "b"}, (1, 3.0)),
            TimeSeries(
                labels=[Label("__name__", "a"), Label("x", "1")],
                exemplars=[Exemplar([Label("trace_id", "t1")], 0.5, 2)],
                histograms=[Histogram(count_int=1, sum=0.5, timestamp=3)],
            ),
        ],
        [MetricMetadata(MetricType.COUNTER, "a", "help a", "")],
    )
    store.write(None, batch)
    before = store.counts()
    store.write(None, batch)
    store.write(None, batch)
    assert (
        store.counts()
        == before
        == {
            "series": 2,
            "samples": 3,
            "histograms": 1,
            "exemplars": 1,
            "metadata": 1,
        }
    )
    # First write wins for a timestamp that already has a value.
    store.write(None, WriteRequest([ts({"__name__": "b"}, (1, 99.0))]))
    (b,) = store.process_query(None, query((EQ, "__name__", "b"))).timeseries
    assert b.samples == [Sample(3.0, 1)]


def test_failed_write_rolls_back_everything(store: SQLiteStorage) -> None:
    good = ts({"__name__": "new_series"}, (1, 1.0))
    bad = TimeSeries(
        labels=[Label("__name__", "h")],
        histograms=[Histogram(count_int=1, count_float=1.0)],  # both oneof members: unencodable
    )
    with pytest.raises(Exception, match=r"oneof|count"):
        store.write(None, WriteRequest([good, bad]))
    assert store.counts()["series"] == 0
    store.write(None, WriteRequest([good]))  # no stale cached series id from the rollback
    assert names(store, (EQ, "__name__", "new_series")) == ["__name__=new_series"]


def test_closed_store_raises_storage_error(tmp_path: Path) -> None:
    s = SQLiteStorage(tmp_path / "c.db")
    s.close()
    with pytest.raises(StorageError):
        s.write(None, WriteRequest([ts({"__name__": "m"}, (1, 1.0))]))


@pytest.fixture
def labelled(store: SQLiteStorage) -> SQLiteStorage:
    store.write(
        None,
        WriteRequest(
            [
                ts({"__name__": "up", "job": "api", "env": "prod"}, (1, 1.0)),
                ts({"__name__": "up", "job": "db"}, (1, 1.0)),
                ts({"__name__": "up", "job": "ab"}, (1, 1.0)),
                ts({"__name__": "upx", "job": "a\nb"}, (1, 1.0)),
                ts({"__name__": "down", "job": "api", "env": ""}, (1, 1.0)),  # env dropped
            ]
        ),
    )
    return store


@pytest.mark.parametrize(
    ("matchers", "expected_jobs"),
    [
        ([(EQ, "__name__", "up")], ["ab", "api", "db"]),
        ([(EQ, "__name__", "up"), (NEQ, "job", "db")], ["ab", "api"]),
        ([(RE, "job", "a|d")], []),  # anchored: the alternation must match the whole value
        ([(RE, "job", "a.*")], ["ab", "api", "api"]),
        ([(RE, "job", "a.b")], []),  # '.' does not match a newline (Prometheus 2.x)
        ([(RE, "__name__", "up"), (NRE, "job", "a.")], ["api", "db"]),
        ([(EQ, "env", "")], ["ab", "api", "db", "a\nb"]),  # absent label == ""
        ([(NEQ, "env", "")], ["api"]),
        ([(RE, "env", ".*")], ["ab", "api", "db", "api", "a\nb"]),
        ([(RE, "env", ".+")], ["api"]),
        ([(NRE, "job", ".*")], ["a\nb"]),  # ".*" cannot span the newline
        ([], ["ab", "api", "db", "api", "a\nb"]),
    ],
)
def test_matchers(
    labelled: SQLiteStorage, matchers: list[tuple[MatchType, str, str]], expected_jobs: list[str]
) -> None:
    result = labelled.process_query(None, query(*matchers))
    jobs = [dict((lb.name, lb.value) for lb in s.labels)["job"] for s in result.timeseries]
    assert sorted(jobs) == sorted(expected_jobs)


def test_series_come_back_sorted_by_labels(labelled: SQLiteStorage) -> None:
    result = labelled.process_query(None, query((RE, "__name__", ".+")))
    keys = [[(lb.name, lb.value) for lb in s.labels] for s in result.timeseries]
    assert keys == sorted(keys)
    assert [k[0][1] for k in keys] == ["down", "up", "up", "up", "upx"]


def test_invalid_regex_is_rejected(labelled: SQLiteStorage) -> None:
    with pytest.raises(StorageRejected, match="invalid regex"):
        labelled.process_query(None, query((RE, "job", "(")))


def test_time_range_is_inclusive(store: SQLiteStorage) -> None:
    store.write(None, WriteRequest([ts({"__name__": "m"}, *((t, float(t)) for t in range(10)))]))
    (series,) = store.process_query(None, query((EQ, "__name__", "m"), start=3, end=6)).timeseries
    assert [s.timestamp for s in series.samples] == [3, 4, 5, 6]
    late = store.process_query(None, query((EQ, "__name__", "m"), start=11, end=20))
    assert late.timeseries == []
    # The default read answers every query, in order.
    out = store.read(None, ReadRequest([query(start=0, end=0), query(start=9, end=9)]))
    assert [[s.timestamp for s in r.timeseries[0].samples] for r in out.results] == [[0], [9]]


def test_histograms_exemplars_metadata_are_kept(store: SQLiteStorage) -> None:
    int_h = Histogram(
        count_int=5,
        sum=12.5,
        schema=3,
        zero_threshold=1e-128,
        zero_count_int=0,
        positive_spans=[BucketSpan(-2, 2), BucketSpan(1, 1)],
        positive_deltas=[1, 2, -1],
        timestamp=1000,
    )
    float_h = Histogram(
        count_float=0.0,
        sum=float_from_bits(STALE_NAN_BITS),
        schema=-53,
        zero_count_float=0.0,
        positive_spans=[BucketSpan(0, 2)],
        positive_counts=[0.0, 1.5],
        custom_values=[1.0, 2.0],
        timestamp=2000,
    )
    ex = Exemplar([Label("trace_id", "abc")], 0.25, 1500)
    labels = [Label("__name__", "lat")]
    store.write(
        None,
        WriteRequest(
            [
                TimeSeries(labels=labels, histograms=[float_h]),
                TimeSeries(labels=labels, histograms=[int_h], exemplars=[ex]),
            ],
            [
                MetricMetadata(MetricType.HISTOGRAM, "lat", "Latency.", "seconds"),
                MetricMetadata(MetricType.GAUGE, "g", "", ""),
            ],
        ),
    )
    (series,) = store.process_query(None, query((EQ, "__name__", "lat"))).timeseries
    assert series.samples == []
    assert series.histograms[0] == int_h
    got_float = series.histograms[1]
    assert got_float.count_float == 0.0  # still a float histogram
    assert double_bits(got_float.sum) == STALE_NAN_BITS
    assert got_float.custom_values == [1.0, 2.0]
    (with_ex,) = store.exemplars([LabelMatcher(EQ, "__name__", "lat")])
    assert with_ex.exemplars == [ex]
    assert store.exemplars(start=1501) == []
    assert [(m.metric_family_name, m.type, m.unit) for m in store.metadata()] == [
        ("g", MetricType.GAUGE, ""),
        ("lat", MetricType.HISTOGRAM, "seconds"),
    ]
    # A later metadata request replaces the older one.
    store.write(None, WriteRequest(metadata=[MetricMetadata(MetricType.GAUGE, "g", "new", "")]))
    assert [m.help for m in store.metadata()] == ["new", "Latency."]


def test_memory_database_works(tmp_path: Path) -> None:
    with SQLiteStorage(":memory:") as s:
        s.write(None, WriteRequest([ts({"__name__": "m"}, (1, 1.0))]))
        assert s.counts()["samples"] == 1


def test_concurrent_writers_and_readers(store: SQLiteStorage) -> None:
    errors: list[BaseException] = []
    per_thread, threads = 40, 6

    def writer(n: int) -> None:
        try:
            for i in range(per_thread):
                shared = ts({"__name__": "shared"}, (i, float(i)))  # same series, same points
                own = ts({"__name__": "own", "t": str(n)}, (i, float(n)))
                store.write(None, WriteRequest([shared, own]))
                store.process_query(None, query((EQ, "__name__", "own")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert store.counts()["samples"] == per_thread + per_thread * threads
    assert len(names(store, (EQ, "__name__", "own"))) == threads


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(-(2**40), 2**40), st.integers(0, 2**64 - 1)), max_size=8),
        max_size=5,
    ),
    matcher_value=st.sampled_from(["a", "b", "", "a|b", ".*", "[ab]"]),
    matcher_type=st.sampled_from(list(MatchType)),
)
def test_store_agrees_with_a_model(
    batches: list[list[tuple[int, int]]], matcher_value: str, matcher_type: MatchType
) -> None:
    """Random batches (with retries and duplicate timestamps) read back like a dict model."""
    model: dict[str, dict[int, int]] = {}
    with SQLiteStorage(":memory:") as s:
        for i, batch in enumerate(batches):
            name = "ab"[i % 2]
            series = ts({"__name__": "m", "k": name}, *((t, float_from_bits(b)) for t, b in batch))
            s.write(None, WriteRequest([series]))
            s.write(None, WriteRequest([series]))  # retried
            for t, b in batch:
                model.setdefault(name, {}).setdefault(t, b)  # first write wins
        m = [LabelMatcher(matcher_type, "k", matcher_value)]
        got = {
            dict((lb.name, lb.value) for lb in r.labels)["k"]: bits_of(r)
            for r in s.process_query(None, Query(ALL[0], ALL[1], m)).timeseries
        }
    pred = compile_matchers(m)
    expected = {
        k: sorted(points.items()) for k, points in model.items() if points and pred({"k": k})
    }
    assert got == expected


def test_series_cache_bound_keeps_ids_right(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "c.db", max_cached_series=2) as s:
        for t in range(3):
            s.write(
                None, WriteRequest([ts({"__name__": "m", "i": str(i)}, (t, i)) for i in range(5)])
            )
        assert s.counts()["series"] == 5
        result = s.process_query(None, query((EQ, "__name__", "m"))).timeseries
        assert [[(p.timestamp, p.value) for p in r.samples] for r in result] == [
            [(t, float(i)) for t in range(3)] for i in range(5)
        ]


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(prometheus_write_requests(), min_size=1, max_size=3))
def test_handlers_and_store_agree_with_a_model(batches: list[WriteRequest]) -> None:
    """Prometheus-shaped requests (any labels, NaN payloads, histograms, metadata),
    each sent twice through handle_write, read back through handle_read."""
    # (kind, timestamp): a float sample and a histogram may share a timestamp.
    points: dict[tuple[tuple[str, str], ...], dict[tuple[str, int], object]] = {}
    metadata: dict[str, MetricMetadata] = {}
    rw = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    with SQLiteStorage(":memory:") as store:
        for req in batches:
            body = snappy.compress(encode(req))
            assert handle_write(body, rw, store).status == 204
            assert handle_write(body, rw, store).status == 204  # a retry changes nothing
            for series in req.timeseries:
                key = tuple(sorted((lb.name, lb.value) for lb in series.labels if lb.value))
                for s in series.samples:
                    points.setdefault(key, {}).setdefault(("s", s.timestamp), double_bits(s.value))
                for h in series.histograms:
                    points.setdefault(key, {}).setdefault(("h", h.timestamp), encode(h))
            metadata.update((md.metric_family_name, md) for md in req.metadata)
        query = snappy.compress(encode(ReadRequest([Query(ALL[0], ALL[1], [])])))
        resp = handle_read(query, {}, store)
        assert resp.status == 200
        assert isinstance(resp.body, bytes)
        (result,) = decode(ReadResponse, snappy.decompress(resp.body)).results
        assert [md for _, md in sorted(metadata.items())] == store.metadata()
    got = {
        tuple((lb.name, lb.value) for lb in r.labels): {
            **{("s", s.timestamp): double_bits(s.value) for s in r.samples},
            **{("h", h.timestamp): encode(h) for h in r.histograms},
        }
        for r in result.timeseries
    }
    assert got == {k: v for k, v in points.items() if v}
    for r in result.timeseries:
        assert [s.timestamp for s in r.samples] == sorted({s.timestamp for s in r.samples})


def test_reader_connections_die_with_their_threads(store: SQLiteStorage) -> None:
    """A thread-per-connection server (wsgiref) must not pile up SQLite connections."""
    import gc

    store.write(None, WriteRequest([ts({"__name__": "m"}, (1, 1.0))]))
    for _ in range(30):
        t = threading.Thread(target=store.process_query, args=(None, query()))
        t.start()
        t.join()
    gc.collect()
    assert len(store._readers) <= 2
    kept = store.process_query(None, query()).timeseries  # this thread's reader stays usable
    assert len(kept) == 1
    assert len(store._readers) >= 1


def test_a_stream_reuses_an_idle_connection_that_holds_no_old_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "pool.db"
    labels = [Label("__name__", "up"), Label("job", "a")]
    query = Query(0, 10**9, [LabelMatcher(MatchType.EQ, "job", "a")])

    def streamed_count(store: SQLiteStorage) -> int:
        return sum(
            int.from_bytes(c.data[:2], "big")
            for cs in store.process_query_chunks(None, query)
            for c in cs.chunks
        )

    store = SQLiteStorage(db)
    try:
        store.write(None, WriteRequest([TimeSeries(labels, [Sample(1.0, 1000)])]))
        assert streamed_count(store) == 1
        store.write(None, WriteRequest([TimeSeries(labels, [Sample(2.0, 2000)])]))
        # The ended stream's connection, kept for reuse, sees the new write ...
        assert streamed_count(store) == 2
        # ... and holds no read transaction: a checkpoint can take every frame.
        with sqlite3.connect(db) as other:
            busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        store.close()
    with pytest.raises(StorageError, match="closed"):
        streamed_count(store)
