import threading
from typing import Any

from promwire import Label, Query, QueryResult, Sample, StorageRejected, TimeSeries, WriteRequest
from promwire.stores.matchers import compile_matchers
from promwire.stores.protocol import BaseStorage

Key = tuple[tuple[str, str], ...]


def key_of(ts: TimeSeries) -> Key:
    return tuple(sorted((lb.name, lb.value) for lb in ts.labels))


class MemoryStorage(BaseStorage):
    """Float samples in a dict {sorted labels: {timestamp: value}}; read() is inherited."""

    def __init__(self, max_series: int = 100_000) -> None:
        self.series: dict[Key, dict[int, float]] = {}
        self.max_series = max_series
        self.lock = threading.Lock()  # handlers may call from several threads

    def write(self, ctx: Any, request: WriteRequest) -> None:
        batch = [(key_of(ts), ts) for ts in request.timeseries]
        with self.lock:
            new = {key for key, _ in batch} - self.series.keys()
            if len(self.series) + len(new) > self.max_series:
                # Check before changing anything: a 400 tells Prometheus to drop the batch.
                raise StorageRejected(f"too many series (limit {self.max_series})")
            for key, ts in batch:
                points = self.series.setdefault(key, {})
                for s in ts.samples:
                    points.setdefault(s.timestamp, s.value)  # a resent batch changes nothing

    def process_query(self, ctx: Any, query: Query) -> QueryResult:
        match = compile_matchers(query.matchers)
        start, end = query.start_timestamp_ms, query.end_timestamp_ms
        result = QueryResult()
        with self.lock:
            for key, points in sorted(self.series.items()):
                samples = [Sample(v, t) for t, v in sorted(points.items()) if start <= t <= end]
                if samples and match(dict(key)):
                    labels = [Label(name, value) for name, value in key]
                    result.timeseries.append(TimeSeries(labels=labels, samples=samples))
        return result
