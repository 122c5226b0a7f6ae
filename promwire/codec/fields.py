"""Field tables: for every message class, its fields' numbers, names and wire kinds.

This is the one place that says which field number carries what (from
``prompb/types.proto`` and ``prompb/remote.proto``). The generic codec in
:mod:`promwire.decode` / :mod:`promwire.encode` walks these tables; the hot
paths for write requests are written out by hand and checked against the
tables by the tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from . import messages as m
from .wire import I64, LEN, VARINT

__all__ = ["SCHEMAS", "FieldSpec", "Kind"]


class Kind(enum.IntEnum):
    """How a field's value is carried on the wire."""

    INT64 = 1  # varint, two's complement (negatives take 10 bytes)
    UINT64 = 2
    UINT32 = 3
    SINT32 = 4  # zigzag
    SINT64 = 5  # zigzag
    BOOL = 6
    ENUM = 7  # varint, int32
    DOUBLE = 8  # fixed 8 bytes little-endian
    STRING = 9  # UTF-8, length-delimited
    BYTES = 10
    MESSAGE = 11


#: The wire type of one element of each kind.
WIRE_TYPE = {
    Kind.INT64: VARINT,
    Kind.UINT64: VARINT,
    Kind.UINT32: VARINT,
    Kind.SINT32: VARINT,
    Kind.SINT64: VARINT,
    Kind.BOOL: VARINT,
    Kind.ENUM: VARINT,
    Kind.DOUBLE: I64,
    Kind.STRING: LEN,
    Kind.BYTES: LEN,
    Kind.MESSAGE: LEN,
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a message.

    ``repeated`` numeric fields are packed when encoded and accepted packed or
    unpacked when decoded. ``oneof`` names the group of a oneof member: such a
    field is ``None`` when absent and written whenever it is not ``None``.
    A singular ``MESSAGE`` field is ``None`` when absent.
    """

    number: int
    name: str
    kind: Kind
    repeated: bool = False
    message: Any = None
    enum: Any = None
    oneof: str | None = None

    @property
    def packed(self) -> bool:
        return self.repeated and WIRE_TYPE[self.kind] != LEN


F = FieldSpec
K = Kind

SCHEMAS: dict[type[Any], tuple[FieldSpec, ...]] = {
    m.Label: (F(1, "name", K.STRING), F(2, "value", K.STRING)),
    m.Sample: (F(1, "value", K.DOUBLE), F(2, "timestamp", K.INT64)),
    m.Exemplar: (
        F(1, "labels", K.MESSAGE, True, m.Label),
        F(2, "value", K.DOUBLE),
        F(3, "timestamp", K.INT64),
    ),
    m.BucketSpan: (F(1, "offset", K.SINT32), F(2, "length", K.UINT32)),
    m.Histogram: (
        F(1, "count_int", K.UINT64, oneof="count"),
        F(2, "count_float", K.DOUBLE, oneof="count"),
        F(3, "sum", K.DOUBLE),
        F(4, "schema", K.SINT32),
        F(5, "zero_threshold", K.DOUBLE),
        F(6, "zero_count_int", K.UINT64, oneof="zero_count"),
        F(7, "zero_count_float", K.DOUBLE, oneof="zero_count"),
        F(8, "negative_spans", K.MESSAGE, True, m.BucketSpan),
        F(9, "negative_deltas", K.SINT64, True),
        F(10, "negative_counts", K.DOUBLE, True),
        F(11, "positive_spans", K.MESSAGE, True, m.BucketSpan),
        F(12, "positive_deltas", K.SINT64, True),
        F(13, "positive_counts", K.DOUBLE, True),
        F(14, "reset_hint", K.ENUM, enum=m.ResetHint),
        F(15, "timestamp", K.INT64),
        F(16, "custom_values", K.DOUBLE, True),
    ),
    m.TimeSeries: (
        F(1, "labels", K.MESSAGE, True, m.Label),
        F(2, "samples", K.MESSAGE, True, m.Sample),
        F(3, "exemplars", K.MESSAGE, True, m.Exemplar),
        F(4, "histograms", K.MESSAGE, True, m.Histogram),
    ),
    m.MetricMetadata: (
        F(1, "type", K.ENUM, enum=m.MetricType),
        F(2, "metric_family_name", K.STRING),
        F(4, "help", K.STRING),
        F(5, "unit", K.STRING),
    ),
    m.WriteRequest: (
        F(1, "timeseries", K.MESSAGE, True, m.TimeSeries),
        F(3, "metadata", K.MESSAGE, True, m.MetricMetadata),
    ),
    m.LabelMatcher: (
        F(1, "type", K.ENUM, enum=m.MatchType),
        F(2, "name", K.STRING),
        F(3, "value", K.STRING),
    ),
    m.ReadHints: (
        F(1, "step_ms", K.INT64),
        F(2, "func", K.STRING),
        F(3, "start_ms", K.INT64),
        F(4, "end_ms", K.INT64),
        F(5, "grouping", K.STRING, True),
        F(6, "by", K.BOOL),
        F(7, "range_ms", K.INT64),
    ),
    m.Query: (
        F(1, "start_timestamp_ms", K.INT64),
        F(2, "end_timestamp_ms", K.INT64),
        F(3, "matchers", K.MESSAGE, True, m.LabelMatcher),
        F(4, "hints", K.MESSAGE, False, m.ReadHints),
    ),
    m.ReadRequest: (
        F(1, "queries", K.MESSAGE, True, m.Query),
        F(2, "accepted_response_types", K.ENUM, True, enum=m.ResponseType),
    ),
    m.QueryResult: (F(1, "timeseries", K.MESSAGE, True, m.TimeSeries),),
    m.ReadResponse: (F(1, "results", K.MESSAGE, True, m.QueryResult),),
    m.Chunk: (
        F(1, "min_time_ms", K.INT64),
        F(2, "max_time_ms", K.INT64),
        F(3, "type", K.ENUM, enum=m.ChunkEncoding),
        F(4, "data", K.BYTES),
    ),
    m.ChunkedSeries: (
        F(1, "labels", K.MESSAGE, True, m.Label),
        F(2, "chunks", K.MESSAGE, True, m.Chunk),
    ),
    m.ChunkedReadResponse: (
        F(1, "chunked_series", K.MESSAGE, True, m.ChunkedSeries),
        F(2, "query_index", K.INT64),
    ),
}


def register(cls: type[Any], fields: tuple[FieldSpec, ...]) -> None:
    """Add a message class (used by the remote write 2.0 module)."""
    SCHEMAS[cls] = tuple(sorted(fields, key=lambda f: f.number))
