"""Cost of the receiver's per-series checks on the write path.

Times, best of ``--repeat`` runs, on one request of ``--series`` series with
``--labels`` labels and one sample each (what Prometheus sends every scrape):

* v2 checks: ``check_v2_request`` (refs, label rule with ``__name__``,
  order, histograms, exemplars) on the decoded ``v2.Request``;
* v2 decode + checks + ``to_v1``: what the handler does before the storage;
* v1 decode + checks: ``prepare_write`` on the 1.0 body (the histogram check
  included);
* one native histogram (``--buckets`` buckets) through ``histogram_problem``.

Run: ``python3 benchmarks/bench_receiver_checks.py [--series 2000 --labels 10]``.
Comparing with another checkout: ``PYTHONPATH=<its root> python3 <this file>``
(the histogram line needs promwire.codec.validation).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from promwire import Label, Sample, TimeSeries, WriteRequest, decode, encode, snappy, v2
from promwire.server.handlers import check_v2_request, prepare_write

T0 = 1_700_000_000_000
V2_HEADERS = {"Content-Type": v2.CONTENT_TYPE_V2, "Content-Encoding": "snappy"}
V1_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}


def build(series: int, labels: int) -> WriteRequest:
    out = []
    for i in range(series):
        lbls = [Label("__name__", f"metric_{i % 50}"), Label("instance", f"host-{i}:9100")]
        lbls += [Label(f"label_{j}", f"value_{j}_{i % (j + 3)}") for j in range(labels - 2)]
        out.append(
            TimeSeries(labels=sorted(lbls, key=lambda lb: lb.name), samples=[Sample(1.0, T0)])
        )
    return WriteRequest(out)


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--buckets", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    request_v1 = build(args.series, args.labels)
    request_v2 = v2.from_v1(request_v1)
    raw_v2 = encode(request_v2)
    decoded = decode(v2.Request, raw_v2)
    body_v1 = snappy.compress(encode(request_v1))
    body_v2 = snappy.compress(raw_v2)
    n = args.series

    def full_v2() -> None:
        stored, _ = check_v2_request(prepare_write(body_v2, V2_HEADERS))  # type: ignore[arg-type]
        v2.to_v1(stored, sort_labels=True)

    rows = [
        ("v2 checks", best_of(args.repeat, lambda: check_v2_request(decoded))),
        ("v2 decode + checks + to_v1", best_of(args.repeat, full_v2)),
        ("v1 decode + checks", best_of(args.repeat, lambda: prepare_write(body_v1, V1_HEADERS))),
    ]
    for name, seconds in rows:
        print(f"{name:30s} {seconds * 1e3:8.2f} ms  {seconds / n * 1e6:6.2f} us/series")
    try:
        from promwire.codec.validation import histogram_problem
    except ImportError:
        return
    hist = v2.Histogram(
        count_int=args.buckets,
        sum=1.0,
        positive_spans=[v2.BucketSpan(0, args.buckets)],
        positive_deltas=[1] + [0] * (args.buckets - 1),
    )
    assert histogram_problem(hist) is None
    per = best_of(args.repeat, lambda: [histogram_problem(hist) for _ in range(1000)]) / 1000
    print(f"{'histogram_problem':30s} {per * 1e6:8.2f} us per histogram of {args.buckets} buckets")


if __name__ == "__main__":
    main()
