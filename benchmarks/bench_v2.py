"""Decode time of remote write 2.0 vs 1.0 for the same data.

Builds one request of ``--series`` series with ``--labels`` labels and
``--samples`` samples each, encodes it as a v1 ``WriteRequest`` and as a v2
``Request`` (via :func:`promwire.v2.from_v1`), then times:

* v1: ``decode(WriteRequest, body)`` (label caches cleared before each run,
  then warm, since Prometheus resends the same series every scrape);
* v2 wire: ``decode(Request, body)``;
* v2 full: wire decode + ``validate`` + ``to_v1`` (the resolved view a
  storage gets, comparable with v1's output).

Run: ``python3 benchmarks/bench_v2.py [--series 2000 --labels 10 --samples 1]``
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from promwire import Label, Sample, TimeSeries, WriteRequest, decode, encode, v2
from promwire.codec.decoder import clear_caches

T0 = 1_700_000_000_000


def build(series: int, labels: int, samples: int) -> WriteRequest:
    out = []
    for i in range(series):
        lbls = [Label("__name__", f"metric_{i % 50}")]
        lbls += [Label(f"label_{j}", f"value_{j}_{i % (j + 3)}") for j in range(labels - 1)]
        lbls.append(Label("instance", f"host-{i}:9100"))
        out.append(
            TimeSeries(
                labels=sorted(lbls[:labels], key=lambda lb: lb.name),
                samples=[
                    Sample(float(i * k), 1_700_000_000_000 + k * 15_000) for k in range(samples)
                ],
            )
        )
    return WriteRequest(timeseries=out)


def best_of(
    fn: Callable[[], object], repeat: int, *, before: Callable[[], None] | None = None
) -> float:
    """Best wall time of ``repeat`` runs, the garbage collector paused while timing."""
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    w = build(args.series, args.labels, args.samples)
    body1 = encode(w)
    req = v2.from_v1(w)
    body2 = encode(req)
    assert v2.to_v1(decode(v2.Request, body2)) == decode(WriteRequest, body1)

    print(
        f"{args.series} series x {args.labels} labels x {args.samples} samples; "
        f"v1 body {len(body1)} B, v2 body {len(body2)} B ({len(req.symbols)} symbols)"
    )
    v1_cold = best_of(lambda: decode(WriteRequest, body1), args.repeat, before=clear_caches)
    v1_warm = best_of(lambda: decode(WriteRequest, body1), args.repeat)
    v2_wire = best_of(lambda: decode(v2.Request, body2), args.repeat)

    def v2_full() -> None:
        r = decode(v2.Request, body2)
        v2.validate(r)
        v2.to_v1(r)

    v2_all = best_of(v2_full, args.repeat)
    rows = [
        ("v1 decode (cold label caches)", v1_cold),
        ("v1 decode (warm label caches)", v1_warm),
        ("v2 decode (wire only)", v2_wire),
        ("v2 decode + validate + to_v1", v2_all),
    ]
    for name, t in rows:
        print(f"{name:32s} {t * 1e3:8.2f} ms  ({args.series / t:12,.0f} series/s)")
    print(f"ratio v2 wire / v1 cold: {v2_wire / v1_cold:.2f}")
    print(f"ratio v2 wire / v1 warm: {v2_wire / v1_warm:.2f}")
    print(f"ratio v2 full / v1 cold: {v2_all / v1_cold:.2f}")
    print(f"ratio v2 full / v1 warm: {v2_all / v1_warm:.2f}")


if __name__ == "__main__":
    main()
