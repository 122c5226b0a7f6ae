"""What the committed old-format files hold, and how they were made.

``formats/promwire-v2.db`` is a file of storage format 2 (promwire before the
symbol table), written by that version's own ``SQLiteStorage`` with
:func:`v2_requests` (``python -m tests.support.old_formats OUT`` run against a
checkout of that version) and copied while the store was open, so it also
holds head records not yet compacted. :func:`expected_v2` is what a read of
it must return, bit for bit.

``formats/promwire-v3.db`` is a file of storage format 3 (before sealed
ranges and histogram chunks), written the same way by commit ba5aabe with
:func:`v3_requests` (``PYTHONPATH=<that checkout> python
tests/support/old_formats.py OUT v3``): the v2 requests, one series over
five hours (three 2-hour ranges) and one of native histograms (rows in
format 3). :func:`expected_v3` and :func:`v3_histograms` are what a read of
it must return.

``formats/promwire-v4.db`` is a file of storage format 4 (packs with ``u32``
ids and ``u16`` offsets), written by commit 045d97b with :func:`v4_write`
(``PYTHONPATH=<that checkout> python tests/support/old_formats.py OUT v4``)
in 1 KiB pages, so that 24 series over five hours (three 2-hour ranges) make
several packs per range, some continued, and own rows: three noisy series too
big for a pack, and one series sealed again after an out-of-order sample.
:func:`expected_v4` is what a read of it must return; ``V4_ANSWERS`` the
digests :func:`answers` gave of that commit's reads of the file.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import struct
import sys
from pathlib import Path

from promwire import (
    BucketSpan,
    Exemplar,
    Histogram,
    Label,
    MetricMetadata,
    MetricType,
    Sample,
    TimeSeries,
    WriteRequest,
)

V2_FILE = Path(__file__).parent / "formats" / "promwire-v2.db"
STEP = 15_000
T0 = 1_700_000_000_000
STALE_BITS = 0x7FF0000000000002


def _float(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def _series_labels(i: int) -> list[Label]:
    labels = [
        Label("__name__", f"m{i % 2}"),
        Label("job", "j"),
        Label("s", str(i)),
        Label("héllo", "wörld" if i % 3 else "x"),
    ]
    return sorted(labels, key=lambda lb: lb.name)


def _value(i: int, k: int) -> float:
    if k == 7:
        return -0.0
    if k == 11 and i == 1:
        return _float(STALE_BITS)
    if i == 2:
        return math.sin(k) * 1e3
    return float(k * (i + 1))


def v2_requests() -> list[WriteRequest]:
    """Six series of 400 samples in requests of 50 (the last ones stay in the head),
    one with exemplars, plus metadata."""
    out = []
    for lo in range(0, 400, 50):
        series = []
        for i in range(6):
            ts = TimeSeries(
                labels=_series_labels(i),
                samples=[Sample(_value(i, k), T0 + k * STEP) for k in range(lo, lo + 50)],
            )
            if i == 0:
                ts.exemplars = [Exemplar([Label("trace_id", f"t{lo}")], 0.5, T0 + lo * STEP)]
            series.append(ts)
        out.append(WriteRequest(timeseries=series))
    out[0].metadata = [MetricMetadata(MetricType.COUNTER, "m0", "help", "")]
    return out


def expected_v2() -> dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]:
    """Label set -> [(timestamp, value bits)] of every float sample in the v2 file."""
    return {
        tuple((lb.name, lb.value) for lb in _series_labels(i)): [
            (T0 + k * STEP, struct.unpack("<Q", struct.pack("<d", _value(i, k)))[0])
            for k in range(400)
        ]
        for i in range(6)
    }


V3_FILE = Path(__file__).parent / "formats" / "promwire-v3.db"
_LONG = [Label("__name__", "long"), Label("job", "j")]
_HIST = [Label("__name__", "hist"), Label("job", "j")]


def v3_histograms() -> list[Histogram]:
    """Integer counter histograms every 15 s for 50 minutes, one bucket more
    every 20 (so the layout changes)."""
    out = []
    for k in range(200):
        width = 3 + k // 20
        deltas = [k + 1] + [1] * (width - 1)
        out.append(
            Histogram(
                count_int=sum(_absolute(deltas)),
                sum=float(k) * 1.5,
                schema=0,
                zero_threshold=1e-128,
                zero_count_int=k,
                positive_spans=[BucketSpan(0, width)],
                positive_deltas=deltas,
                timestamp=T0 + k * STEP,
            )
        )
    return out


def _absolute(deltas: list[int]) -> list[int]:
    out, acc = [], 0
    for d in deltas:
        acc += d
        out.append(acc)
    return out


def v3_requests() -> list[WriteRequest]:
    """The v2 requests, a series of five hours in requests of 100 samples, and the histograms."""
    out = v2_requests()
    for lo in range(0, 1200, 100):
        pts = [Sample(float(k % 17), T0 + k * STEP) for k in range(lo, lo + 100)]
        out.append(WriteRequest([TimeSeries(labels=_LONG, samples=pts)]))
    out.append(WriteRequest([TimeSeries(labels=_HIST, histograms=v3_histograms())]))
    return out


def expected_v3() -> dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]:
    """:func:`expected_v2` and the five-hour series."""
    long = [(T0 + k * STEP, _bits(float(k % 17))) for k in range(1200)]
    return {**expected_v2(), tuple((lb.name, lb.value) for lb in _LONG): long}


def _bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


V4_FILE = Path(__file__).parent / "formats" / "promwire-v4.db"
V4_PAGE = 1024
_RANGE = 2 * 60 * 60 * 1000
V4_T0 = T0 // _RANGE * _RANGE + 30 * 60 * 1000  # half an hour into a range
V4_SAMPLES = 5 * 60 * 4  # five hours at 15 s
V4_LATE = (1, V4_T0 + 100 * STEP + 7_000, 0.5)  # series, time, value: out of order


def _v4_value(i: int, k: int) -> float:
    if i % 8 == 2:  # noisy: too big for half a 1 KiB pack
        return float((k * 7919 + i) % 5)
    if i % 2:
        return float(k // 40 * (i + 1))  # a counter rising every 10 minutes
    return float(i)  # constant


def _v4_labels(i: int) -> list[Label]:
    return [Label("__name__", "pk"), Label("s", f"{i:02d}")]


def v4_write(store: object) -> None:  # pragma: no cover - run once, old version
    """Write the v4 series into ``store`` (an open ``SQLiteStorage``), 40 samples a request."""
    for lo in range(0, V4_SAMPLES, 40):
        store.write(  # type: ignore[attr-defined]
            None,
            WriteRequest(
                [
                    TimeSeries(
                        labels=_v4_labels(i),
                        samples=[
                            Sample(_v4_value(i, k), V4_T0 + k * STEP) for k in range(lo, lo + 40)
                        ],
                    )
                    for i in range(24)
                ]
            ),
        )


def expected_v4() -> dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]:
    """Label set -> [(timestamp, value bits)] of every sample in the v4 file."""
    out = {
        tuple((lb.name, lb.value) for lb in _v4_labels(i)): [
            (V4_T0 + k * STEP, _bits(_v4_value(i, k))) for k in range(V4_SAMPLES)
        ]
        for i in range(24)
    }
    i, t, v = V4_LATE
    key = tuple((lb.name, lb.value) for lb in _v4_labels(i))
    out[key] = sorted([*out[key], (t, _bits(v))])
    return out


#: :func:`answers` of the v4 file read by commit 045d97b.
V4_ANSWERS: dict[str, str] = {
    "all samples": ("bc34dfd34699c9881b9b46d5bd8be39c643b4826d6723c67d75f3f35b87c21df"),
    "all chunks": ("befc252ff0da8e7bdb83f975e6153f562155e55ce93e1c6be01e8eda3759145d"),
    "all encoded": ("ad37747d6c8897dd473a0d193c9ac54e2442c37404de69995dcd20bc3500a388"),
    "window samples": ("a8340e9c55e2bb7305c2049c3f5b311533cee1915424ff9521253391ccbf4a61"),
    "window chunks": ("e079d3ed690255bdbdad2e8239ea64a0d267980b2ef9557c023057c4d2e9a1ab"),
    "window encoded": ("07cfa0585d403944ef564ecc015b028b02bc554fe65049278c9d2c478b445994"),
}


def answers(store: object) -> dict[str, str]:
    """SHA-256 digests of what ``store`` answers, for the whole v4 file and a
    window cutting its ranges: samples (process_query), chunks
    (process_query_chunks) and the framed bytes of process_query_encoded."""
    from promwire import LabelMatcher, MatchType, Query
    from promwire.chunks.streamed import stream_chunked_response

    out = {}
    matchers = [LabelMatcher(MatchType.EQ, "__name__", "pk")]
    windows = {"all": (0, 1 << 62), "window": (V4_T0 + 100 * STEP, V4_T0 + 700 * STEP)}
    for name, (lo, hi) in windows.items():
        query = Query(lo, hi, matchers)
        samples = hashlib.sha256()
        for ts in store.process_query(None, query).timeseries:  # type: ignore[attr-defined]
            samples.update(repr([(lb.name, lb.value) for lb in ts.labels]).encode())
            samples.update(repr([(s.timestamp, _bits(s.value)) for s in ts.samples]).encode())
        chunks = hashlib.sha256()
        for cs in store.process_query_chunks(None, query):  # type: ignore[attr-defined]
            chunks.update(repr([(lb.name, lb.value) for lb in cs.labels]).encode())
            for c in cs.chunks:
                chunks.update(repr((c.min_time_ms, c.max_time_ms, int(c.type))).encode() + c.data)
        encoded = hashlib.sha256()
        for frame in stream_chunked_response(
            [(0, store.process_query_encoded(None, query))]  # type: ignore[attr-defined]
        ):
            encoded.update(frame)
        out[f"{name} samples"] = samples.hexdigest()
        out[f"{name} chunks"] = chunks.hexdigest()
        out[f"{name} encoded"] = encoded.hexdigest()
    return out


def _main_v4(out: str) -> None:  # pragma: no cover - run once, old version
    from promwire.stores.sqlite import SQLiteStorage

    work = out + ".work"
    with sqlite3.connect(work) as conn:  # small pages: several packs a range
        conn.execute(f"PRAGMA page_size={V4_PAGE}")
        conn.execute("CREATE TABLE x (a)")
        conn.execute("DROP TABLE x")
    with SQLiteStorage(work) as store:
        v4_write(store)
    # Reopened: an out-of-order sample unseals series 1 of the first range,
    # whose next sealing (on close) gives it own rows.
    with SQLiteStorage(work, out_of_order_window=6 * 3600) as store:
        i, t, v = V4_LATE
        store.write(None, WriteRequest([TimeSeries(labels=_v4_labels(i), samples=[Sample(v, t)])]))
    with SQLiteStorage(work) as store:
        print(answers(store))
    dest = sqlite3.connect(out)
    src = sqlite3.connect(work)
    src.backup(dest)
    src.close()
    dest.execute("PRAGMA journal_mode=DELETE")
    dest.execute("VACUUM")  # no free pages in the committed file
    dest.close()


def main(out: str, version: str = "v2") -> None:  # pragma: no cover - run once, old version
    from promwire.stores.sqlite import SQLiteStorage

    store = SQLiteStorage(out + ".work")
    for request in v3_requests() if version == "v3" else v2_requests():
        store.write(None, request)
    store.compact()  # chunks for what is complete; the rest stays in the head
    dest = sqlite3.connect(out)
    src = sqlite3.connect(out + ".work")
    src.backup(dest)
    src.close()
    dest.execute("PRAGMA journal_mode=DELETE")
    dest.close()
    store.close()


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[2:] == ["v4"]:
        _main_v4(sys.argv[1])
    else:
        main(*sys.argv[1:])
