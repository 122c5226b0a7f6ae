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
"""

from __future__ import annotations

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
    main(*sys.argv[1:])
