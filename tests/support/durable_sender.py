"""A sender process for the crash tests: ``python -m tests.support.durable_sender
URL DIR FIRST END [SHARDS]`` appends batches FIRST..END-1 of :func:`batch` through a
:class:`~promwire.client.durable.DurableWriter` on DIR, printing each batch number
once its ``append`` returned, then closes the writer (sending everything) and
prints ``done``."""

from __future__ import annotations

import sys

from promwire import Label, Sample, TimeSeries
from promwire.client.durable import DurableWriter

SERIES = 20


def batch(b: int) -> list[TimeSeries]:
    """Batch ``b`` of the known stream: one sample at ``b`` seconds for each of
    ``SERIES`` series, value ``b + i / 100``."""
    return [
        TimeSeries(
            labels=[Label("__name__", "stream"), Label("i", str(i))],
            samples=[Sample(b + i / 100, b * 1000)],
        )
        for i in range(SERIES)
    ]


def main() -> None:
    url, directory, first, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    shards = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    writer = DurableWriter(
        url,
        directory,
        shards=shards,
        max_samples_per_send=100,
        min_backoff=0.01,
        max_backoff=0.1,
        retry_wait=0.1,
    )
    for b in range(first, end):
        writer.append(batch(b))
        print(b, flush=True)
    writer.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
