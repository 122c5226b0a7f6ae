"""The receiver cases of prometheus/compliance ``remotewrite/receiver/``, as one table.

The Prometheus project's remote-write compliance suite (Go, 39 tests, 205
cases, remote write 2.0 rc.3 as Prometheus 3.6 sends it) is re-expressed here:
the facts (which request each case sends, what it expects) come from its Go
files, the code is ours. ``CASES`` holds one :class:`Case` per Go subtest, in
the suite's order, named ``Test.../subtest``; the MUST/SHOULD pairs that the
Go helper ``runComplianceTest`` makes of a case expected to succeed are two
rows here (``... returns 204`` is the SHOULD one, which also wants 204 itself).

Each case builds its request from a :class:`Opts` (the Go ``RequestOpts``)
with :func:`build`, a port of the Go ``generateRequest``: exemplars ride on the
samples/histograms with the same labels (one per point, the rest on the last
point of the series), metadata on the series of the same metric name,
leftovers become exemplar-only or metadata-only series. Labels are put in
reverse name order (Go sends them in map order: a receiver must not expect
them sorted). :func:`build` also works out what a receiver following the
spec as Prometheus reads it keeps (:class:`Expected`): a series is refused
whole without a non-empty ``__name__`` or without samples and histograms, a
histogram flagged ``bad`` is refused, the rest is kept.

:func:`go_verdict` is the suite's own check of an answer (its
``validateResponse``): the tests apply it and, on top, promwire's exact
answer and a read-back of what was stored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from promwire import STALE_NAN_BITS, encode, snappy, v2
from promwire.v2 import SymbolTable

CT_V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
HOUR = 3_600_000
MINUTE = 60_000

Labels = dict[str, str]


def _bits_float(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


# metric_test.go ``values``: the float kinds each metric case is run with.
VALUES: dict[str, float] = {
    "1.0": 1.0,
    "StaleNaN": _bits_float(STALE_NAN_BITS),
    "NaN": _bits_float(0x7FF8000000000001),  # Prometheus' value.NormalNaN
    "Inf": math.inf,
    "-Inf": -math.inf,
}


@dataclass
class SampleSpec:
    labels: Labels
    value: float
    offset: int = 0  # ms from the case's "now"
    created: int | None = None  # ms from "now": rc.3's TimeSeries.created_timestamp


@dataclass
class HistogramSpec:
    labels: Labels
    histogram: v2.Histogram
    offset: int = 0
    created: int | None = None
    bad: bool = False  # built with badCount: a valid receiver refuses it


@dataclass
class ExemplarSpec:
    labels: Labels
    exemplar_labels: Labels
    value: float
    offset: int = 0


@dataclass
class MetadataSpec:
    labels: Labels
    type: v2.MetricType
    help: str = ""
    unit: str = ""


@dataclass
class Opts:
    """The Go ``RequestOpts``."""

    samples: list[SampleSpec] = field(default_factory=list)
    exemplars: list[ExemplarSpec] = field(default_factory=list)
    metadata: list[MetadataSpec] = field(default_factory=list)
    histograms: list[HistogramSpec] = field(default_factory=list)
    unsafe: bool = False


@dataclass
class Params:
    """The Go ``requestParams``: upper bounds (or exact counts on 2xx) of what is written."""

    samples: int = 0
    exemplars: int = 0
    histograms: int = 0
    strict: bool = False  # SHOULD: exactly 204
    success: bool = False
    retryable: bool = False
    exact_code: int = 0


@dataclass
class KeptSeries:
    """One series of the request and what of it a receiver keeps (``refused`` says why not)."""

    index: int
    labels: Labels
    samples: list[v2.Sample]
    histograms: list[v2.Histogram]  # those kept
    exemplars: list[v2.Exemplar]
    exemplar_labels: list[Labels]
    metadata: MetadataSpec | None
    refused: str | None = None  # words the 400 must say about this series
    refused_points: int = 0


@dataclass
class Expected:
    series: list[KeptSeries]

    @property
    def written(self) -> tuple[int, int, int]:
        """(samples, histograms, exemplars) kept: the Written headers promwire must send."""
        kept = [s for s in self.series if s.refused is None]
        return (
            sum(len(s.samples) for s in kept),
            sum(len(s.histograms) for s in kept),
            sum(len(s.exemplars) for s in kept),
        )

    @property
    def all_kept(self) -> bool:
        return all(s.refused is None and not s.refused_points for s in self.series)


@dataclass
class Built:
    headers: dict[str, str]
    body: bytes
    request: v2.Request | None
    expected: Expected | None


def _ordered(labels: Labels) -> list[tuple[str, str]]:
    return sorted(labels.items(), reverse=True)


def _same(a: Labels, b: Labels) -> bool:
    return a == b


def build(opts: Opts, now: int) -> tuple[v2.Request, Expected]:
    """The Go ``generateRequest`` (minus its sanity panics) and what a receiver keeps."""
    table = SymbolTable()

    def refs(labels: Labels) -> list[int]:
        return table.refs(dict(_ordered(labels)))

    by_name: dict[str, tuple[v2.Metadata, MetadataSpec]] = {}
    for md in opts.metadata:
        name = md.labels.get("__name__", "")
        if name or opts.unsafe:
            meta = v2.Metadata(
                type=md.type, help_ref=table.ref(md.help), unit_ref=table.ref(md.unit)
            )
            by_name[name] = (meta, md)

    used: set[int] = set()
    out: list[v2.TimeSeries] = []
    kept: list[KeptSeries] = []

    def attach(labels: Labels, last: bool) -> tuple[list[v2.Exemplar], list[Labels]]:
        found: list[v2.Exemplar] = []
        found_labels: list[Labels] = []
        for i, ex in enumerate(opts.exemplars):
            if i in used or not _same(labels, ex.labels):
                continue
            found.append(v2.Exemplar(refs(ex.exemplar_labels), ex.value, now + ex.offset))
            found_labels.append(ex.exemplar_labels)
            used.add(i)
            if not last:
                break
        return found, found_labels

    def metadata_for(labels: Labels) -> tuple[v2.Metadata, MetadataSpec | None]:
        name = labels.get("__name__", "")
        if (name or opts.unsafe) and name in by_name:
            return by_name[name]
        return v2.Metadata(), None

    def add(
        labels: Labels,
        samples: list[v2.Sample],
        histograms: list[v2.Histogram],
        bad: bool,
        created: int | None,
        last: bool,
    ) -> None:
        exemplars, exemplar_labels = attach(labels, last)
        meta, spec = metadata_for(labels)
        series = v2.TimeSeries(refs(labels), samples, histograms, exemplars, meta)
        if created is not None:
            series.created_timestamp = now + created
        out.append(series)
        kept.append(
            _verdict(len(out) - 1, labels, series, exemplar_labels, spec, bad_histograms=bad)
        )

    def last_index(specs: list[Any]) -> dict[tuple[tuple[str, str], ...], int]:
        return {tuple(sorted(s.labels.items())): i for i, s in enumerate(specs)}

    last_sample = last_index(opts.samples)
    for i, s in enumerate(opts.samples):
        last = last_sample[tuple(sorted(s.labels.items()))] == i
        add(s.labels, [v2.Sample(s.value, now + s.offset)], [], False, s.created, last)
    last_hist = last_index(opts.histograms)
    for i, h in enumerate(opts.histograms):
        last = last_hist[tuple(sorted(h.labels.items()))] == i
        hist = replace(h.histogram, timestamp=now + h.offset)
        add(h.labels, [], [hist], h.bad, h.created, last)

    points = [*opts.samples, *opts.histograms]
    for i, ex in enumerate(opts.exemplars):
        if i in used or any(_same(p.labels, ex.labels) for p in points):
            continue
        exemplar = v2.Exemplar(refs(ex.exemplar_labels), ex.value, now + ex.offset)
        series = v2.TimeSeries(refs(ex.labels), exemplars=[exemplar])
        out.append(series)
        kept.append(_verdict(len(out) - 1, ex.labels, series, [ex.exemplar_labels], None))

    for md in opts.metadata:
        name = md.labels.get("__name__", "")
        if not name or any(p.labels.get("__name__", "") == name for p in points):
            continue
        meta = v2.Metadata(type=md.type, help_ref=table.ref(md.help), unit_ref=table.ref(md.unit))
        series = v2.TimeSeries(refs(md.labels), metadata=meta)
        out.append(series)
        kept.append(_verdict(len(out) - 1, md.labels, series, [], md))

    return v2.Request(symbols=table.symbols, timeseries=out), Expected(kept)


def _verdict(
    index: int,
    labels: Labels,
    series: v2.TimeSeries,
    exemplar_labels: list[Labels],
    metadata: MetadataSpec | None,
    *,
    bad_histograms: bool = False,
) -> KeptSeries:
    """What a receiver keeps of one series (the 2.0 spec as Prometheus' receiver reads it)."""
    present = {k: v for k, v in labels.items() if v}
    refused = None
    if not present:
        refused = "no label"  # "no labels" / "no label has a value"
    elif not present.get("__name__"):
        refused = "no metric name (__name__)"
    elif not series.samples and not series.histograms:
        refused = "no samples and no histograms"
    histograms = list(series.histograms)
    exemplars = list(series.exemplars)
    refused_points = 0
    if refused is None and bad_histograms:
        refused_points, histograms = len(histograms), []
        if not series.samples:
            exemplars, exemplar_labels = [], []  # nothing of the series is left
    return KeptSeries(
        index=index,
        labels=present,
        samples=list(series.samples),
        histograms=histograms,
        exemplars=exemplars,
        exemplar_labels=exemplar_labels,
        metadata=metadata,
        refused=refused,
        refused_points=refused_points,
    )


def histogram(
    total: float,
    positive: bool,
    negative: bool,
    zero: bool,
    custom: bool,
    bad_count: bool,
) -> v2.Histogram:
    """The Go helper ``histogram(sum, includePositive, includeNegative, includeZero,
    useCustomBuckets, badCount)``: an integer histogram of schema 0 (or -53)."""
    span = v2.BucketSpan
    h = v2.Histogram(sum=total)
    count = 0
    if positive:
        h.positive_spans, h.positive_deltas = [span(0, 3), span(2, 2)], [1, 2, 1, 3, 1]
        count += 23  # buckets 1, 3, 4, 7, 8
    if negative:
        h.negative_spans, h.negative_deltas = [span(0, 2)], [1, 1]
        count += 3  # buckets 1, 2
    if zero:
        h.zero_count_int = 1
        count += 1
    if custom:
        h.positive_spans, h.positive_deltas = [span(0, 6)], [2, 1, 2, 3, -1, -2]
        h.schema, h.custom_values = -53, [0.1, 0.5, 1.0, 2.5, 5.0, 10.0]
        count = 30  # buckets 2, 3, 5, 8, 7, 5
    h.count_int = 99 if bad_count else count
    return h


# ----------------------------------------------------------------------------- the table


@dataclass
class Case:
    """One Go subtest: the request it sends and what the suite and promwire expect."""

    name: str  # "TestSingleMetric/1.0/simple metric returns 204"
    level: str  # "MUST", "SHOULD" or "MAY"
    params: Params
    opts: Opts | None = None
    mutate: Callable[[Built], Built] | None = None  # request_test.go: headers or body changed
    v1: bool = False  # rw1_compat_test.go: a remote write 1.0 request
    status: int | None = None  # promwire's exact answer when not the derived one
    says: tuple[str, ...] = ()  # words promwire's 400 must hold

    @property
    def test(self) -> str:
        """The Go test function this case belongs to."""
        return self.name.split("/", 1)[0].removesuffix(" returns 204")


CASES: list[Case] = []


def _pair(name: str, opts: Opts, params: Params, success: bool, level: str = "MUST") -> None:
    """The Go ``runComplianceTest``: a SHOULD "returns 204" row first for a success case."""
    name = name.rstrip("/")
    if success:
        CASES.append(
            Case(
                f"{name} returns 204",
                "SHOULD",
                replace(params, success=True, strict=True),
                opts,
            )
        )
    CASES.append(Case(name, level, replace(params, success=success, strict=False), opts))


def _run(name: str, opts: Opts, params: Params, level: str) -> None:
    """A Go ``runRequest`` called directly (no SHOULD twin)."""
    CASES.append(Case(name, level, params, opts))


def basic(name: str) -> Labels:
    return {"__name__": name}


def job_instance() -> Labels:
    return {"__name__": "up", "job": "testjob", "instance": "localhost:9090"}


def _tests_metric() -> None:
    for kind, v in VALUES.items():
        for sub, labels, ok in (
            ("simple metric", basic("up"), True),
            ("simple metric with multiple labels", job_instance(), True),
            (
                "simple metric with newlines",
                {"__name__": "up", "job": "test\njob\n", "instance": "localhost:9090"},
                True,
            ),
            (
                "simple metric with dots",
                {
                    "__name__": "resource.cpu.usage",
                    "job.name": "testjob",
                    "instance.name": "localhost:9090",
                },
                True,
            ),
            (
                "simple metric with spaces",
                {
                    "__name__": "resource cpu usage",
                    "job name": "testjob",
                    "instance name": "localhost:9090",
                },
                True,
            ),
            (
                "simple metric without name label",
                {"job": "testjob", "instance": "localhost:9090"},
                False,
            ),
            ("empty metric", {}, False),
        ):
            _pair(
                f"TestSingleMetric/{kind}/{sub}",
                Opts(samples=[SampleSpec(labels, v)]),
                Params(samples=1),
                ok,
            )
    _pair(
        "TestCounterWithCreatedTimestamp/",
        Opts(
            samples=[
                SampleSpec({"__name__": "http_requests_total", "job": "api"}, 100.0, created=-HOUR)
            ]
        ),
        Params(samples=1),
        True,
    )
    for kind, v in VALUES.items():

        def four(named: list[bool], v: float = v) -> list[SampleSpec]:
            out = []
            for i, has_name in enumerate(named):
                labels = {"job": "testjob", "instance": f"localhost:909{i}"}
                if has_name:
                    labels["__name__"] = "up"
                out.append(SampleSpec(labels, v))
            return out

        for sub, named, ok, valid in (
            ("multiple metrics", [True] * 4, True, 4),
            ("multiple metrics, without name label", [False] * 4, False, 0),
            ("multiple metrics, 1 without name label", [False, True, True, True], False, 3),
        ):
            _pair(
                f"TestMultipleMetrics/{kind}/{sub}",
                Opts(samples=four(named)),
                Params(samples=valid),
                ok,
            )


def _tests_histograms() -> None:
    for sub, labels, flags, ok in (
        ("basic_histogram", basic("test_histogram"), (True, True, True, False, False), True),
        (
            "custom_buckets_histogram",
            basic("test_histogram"),
            (True, False, False, True, False),
            True,
        ),
        (
            "positive_only_histogram",
            {"__name__": "test_histogram", "job": "test"},
            (True, False, True, False, False),
            True,
        ),
        (
            "negative_only_histogram",
            {"__name__": "test_histogram", "instance": "localhost"},
            (False, True, False, False, False),
            True,
        ),
        ("minimal_histogram", basic("minimal_hist"), (False, False, True, False, False), True),
        ("bad_count_histogram", basic("minimal_hist"), (True, False, False, False, True), False),
    ):
        spec = HistogramSpec(labels, histogram(1.0, *flags), bad=flags[-1])
        _pair(f"TestHistograms/{sub}", Opts(histograms=[spec]), Params(histograms=1), ok)
    rd = {"__name__": "request_duration_seconds", "job": "api"}
    _pair(
        "TestHistogramWithCreatedTimestamp/",
        Opts(
            histograms=[
                HistogramSpec(
                    rd, histogram(1.5, True, True, True, False, False), created=-30 * MINUTE
                )
            ]
        ),
        Params(histograms=1),
        True,
    )
    _pair(
        "TestMultipleHistograms/",
        Opts(
            histograms=[
                HistogramSpec(
                    {"__name__": "hist1", "job": "test"},
                    histogram(10.5, True, False, True, False, False),
                ),
                HistogramSpec(
                    {"__name__": "hist2", "job": "test"},
                    histogram(5.2, False, True, False, False, False),
                ),
            ]
        ),
        Params(histograms=2),
        True,
    )
    _pair(
        "TestEmptyHistogram/",
        Opts(
            histograms=[
                HistogramSpec(
                    basic("empty_hist"), histogram(0.0, False, False, False, False, False)
                )
            ]
        ),
        Params(histograms=1),
        True,
    )
    _pair(
        "TestHistogramWithMetadata/",
        Opts(
            histograms=[HistogramSpec(rd, histogram(2.5, True, True, True, False, False))],
            metadata=[
                MetadataSpec(
                    basic("request_duration_seconds"),
                    v2.MetricType.METRIC_TYPE_HISTOGRAM,
                    "HTTP request duration in seconds",
                    "seconds",
                )
            ],
        ),
        Params(histograms=1),
        True,
    )
    get = {"__name__": "http_request_duration_seconds", "method": "GET"}
    _pair(
        "TestHistogramWithExemplar/",
        Opts(
            histograms=[HistogramSpec(get, histogram(1.23, True, False, True, False, False))],
            exemplars=[ExemplarSpec(get, {"trace_id": "abc123def456", "span_id": "span789"}, 1.23)],
        ),
        Params(histograms=1, exemplars=1),
        True,
    )
    upload = {"__name__": "response_size_bytes", "service": "upload"}
    _pair(
        "TestHistogramWithMetadataAndExemplar/",
        Opts(
            histograms=[HistogramSpec(upload, histogram(10485760, True, True, True, False, False))],
            metadata=[
                MetadataSpec(
                    basic("response_size_bytes"),
                    v2.MetricType.METRIC_TYPE_HISTOGRAM,
                    "HTTP response size in bytes",
                    "bytes",
                )
            ],
            exemplars=[
                ExemplarSpec(
                    upload, {"trace_id": "large_upload_trace", "user_id": "user456"}, 10485760
                )
            ],
        ),
        Params(histograms=1, exemplars=1),
        True,
    )
    _pair(
        "TestMultipleHistogramsWithMetadata/",
        Opts(
            histograms=[
                HistogramSpec(
                    {"__name__": "cpu_usage_histogram", "instance": "server1"},
                    histogram(0.75, True, False, True, False, False),
                ),
                HistogramSpec(
                    {"__name__": "memory_usage_histogram", "instance": "server1"},
                    histogram(8589934592, True, True, False, False, False),
                ),
            ],
            metadata=[
                MetadataSpec(
                    basic("cpu_usage_histogram"),
                    v2.MetricType.METRIC_TYPE_HISTOGRAM,
                    "CPU usage distribution",
                    "ratio",
                ),
                MetadataSpec(
                    basic("memory_usage_histogram"),
                    v2.MetricType.METRIC_TYPE_HISTOGRAM,
                    "Memory usage distribution",
                    "bytes",
                ),
            ],
        ),
        Params(histograms=2),
        True,
    )


def _sample_with_exemplar(labels: Labels, exemplar_labels: Labels, value: float, **kw: Any) -> Opts:
    return Opts(
        samples=[SampleSpec(labels, value, **kw)],
        exemplars=[ExemplarSpec(labels, exemplar_labels, value)],
    )


def _tests_exemplars() -> None:
    for sub, labels, exemplar_labels, value in (
        (
            "basic_exemplar",
            {"__name__": "http_requests_total", "job": "api"},
            {"trace_id": "abc123def456"},
            1.0,
        ),
        (
            "exemplar_with_span_id",
            {"__name__": "request_duration_seconds", "method": "GET"},
            {"trace_id": "xyz789", "span_id": "span123"},
            0.125,
        ),
        (
            "exemplar_without_trace_id",
            {"__name__": "cpu_usage", "instance": "host1"},
            {"user_id": "user123"},
            0.85,
        ),
        (
            "exemplar_with_multiple_labels",
            {"__name__": "request_latency", "service": "auth"},
            {"trace_id": "trace456", "user": "admin", "endpoint": "/login"},
            0.05,
        ),
        ("exemplar_no_labels", basic("simple_counter"), {}, 1.0),
        (
            "exemplar_with_special_chars",
            basic("test_metric"),
            {"trace_id": "trace-with-dashes_and_underscores.123"},
            42.0,
        ),
        (
            "exemplar_with_unicode",
            {"__name__": "unicode_test", "region": "🌍"},
            {"trace_id": "unicode_trace_测试"},
            100.0,
        ),
    ):
        _pair(
            f"TestExemplars/{sub}",
            _sample_with_exemplar(labels, exemplar_labels, value),
            Params(samples=1, exemplars=1),
            True,
        )
    api = {"__name__": "http_requests_total", "job": "api"}
    _pair(
        "TestExemplarWithCreatedTimestamp/",
        _sample_with_exemplar(
            api, {"trace_id": "abc123", "span_id": "span456"}, 250.0, created=-2 * HOUR
        ),
        Params(samples=1, exemplars=1),
        True,
    )
    trio = [
        (
            {"__name__": "request_duration", "method": "GET"},
            {"trace_id": "trace1", "span_id": "span1"},
            0.1,
        ),
        (
            {"__name__": "request_duration", "method": "POST"},
            {"trace_id": "trace2", "span_id": "span2"},
            0.25,
        ),
        (
            {"__name__": "error_count", "service": "payment"},
            {"trace_id": "trace3", "user": "test_user"},
            1.0,
        ),
    ]
    _pair(
        "TestMultipleExemplars/",
        Opts(
            samples=[SampleSpec(lb, v) for lb, _, v in trio],
            exemplars=[ExemplarSpec(lb, ex, v) for lb, ex, v in trio],
        ),
        Params(samples=3, exemplars=3),
        True,
    )
    hist = basic("latency_hist")
    timed = [
        ("old_trace", 0.05, -HOUR),
        ("recent_trace", 0.15, -MINUTE),
        ("current_trace", 0.08, 0),
    ]
    _pair(
        "TestExemplarTimestamps/",
        Opts(
            samples=[SampleSpec(hist, v, offset=o) for _, v, o in timed],
            exemplars=[ExemplarSpec(hist, {"trace_id": t}, v, offset=o) for t, v, o in timed],
        ),
        Params(samples=3, exemplars=3),
        True,
    )
    for sub, labels, ok in (
        ("exemplar_without_name_label", {"job": "test"}, False),
        ("exemplar_with_empty_name", {"__name__": ""}, False),
        ("exemplar_with_valid_name", basic("valid_metric"), True),
    ):
        _run(
            f"TestExemplarValidation/{sub}",
            _sample_with_exemplar(labels, {"trace_id": "test_trace"}, 1.0),
            Params(samples=1, exemplars=1, success=ok),
            "SHOULD",
        )
    for sub, value in (
        ("zero_value", 0.0),
        ("negative_value", -123.456),
        ("large_value", 1e10),
        ("small_value", 1e-10),
        ("nan_value", VALUES["NaN"]),
        ("inf_value", math.inf),
        ("-inf_value", -math.inf),
    ):
        _pair(
            f"TestExemplarSpecialValues/{sub}",
            _sample_with_exemplar(basic("test_metric"), {"trace_id": "special_value_trace"}, value),
            Params(samples=1, exemplars=1),
            True,
        )


def _tests_metadata() -> None:
    t = v2.MetricType
    for sub, labels, kind, help_, unit in (
        (
            "counter_metadata",
            basic("http_requests_total"),
            t.METRIC_TYPE_COUNTER,
            "Total number of HTTP requests",
            "requests",
        ),
        (
            "gauge_metadata",
            basic("cpu_usage_percent"),
            t.METRIC_TYPE_GAUGE,
            "Current CPU usage percentage",
            "percent",
        ),
        (
            "histogram_metadata",
            basic("request_duration_seconds"),
            t.METRIC_TYPE_HISTOGRAM,
            "Request duration in seconds",
            "seconds",
        ),
        ("metadata_no_help_no_unit", basic("simple_counter"), t.METRIC_TYPE_COUNTER, "", ""),
        (
            "metadata_with_special_chars",
            {"__name__": "test_metric", "job": "test"},
            t.METRIC_TYPE_GAUGE,
            'Test metric with\nnewlines and "quotes"',
            "bytes/sec",
        ),
        (
            "unspecified_metadata_type",
            basic("unknown_metric"),
            t.METRIC_TYPE_UNSPECIFIED,
            "Unknown metric type",
            "",
        ),
        ("info_metadata_type", basic("build_info"), t.METRIC_TYPE_INFO, "Build information", ""),
        (
            "stateset_metadata_type",
            basic("node_state"),
            t.METRIC_TYPE_STATESET,
            "Node state information",
            "",
        ),
        (
            "summary_metadata_type",
            basic("request_latency_summary"),
            t.METRIC_TYPE_SUMMARY,
            "Request latency summary",
            "seconds",
        ),
        (
            "gauge_histogram_metadata_type",
            basic("temperature_histogram"),
            t.METRIC_TYPE_GAUGEHISTOGRAM,
            "Temperature distribution gauge histogram",
            "celsius",
        ),
    ):
        opts = Opts(metadata=[MetadataSpec(labels, kind, help_, unit)])
        if kind == t.METRIC_TYPE_HISTOGRAM:
            opts.histograms = [
                HistogramSpec(labels, histogram(1.0, True, True, True, False, False))
            ]
            params = Params(histograms=1)
        else:
            opts.samples = [SampleSpec(labels, 1.0)]
            params = Params(samples=1)
        _pair(f"TestMetadata/{sub}", opts, params, True)
    api = {"__name__": "http_requests_total", "job": "api"}
    _pair(
        "TestCounterMetadataWithCreatedTimestamp/",
        Opts(
            samples=[SampleSpec(api, 150.0, created=-HOUR)],
            metadata=[
                MetadataSpec(
                    basic("http_requests_total"),
                    t.METRIC_TYPE_COUNTER,
                    "Total HTTP requests",
                    "requests",
                )
            ],
        ),
        Params(samples=1),
        True,
    )
    _pair(
        "TestMetadataWithSamples/",
        Opts(
            samples=[SampleSpec({"__name__": "http_requests_total", "job": "test"}, 42.0)],
            metadata=[
                MetadataSpec(
                    basic("http_requests_total"),
                    t.METRIC_TYPE_COUNTER,
                    "Total HTTP requests",
                    "requests",
                )
            ],
        ),
        Params(samples=1),
        True,
    )
    disk = {"__name__": "disk_usage", "device": "sda1"}
    _pair(
        "TestMultipleMetadata/",
        Opts(
            samples=[
                SampleSpec(basic("cpu_usage"), 85.5),
                SampleSpec(basic("memory_usage"), 4096000000),
                SampleSpec(disk, 75.2),
            ],
            metadata=[
                MetadataSpec(
                    basic("cpu_usage"), t.METRIC_TYPE_GAUGE, "CPU usage percentage", "percent"
                ),
                MetadataSpec(
                    basic("memory_usage"), t.METRIC_TYPE_GAUGE, "Memory usage in bytes", "bytes"
                ),
                MetadataSpec(disk, t.METRIC_TYPE_GAUGE, "Disk usage percentage", "percent"),
            ],
        ),
        Params(samples=3),
        True,
    )
    complex_labels = {
        "__name__": "http_request_duration_seconds",
        "job": "api-server",
        "instance": "localhost:8080",
        "method": "GET",
        "status": "200",
        "endpoint": "/api/v1/users",
    }
    _pair(
        "TestMetadataWithComplexLabels/",
        Opts(
            histograms=[
                HistogramSpec(complex_labels, histogram(0.250, True, True, True, False, False))
            ],
            metadata=[
                MetadataSpec(
                    complex_labels,
                    t.METRIC_TYPE_HISTOGRAM,
                    "HTTP request duration in seconds",
                    "seconds",
                )
            ],
        ),
        Params(histograms=1),
        True,
    )
    for sub, labels, kind, ok, unsafe in (
        ("metadata_without_name_label", {"job": "test"}, t.METRIC_TYPE_COUNTER, False, False),
        ("metadata_with_empty_name", {"__name__": ""}, t.METRIC_TYPE_GAUGE, False, True),
        (
            "metadata_with_valid_name",
            basic("valid_metric_name"),
            t.METRIC_TYPE_COUNTER,
            True,
            False,
        ),
    ):
        _run(
            f"TestMetadataValidation/{sub}",
            Opts(
                samples=[SampleSpec(labels, 1.0)],
                metadata=[MetadataSpec(labels, kind, "Test help", "unit")],
                unsafe=unsafe,
            ),
            Params(samples=1, success=ok),
            "SHOULD",
        )


def _tests_combined() -> None:
    t = v2.MetricType
    post = {"__name__": "http_requests_total", "job": "api", "method": "POST"}
    _pair(
        "TestSamplesWithMetadataAndExemplars/",
        Opts(
            samples=[SampleSpec(post, 1.0)],
            metadata=[
                MetadataSpec(
                    post, t.METRIC_TYPE_COUNTER, "Total number of HTTP requests", "requests"
                )
            ],
            exemplars=[
                ExemplarSpec(post, {"trace_id": "request_trace_123", "user_id": "user789"}, 1.0)
            ],
        ),
        Params(samples=1, exemplars=1),
        True,
    )
    auth = {"__name__": "request_duration_seconds", "service": "auth"}
    _pair(
        "TestHistogramsWithMetadataAndExemplars/",
        Opts(
            histograms=[HistogramSpec(auth, histogram(0.456, True, True, True, False, False))],
            metadata=[
                MetadataSpec(
                    basic("request_duration_seconds"),
                    t.METRIC_TYPE_HISTOGRAM,
                    "HTTP request duration distribution",
                    "seconds",
                )
            ],
            exemplars=[
                ExemplarSpec(auth, {"trace_id": "slow_request_trace", "endpoint": "/login"}, 0.456)
            ],
        ),
        Params(histograms=1, exemplars=1),
        True,
    )
    cpu = {"__name__": "cpu_usage", "instance": "server1"}
    _pair(
        "TestComplexSamplesRequest/",
        Opts(
            samples=[
                SampleSpec(cpu, 0.85),
                SampleSpec({"__name__": "memory_usage", "instance": "server1"}, 8589934592),
            ],
            metadata=[
                MetadataSpec(basic("cpu_usage"), t.METRIC_TYPE_GAUGE, "CPU usage ratio", "ratio"),
                MetadataSpec(
                    basic("memory_usage"), t.METRIC_TYPE_GAUGE, "Memory usage in bytes", "bytes"
                ),
            ],
            exemplars=[
                ExemplarSpec(cpu, {"trace_id": "high_cpu_trace", "process": "worker"}, 0.85)
            ],
        ),
        Params(samples=2, exemplars=1),
        True,
    )
    users = {"__name__": "response_time_hist", "endpoint": "/api/v1/users"}
    _pair(
        "TestComplexHistogramsRequest/",
        Opts(
            histograms=[
                HistogramSpec(users, histogram(0.125, True, False, True, False, False)),
                HistogramSpec(
                    {"__name__": "request_size_hist", "method": "POST"},
                    histogram(1024, False, True, True, False, False),
                ),
            ],
            metadata=[
                MetadataSpec(
                    basic("response_time_hist"),
                    t.METRIC_TYPE_HISTOGRAM,
                    "Response time distribution",
                    "seconds",
                ),
                MetadataSpec(
                    basic("request_size_hist"),
                    t.METRIC_TYPE_HISTOGRAM,
                    "Request size distribution",
                    "bytes",
                ),
            ],
            exemplars=[
                ExemplarSpec(users, {"trace_id": "fast_response", "user": "premium"}, 0.125)
            ],
        ),
        Params(histograms=2, exemplars=1),
        True,
    )
    ok200 = {"__name__": "http_requests_total", "status": "200"}
    _pair(
        "TestMultipleMetricFamiliesSamples/",
        Opts(
            samples=[
                SampleSpec(ok200, 1000),
                SampleSpec({"__name__": "temperature_celsius", "location": "datacenter1"}, 23.5),
            ],
            metadata=[
                MetadataSpec(
                    basic("http_requests_total"),
                    t.METRIC_TYPE_COUNTER,
                    "Total HTTP requests",
                    "requests",
                ),
                MetadataSpec(
                    basic("temperature_celsius"),
                    t.METRIC_TYPE_GAUGE,
                    "Temperature in Celsius",
                    "celsius",
                ),
            ],
            exemplars=[ExemplarSpec(ok200, {"trace_id": "successful_request"}, 1000)],
        ),
        Params(samples=2, exemplars=1),
        True,
    )
    metrics = {"__name__": "request_duration_seconds", "handler": "/metrics"}
    _pair(
        "TestMultipleMetricFamiliesHistograms/",
        Opts(
            histograms=[HistogramSpec(metrics, histogram(0.003, True, False, True, False, False))],
            metadata=[
                MetadataSpec(
                    basic("request_duration_seconds"),
                    t.METRIC_TYPE_HISTOGRAM,
                    "Request duration in seconds",
                    "seconds",
                )
            ],
            exemplars=[
                ExemplarSpec(
                    metrics, {"trace_id": "metrics_scrape", "scraper": "prometheus"}, 0.003
                )
            ],
        ),
        Params(histograms=1, exemplars=1),
        True,
    )
    # TestEdgeCaseCombinations: series with neither samples nor histograms, which the
    # 2.0 spec forbids (a receiver MUST NOT... the suite still calls them successes,
    # and its check lets a 400 pass); promwire refuses them with 400.
    _run(
        "TestEdgeCaseCombinations/metadata_without_data",
        Opts(
            metadata=[
                MetadataSpec(
                    basic("orphan_metric"),
                    t.METRIC_TYPE_COUNTER,
                    "Orphaned metric metadata",
                    "count",
                )
            ],
            unsafe=True,
        ),
        Params(success=True),
        "SHOULD",
    )
    _run(
        "TestEdgeCaseCombinations/exemplars_without_data",
        Opts(
            exemplars=[ExemplarSpec(basic("orphan_metric"), {"trace_id": "orphan_trace"}, 42.0)],
            unsafe=True,
        ),
        Params(exemplars=1, success=True),
        "SHOULD",
    )
    _run(
        "TestEdgeCaseCombinations/mixed_timestamp_data",
        Opts(
            samples=[
                SampleSpec(basic("old_metric"), 1.0, offset=-HOUR),
                SampleSpec(basic("new_metric"), 2.0),
            ],
            exemplars=[
                ExemplarSpec(
                    basic("old_metric"), {"trace_id": "old_trace"}, 1.0, offset=-30 * MINUTE
                )
            ],
        ),
        Params(samples=2, exemplars=1, success=True),
        "SHOULD",
    )
    many = Opts()
    for i in range(50):
        name = f"counter_metric_{i}"
        labels = {"__name__": name, "series": f"series_{i}"}
        many.samples.append(SampleSpec(labels, float(i * 100)))
        many.metadata.append(
            MetadataSpec(basic(name), t.METRIC_TYPE_COUNTER, f"Counter metric number {i}", "count")
        )
        many.exemplars.append(ExemplarSpec(labels, {"trace_id": f"trace_{i}"}, float(i * 100)))
    _pair("TestManySamples/", many, Params(samples=50, exemplars=50), True)
    many = Opts()
    for i in range(50):
        name = f"histogram_metric_{i}"
        labels = {"__name__": name, "bucket": f"bucket_{i}"}
        many.histograms.append(
            HistogramSpec(labels, histogram(i / 10.0, True, i % 2 == 0, True, False, False))
        )
        many.metadata.append(
            MetadataSpec(
                basic(name), t.METRIC_TYPE_HISTOGRAM, f"Histogram metric number {i}", "seconds"
            )
        )
        many.exemplars.append(ExemplarSpec(labels, {"trace_id": f"trace_{i}"}, i / 10.0))
    _pair("TestManyHistograms/", many, Params(histograms=50, exemplars=50), True)
    special = {
        "__name__": "test_metric",
        "job": "test-job_with.special@chars",
        "instance": "localhost:9090",
        "environment": "test🚀",
    }
    _pair(
        "TestSpecialCharactersCombined/",
        Opts(
            samples=[SampleSpec(special, 42.0)],
            metadata=[
                MetadataSpec(
                    basic("test_metric"),
                    t.METRIC_TYPE_GAUGE,
                    'Test metric with special characters: äöü, newlines\nand "quotes"',
                    "special/units",
                )
            ],
            exemplars=[
                ExemplarSpec(
                    special,
                    {
                        "trace_id": "special_trace_äöü-123",
                        "span_id": "span_with.dots-and_underscores",
                    },
                    42.0,
                )
            ],
        ),
        Params(samples=1, exemplars=1),
        True,
    )
    v2labels = {"__name__": "custom_latency_hist", "version": "v2"}
    _pair(
        "TestCustomBucketsHistogramWithExemplar/",
        Opts(
            histograms=[HistogramSpec(v2labels, histogram(0.05, False, False, False, True, False))],
            exemplars=[
                ExemplarSpec(v2labels, {"trace_id": "custom_bucket_trace", "bucket": "0.1"}, 0.05)
            ],
        ),
        Params(histograms=1, exemplars=1),
        True,
    )


def _corrupt(built: Built) -> Built:
    """request_test.go ``corruptRequestBody``: the first byte of the body becomes ``'0'``."""
    return replace(built, body=b"0" + built.body[1:], expected=None)


def _header(name: str, value: str) -> Callable[[Built], Built]:
    def mutate(built: Built) -> Built:
        return _corrupt(replace(built, headers={**built.headers, name: value}))

    return mutate


def _tests_request() -> None:
    up = Opts(samples=[SampleSpec(basic("up"), 1.0)])
    for ct in ("application/json", "image/png"):
        CASES.append(
            Case(
                f"TestBadContentTypes/{ct.replace('/', '_')}",
                "MUST",
                Params(exact_code=415),
                up,
                mutate=_header("Content-Type", ct),
            )
        )
    for enc in ("gzip", "deflate"):
        CASES.append(
            Case(
                f"TestBadContentEncodings/{enc}",
                "MUST",
                Params(exact_code=415),
                up,
                mutate=_header("Content-Encoding", enc),
            )
        )
    CASES.append(Case("TestCorruptRequestBody", "MUST", Params(), up, mutate=_corrupt))
    pair = Opts(
        samples=[SampleSpec(job_instance(), 1.0), SampleSpec(basic("http_requests_total"), 100.0)]
    )
    CASES.append(Case("TestRW1BasicCompatibility", "MAY", Params(success=True), pair, v1=True))

    def bad_snappy(built: Built) -> Built:
        return replace(built, body=b"\xff" + built.body[1:], expected=None)

    CASES.append(
        Case(
            "TestRW1ErrorHandling",
            "MAY",
            Params(),
            Opts(samples=[SampleSpec(basic("error_test"), 1.0)]),
            mutate=bad_snappy,
            v1=True,
        )
    )


_tests_metric()
_tests_histograms()
_tests_exemplars()
_tests_metadata()
_tests_combined()
_tests_request()


def http_request(case: Case, now: int) -> Built:
    """Headers and snappy body of ``case`` at time ``now`` (ms), with what must be kept."""
    assert case.opts is not None
    request, expected = build(case.opts, now)
    if case.v1:
        body = snappy.compress(encode(v2.to_v1(request, sort_labels=True)))
        built = Built(
            {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
            body,
            None,
            expected,
        )
    else:
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": CT_V2,
            "X-Prometheus-Remote-Write-Version": "2.0.0",
        }
        built = Built(headers, snappy.compress(encode(request)), request, expected)
    return case.mutate(built) if case.mutate else built


def go_verdict(params: Params, status: int, written: tuple[int, int, int]) -> str | None:
    """The suite's ``validateResponse``: why the answer fails it, or None.

    ``written`` is (samples, exemplars, histograms) from the Written headers, 0 when absent.
    """
    bounds = (params.samples, params.exemplars, params.histograms)
    if params.exact_code and status != params.exact_code:
        return f"status {status}, the suite wants exactly {params.exact_code}"
    if 200 <= status < 300:
        if not params.success:
            return f"status {status} for a case that must fail"
        if written != bounds:
            return f"written {written}, the suite wants {bounds}"
        if params.strict and status != 204:
            return f"status {status}, SHOULD be 204"
        return None
    if 400 <= status < 500 or 500 <= status < 600:
        if 400 <= status < 500:
            if params.retryable:
                return f"status {status} for a retryable case"
            if not params.exact_code and status != 400:
                return f"status {status}, the suite wants 400"
        elif params.success or not params.retryable:
            return f"status {status} (5xx) for a case that is not a retryable failure"
        if any(w > b for w, b in zip(written, bounds, strict=True)) or sum(written) > sum(bounds):
            return f"written {written} over the suite's bounds {bounds}"
        return None
    return f"status {status} is not 2xx, 4xx or 5xx"
