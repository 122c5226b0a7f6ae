# ruff: noqa: RUF009, UP006, UP035, UP045
# (pure-protobuf reads these exact typing forms at class creation)
"""Peer: pure-protobuf 3.x, with message classes declared by hand.

Types follow the proto: ``double`` (a bare ``float`` would be a 32-bit float
in pure-protobuf), ``int`` = int64 (two's complement varint), ``uint`` =
uint32/uint64, ``ZigZagInt`` = sint32/sint64. Oneofs use ``OneOf``; an
absent member is ``None``.

No ``from __future__ import annotations``: pure-protobuf reads the
``Annotated`` hints at class creation.
"""

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any, ClassVar, List, Optional, Tuple

import cramjam
from pure_protobuf.annotations import Field, ZigZagInt, double, uint
from pure_protobuf.message import BaseMessage
from pure_protobuf.one_of import OneOf

from . import plain

NAME = "pure-protobuf"
_decompress = cramjam.snappy.decompress_raw
_compress = cramjam.snappy.compress_raw


class MetricType(IntEnum):
    UNKNOWN = 0
    COUNTER = 1
    GAUGE = 2
    HISTOGRAM = 3
    GAUGEHISTOGRAM = 4
    SUMMARY = 5
    INFO = 6
    STATESET = 7


class ResetHint(IntEnum):
    UNKNOWN = 0
    YES = 1
    NO = 2
    GAUGE = 3


@dataclass
class Label(BaseMessage):
    name: Annotated[str, Field(1)] = ""
    value: Annotated[str, Field(2)] = ""


@dataclass
class Sample(BaseMessage):
    value: Annotated[double, Field(1)] = double(0.0)
    timestamp: Annotated[int, Field(2)] = 0


@dataclass
class Exemplar(BaseMessage):
    labels: Annotated[List[Label], Field(1)] = field(default_factory=list)
    value: Annotated[double, Field(2)] = double(0.0)
    timestamp: Annotated[int, Field(3)] = 0


@dataclass
class BucketSpan(BaseMessage):
    offset: Annotated[ZigZagInt, Field(1)] = ZigZagInt(0)
    length: Annotated[uint, Field(2)] = uint(0)


@dataclass
class Histogram(BaseMessage):
    count: ClassVar[OneOf[Any]] = OneOf()
    zero_count: ClassVar[OneOf[Any]] = OneOf()
    which_count = count.which_one_of_getter()
    which_zero_count = zero_count.which_one_of_getter()

    count_int: Annotated[Optional[uint], Field(1, one_of=count)] = None
    count_float: Annotated[Optional[double], Field(2, one_of=count)] = None
    sum: Annotated[double, Field(3)] = double(0.0)
    schema: Annotated[ZigZagInt, Field(4)] = ZigZagInt(0)
    zero_threshold: Annotated[double, Field(5)] = double(0.0)
    zero_count_int: Annotated[Optional[uint], Field(6, one_of=zero_count)] = None
    zero_count_float: Annotated[Optional[double], Field(7, one_of=zero_count)] = None
    negative_spans: Annotated[List[BucketSpan], Field(8)] = field(default_factory=list)
    negative_deltas: Annotated[List[ZigZagInt], Field(9)] = field(default_factory=list)
    negative_counts: Annotated[List[double], Field(10)] = field(default_factory=list)
    positive_spans: Annotated[List[BucketSpan], Field(11)] = field(default_factory=list)
    positive_deltas: Annotated[List[ZigZagInt], Field(12)] = field(default_factory=list)
    positive_counts: Annotated[List[double], Field(13)] = field(default_factory=list)
    reset_hint: Annotated[ResetHint, Field(14)] = ResetHint.UNKNOWN
    timestamp: Annotated[int, Field(15)] = 0
    custom_values: Annotated[List[double], Field(16)] = field(default_factory=list)


@dataclass
class TimeSeries(BaseMessage):
    labels: Annotated[List[Label], Field(1)] = field(default_factory=list)
    samples: Annotated[List[Sample], Field(2)] = field(default_factory=list)
    exemplars: Annotated[List[Exemplar], Field(3)] = field(default_factory=list)
    histograms: Annotated[List[Histogram], Field(4)] = field(default_factory=list)


@dataclass
class MetricMetadata(BaseMessage):
    type: Annotated[MetricType, Field(1)] = MetricType.UNKNOWN
    metric_family_name: Annotated[str, Field(2)] = ""
    help: Annotated[str, Field(4)] = ""
    unit: Annotated[str, Field(5)] = ""


@dataclass
class WriteRequest(BaseMessage):
    timeseries: Annotated[List[TimeSeries], Field(1)] = field(default_factory=list)
    metadata: Annotated[List[MetricMetadata], Field(3)] = field(default_factory=list)


# ------------------------------------------------------------------ peer interface


def version() -> str:
    from importlib.metadata import version as v

    return f"pure-protobuf {v('pure-protobuf')}"


def decode(body: bytes) -> WriteRequest:
    return WriteRequest.loads(bytes(_decompress(body)))


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
            _ = h.count_int
            _ = h.count_float
            _ = h.sum
            _ = h.schema
            _ = h.zero_threshold
            _ = h.zero_count_int
            _ = h.zero_count_float
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


def content(req: Any) -> tuple[Any, Any]:
    """The plain content (see :mod:`benchmarks.workloads`) of a decoded WriteRequest."""
    return plain.content(req)


def _histogram(h: Tuple[Any, ...]) -> Histogram:
    (ci, cf, sum_, schema, zt, zi, zf, nsp, nd, nc, psp, pd, pc, rh, ts, cv) = h
    return Histogram(
        count_int=ci,
        count_float=cf,
        sum=sum_,
        schema=schema,
        zero_threshold=zt,
        zero_count_int=zi,
        zero_count_float=zf,
        negative_spans=[BucketSpan(o, n) for o, n in nsp],
        negative_deltas=list(nd),
        negative_counts=list(nc),
        positive_spans=[BucketSpan(o, n) for o, n in psp],
        positive_deltas=list(pd),
        positive_counts=list(pc),
        reset_hint=ResetHint(rh),
        timestamp=ts,
        custom_values=list(cv),
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
    return bytes(_compress(req.dumps()))
