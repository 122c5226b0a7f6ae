"""The scrape-shaped fast path: decode_write_batch, ColumnBatch, the SQLite batch write."""

from __future__ import annotations

import struct
from array import array
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promwire as p
from promwire.codec.columnar import decode_write_batch
from promwire.codec.columns import ColumnBatch
from promwire.codec.decoder import clear_caches
from promwire.errors import DecodeError
from promwire.server.handlers import handle_write
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_head import HeadRecord, HeadView, RecordBuilder
from promwire.testing import mutations, prometheus_write_requests

V1 = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
NOW = 1795582338992
NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000BAD))[0]


def _scrape(values: list[float], t: int = NOW, n: int | None = None) -> p.WriteRequest:
    """One sample per series, as a Prometheus shard sends a scrape."""
    count = len(values) if n is None else n
    return p.WriteRequest(
        [
            p.TimeSeries(
                [p.Label("__name__", f"m{i % 3}"), p.Label("i", str(i)), p.Label("job", "j")],
                [p.Sample(values[i % len(values)], t)],
            )
            for i in range(count)
        ]
    )


def _cols(series: Any) -> list[tuple[Any, list[int], bytes, int, int]]:
    return [
        (
            list(s.labels),
            list(s.timestamps),
            s.values.tobytes(),
            len(s.histograms),
            len(s.exemplars),
        )
        for s in series
    ]


VALUES = [1.5, 0.0, -0.0, NAN_PAYLOAD, 1e300, -7.0, float("inf")]


def test_warm_scrape_is_one_batch_equal_to_decode_columns() -> None:
    raw = p.encode(_scrape(VALUES, n=50))
    clear_caches()
    assert decode_write_batch(raw) is None  # cold: no label block seen yet
    want = p.decode_columns(raw)  # fills the block cache
    got = decode_write_batch(raw)
    assert got is not None
    batch, biggest = got
    assert isinstance(batch, ColumnBatch) and len(batch) == 50
    assert _cols(batch) == _cols(want)  # bit-exact (-0.0, NaN payload)
    assert biggest == max(len(p.encode(ts)) for ts in _scrape(VALUES, n=50).timeseries)
    assert batch.values.tobytes() == b"".join(s.values.tobytes() for s in want)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(
            p.WriteRequest(
                _scrape([1.0]).timeseries, [p.MetricMetadata(p.MetricType.COUNTER, "m", "h", "")]
            ),
            id="metadata",
        ),
        pytest.param(
            p.WriteRequest(
                [
                    p.TimeSeries(
                        _scrape([1.0]).timeseries[0].labels,
                        [p.Sample(1.0, NOW), p.Sample(2.0, NOW + 1)],
                    )
                ]
            ),
            id="two samples",
        ),
        pytest.param(_scrape([1.0], t=(1 << 35) - 1), id="5-byte timestamp"),
        pytest.param(_scrape([1.0], t=1 << 42), id="7-byte timestamp"),
        pytest.param(_scrape([1.0], t=-1), id="negative timestamp"),
        pytest.param(
            p.WriteRequest(
                [
                    p.TimeSeries(
                        _scrape([1.0]).timeseries[0].labels,
                        [p.Sample(1.0, NOW)],
                        [p.Exemplar([p.Label("t", "x")], 1.0, NOW)],
                    )
                ]
            ),
            id="exemplar",
        ),
        pytest.param(p.WriteRequest(), id="empty"),
    ],
)
def test_other_shapes_are_left_to_the_general_decoder(request_: p.WriteRequest) -> None:
    raw = p.encode(request_)
    p.decode_columns(raw)  # warm
    assert decode_write_batch(raw) is None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_batch_never_disagrees_with_decode_columns(data: st.DataObject) -> None:
    """Real-shaped requests and damaged ones: when the batch is taken it is
    exactly what decode_columns says, and it never raises."""
    raw = p.encode(data.draw(prometheus_write_requests()))
    p.decode_columns(raw)  # warm the caches with the undamaged request
    bad = data.draw(st.one_of(st.just(raw), mutations(raw)))
    got = decode_write_batch(bad)
    try:
        want = p.decode_columns(bad)
    except DecodeError:
        assert got is None
        return
    if got is not None:
        assert _cols(got[0]) == _cols(want)


def test_column_batch_is_a_sequence_of_series_columns() -> None:
    labels = [(p.Label("a", "1"),), (p.Label("a", "2"),), (p.Label("a", "3"),)]
    batch = ColumnBatch(
        labels, array("q", [0, 1, 1, 3]), array("q", [5, 6, 7]), array("d", [1, 2, 3])
    )
    assert len(batch) == 3
    assert list(batch[0].timestamps) == [5] and list(batch[1].timestamps) == []
    assert list(batch[-1].values) == [2.0, 3.0]
    assert [s.labels for s in batch[1:]] == labels[1:]
    assert [s.labels for s in batch] == labels
    assert batch[2].histograms == [] and batch[2].exemplars == []
    with pytest.raises(IndexError):
        batch[3]
    with pytest.raises(ValueError):
        ColumnBatch(labels, array("q", [0, 1]), array("q"), array("d"))
    assert "3 series" in repr(batch)


class Columns:
    """A user's storage taking columns: it just iterates what it gets."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def write_columns(self, ctx: Any, series: Any) -> None:
        self.got.append(series)

    def write(self, ctx: Any, request: p.WriteRequest) -> None:
        raise AssertionError("no metadata was sent")


def test_handler_hands_a_batch_to_write_columns_and_limits_still_apply() -> None:
    clear_caches()
    body = p.snappy.compress(p.encode(_scrape(VALUES, n=20)))
    store = Columns()
    assert handle_write(body, V1, store).status == 204  # cold: the general path
    assert handle_write(body, V1, store).status == 204  # warm: one batch
    cold, warm = store.got
    assert not isinstance(cold, ColumnBatch) and isinstance(warm, ColumnBatch)
    assert _cols(cold) == _cols(warm)
    # the write limits hold on the batch path too
    refused = handle_write(body, V1, store, max_series=19)
    assert refused.status == 400 and b"max_series" in refused.body
    refused = handle_write(body, V1, store, max_samples=19)
    assert refused.status == 400 and b"max_samples" in refused.body
    refused = handle_write(body, V1, store, max_labels_per_series=2)
    assert refused.status == 400 and b"labels" in refused.body
    refused = handle_write(body, V1, store, max_label_bytes=1)
    assert refused.status == 400
    assert len(store.got) == 2  # nothing refused reached the storage


def _read(store: SQLiteStorage) -> list[tuple[list[tuple[str, str]], list[int], bytes]]:
    q = p.Query(0, 1 << 62, [p.LabelMatcher(p.MatchType.RE, "__name__", ".+")])
    result = store.process_query(None, q)
    return sorted(
        (
            [(lb.name, lb.value) for lb in ts.labels],
            [s.timestamp for s in ts.samples],
            struct.pack(f"<{len(ts.samples)}d", *(s.value for s in ts.samples)),
        )
        for ts in result.timeseries
    )


def test_sqlite_batch_path_stores_what_the_object_path_stores(tmp_path: Path) -> None:
    clear_caches()
    requests = [_scrape(VALUES[k:] + VALUES[:k], t=NOW + 15_000 * k, n=30) for k in range(6)]
    with (
        SQLiteStorage(tmp_path / "batch.db") as batched,
        SQLiteStorage(tmp_path / "objects.db") as objects,
    ):
        for req in requests:
            body = p.snappy.compress(p.encode(req))
            assert handle_write(body, V1, batched).status == 204
            objects.write(None, req)
        assert batched.cached_series()[0] == 30
        assert _read(batched) == _read(objects)
        batched.compact(flush=True)
        objects.compact(flush=True)
        assert _read(batched) == _read(objects)
        # a resent batch adds nothing (the first value written wins)
        again = p.snappy.compress(p.encode(_scrape([99.0], t=NOW, n=30)))
        assert handle_write(again, V1, batched).status == 204
        assert _read(batched) == _read(objects)


def test_sqlite_batch_refuses_a_too_old_sample_whole(tmp_path: Path) -> None:
    clear_caches()
    with SQLiteStorage(tmp_path / "s.db", out_of_order_window=60) as store:
        new = p.snappy.compress(p.encode(_scrape([1.0], t=NOW, n=5)))
        assert handle_write(new, V1, store).status == 204
        store.compact(flush=True)  # the series' newest compacted sample: NOW
        before = _read(store)
        # warm label blocks, one series too old: the whole request is refused
        old = _scrape([2.0], t=NOW + 1000, n=5)
        old.timeseries[3].samples[0] = p.Sample(2.0, NOW - 61_000)
        p.decode_columns(p.encode(old))
        assert decode_write_batch(p.encode(old)) is not None  # it is the batch path
        resp = handle_write(p.snappy.compress(p.encode(old)), V1, store)
        assert resp.status == 400 and b'["i","3"]' in resp.body, resp.body
        assert _read(store) == before
        # within the window it is taken
        ok = _scrape([3.0], t=NOW - 59_000, n=5)
        assert handle_write(p.snappy.compress(p.encode(ok)), V1, store).status == 204
        assert all(len(ts) == 2 for _, ts, _ in _read(store))


def _record(sids: list[int], ts: list[int], bits: list[int], per: int = 1) -> HeadRecord:
    rb = RecordBuilder()
    for k, sid in enumerate(sids):
        rb.add_bits(sid, ts[k * per : (k + 1) * per], bits[k * per : (k + 1) * per])
    return HeadRecord.from_row(*rb.row()[1:])


def _plain(
    parts: dict[int, tuple[array[int], array[int]]],
) -> dict[int, tuple[list[int], list[int]]]:
    return {sid: (list(a), list(b)) for sid, (a, b) in parts.items()}


@settings(max_examples=300, deadline=None)
@given(
    shards=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=8), min_size=1, max_size=4),
    order=st.lists(st.integers(0, 3), min_size=1, max_size=30),
    dup_ts=st.booleans(),
    multi=st.sampled_from([None, "first", "middle"]),
)
def test_head_regrouping_by_shape_equals_segment_by_segment(
    shards: list[list[int]], order: list[int], dup_ts: bool, multi: str | None
) -> None:
    """The compaction's regrouping of scrape records (strided columns) gives each
    series exactly the samples, in the same order, as the general walk; shards
    that share a series, a series twice in a record, and records holding
    several samples a series (first, as a compaction's kept samples are, or
    among the scrapes) agree too, by the fast path or the general walk. The
    fast path is taken whenever a shape repeats, no series is in two shapes,
    and the record of several samples a series comes first."""
    records = []
    at = {None: -1, "first": 0, "middle": len(order) // 2}[multi]
    for k, which in enumerate(order):
        sids = shards[which % len(shards)]
        per = 2 if k == at else 1
        t = NOW + (0 if dup_ts else 15_000 * k)
        ts = [t + j for j in range(len(sids) * per)]
        bits = [(k << 16) | j for j in range(len(sids) * per)]
        records.append(_record(sids, ts, bits, per))
    view = HeadView(records)
    want = _plain(view._by_series_any())
    assert _plain(view.by_series()) == want
    fast = view._by_series_scrapes()
    if fast is not None:
        assert _plain(fast) == want
    disjoint = len({s for sh in shards for s in sh}) == sum(len(set(sh)) for sh in shards)
    unique = all(len(set(sh)) == len(sh) for sh in shards)
    shapes = [which % len(shards) for k, which in enumerate(order) if k != at]
    repeated = any(shapes.count(x) >= 2 for x in shapes)
    if disjoint and unique and repeated and multi != "middle":
        assert fast is not None
