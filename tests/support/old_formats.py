"""What the committed old-format files hold, and how they were made.

``formats/promwire-v2.db`` is a file of storage format 2 (promwire before the
symbol table), written by that version's own ``SQLiteStorage`` with
:func:`v2_requests` (``python -m tests.support.old_formats OUT`` run against a
checkout of that version) and copied while the store was open, so it also
holds head records not yet compacted. :func:`expected_v2` is what a read of
it must return, bit for bit.
"""

from __future__ import annotations

import math
import sqlite3
import struct
import sys
from pathlib import Path

from promwire import Exemplar, Label, MetricMetadata, MetricType, Sample, TimeSeries, WriteRequest

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


def main(out: str) -> None:  # pragma: no cover - run once against the old version
    from promwire.stores.sqlite import SQLiteStorage

    store = SQLiteStorage(out + ".work")
    for request in v2_requests():
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
    main(sys.argv[1])
