# ruff: noqa: RUF009, UP006, UP035
# (betterproto declares fields as dataclass defaults and 1.x reads typing.List hints)
"""Peer: betterproto, with message classes declared by hand (no protoc).

Works with betterproto 1.2.x and the 2.0 betas (same declaration API). The
optional Rust codec of the 2.0 betas is not used by this suite (not installed).

No ``from __future__ import annotations`` here: betterproto 1.x resolves the
field annotations itself and wants real types.
"""

from dataclasses import dataclass
from typing import Any, List, Tuple

import betterproto
import cramjam

from . import plain

NAME = "betterproto"
_decompress = cramjam.snappy.decompress_raw
_compress = cramjam.snappy.compress_raw


class MetricType(betterproto.Enum):
    UNKNOWN = 0
    COUNTER = 1
    GAUGE = 2
    HISTOGRAM = 3
    GAUGEHISTOGRAM = 4
    SUMMARY = 5
    INFO = 6
    STATESET = 7


class ResetHint(betterproto.Enum):
    UNKNOWN = 0
    YES = 1
    NO = 2
    GAUGE = 3


@dataclass(eq=False, repr=False)
class Label(betterproto.Message):
    name: str = betterproto.string_field(1)
    value: str = betterproto.string_field(2)


@dataclass(eq=False, repr=False)
class Sample(betterproto.Message):
    value: float = betterproto.double_field(1)
    timestamp: int = betterproto.int64_field(2)


@dataclass(eq=False, repr=False)
class Exemplar(betterproto.Message):
    labels: List[Label] = betterproto.message_field(1)
    value: float = betterproto.double_field(2)
    timestamp: int = betterproto.int64_field(3)


@dataclass(eq=False, repr=False)
class BucketSpan(betterproto.Message):
    offset: int = betterproto.sint32_field(1)
    length: int = betterproto.uint32_field(2)


@dataclass(eq=False, repr=False)
class Histogram(betterproto.Message):
    count_int: int = betterproto.uint64_field(1, group="count")
    count_float: float = betterproto.double_field(2, group="count")
    sum: float = betterproto.double_field(3)
    schema: int = betterproto.sint32_field(4)
    zero_threshold: float = betterproto.double_field(5)
    zero_count_int: int = betterproto.uint64_field(6, group="zero_count")
    zero_count_float: float = betterproto.double_field(7, group="zero_count")
    negative_spans: List[BucketSpan] = betterproto.message_field(8)
    negative_deltas: List[int] = betterproto.sint64_field(9)
    negative_counts: List[float] = betterproto.double_field(10)
    positive_spans: List[BucketSpan] = betterproto.message_field(11)
    positive_deltas: List[int] = betterproto.sint64_field(12)
    positive_counts: List[float] = betterproto.double_field(13)
    reset_hint: ResetHint = betterproto.enum_field(14)
    timestamp: int = betterproto.int64_field(15)
    custom_values: List[float] = betterproto.double_field(16)


@dataclass(eq=False, repr=False)
class TimeSeries(betterproto.Message):
    labels: List[Label] = betterproto.message_field(1)
    samples: List[Sample] = betterproto.message_field(2)
    exemplars: List[Exemplar] = betterproto.message_field(3)
    histograms: List[Histogram] = betterproto.message_field(4)


@dataclass(eq=False, repr=False)
class MetricMetadata(betterproto.Message):
    type: MetricType = betterproto.enum_field(1)
    metric_family_name: str = betterproto.string_field(2)
    help: str = betterproto.string_field(4)
    unit: str = betterproto.string_field(5)


@dataclass(eq=False, repr=False)
class WriteRequest(betterproto.Message):
    timeseries: List[TimeSeries] = betterproto.message_field(1)
    metadata: List[MetricMetadata] = betterproto.message_field(3)


# ------------------------------------------------------------------ peer interface


def version() -> str:
    from importlib.metadata import version as v

    return f"betterproto {v('betterproto')}"


def decode(body: bytes) -> WriteRequest:
    return WriteRequest().parse(bytes(_decompress(body)))


def _oneof(h: Histogram, group: str, int_name: str, float_name: str) -> Tuple[Any, Any]:
    which, value = betterproto.which_one_of(h, group)
    return (value if which == int_name else None, value if which == float_name else None)


def walk(req: WriteRequest) -> int:
    """Read every field of a decoded WriteRequest into Python values."""
    n = 0
    for ts in req.timeseries:
        for lb in ts.labels:
            _ = lb.name
            _ = lb.value
        for s in ts.samples:
            _ = s.value
            _ = s.timestamp
        for e in ts.exemplars:
            for lb in e.labels:
                _ = lb.name
                _ = lb.value
            _ = e.value
            _ = e.timestamp
        for h in ts.histograms:
            _ = betterproto.which_one_of(h, "count")
            _ = h.sum
            _ = h.schema
            _ = h.zero_threshold
            _ = betterproto.which_one_of(h, "zero_count")
            for sp in h.negative_spans:
                _ = sp.offset
                _ = sp.length
            _ = list(h.negative_deltas)
            _ = list(h.negative_counts)
            for sp in h.positive_spans:
                _ = sp.offset
                _ = sp.length
            _ = list(h.positive_deltas)
            _ = list(h.positive_counts)
            _ = h.reset_hint
            _ = h.timestamp
            _ = list(h.custom_values)
        n += 1
    for md in req.metadata:
        _ = md.type
        _ = md.metric_family_name
        _ = md.help
        _ = md.unit
    return n


def _oneofs(h: Any) -> tuple[Any, Any, Any, Any]:
    return (
        *_oneof(h, "count", "count_int", "count_float"),
        *_oneof(h, "zero_count", "zero_count_int", "zero_count_float"),
    )


def content(req: Any) -> tuple[Any, Any]:
    """The plain content (see :mod:`benchmarks.workloads`) of a decoded WriteRequest."""
    return plain.content(req, _oneofs)


def _histogram(h: Tuple[Any, ...]) -> Histogram:
    (ci, cf, sum_, schema, zt, zi, zf, nsp, nd, nc, psp, pd, pc, rh, ts, cv) = h
    kw: dict[str, Any] = {}
    # betterproto marks a oneof member as chosen when it is passed at all.
    if ci is not None:
        kw["count_int"] = ci
    if cf is not None:
        kw["count_float"] = cf
    if zi is not None:
        kw["zero_count_int"] = zi
    if zf is not None:
        kw["zero_count_float"] = zf
    return Histogram(
        sum=sum_,
        schema=schema,
        zero_threshold=zt,
        negative_spans=[BucketSpan(o, n) for o, n in nsp],
        negative_deltas=list(nd),
        negative_counts=list(nc),
        positive_spans=[BucketSpan(o, n) for o, n in psp],
        positive_deltas=list(pd),
        positive_counts=list(pc),
        reset_hint=ResetHint(rh),
        timestamp=ts,
        custom_values=list(cv),
        **kw,
    )


def build(plain: Tuple[Any, Any]) -> WriteRequest:
    series, metadata = plain
    return WriteRequest(
        timeseries=[
            TimeSeries(
                labels=[Label(n, v) for n, v in labels],
                samples=[Sample(v, t) for v, t in samples],
                exemplars=[
                    Exemplar([Label(n, v) for n, v in el], value, t) for el, value, t in exemplars
                ],
                histograms=[_histogram(h) for h in hists],
            )
            for labels, samples, exemplars, hists in series
        ],
        metadata=[MetricMetadata(MetricType(t), n, h, u) for t, n, h, u in metadata],
    )


def encode(req: WriteRequest) -> bytes:
    return bytes(_compress(bytes(req)))
