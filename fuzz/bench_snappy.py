"""Throughput (MB/s of uncompressed data) of both snappy backends.

    python3 fuzz/bench_snappy.py [--mb 4] [--repeat 3]

Inputs: every snappy body among the Prometheus 2.42 captures (inflated,
measured as one unit), and a generated remote-write ``WriteRequest`` of about
``--mb`` MB (scrape-like series: ~10 labels, repeating label values, one
sample each, timestamps a scrape interval apart) encoded with
``promwire.encode``. MB = 10**6 bytes; best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import promwire
from promwire import Label, Sample, TimeSeries, WriteRequest, snappy

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "prometheus-2.42"


def fixture_payloads() -> list[bytes]:
    """The inflated snappy bodies among the captures."""
    out = []
    for path in sorted(FIXTURES.glob("*/*.bin")):
        try:
            out.append(snappy.decompress(path.read_bytes()))
        except promwire.PromwireError:
            continue  # streamed read responses are not snappy
    return out


def write_request(target_bytes: int, seed: int = 42) -> bytes:
    """An encoded WriteRequest of about ``target_bytes``, shaped like a scrape batch."""
    rng = random.Random(seed)
    jobs = ["node", "api", "db", "cache"]
    metrics = [f"http_requests_{k}_total" for k in ("get", "post", "put")] + [
        "node_cpu_seconds_total",
        "process_resident_memory_bytes",
        "go_goroutines",
    ]
    series: list[TimeSeries] = []
    size = 0
    i = 0
    ts = 1_700_000_000_000
    while size < target_bytes:
        labels = [
            Label("__name__", rng.choice(metrics)),
            Label("code", rng.choice(["200", "404", "500"])),
            Label("env", rng.choice(["prod", "staging"])),
            Label("instance", f"10.0.{i % 50}.{i % 200}:9100"),
            Label("job", rng.choice(jobs)),
            Label("method", rng.choice(["GET", "POST"])),
            Label("pod", f"app-{rng.randrange(40):02d}-{rng.randrange(16**5):05x}"),
            Label("region", rng.choice(["eu-west-1", "us-east-1"])),
            Label("service", rng.choice(jobs) + "-svc"),
            Label("zone", rng.choice("abc")),
        ]
        value = float(rng.randrange(10**6)) if i % 3 else rng.random() * 100
        series.append(TimeSeries(labels=labels, samples=[Sample(value, ts + 15000 * (i % 4))]))
        size += 230  # roughly one series; checked below by encoding
        i += 1
    return promwire.encode(WriteRequest(timeseries=series))


def _compress_all(payloads: list[bytes]) -> list[bytes]:
    return [snappy.compress(p) for p in payloads]


def _decompress_all(blocks: list[bytes]) -> list[bytes]:
    return [snappy.decompress(b) for b in blocks]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    inputs = {
        "fixtures (all snappy captures)": fixture_payloads(),
        f"WriteRequest ~{args.mb:g} MB": [write_request(int(args.mb * 1e6))],
    }
    head = f"{'input':34} {'backend':8} {'raw MB':>8} {'ratio':>6}"
    print(f"{head} {'compress':>12} {'decompress':>12}")
    for name, payloads in inputs.items():
        raw = sum(len(p) for p in payloads)
        for backend in snappy.BACKENDS:
            previous = snappy._use_backend(backend)
            try:
                blocks = [snappy.compress(p) for p in payloads]
                ratio = raw / sum(len(b) for b in blocks)
                tc = best(partial(_compress_all, payloads), args.repeat)
                td = best(partial(_decompress_all, blocks), args.repeat)
            finally:
                snappy._use_backend(previous)
            print(
                f"{name:34} {backend:8} {raw / 1e6:8.3f} {ratio:6.2f} "
                f"{raw / tc / 1e6:7.1f} MB/s {raw / td / 1e6:7.1f} MB/s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
