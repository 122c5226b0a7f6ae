"""Benchmark promwire's native histogram chunk codecs beside its XOR codec.

    python3 benchmarks/bench_histogram.py [--histograms N] [--repeat R] [--smoke]

Prints decode and encode rates in histograms per CPU second (best of
--repeat) for HISTOGRAM and FLOAT_HISTOGRAM chunks of 120 histograms each,
on fixed-seed workloads of 15 s scrapes with millisecond jitter, and the XOR
codec's samples per CPU second on the same timestamps (one float per sample)
for scale: one histogram carries a count, a zero count, a sum and every
bucket, so buckets/s is printed too. ``--smoke`` runs a tiny workload and
checks every chunk decodes back to its histograms (no timing meaning).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promwire import BucketSpan, Histogram
from promwire.chunks.float_histogram import (
    decode_float_histogram_chunk,
    encode_float_histogram_chunk,
)
from promwire.chunks.histogram import (
    decode_histogram_chunk,
    encode_histogram_chunk,
)
from promwire.chunks.xor import decode_xor, encode_xor

PER_CHUNK = 120


def _rate(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Items per second of CPU time (process time: robust on a shared machine), best of runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return n / max(best, 1e-9)


def workload(n: int, buckets: int, *, is_float: bool, seed: int = 1) -> list[list[Histogram]]:
    """Chunks of a counter histogram: ``buckets`` positive buckets in two spans."""
    rng = random.Random(seed)
    counts = [0] * buckets
    half = buckets // 2
    spans = [BucketSpan(-3, half), BucketSpan(2, buckets - half)]
    t = 1_795_580_000_000
    out: list[list[Histogram]] = []
    for i in range(n):
        t += 15_000 + rng.randint(-5, 5)
        for k in range(buckets):
            counts[k] += rng.choice((0, 0, 1, 2, 3, 10))
        total = sum(counts)
        h = Histogram(sum=total * 0.0137, schema=3, zero_threshold=2.0**-128, timestamp=t)
        h.positive_spans = list(spans)
        if is_float:
            h.count_float, h.zero_count_float = float(total), 0.0
            h.positive_counts = [float(c) for c in counts]
        else:
            h.count_int, h.zero_count_int = total, 0
            h.positive_deltas = [b - a for a, b in zip([0, *counts], counts, strict=False)]
        if i % PER_CHUNK == 0:
            out.append([])
        out[-1].append(h)
    return out


def bench(n: int, repeat: int) -> None:
    print(f"python {sys.version.split()[0]}; {n} histograms per workload in {PER_CHUNK}-chunks;")
    print("rates per CPU second (best of --repeat); bytes/hist = chunk size per histogram")
    for buckets in (8, 24):
        for is_float in (False, True):
            chunks = workload(n, buckets, is_float=is_float)
            enc = encode_float_histogram_chunk if is_float else encode_histogram_chunk
            dec = decode_float_histogram_chunk if is_float else decode_histogram_chunk
            data = [enc(c) for c in chunks]
            size = sum(map(len, data)) / n
            d = _rate(lambda: [dec(b) for b in data], n, repeat)  # noqa: B023
            e = _rate(lambda: [enc(c) for c in chunks], n, repeat)  # noqa: B023
            kind = "FLOAT_HISTOGRAM" if is_float else "HISTOGRAM"
            print(
                f"{kind:<16} {buckets:>2} buckets  decode {d / 1e3:7.1f} k hist/s "
                f"({d * (buckets + 3) / 1e6:5.2f} M values/s)  encode {e / 1e3:7.1f} k hist/s  "
                f"{size:6.1f} bytes/hist"
            )
    # XOR on the same timestamps, one changing float per sample.
    chunks = workload(n, 1, is_float=False)
    pairs = [([h.timestamp for h in c], [h.sum for h in c]) for c in chunks]
    data = [encode_xor(ts, vs) for ts, vs in pairs]
    d = _rate(lambda: [decode_xor(b) for b in data], n, repeat)
    e = _rate(lambda: [encode_xor(ts, vs) for ts, vs in pairs], n, repeat)
    print(
        f"{'XOR':<16} 1 float    decode {d / 1e6:7.2f} M samples/s  "
        f"encode {e / 1e6:7.2f} M samples/s"
    )


def smoke() -> None:
    for is_float in (False, True):
        enc = encode_float_histogram_chunk if is_float else encode_histogram_chunk
        dec = decode_float_histogram_chunk if is_float else decode_histogram_chunk
        for chunk in workload(2 * PER_CHUNK, 5, is_float=is_float):
            got = dec(enc(chunk))
            assert [h.timestamp for h in got] == [h.timestamp for h in chunk]
            assert [(h.count_int, h.count_float) for h in got] == [
                (h.count_int, h.count_float) for h in chunk
            ]
    print("ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--histograms", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny correctness run, no timing")
    args = ap.parse_args()
    if args.smoke:
        smoke()
        return
    bench(args.histograms - args.histograms % PER_CHUNK, args.repeat)


if __name__ == "__main__":
    main()
