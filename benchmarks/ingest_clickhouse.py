"""``python3 -m benchmarks.ingest_clickhouse``: remote-write ingest into a ClickHouse cluster.

Starts ZooKeeper and a 2-shard x 2-replica ClickHouse cluster as plain
processes (tests/support/clickhouse.py), then measures samples per second
acknowledged (204) by ``promwire serve --store clickhouse://...`` with 1 and
with 2 receiver processes (each pointed at a different ClickHouse node, the
senders spread over them), beside ``promwire serve`` on SQLite and
Prometheus' own remote-write receiver fed the same requests.

Load: ``--senders`` threads, each owning its own series (so timestamps only
grow per series: Prometheus refuses out-of-order samples), posting
pre-encoded snappy ``WriteRequest`` s of ``--series`` series x
``--samples`` samples, as Prometheus' sender would (one request per thread
in flight). Encoding happens before the clock starts. Prints a markdown
table; ``--json PATH`` writes the figures too.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from promwire import Label, Sample, TimeSeries, WriteRequest, encode, snappy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the cluster and process helpers

from tests.support.clickhouse import ClickHouseCluster  # noqa: E402
from tests.support.prometheus import PrometheusProcess  # noqa: E402
from tests.support.serve_process import serve_process  # noqa: E402

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}


def requests_for(sender: int, count: int, series: int, samples: int) -> list[bytes]:
    """``count`` snappy bodies for one sender: its own series, timestamps growing."""
    start = int(time.time() * 1000) - 3_600_000  # within Prometheus' head window
    bodies = []
    for r in range(count):
        base = start + r * samples * 10
        req = WriteRequest(
            timeseries=[
                TimeSeries(
                    [
                        Label("__name__", "bench_ingest"),
                        Label("instance", f"sender-{sender}"),
                        Label("series", str(i)),
                    ],
                    [Sample(float(r * samples + k), base + k * 10) for k in range(samples)],
                )
                for i in range(series)
            ]
        )
        bodies.append(snappy.compress(encode(req)))
    return bodies


def drive(ports: list[int], bodies: list[list[bytes]], samples_per_request: int) -> float:
    """Post every body (sender i to ports[i % len(ports)]); samples/s acknowledged."""
    failures: list[str] = []

    def send(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[i % len(ports)], timeout=120)
        for body in bodies[i]:
            while True:
                conn.request("POST", "/api/v1/write", body, HEADERS)
                resp = conn.getresponse()
                resp.read()
                if resp.status in (200, 204):
                    break
                if resp.status < 500:
                    failures.append(f"{resp.status}")
                    return
                time.sleep(0.05)  # a 5xx is retried, as Prometheus does
        conn.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"requests refused: {failures[:5]}")
    return sum(len(b) for b in bodies) * samples_per_request / elapsed


def serve_has_workers() -> bool:
    """Whether ``promwire serve`` takes ``--workers`` (several processes behind one port)."""
    from promwire.server.runner import add_serve_options

    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    return any("--workers" in action.option_strings for action in parser._actions)


@contextmanager
def receivers(
    cluster: ClickHouseCluster, n: int, database: str, tmp: Path, workers: int | None = None
) -> Iterator[list[int]]:
    with ExitStack() as stack:
        ports = []
        for k in range(n):
            node = 2 * k % len(cluster.nodes)  # one receiver per shard's first node
            served = stack.enter_context(
                serve_process(
                    tmp / f"unused-{k}.db",
                    None,
                    options=[
                        "--store",
                        cluster.store_url(node, database),
                        *(("--workers", str(workers)) if workers else ()),
                    ],
                )
            )
            ports.append(served.port)
        yield ports


def measure_cluster(
    cluster: ClickHouseCluster,
    tmp: Path,
    *,
    senders: int,
    requests: int,
    series: int,
    samples: int,
    receiver_counts: tuple[int, ...] = (1, 2),
    with_workers: bool = True,
) -> dict[str, float]:
    """Samples/s into ``cluster`` through 1 and 2 receivers (database ``bench<n>``),
    and through one receiver with ``--workers 2`` when ``promwire serve`` has it."""
    results = {}
    for n in receiver_counts:
        bodies = [requests_for(i, requests, series, samples) for i in range(senders)]
        with receivers(cluster, n, f"bench{n}", tmp) as ports:
            results[f"promwire -> ClickHouse 2x2, {n} receiver(s)"] = drive(
                ports, bodies, series * samples
            )
    if with_workers and serve_has_workers():
        bodies = [requests_for(i, requests, series, samples) for i in range(senders)]
        with receivers(cluster, 1, "bench_workers", tmp, workers=2) as ports:
            results["promwire -> ClickHouse 2x2, 1 receiver x 2 workers"] = drive(
                ports, bodies, series * samples
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.ingest_clickhouse")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--requests", type=int, default=20, help="requests per sender")
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--samples", type=int, default=10, help="samples per series")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    per_request = args.series * args.samples

    def load() -> list[list[bytes]]:
        return [
            requests_for(i, args.requests, args.series, args.samples) for i in range(args.senders)
        ]

    with tempfile.TemporaryDirectory(prefix="promwire-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with ClickHouseCluster(tmp / "cluster") as cluster:
            results = measure_cluster(
                cluster,
                tmp,
                senders=args.senders,
                requests=args.requests,
                series=args.series,
                samples=args.samples,
            )
        with serve_process(tmp / "bench.db", None) as served:
            results["promwire -> SQLite, 1 receiver"] = drive([served.port], load(), per_request)
        config = "global:\n  scrape_interval: 1h\n"
        flags = ["--web.enable-remote-write-receiver"]
        with PrometheusProcess(config, tmp / "prometheus", flags=flags) as prom:
            results["Prometheus 2.42 receiver"] = drive([prom.port], load(), per_request)

    total = args.senders * args.requests * per_request
    print(
        f"\n{args.senders} senders x {args.requests} requests x {args.series} series x "
        f"{args.samples} samples = {total:,} samples per target\n"
    )
    print("| target | samples/s |\n|---|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
