"""Benchmark workloads: remote-write content generated with a fixed seed.

A workload is library-neutral *plain data* (nested tuples of str/float/int, see
below) plus the snappy-compressed ``WriteRequest`` bytes every peer decodes.
Each peer builds its own message objects from the plain data for the encode
benchmarks, so all of them encode the same content.

Plain data layout (field order as in ``prompb/types.proto``)::

    Content  = (series: tuple[Series, ...], metadata: tuple[Metadata, ...])
    Series   = (labels, samples, exemplars, histograms)
    labels   = ((name, value), ...)                      # sorted by name
    samples  = ((value: float, timestamp_ms: int), ...)
    exemplar = (labels, value: float, timestamp_ms: int)
    Metadata = (type: int, metric_family_name, help, unit)
    Hist     = (count_int | None, count_float | None, sum, schema, zero_threshold,
                zero_count_int | None, zero_count_float | None,
                negative_spans, negative_deltas, negative_counts,
                positive_spans, positive_deltas, positive_counts,
                reset_hint: int, timestamp_ms, custom_values)
    spans    = ((offset, length), ...)

:func:`canonical` turns plain data into a form that compares floats by bit
pattern, which is how the smoke test checks that every peer decoded the same
thing.

Workloads:

* W1 - one Prometheus batch: 2,000 series x ~10 labels x 1 sample, label
  values repeating across series as in real scrapes;
* W2 - the same shape with 10,000 series;
* W3 - sample heavy: 10 series x 10,000 samples;
* W4 - W1 plus one exemplar per series and native histograms on some series;
* W5 - high cardinality: 2,000 series whose label values hardly repeat;
* captures / captures-meta - the real Prometheus 2.42 remote-write bodies in
  ``/work/shared/fixtures/prometheus-2.42/rw_sender/*.bin``: those carrying
  series, and the metadata-only ones (each set decoded body after body as
  one unit).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CAPTURES_DIR",
    "STALE_NAN",
    "Workload",
    "canonical",
    "captures",
    "difference",
    "generate",
    "high_cardinality",
    "label_heavy",
    "sample_heavy",
    "standard_workloads",
    "with_exemplars_and_histograms",
]

SEED = 20240601
CAPTURES_DIR = Path("/work/shared/fixtures/prometheus-2.42/rw_sender")

#: Prometheus' staleness marker, a NaN with a payload (bits 0x7FF0000000000002).
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

Labels = tuple[tuple[str, str], ...]
Content = tuple[tuple[Any, ...], tuple[Any, ...]]

# Base timestamp: a fixed instant in ms (2024-06-01T00:00:00Z).
_T0 = 1_717_200_000_000


@dataclass
class Workload:
    """One benchmark input: plain content and the bytes every peer decodes.

    ``bodies`` holds one or more snappy-compressed ``WriteRequest`` bodies;
    ``contents`` the plain content of each (same order). Generated workloads
    have one body; ``captures`` has one per capture file.
    """

    name: str
    description: str
    contents: list[Content]
    bodies: list[bytes] = field(default_factory=list)

    @property
    def raw_size(self) -> int:
        """Compressed bytes over all bodies."""
        return sum(len(b) for b in self.bodies)

    @property
    def series_count(self) -> int:
        return sum(len(c[0]) for c in self.contents)

    @property
    def sample_count(self) -> int:
        return sum(len(s[1]) for c in self.contents for s in c[0])


# ---------------------------------------------------------------- label pools

_JOBS = ["api", "node", "kube-state-metrics", "prometheus", "ingress-nginx", "payments"]
_ENVS = ["prod", "staging"]
_REGIONS = ["eu-west-1", "us-east-1", "ap-south-1"]
_METHODS = ["GET", "POST", "PUT", "DELETE"]
_CODES = ["200", "201", "204", "301", "400", "404", "429", "500", "503"]
_HANDLERS = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/write",
    "/api/v1/read",
    "/metrics",
    "/-/ready",
    "/api/v1/series",
    "/api/v1/labels",
]
_LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
_FAMILIES = [
    # (metric name, extra label names)
    ("http_requests_total", ("code", "handler", "method")),
    ("http_request_duration_seconds_bucket", ("handler", "le", "method")),
    ("http_request_duration_seconds_sum", ("handler", "method")),
    ("http_request_duration_seconds_count", ("handler", "method")),
    ("process_cpu_seconds_total", ()),
    ("process_resident_memory_bytes", ()),
    ("go_gc_duration_seconds", ("quantile",)),
    ("go_goroutines", ()),
    ("node_cpu_seconds_total", ("cpu", "mode")),
    ("node_network_receive_bytes_total", ("device",)),
]
_EXTRA_VALUES: dict[str, list[str]] = {
    "code": _CODES,
    "handler": _HANDLERS,
    "method": _METHODS,
    "le": _LE,
    "quantile": ["0", "0.25", "0.5", "0.75", "1"],
    "cpu": [str(i) for i in range(8)],
    "mode": ["idle", "user", "system", "iowait", "irq", "softirq", "steal"],
    "device": ["eth0", "eth1", "lo", "docker0"],
}


def _value(rng: random.Random, name: str) -> float:
    """A plausible sample value for a metric name (counters are whole numbers)."""
    if rng.random() < 0.002:
        return STALE_NAN
    if name.endswith(("_total", "_count", "_bucket")):
        return float(rng.randrange(0, 10_000_000))
    return rng.random() * 1000.0


def _scrape_series(rng: random.Random, n: int) -> list[Labels]:
    """``n`` distinct label sets that look like scraped Prometheus targets.

    About 10 labels each: ``__name__``, ``job``, ``instance``, ``env``,
    ``region``, ``cluster``, ``namespace``, ``pod`` plus 0-3 family-specific
    labels. Every value comes from a small pool, so pairs repeat massively.
    """
    seen: set[Labels] = set()
    out: list[Labels] = []
    n_targets = max(1, n // 40)
    targets = []
    for i in range(n_targets):
        job = _JOBS[i % len(_JOBS)]
        targets.append(
            {
                "job": job,
                "instance": f"10.{i // 250}.{i % 250}.{rng.randrange(2, 250)}:9{100 + i % 7}",
                "env": _ENVS[i % 2],
                "region": _REGIONS[i % 3],
                "cluster": f"k8s-{_REGIONS[i % 3]}-{i % 4}",
                "namespace": f"team-{job}",
                "pod": f"{job}-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}",
            }
        )
    attempts = 0
    while len(out) < n:
        attempts += 1
        target = targets[len(out) % n_targets]
        fam, extra = _FAMILIES[rng.randrange(len(_FAMILIES))]
        labels = dict(target)
        labels["__name__"] = fam
        for ln in extra:
            labels[ln] = rng.choice(_EXTRA_VALUES[ln])
        key = tuple(sorted(labels.items()))
        if key in seen:
            if attempts > 50 * n:  # pools exhausted: make it unique
                labels["shard"] = str(len(out))
                key = tuple(sorted(labels.items()))
            else:
                continue
        seen.add(key)
        out.append(key)
    return out


def label_heavy(n_series: int, *, seed: int = SEED) -> Content:
    """W1/W2: ``n_series`` scraped series, ~10 labels, one sample each."""
    rng = random.Random(seed)
    ts = _T0 + rng.randrange(0, 15_000)
    series = []
    for labels in _scrape_series(rng, n_series):
        name = labels[0][1] if labels[0][0] == "__name__" else dict(labels)["__name__"]
        series.append((labels, ((_value(rng, name), ts + rng.randrange(0, 50)),), (), ()))
    return tuple(series), ()


def sample_heavy(n_series: int, n_samples: int, *, seed: int = SEED) -> Content:
    """W3: few series with many samples each (a backfill / remote-read shape)."""
    rng = random.Random(seed + 3)
    series = []
    for labels in _scrape_series(rng, n_series):
        t = _T0
        v = rng.random() * 100
        samples = []
        for _ in range(n_samples):
            t += 15_000 + rng.randrange(-20, 20)
            v += rng.random() - 0.4
            samples.append((v, t))
        series.append((labels, tuple(samples), (), ()))
    return tuple(series), ()


def _histogram(rng: random.Random, ts: int) -> tuple[Any, ...]:
    """A native histogram, integer flavour (3 of 4) or float flavour."""
    n_pos = rng.randrange(1, 12)
    n_neg = rng.randrange(0, 4)
    both = ((rng.randrange(-3, 3), n_pos - n_pos // 2), (1, n_pos // 2))
    pos_spans = tuple(s for s in both if s[1])
    neg_spans = ((rng.randrange(0, 3), n_neg),) if n_neg else ()
    schema = rng.choice([-2, 0, 3])
    if rng.random() < 0.75:
        # Valid as Prometheus checks it (receivers refuse others): bucket counts
        # >= 0, sent as deltas, and count = zero count + all buckets.
        pos_abs = [rng.randrange(0, 30) for _ in range(n_pos)]
        neg_abs = [rng.randrange(0, 5) for _ in range(n_neg)]
        pos_deltas = tuple(b - a for a, b in zip([0, *pos_abs], pos_abs, strict=False))
        neg_deltas = tuple(b - a for a, b in zip([0, *neg_abs], neg_abs, strict=False))
        zero_count = rng.randrange(0, 10)
        return (
            sum(pos_abs) + sum(neg_abs) + zero_count,
            None,
            rng.random() * 1e4,
            schema,
            1e-128,
            zero_count,
            None,
            neg_spans,
            neg_deltas,
            (),
            pos_spans,
            pos_deltas,
            (),
            rng.randrange(0, 4),
            ts,
            (),
        )
    pos_counts = tuple(float(rng.randrange(0, 500)) for _ in range(n_pos))
    neg_counts = tuple(float(rng.randrange(0, 50)) for _ in range(n_neg))
    return (
        None,
        float(sum(pos_counts) + sum(neg_counts)),
        rng.random() * 1e4,
        schema,
        0.0,
        None,
        0.0,
        neg_spans,
        (),
        neg_counts,
        pos_spans,
        (),
        pos_counts,
        3,
        ts,
        (),
    )


def with_exemplars_and_histograms(
    n_series: int, *, histogram_every: int = 10, seed: int = SEED
) -> Content:
    """W4: W1 plus one exemplar per series and a native histogram on every 10th."""
    base, _ = label_heavy(n_series, seed=seed)
    rng = random.Random(seed + 4)
    series = []
    for i, (labels, samples, _, _) in enumerate(base):
        ts = samples[0][1]
        ex = ((("trace_id", f"{rng.getrandbits(64):016x}"),), rng.random(), ts - 1)
        hists = (_histogram(rng, ts),) if i % histogram_every == 0 else ()
        series.append((labels, samples, (ex,), hists))
    return tuple(series), ()


def high_cardinality(n_series: int, *, seed: int = SEED) -> Content:
    """W5: ~10 labels per series, most values unique (request ids, pod hashes, users)."""
    rng = random.Random(seed + 5)
    series = []
    ts = _T0
    for i in range(n_series):
        labels = {
            "__name__": f"app_event_{rng.getrandbits(24):06x}_total",
            "job": f"job-{rng.getrandbits(16):04x}",
            "instance": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
            f":{rng.randrange(1024, 65535)}",
            "pod": f"svc-{rng.getrandbits(40):010x}",
            "request_id": f"{rng.getrandbits(128):032x}",
            "user": f"user{rng.randrange(10**9)}",
            "session": f"{rng.getrandbits(64):016x}",
            "path": f"/api/v{rng.randrange(1, 4)}/item/{rng.randrange(10**7)}",
            "shard": str(i),
            "env": _ENVS[i % 2],  # the only low-cardinality label
        }
        series.append((tuple(sorted(labels.items())), ((_value(rng, "x"), ts + i),), (), ()))
    return tuple(series), ()


# ------------------------------------------------------------------- canonical


def _canon(x: Any, payloads: bool) -> Any:
    if isinstance(x, float):
        if x != x and not payloads:
            return ("f64", "nan")
        return ("f64", struct.unpack("<Q", struct.pack("<d", x))[0])
    if isinstance(x, (tuple, list)):
        return tuple(_canon(v, payloads) for v in x)
    if isinstance(x, int):  # IntEnum members included
        return int(x)
    return x


def canonical(content: Content, *, nan_payloads: bool = True) -> Any:
    """``content`` with every float replaced by its bit pattern (for equality checks).

    ``nan_payloads=False`` maps every NaN to one value, to tell a peer that
    only loses NaN payloads (Prometheus' stale marker is a NaN payload) from
    one that gets the content wrong.
    """
    return _canon(content, nan_payloads)


def difference(got: Content, want: Content) -> str:
    """``""`` when equal (floats by bits), else a short description of how they differ."""
    if canonical(got) == canonical(want):
        return ""
    if canonical(got, nan_payloads=False) == canonical(want, nan_payloads=False):
        return "NaN payloads lost (the stale marker 0x7ff0000000000002 is not kept)"
    gs, ws = canonical(got[0]), canonical(want[0])
    if len(gs) != len(ws):
        return f"{len(gs)} series instead of {len(ws)}"
    for i, (a, b) in enumerate(zip(gs, ws, strict=True)):
        if a != b:
            return f"series {i} differs: {str(a)[:120]} != {str(b)[:120]}"
    return "metadata differs"


# -------------------------------------------------------------------- assembly


def generate(scale: float = 1.0) -> list[Workload]:
    """W1-W5 at ``scale`` (1.0 = the sizes in the module docstring). No bodies yet."""

    def n(x: int) -> int:
        return max(1, int(x * scale))

    return [
        Workload("W1", f"{n(2000)} series x ~10 labels x 1 sample", [label_heavy(n(2000))]),
        Workload("W2", f"{n(10000)} series x ~10 labels x 1 sample", [label_heavy(n(10000))]),
        Workload(
            "W3",
            f"10 series x {n(10000)} samples",
            [sample_heavy(10, n(10000))],
        ),
        Workload(
            "W4",
            f"W1 + 1 exemplar/series + native histograms on 1 series in 10 ({n(2000)} series)",
            [with_exemplars_and_histograms(n(2000))],
        ),
        Workload("W5", f"{n(2000)} series, high-cardinality labels", [high_cardinality(n(2000))]),
    ]


def _top_level_fields(body: bytes) -> set[int]:
    """Field numbers present at the top of a snappy-compressed message (LEN/VARINT only)."""
    import cramjam

    raw = bytes(cramjam.snappy.decompress_raw(body))
    pos, seen = 0, set()

    def varint(pos: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            b = raw[pos]
            value |= (b & 0x7F) << shift
            pos += 1
            if b < 0x80:
                return value, pos
            shift += 7

    while pos < len(raw):
        key, pos = varint(pos)
        seen.add(key >> 3)
        if key & 7 == 2:
            n, pos = varint(pos)
            pos += n
        elif key & 7 == 0:
            _, pos = varint(pos)
        else:  # WriteRequest has no other wire types at the top level
            break
    return seen


def captures(directory: Path = CAPTURES_DIR) -> list[Workload]:
    """The real Prometheus captures as two workloads (content is attached later).

    ``captures``: the bodies carrying series (labels, samples, exemplars,
    native histograms); ``captures-meta``: the metadata-only bodies
    Prometheus sends every ``send_interval``. Each is decoded body after body
    as one unit.
    """
    files = sorted(directory.glob("*.bin"))
    series = [f.read_bytes() for f in files]
    meta = [b for b in series if 1 not in _top_level_fields(b)]
    series = [b for b in series if b not in meta]
    out = []
    if series:
        out.append(
            Workload(
                "captures", f"{len(series)} real Prometheus 2.42 bodies with series", [], series
            )
        )
    if meta:
        out.append(
            Workload(
                "captures-meta", f"{len(meta)} real Prometheus 2.42 metadata-only bodies", [], meta
            )
        )
    return out


def standard_workloads(scale: float = 1.0, *, with_captures: bool = True) -> list[Workload]:
    """Generated workloads plus (when present) the captures; bodies still to attach."""
    out = generate(scale)
    if with_captures:
        out += captures()
    return out
