"""Columnar decode vs upb, and streamed read into columns (issue 16's targets).

One run, same bytes for every library:

* W1-W3 (:mod:`benchmarks.workloads`): ``promwire.decode_columns`` on the
  snappy-decompressed body (warm: the label caches hold the workload's
  series, as when Prometheus resends them every scrape; cold:
  ``clear_caches()`` before each run, untimed) against protobuf's upb
  ``ParseFromString`` plus a walk reading every label and every sample into
  Python ``str``/``float``/``int`` (what the decode table of
  docs/performance.md calls "upb parse+walk"), plus ``promwire.decode``
  (objects) for reference. Cells of a workload are timed interleaved, so a
  burst of load from other processes slows all of them alike.
* The receiver's decode of the same W1/W2 bodies, warm:
  ``decode_write_batch`` (one ``ColumnBatch``, flat columns, for requests of
  the scrape shape; W3 is not of it).
* Encode (snappy included): ``encode_columns`` of the decoded columns vs
  ``encode`` of the decoded ``WriteRequest`` (the same bytes).
* The write handler end to end (body + headers -> storage called, warm
  caches) for a storage with ``write_columns`` and for one with ``write``
  only (both just count).
* Streamed read: a ``STREAMED_XOR_CHUNKS`` body of 1 M samples (1,000
  series x 1,000 samples, 120-sample chunks, Prometheus' frame size) read by
  ``read_streamed_columns`` and by ``read_streamed_response`` (a ``Sample``
  per sample), for the scrape-like sample shapes of
  :mod:`benchmarks.bench_xor`. Rates are samples per second of CPU time
  (best of ``--repeat``).

Run: ``python3 -m benchmarks.bench_columns [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from array import array
from typing import Any

from promwire import (
    WriteRequest,
    decode,
    decode_columns,
    encode,
    encode_columns,
    handle_write,
    snappy,
)
from promwire.chunks.streamed import (
    read_streamed_columns,
    read_streamed_response,
    stream_chunked_response,
)
from promwire.codec.columnar import decode_write_batch
from promwire.codec.decoder import clear_caches
from promwire.codec.messages import Label, Sample, TimeSeries

from . import runner
from .bench_xor import WORKLOADS, workload
from .peers import protobuf_peer as upb
from .timing import Budget, Cell, measure_interleaved
from .workloads import standard_workloads


def _check(w: Any) -> None:
    """decode_columns must carry exactly what decode gives (floats by bits)."""
    for body in w.bodies:
        raw = snappy.decompress(body)
        cols = decode_columns(raw)
        req = decode(WriteRequest, raw)
        assert len(cols) == len(req.timeseries)
        for sc, ts in zip(cols, req.timeseries, strict=True):
            assert list(sc.labels) == ts.labels
            assert list(sc.timestamps) == [s.timestamp for s in ts.samples]
            want = [s.value for s in ts.samples]
            assert sc.values.tobytes() == array("d", want).tobytes()


class _Objects:
    """A storage that only counts what ``write`` gets (the handler is measured)."""

    def __init__(self) -> None:
        self.series = 0

    def write(self, ctx: Any, request: Any) -> None:
        self.series += len(request.timeseries)


class _Columns(_Objects):
    """The same with ``write_columns``: the handler decodes into columns."""

    def write_columns(self, ctx: Any, series: Any) -> None:
        self.series += len(series)


HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


def decode_rows(names: list[str], budget: Budget) -> list[dict[str, Any]]:
    workloads = [w for w in standard_workloads(1.0, with_captures=False) if w.name in names]
    runner.attach_bodies(workloads, upb)
    rows = []
    for w in workloads:
        _check(w)
        bodies = w.bodies

        def columns(bodies: list[bytes] = bodies) -> None:
            for b in bodies:
                decode_columns(snappy.decompress(b))

        def objects(bodies: list[bytes] = bodies) -> None:
            for b in bodies:
                decode(WriteRequest, snappy.decompress(b))

        def batch(bodies: list[bytes] = bodies) -> None:
            for b in bodies:
                if decode_write_batch(snappy.decompress(b)) is None:
                    decode_columns(snappy.decompress(b))  # what the receiver does then

        def upb_walk(bodies: list[bytes] = bodies) -> None:
            for b in bodies:
                upb.walk(upb.decode(b))

        state = {"cold": False}

        def warm(bodies: list[bytes] = bodies, state: dict[str, bool] = state) -> None:
            if state["cold"]:
                for b in bodies:
                    decode_columns(snappy.decompress(b))
                state["cold"] = False

        def chill(state: dict[str, bool] = state) -> None:
            clear_caches()
            state["cold"] = True

        def handler(store: Any, bodies: list[bytes] = bodies) -> None:
            for b in bodies:
                if handle_write(b, HEADERS, store).status != 204:
                    raise AssertionError("handler refused a workload body")

        decoded = [decode_columns(snappy.decompress(b)) for b in bodies]
        requests = [decode(WriteRequest, snappy.decompress(b)) for b in bodies]

        def enc_columns(decoded: list[Any] = decoded) -> None:
            for series in decoded:
                snappy.compress(encode_columns(series))

        def enc_objects(requests: list[Any] = requests) -> None:
            for req in requests:
                snappy.compress(encode(req))

        cells = [
            Cell("encode_columns", enc_columns),
            Cell("encode", enc_objects),
            Cell("handler write_columns", lambda: handler(_Columns()), warm),
            Cell("handler write", lambda: handler(_Objects()), warm),
            Cell("columns warm", columns, warm),
            Cell("batch warm", batch, warm),
            Cell("columns cold", columns, chill),
            Cell("decode warm", objects, warm),
            Cell("decode cold", objects, chill),
            Cell("upb parse+walk", upb_walk),
        ]
        measure_interleaved(cells, budget)
        med = {c.key: c.stats.median * 1000 for c in cells}
        best = {c.key: min(c.stats.times) * 1000 for c in cells}
        warm(state={"cold": True})
        taken = all(decode_write_batch(snappy.decompress(b)) is not None for b in bodies)
        rows.append(
            {
                "batch": taken,
                "workload": w.name,
                "description": w.description,
                "median_ms": med,
                "min_ms": best,
                "runs": {c.key: c.stats.n for c in cells},
            }
        )
    return rows


def _streamed_body(kind: dict[str, Any], n_series: int, per_series: int) -> bytes:
    series = []
    for i in range(n_series):
        ts, vs = workload(per_series, seed=i + 1, **kind)
        labels = [Label("__name__", "bench_metric"), Label("instance", f"host-{i}:9100")]
        series.append(TimeSeries(labels, [Sample(v, t) for t, v in zip(ts, vs, strict=True)]))
    return b"".join(stream_chunked_response([(0, series)]))


def _cpu_rate(fn: Any, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return n / max(best, 1e-9)


def streamed_rows(n_series: int, per_series: int, repeat: int) -> list[dict[str, Any]]:
    rows = []
    n = n_series * per_series
    for name, kind in WORKLOADS.items():
        body = _streamed_body(kind, n_series, per_series)
        got = sum(len(sc.timestamps) for _, sc in read_streamed_columns(body))
        assert got == n

        def columns(body: bytes = body) -> None:
            for _ in read_streamed_columns(body):
                pass

        def objects(body: bytes = body) -> None:
            for _ in read_streamed_response(body):
                pass

        rows.append(
            {
                "shape": name,
                "samples": n,
                "body_bytes": len(body),
                "columns_msps": _cpu_rate(columns, n, repeat) / 1e6,
                "objects_msps": _cpu_rate(objects, n, repeat) / 1e6,
            }
        )
    return rows


def _ratio_table(
    dec: list[dict[str, Any]], columns: tuple[str, str], objects: tuple[str, str]
) -> None:
    """A table of two cells per workload (title, cell key) and objects / columns."""
    print()
    print(f"| workload | {columns[0]} ms | {objects[0]} ms | ratio |")
    print("|---|---:|---:|---:|")
    for r in dec:
        m = r["median_ms"]
        c, o = m[columns[1]], m[objects[1]]
        print(f"| {r['workload']} | {c:.2f} | {o:.2f} | {o / c:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short budgets, 100 k streamed samples")
    ap.add_argument("--only", default="W1,W2,W3", help="decode workloads (comma-separated)")
    ap.add_argument("--repeat", type=int, default=5, help="streamed runs (best is kept)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--streamed-series", type=int, default=1000, help="series of the streamed body")
    args = ap.parse_args(argv)
    budget = Budget(0.3, 5) if args.quick else Budget(1.5, 40)
    load = os.getloadavg()[0]
    dec = decode_rows(args.only.split(","), budget)
    print(
        "| workload | columns warm ms | columns cold ms | decode (objects) warm / cold ms "
        "| upb parse+walk ms | upb / columns warm | upb / columns cold |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    up = "upb parse+walk"
    for r in dec:
        m = r["median_ms"]
        b = r["min_ms"]  # the fastest runs: trust these when the machine is loaded
        print(
            f"| {r['workload']} | {m['columns warm']:.2f} | {m['columns cold']:.2f} "
            f"| {m['decode warm']:.2f} / {m['decode cold']:.2f} | {m[up]:.2f} "
            f"| {m[up] / m['columns warm']:.2f}x (fastest {b[up] / b['columns warm']:.2f}x) "
            f"| {m[up] / m['columns cold']:.2f}x (fastest {b[up] / b['columns cold']:.2f}x) |"
        )
    print()
    print(
        "| workload | receiver's batch decode warm ms (decode_write_batch) "
        "| upb parse+walk ms | upb / batch |"
    )
    print("|---|---:|---:|---:|")
    for r in dec:
        m = r["median_ms"]
        if r["batch"]:
            ratio = f"{m[up] / m['batch warm']:.2f}x"
            print(f"| {r['workload']} | {m['batch warm']:.2f} | {m[up]:.2f} | {ratio} |")
        else:
            print(f"| {r['workload']} | not this shape (decode_columns) | {m[up]:.2f} | - |")
    _ratio_table(
        dec,
        ("handle_write -> write_columns", "handler write_columns"),
        ("handle_write -> write", "handler write"),
    )
    _ratio_table(dec, ("encode_columns", "encode_columns"), ("encode (objects)", "encode"))
    per = 100 if args.quick else 1000
    st = streamed_rows(args.streamed_series, per, 2 if args.quick else args.repeat)
    print()
    print(
        f"| streamed body ({args.streamed_series:,} series) | samples | columns M samples/s "
        "| TimeSeries+Sample M samples/s | ratio |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in st:
        print(
            f"| {r['shape']} | {r['samples']:,} | {r['columns_msps']:.2f} "
            f"| {r['objects_msps']:.2f} | {r['columns_msps'] / r['objects_msps']:.1f}x |"
        )
    print(f"\nload average at start: {load:.2f} on {os.cpu_count()} cores")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"decode": dec, "streamed": st, "load": load}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
