"""prometheus/compliance's remote-write receiver cases against a real ``promwire serve``.

Every row of ``tests/compliance_cases.CASES`` (the suite's 205 cases, MUST and
SHOULD variants) is sent to one ``promwire serve`` process, each in its own
6-hour time window, and must:

1. pass the suite's own check of the answer (``go_verdict``, its
   ``validateResponse``);
2. get promwire's exact answer: 204 when everything is kept, else 400 naming
   each refused series; for 2.0, Written headers equal to what was kept (415
   and undecodable bodies: all 0); for 1.0 no Written headers;
3. leave the store holding exactly what was acknowledged: the window's series,
   samples (by bits) and histograms read back through remote read (SAMPLES),
   exemplars and metadata read from the same SQLite file.
"""

from __future__ import annotations

import http.client
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from promwire import LabelMatcher, MatchType, Query, ResponseType, encode, v2
from promwire.client.reader import RemoteReadClient
from promwire.stores.sqlite import SQLiteStorage
from promwire.v2.convert import family_of
from tests.compliance_cases import CASES, HOUR, Case, Expected, go_verdict, http_request
from tests.support.serve_process import Served, serve_process

BASE = 1_750_000_000_000  # ms; case i uses [BASE + i*WINDOW - 3h, BASE + i*WINDOW + 1h]
WINDOW = 6 * HOUR
ALL = [LabelMatcher(MatchType.RE, "__name__", ".*")]

Key = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, SQLiteStorage]]:
    db = tmp_path_factory.mktemp("compliance") / "store.db"
    with serve_process(db, None) as server, SQLiteStorage(str(db)) as store:
        yield server, store


def _post(port: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/v1/write", body, headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
    finally:
        conn.close()


def _bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def _key(labels: Any) -> Key:
    pairs = labels.items() if isinstance(labels, dict) else ((lb.name, lb.value) for lb in labels)
    return tuple(sorted((n, v) for n, v in pairs if v))


def _expected_status(case: Case, expected: Expected | None) -> int:
    if case.params.exact_code:
        return case.params.exact_code
    if expected is None:  # a damaged body
        return 400
    return 204 if case.v1 or expected.all_kept else 400


def _stored_points(port: int, now: int) -> dict[Key, tuple[list[tuple[int, int]], list[bytes]]]:
    client = RemoteReadClient(
        f"http://127.0.0.1:{port}/api/v1/read", response_types=[ResponseType.SAMPLES]
    )
    out: dict[Key, tuple[list[tuple[int, int]], list[bytes]]] = {}
    for ts in client.query(ALL, now - 3 * HOUR, now + HOUR):
        out[_key(ts.labels)] = (
            [(s.timestamp, _bits(s.value)) for s in ts.samples],
            [encode(h) for h in ts.histograms],
        )
    return out


def _kept_points(expected: Expected) -> dict[Key, tuple[list[tuple[int, int]], list[bytes]]]:
    merged: dict[Key, tuple[set[tuple[int, int]], dict[int, bytes]]] = {}
    for s in expected.series:
        if s.refused is not None or not (s.samples or s.histograms):
            continue
        samples, histograms = merged.setdefault(_key(s.labels), (set(), {}))
        samples.update((p.timestamp, _bits(p.value)) for p in s.samples)
        histograms.update((h.timestamp, encode(v2.histogram_to_v1(h))) for h in s.histograms)
    return {
        k: (sorted(samples), [histograms[t] for t in sorted(histograms)])
        for k, (samples, histograms) in merged.items()
    }


def _stored_exemplars(store: SQLiteStorage, now: int) -> set[tuple[Key, int, int, Key]]:
    return {
        (_key(ts.labels), e.timestamp, _bits(e.value), _key(e.labels))
        for ts in store.exemplars(ALL, now - 3 * HOUR, now + HOUR)
        for e in ts.exemplars
    }


def _kept_exemplars(expected: Expected) -> set[tuple[Key, int, int, Key]]:
    return {
        (_key(s.labels), e.timestamp, _bits(e.value), _key(labels))
        for s in expected.series
        if s.refused is None
        for e, labels in zip(s.exemplars, s.exemplar_labels, strict=True)
    }


def _check_metadata(store: SQLiteStorage, expected: Expected) -> None:
    stored = {md.metric_family_name: md for md in store.metadata()}
    seen: set[str] = set()
    for s in expected.series:
        md = s.metadata
        # stored under the series' family (x_bucket of a histogram x, build_info of an
        # info metric build: promwire.v2.convert.family_of), as a v1 sender keys it
        name = s.labels.get("__name__", "")
        if md is not None:
            name = family_of(name, int(md.type)) if name else name
        if s.refused is not None or md is None or name in seen:
            continue
        if not (md.type or md.help or md.unit):
            continue  # empty metadata says nothing: nothing to store
        seen.add(name)
        got = stored[name]
        assert (int(got.type), got.help, got.unit) == (int(md.type), md.help, md.unit), name


def test_the_table_is_the_whole_suite() -> None:
    """39 Go tests, 205 cases, as the suite counts them (the issue's numbers)."""
    assert len(CASES) == 205
    assert len({c.name for c in CASES}) == 205
    assert len({c.test for c in CASES}) == 39
    assert {c.level for c in CASES} == {"MUST", "SHOULD", "MAY"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_receiver_case(case: Case, served: tuple[Served, SQLiteStorage]) -> None:
    server, store = served
    now = BASE + CASES.index(case) * WINDOW
    built = http_request(case, now)
    status, headers, text = _post(server.port, built.headers, built.body)
    counts = [
        headers.get(f"x-prometheus-remote-write-{what}-written")
        for what in ("samples", "histograms", "exemplars")
    ]
    s, h, e = (int(c) if c is not None else 0 for c in counts)

    # 1. The suite's own check of the answer.
    assert go_verdict(case.params, status, (s, e, h)) is None, (status, text)

    # 2. promwire's exact answer.
    expected = built.expected
    assert status == _expected_status(case, expected), text
    if case.v1:
        assert counts == [None, None, None]
    else:
        kept = expected.written if expected is not None else (0, 0, 0)
        assert (s, h, e) == kept, text
    if expected is not None and status == 400:
        for series in expected.series:
            if series.refused is not None:
                assert f"series #{series.index} " in text and series.refused in text, text
            if series.refused_points:
                assert f"series #{series.index} " in text and "invalid histogram" in text, text

    # 3. What was acknowledged is stored, exactly (and nothing else in the window).
    kept_points = _kept_points(expected) if expected is not None and status != 415 else {}
    assert _stored_points(server.port, now) == kept_points
    if expected is not None and status != 415:
        assert _stored_exemplars(store, now) == _kept_exemplars(expected)
        _check_metadata(store, expected)
    else:
        assert not _stored_exemplars(store, now)


def test_every_value_kind_was_stored(served: tuple[Served, SQLiteStorage]) -> None:
    """The special floats (stale marker, NaN, +-Inf) survive by bits: a guard that the
    read-back above compares bits, not floats (NaN != NaN)."""
    _, store = served
    bits = {
        _bits(s.value)
        for ts in store.process_query(
            None, Query(BASE - 3 * HOUR, BASE + len(CASES) * WINDOW, ALL)
        ).timeseries
        for s in ts.samples
    }
    assert {0x7FF0000000000002, 0x7FF8000000000001, _bits(float("inf"))} <= bits


def test_cases_run_in_their_own_windows() -> None:
    """The windows of two cases never overlap (the read-back of one cannot see another)."""
    offsets = [
        o
        for c in CASES
        if c.opts is not None
        for o in [s.offset for s in c.opts.samples]
        + [x.offset for x in c.opts.exemplars]
        + [x.offset for x in c.opts.histograms]
    ]
    assert min(offsets) >= -3 * HOUR and max(offsets) <= HOUR
    assert 4 * HOUR < WINDOW
