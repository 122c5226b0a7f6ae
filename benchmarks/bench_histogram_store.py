"""Bytes per native histogram in the SQLite store: one row each (before) vs chunks (now).

    python3 -m benchmarks.bench_histogram_store [--series 1000] [--histograms 480]

Writes the same histograms, in one process, (a) as rows of the ``histograms``
table alone - how the store kept every histogram before they were chunked -
and (b) through :class:`~promwire.stores.sqlite.SQLiteStorage`, which
compacts them into ``histogram_chunks`` (closing flushes the rest). Each
series is a counter histogram as a Prometheus client exposes one: a classic
exponential layout (schema 3, 10 to 20 buckets in one or two spans), 15 s
scrapes with a little jitter, counts growing, reset hints UNKNOWN. Prints
per histogram the payload bytes (the blobs) and the bytes of the table's
pages (SQLite's ``dbstat``: keys, headers and free space included), checks
that a read gives back every histogram exactly, and prints CPU times (one
process, so the ratios hold on a shared machine): the store's writes apart
from the histogram compaction, the compaction, and reading everything back:

* chunks, cold (the decoded-chunk cache emptied first), through the store's
  ``process_query`` as a remote read does;
* rows, decoding every row as a read did before chunks - both thrown away
  one by one (how the first figures were taken) and kept, as a read keeps
  them (keeping 480,000 objects costs the garbage collector its share);
* the stored chunks decoded alone, by the fast decoder (what a read uses)
  and by the generic one (the only one before: the before/after ratio);
* a warm re-read of as many series as the cache holds.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promwire import (
    BucketSpan,
    Histogram,
    Label,
    LabelMatcher,
    MatchType,
    Query,
    TimeSeries,
    WriteRequest,
    encode,
)
from promwire.chunks.histogram import _decode_generic, decode_histogram_chunk
from promwire.chunks.histogram_layout import CounterResetHeader
from promwire.codec.decoder import decode
from promwire.stores import sqlite as sqlite_store
from promwire.stores.sqlite import SQLiteStorage
from promwire.stores.sqlite_histograms import DECODED_HISTOGRAMS

#: The rows-only layout: the ``histograms`` table as the store defines it.
ROWS_DDL = """
CREATE TABLE histograms (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID
"""
START = 1_795_579_200_000  # a 2-hour boundary
BATCH = 30  # histograms per series per write request (a remote-write batch's worth)


def series(n: int, seed: int) -> list[Histogram]:
    """One counter histogram's ``n`` samples (see the module docstring)."""
    rng = random.Random(seed)
    width = rng.randint(10, 20)
    split = rng.randint(width // 2, width)
    spans = [BucketSpan(rng.randint(-4, 4), split)]
    if split < width:
        spans.append(BucketSpan(rng.randint(1, 3), width - split))
    rate = rng.choice([1, 2, 5, 20, 100])
    buckets = [0] * width
    zero = 0
    total = 0.0
    t = START + rng.randint(0, 14_999)
    out = []
    for _ in range(n):
        t += 15_000 + rng.randint(-20, 20)
        for k in range(width):  # most observations land in the middle buckets
            weight = max(1, width // 2 - abs(k - width // 2))
            buckets[k] += rng.randint(0, rate * weight)
        zero += rng.randint(0, 1)
        total += rng.uniform(0, rate * 50.0)
        deltas = [b - a for a, b in zip([0, *buckets], buckets, strict=False)]
        out.append(
            Histogram(
                count_int=sum(buckets) + zero,
                zero_count_int=zero,
                sum=round(total, 3),
                schema=3,
                zero_threshold=2.0**-128,
                positive_spans=list(spans),
                positive_deltas=deltas,
                timestamp=t,
            )
        )
    return out


def table_bytes(path: Path, table: str) -> tuple[int, int]:
    """(payload bytes of the table's blobs, bytes of its pages) in the file at ``path``."""
    with sqlite3.connect(path) as db:
        blob = (
            "length(data) + coalesce(length(extra), 0)" if table != "histograms" else "length(data)"
        )
        payload = db.execute(f"SELECT coalesce(sum({blob}), 0) FROM {table}").fetchone()[0]
        pages = db.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?", (table,))
        return int(payload), int(pages.fetchone()[0])


class _Timed:
    """Wraps the store's histogram compaction to add up its CPU time."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - t0


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, default=1000)
    p.add_argument("--histograms", type=int, default=480, help="per series")
    args = p.parse_args(argv)
    data = {f"pw_hist_{i}": series(args.histograms, i) for i in range(args.series)}
    n = args.series * args.histograms
    with tempfile.TemporaryDirectory() as tmp:
        rows_db = Path(tmp) / "rows.db"
        with sqlite3.connect(rows_db) as db:
            db.execute("PRAGMA page_size=16384")
            db.execute(ROWS_DDL)
            db.executemany(
                "INSERT INTO histograms VALUES (?, ?, ?)",
                (
                    (sid, h.timestamp, encode(h))
                    for sid, hs in enumerate(data.values(), 1)
                    for h in hs
                ),
            )
        with sqlite3.connect(rows_db) as db:
            t0 = time.process_time()
            for (blob,) in db.execute("SELECT data FROM histograms ORDER BY series_id, ts"):
                decode(Histogram, blob)
            rows_read = time.process_time() - t0
            t0 = time.process_time()
            kept = [
                decode(Histogram, blob)
                for (blob,) in db.execute("SELECT data FROM histograms ORDER BY series_id, ts")
            ]
            rows_kept = time.process_time() - t0
            del kept
        chunk_db = Path(tmp) / "chunks.db"
        # sqlite.py imports compact_histograms: the benchmark times it there
        timed = _Timed(sqlite_store.compact_histograms)  # type: ignore[attr-defined]
        sqlite_store.compact_histograms = timed  # type: ignore[attr-defined]
        t0 = time.process_time()
        with SQLiteStorage(chunk_db, synchronous="OFF") as store:
            for lo in range(0, args.histograms, BATCH):
                store.write(
                    None,
                    WriteRequest(
                        [
                            TimeSeries([Label("__name__", name)], histograms=hs[lo : lo + BATCH])
                            for name, hs in data.items()
                        ]
                    ),
                )
        chunks_cpu = time.process_time() - t0 - timed.seconds
        sqlite_store.compact_histograms = timed.fn  # type: ignore[attr-defined]
        everything = Query(0, 1 << 62, [LabelMatcher(MatchType.RE, "__name__", "pw_hist_.*")])
        with SQLiteStorage(chunk_db) as store:
            DECODED_HISTOGRAMS.clear()
            t0 = time.process_time()
            got = store.process_query(None, everything).timeseries
            read_cpu = time.process_time() - t0
            left = int(store.counts()["histograms"])
            # A warm re-read: as many whole series as the cache holds.
            few = max(1, min(args.series, DECODED_HISTOGRAMS.cache.max_weight // args.histograms))
            some = Query(
                0,
                1 << 62,
                [
                    LabelMatcher(
                        MatchType.RE, "__name__", f"pw_hist_({'|'.join(map(str, range(few)))})"
                    )
                ],
            )
            DECODED_HISTOGRAMS.clear()
            t0 = time.process_time()
            store.process_query(None, some)
            some_cold = time.process_time() - t0
            t0 = time.process_time()
            store.process_query(None, some)
            some_warm = time.process_time() - t0
        with sqlite3.connect(chunk_db) as db:
            blobs = [
                bytes(b)
                for (b,) in db.execute(
                    "SELECT data FROM histogram_chunks WHERE encoding = 2 ORDER BY series_id, maxt"
                )
            ]
        t0 = time.process_time()
        for b in blobs:
            decode_histogram_chunk(b)
        fast_cpu = time.process_time() - t0
        t0 = time.process_time()
        for b in blobs:
            _decode_generic(b, (b[0] << 8) | b[1], CounterResetHeader(b[2] >> 6))
        generic_cpu = time.process_time() - t0
        exact = {ts.labels[0].value: [encode(h) for h in ts.histograms] for ts in got}
        if exact != {name: [encode(h) for h in hs] for name, hs in data.items()} or left != n:
            raise SystemExit("read-back differs from what was written")
        before = table_bytes(rows_db, "histograms")
        after = table_bytes(chunk_db, "histogram_chunks")
        head = table_bytes(chunk_db, "histograms")
    print(f"{args.series} series x {args.histograms} histograms = {n:,} (all read back exactly)")
    print()
    print("| at rest | payload B/histogram | table pages B/histogram |")
    print("|---|---|---|")
    print(f"| rows (before) | {before[0] / n:.1f} | {before[1] / n:.1f} |")
    print(f"| chunks (now) | {after[0] / n:.1f} | {(after[1] + head[1]) / n:.1f} |")
    print()
    print(f"pages: {before[1] / max(after[1] + head[1], 1):.1f}x smaller")
    us = 1e6 / n
    print(
        f"CPU: store writes {chunks_cpu:.1f} s, histogram compaction {timed.seconds:.1f} s "
        f"({timed.seconds * us:.0f} us a histogram)"
    )
    print()
    print("| reading all back (CPU, one process) | s | us/histogram |")
    print("|---|---|---|")
    for what, sec in (
        ("chunks: process_query, cold", read_cpu),
        ("rows: decode each, thrown away", rows_read),
        ("rows: decode each, kept (as a read)", rows_kept),
        ("chunks alone: fast decoder", fast_cpu),
        ("chunks alone: generic decoder (before)", generic_cpu),
    ):
        print(f"| {what} | {sec:.2f} | {sec * us:.1f} |")
    k = few * args.histograms
    print()
    print(
        f"{few} series ({k:,} histograms, what the cache holds): process_query "
        f"cold {some_cold:.2f} s ({some_cold / k * 1e6:.1f} us), "
        f"warm {some_warm:.2f} s ({some_warm / k * 1e6:.1f} us)"
    )
    return {
        "read": read_cpu,
        "rows_read": rows_read,
        "rows_kept": rows_kept,
        "fast_decode": fast_cpu,
        "generic_decode": generic_cpu,
        "compaction": timed.seconds,
        "rows_payload": before[0] / n,
        "rows_pages": before[1] / n,
        "chunks_payload": after[0] / n,
        "chunks_pages": (after[1] + head[1]) / n,
    }


if __name__ == "__main__":
    main()
