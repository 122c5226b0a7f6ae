"""The label-set rule of remote write 1.0: what Prometheus' storage refuses, promwire refuses.

A series with no labels (or none with a value), or with the same label name
twice, is answered 400 with a short message naming the series, and nothing of
the request is stored. Checked for every shape the decoder has a path for
(one sample, a zero sample, sample + exemplar, exemplar alone, a run of
samples, a histogram, labels after the samples, series after metadata), cold
and with the decoder's caches warm, and through a real ``promwire serve``.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promwire import (
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
    ResponseType,
    Sample,
    TimeSeries,
    WriteRequest,
    decode,
    encode,
    snappy,
    v2,
)
from promwire.codec.decoder import cache_info, clear_caches, decode_write_request
from promwire.codec.labelset import label_set_problem
from promwire.codec.wire import varint
from promwire.server.handlers.write import handle_write
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_chunks import stored_chunks
from promwire.stores.sqlite_index import series_labels
from tests.support.serve_process import serve_process

RW1 = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
T0 = 1_700_000_000_000


def _record(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + varint(len(payload)) + payload


def _series_bytes(ts: TimeSeries) -> bytes:
    return encode(WriteRequest([ts]))


def _labels_last(labels: list[Label]) -> bytes:
    """A series whose label records come after its sample (legal protobuf, a slower path)."""
    body = _record(2, encode(Sample(1.0, T0)))
    body += b"".join(_record(1, encode(lb)) for lb in labels)
    return _record(1, body)


# Each shape turns a label list into the bytes of a WriteRequest with one series.
Shape = Callable[[list[Label]], bytes]
SHAPES: dict[str, Shape] = {
    "one sample": lambda ls: _series_bytes(TimeSeries(ls, [Sample(2.5, T0)])),
    "zero sample": lambda ls: _series_bytes(TimeSeries(ls, [Sample(0.0, T0)])),
    "sample+exemplar": lambda ls: _series_bytes(
        TimeSeries(ls, [Sample(1.0, T0)], [Exemplar([Label("trace_id", "ab")], 1.0, T0)])
    ),
    "exemplar only": lambda ls: _series_bytes(
        TimeSeries(ls, exemplars=[Exemplar([Label("trace_id", "cd")], 1.0, T0)])
    ),
    "samples": lambda ls: _series_bytes(TimeSeries(ls, [Sample(1.0, T0 + i) for i in range(5)])),
    "histogram": lambda ls: _series_bytes(
        TimeSeries(ls, histograms=[Histogram(count_int=1, zero_count_int=1, timestamp=T0)])
    ),
    "labels last": _labels_last,
    "after metadata": lambda ls: (
        encode(WriteRequest(metadata=[MetricMetadata(MetricType.GAUGE, "up", "help", "")]))
        + _series_bytes(TimeSeries(ls, [Sample(1.0, T0)]))
    ),
}

UP = Label("__name__", "up")
INVALID: list[tuple[str, list[Label], str]] = [
    ("empty", [], "series #0 {}: no labels"),
    ("only empty values", [Label("a", ""), Label("b", "")], "no label has a value"),
    ("repeated name", [UP, Label("a", "1"), Label("a", "2")], "label name 'a' appears twice"),
    ("repeated, unsorted", [Label("a", "1"), UP, Label("a", "2")], "'a' appears twice"),
    ("repeated, one empty", [UP, Label("a", ""), Label("a", "x")], "'a' appears twice"),
    ("repeated __name__", [UP, UP], "'__name__' appears twice"),
]
VALID: list[tuple[str, list[Label]]] = [
    ("name only", [UP]),
    ("an empty value beside", [UP, Label("a", "")]),
    ("one label, no name", [Label("job", "x")]),
]


def _stored_series(db: Path) -> list[str]:
    """The stored label sets as canonical JSON, in id order."""
    with sqlite3.connect(db) as conn:
        ids = [int(row[0]) for row in conn.execute("SELECT id FROM series ORDER BY id")]
        found = dict(series_labels(conn, ids))
    return [json.dumps(found[i], ensure_ascii=False, separators=(",", ":")) for i in ids]


def _stored_points(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return sum(
            conn.execute(sql).fetchone()[0]
            for sql in (
                "SELECT coalesce(sum(n), 0) FROM head",  # float samples, not yet in chunks
                "SELECT count(*) FROM histograms",
                "SELECT count(*) FROM exemplars",
            )
        ) + sum(n for *_, n, _ in stored_chunks(conn))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("case", "labels", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_label_sets_are_400_cold_and_warm(
    tmp_path: Path, shape: str, case: str, labels: list[Label], message: str
) -> None:
    body = snappy.compress(SHAPES[shape](labels))
    clear_caches()
    with SQLiteStorage(str(tmp_path / "db")) as store:
        for attempt in ("cold", "warm"):
            resp = handle_write(body, RW1, store)
            assert resp.status == 400, (attempt, resp.body)
            assert isinstance(resp.body, bytes)
            text = resp.body.decode()
            assert text.startswith("series #0 {") and message in text, text
            assert len(text) < 300
    assert _stored_series(tmp_path / "db") == []


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("case", "labels"), VALID, ids=[c[0] for c in VALID])
def test_valid_label_sets_are_stored(
    tmp_path: Path, shape: str, case: str, labels: list[Label]
) -> None:
    body = snappy.compress(SHAPES[shape](labels))
    clear_caches()
    with SQLiteStorage(str(tmp_path / "db")) as store:
        assert handle_write(body, RW1, store).status == 204  # cold
        assert handle_write(body, RW1, store).status == 204  # warm: cached label block
    assert len(_stored_series(tmp_path / "db")) == 1


def test_the_message_names_the_series_and_stays_short(tmp_path: Path) -> None:
    good = TimeSeries([UP, Label("job", "a")], [Sample(1.0, T0)])
    long = "v" * 10_000
    bad = TimeSeries([UP, Label("job", long), Label("job", long)], [Sample(1.0, T0)])
    body = snappy.compress(encode(WriteRequest([good, good, bad])))
    with SQLiteStorage(str(tmp_path / "db")) as store:
        resp = handle_write(body, RW1, store)
    assert resp.status == 400
    assert isinstance(resp.body, bytes)
    text = resp.body.decode()
    assert text.startswith("series #2 {__name__='up', job='vvvv")
    assert text.rstrip().endswith("label name 'job' appears twice")
    assert len(text) < 300
    assert _stored_series(tmp_path / "db") == []  # refused whole


def _read_request() -> bytes:
    query = Query(T0 - 60_000, T0, [LabelMatcher(MatchType.EQ, "__name__", "up")])
    return encode(ReadRequest([query], [ResponseType.SAMPLES]))


def test_a_read_request_posted_to_the_write_handler_stores_nothing(tmp_path: Path) -> None:
    with SQLiteStorage(str(tmp_path / "db")) as store:
        resp = handle_write(snappy.compress(_read_request()), RW1, store)
    assert resp.status == 400
    assert resp.body == b"series #0 {}: no labels\n"
    assert _stored_series(tmp_path / "db") == []
    assert _stored_points(tmp_path / "db") == 0


# ----------------------------------------------------------- through promwire serve


def _post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {**RW1, "X-Prometheus-Remote-Write-Version": "0.1.0"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextmanager
def _serve(db: Path, server: str) -> Iterator[int]:
    with serve_process(db, server) as served:
        yield served.port


@pytest.mark.parametrize("server", ["uvicorn", "wsgiref"])
def test_invalid_label_sets_through_promwire_serve(tmp_path: Path, server: str) -> None:
    db = tmp_path / "db"
    dup = encode(
        WriteRequest([TimeSeries([UP, Label("a", "1"), Label("a", "2")], [Sample(1, T0)])])
    )
    good = encode(WriteRequest([TimeSeries([UP, Label("job", "ok")], [Sample(1.0, T0)])]))
    with _serve(db, server) as port:
        for _ in range(2):
            status, text = _post(port, "/api/v1/write", snappy.compress(_read_request()))
            assert (status, text) == (400, b"series #0 {}: no labels\n")
            status, text = _post(port, "/api/v1/write", snappy.compress(dup))
            assert status == 400
            assert (
                text == b"series #0 {__name__='up', a='1', a='2'}: label name 'a' appears twice\n"
            )
        assert _post(port, "/api/v1/write", snappy.compress(good))[0] == 204
        # read back: the one good series, nothing else
        query = Query(0, T0 + 1, [LabelMatcher(MatchType.RE, "__name__", ".*")])
        read = encode(ReadRequest([query], [ResponseType.SAMPLES]))
        status, answer = _post(port, "/api/v1/read", snappy.compress(read))
        assert status == 200
    assert _stored_series(db) == ['[["__name__","up"],["job","ok"]]']
    assert _stored_points(db) == 1
    results = decode(ReadResponse, snappy.decompress(answer)).results
    assert [ts.labels for ts in results[0].timeseries] == [[UP, Label("job", "ok")]]


@pytest.mark.parametrize(
    ("refs", "problem"),
    [
        ([], "no labels"),
        ([1, 0], "no label has a value"),
        ([1, 2, 1, 3], "label name '__name__' appears twice"),
    ],
)
def test_remote_write_2_refuses_the_same_series(
    tmp_path: Path, refs: list[int], problem: str
) -> None:
    """The same rule for 2.0, as a partial write: the bad series refused, the good one stored."""
    symbols = ["", "__name__", "up", "down"]
    request = v2.Request(
        symbols,
        [
            v2.TimeSeries(labels_refs=refs, samples=[v2.Sample(1.0, T0)]),
            v2.TimeSeries(labels_refs=[1, 2], samples=[v2.Sample(2.0, T0)]),
        ],
    )
    headers = {**RW1, "Content-Type": v2.negotiation.CONTENT_TYPE_V2}
    with SQLiteStorage(str(tmp_path / "db")) as store:
        resp = handle_write(snappy.compress(encode(request)), headers, store)
    assert resp.status == 400
    assert isinstance(resp.body, bytes)
    assert "series #0 {" in resp.body.decode() and problem in resp.body.decode()
    assert ("X-Prometheus-Remote-Write-Samples-Written", "1") in resp.headers
    assert _stored_series(tmp_path / "db") == ['[["__name__","up"]]']


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(Label, st.sampled_from(["", "a", "b", "__name__"]), st.sampled_from(["", "x"])),
        max_size=4,
    )
)
def test_the_decoder_caches_exactly_the_valid_label_sets(labels: list[Label]) -> None:
    """A cached block skips the handler's check, so the two must agree on validity."""
    clear_caches()
    raw = encode(WriteRequest([TimeSeries(labels, [Sample(1.0, T0)])]))
    unchecked: list[int] = []
    decode_write_request(raw, unchecked=unchecked)
    cached = cache_info()["blocks"] == 1
    assert cached == (labels != [] and label_set_problem(labels) is None)
    unchecked.clear()
    decode_write_request(raw, unchecked=unchecked)  # warm: only an uncached block is checked
    assert unchecked == ([] if cached else [0])
