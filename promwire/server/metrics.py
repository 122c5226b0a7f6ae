"""Self-metrics of a receiver, rendered in Prometheus' text exposition format.

No client library: a :class:`Metrics` holds counters and histograms keyed by
(name, label values) under one lock, and :meth:`Metrics.render` writes text
format 0.0.4 (``# HELP``, ``# TYPE``, one line per series, histograms as
cumulative ``_bucket{le=...}`` lines plus ``_sum`` and ``_count``).

Several worker processes (``serve --workers N``) each keep their own
:class:`Metrics`; with ``state_dir`` set, each one writes a snapshot of its
values to ``<state_dir>/metrics-<worker>.json`` (at most every
``flush_interval`` seconds, and on every scrape it answers) and a scrape sums
the snapshots of all workers, so every worker answers ``/metrics`` with the
whole receiver's counters (another worker's part is at most
``flush_interval`` old).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("promwire")

__all__ = ["LATENCY_BUCKETS", "MetricSpec", "Metrics"]

#: Latency buckets in seconds (decode and storage time of a request).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family: its name, help text, kind (``counter``/``histogram``/``gauge``)
    and label names."""

    name: str
    help: str
    kind: str
    labels: tuple[str, ...] = ()


#: Every metric the receiver exports.
SPECS = (
    MetricSpec(
        "promwire_http_requests_total",
        "HTTP requests answered, by endpoint and status code.",
        "counter",
        ("endpoint", "code"),
    ),
    MetricSpec(
        "promwire_request_bytes_total",
        "Request body bytes received (compressed), by endpoint.",
        "counter",
        ("endpoint",),
    ),
    MetricSpec(
        "promwire_samples_received_total",
        "Float samples decoded from remote write requests, by tenant.",
        "counter",
        ("tenant",),
    ),
    MetricSpec(
        "promwire_histograms_received_total",
        "Native histogram samples decoded from remote write requests, by tenant.",
        "counter",
        ("tenant",),
    ),
    MetricSpec(
        "promwire_exemplars_received_total",
        "Exemplars decoded from remote write requests, by tenant.",
        "counter",
        ("tenant",),
    ),
    MetricSpec(
        "promwire_samples_rejected_total",
        "Decoded samples, histograms and exemplars not stored, by tenant and reason "
        "(ha_deduplicated, rate_limited, series_limit, storage_error).",
        "counter",
        ("tenant", "reason"),
    ),
    MetricSpec(
        "promwire_requests_rejected_total",
        "Requests answered 4xx or 5xx, by endpoint and reason.",
        "counter",
        ("endpoint", "reason"),
    ),
    MetricSpec(
        "promwire_decode_duration_seconds",
        "Time to check and decode a write request (handler time minus storage time).",
        "histogram",
    ),
    MetricSpec(
        "promwire_storage_duration_seconds",
        "Time the storage took for one write or read call, by operation.",
        "histogram",
        ("operation",),
    ),
    MetricSpec(
        "promwire_ha_elections_total",
        "Replica elections of the HA tracker (first election and failovers), by tenant "
        "and cluster.",
        "counter",
        ("tenant", "cluster"),
    ),
)

_SPECS = {spec.name: spec for spec in SPECS}
Key = tuple[str, tuple[str, ...]]


def _escape(value: str) -> str:
    # Label values escape backslash, double quote and newline (text format 0.0.4).
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class Metrics:
    """Counters and histograms of one process (see the module docstring).

    ``worker`` names this process' snapshot file in ``state_dir``.
    """

    def __init__(
        self,
        *,
        state_dir: str | None = None,
        worker: int = 0,
        flush_interval: float = 1.0,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self._lock = threading.Lock()
        self._values: dict[Key, float] = {}
        # histogram key -> [count per bucket..., +Inf count, sum]
        self._hists: dict[Key, list[float]] = {}
        self.buckets = tuple(buckets)
        self.state_dir = state_dir
        self.worker = worker
        self.flush_interval = flush_interval
        self._flushed = 0.0

    def inc(self, name: str, labels: Sequence[str] = (), value: float = 1.0) -> None:
        """Add ``value`` to counter ``name`` with these label values."""
        if value == 0:
            return
        key = (name, tuple(labels))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + value
        self._maybe_flush()

    def observe(self, name: str, seconds: float, labels: Sequence[str] = ()) -> None:
        """Record one observation of histogram ``name``."""
        key = (name, tuple(labels))
        with self._lock:
            row = self._hists.get(key)
            if row is None:
                row = self._hists[key] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    row[i] += 1
                    break
            else:
                row[len(self.buckets)] += 1
            row[-1] += seconds

    def value(self, name: str, labels: Sequence[str] = ()) -> float:
        """This process' value of a counter (0 when never incremented)."""
        with self._lock:
            return self._values.get((name, tuple(labels)), 0.0)

    def snapshot(self) -> dict[str, list[list[object]]]:
        """This process' values as JSON-able lists (what a worker writes to its file)."""
        with self._lock:
            return {
                "values": [[n, list(lv), v] for (n, lv), v in self._values.items()],
                "hists": [[n, list(lv), list(row)] for (n, lv), row in self._hists.items()],
            }

    def _maybe_flush(self) -> None:
        if self.state_dir is None:
            return
        now = time.monotonic()
        if now - self._flushed >= self.flush_interval:
            try:
                self.flush()
            except OSError:  # never fail a request over the metrics file; the next try may work
                log.warning("cannot write the metrics snapshot to %s", self.state_dir)

    def flush(self) -> None:
        """Write this process' snapshot to ``state_dir`` (nothing without one)."""
        if self.state_dir is None:
            return
        self._flushed = time.monotonic()
        path = os.path.join(self.state_dir, f"metrics-{self.worker}.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.snapshot(), f)
        os.replace(tmp, path)  # atomic: a reader sees the old or the new file, never half

    def start_flusher(self) -> None:
        """Flush every ``flush_interval`` seconds in a daemon thread, so an idle
        worker's last counts reach the other workers' scrapes too."""
        if self.state_dir is None:
            return

        def run() -> None:
            while True:
                time.sleep(self.flush_interval)
                try:
                    self.flush()
                except OSError:  # the state directory is gone: shutting down
                    return

        threading.Thread(target=run, name="promwire-metrics-flush", daemon=True).start()

    def _merged(self) -> tuple[dict[Key, float], dict[Key, list[float]]]:
        if self.state_dir is None:
            with self._lock:
                return dict(self._values), {k: list(v) for k, v in self._hists.items()}
        self.flush()
        values: dict[Key, float] = {}
        hists: dict[Key, list[float]] = {}
        for entry in sorted(os.listdir(self.state_dir)):
            if not (entry.startswith("metrics-") and entry.endswith(".json")):
                continue
            try:
                with open(os.path.join(self.state_dir, entry), encoding="utf-8") as f:
                    snap = json.load(f)
            except (OSError, ValueError):
                continue  # a worker replacing its file right now: next scrape has it
            for name, lv, v in snap["values"]:
                key = (name, tuple(lv))
                values[key] = values.get(key, 0.0) + v
            for name, lv, row in snap["hists"]:
                key = (name, tuple(lv))
                old = hists.get(key)
                hists[key] = row if old is None else [a + b for a, b in zip(old, row, strict=True)]
        return values, hists

    def render(
        self, extra: Iterable[tuple[MetricSpec, Mapping[tuple[str, ...], float]]] = ()
    ) -> str:
        """The text exposition of every metric (all workers' when ``state_dir`` is set),
        plus ``extra`` families (e.g. gauges computed at scrape time)."""
        values, hists = self._merged()
        lines: list[str] = []
        for spec in SPECS:
            lines.append(f"# HELP {spec.name} {spec.help}")
            lines.append(f"# TYPE {spec.name} {spec.kind}")
            if spec.kind == "histogram":
                for (name, lv), row in sorted(hists.items()):
                    if name == spec.name:
                        lines.extend(self._histogram_lines(spec, lv, row))
            else:
                for (name, lv), v in sorted(values.items()):
                    if name == spec.name:
                        lines.append(f"{name}{_labels(spec.labels, lv)} {_number(v)}")
        for spec, series in extra:
            lines.append(f"# HELP {spec.name} {spec.help}")
            lines.append(f"# TYPE {spec.name} {spec.kind}")
            for lv, v in sorted(series.items()):
                lines.append(f"{spec.name}{_labels(spec.labels, lv)} {_number(v)}")
        return "\n".join(lines) + "\n"

    def _histogram_lines(
        self, spec: MetricSpec, lv: tuple[str, ...], row: list[float]
    ) -> list[str]:
        out = []
        cumulative = 0.0
        for bound, count in zip((*self.buckets, math.inf), row, strict=False):
            cumulative += count
            le = 'le="' + _number(bound) + '"'
            out.append(f"{spec.name}_bucket{_labels(spec.labels, lv, le)} {_number(cumulative)}")
        out.append(f"{spec.name}_sum{_labels(spec.labels, lv)} {_number(row[-1])}")
        out.append(f"{spec.name}_count{_labels(spec.labels, lv)} {_number(cumulative)}")
        return out
