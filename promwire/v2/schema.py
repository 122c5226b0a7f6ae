"""Field tables of the remote write 2.0 messages, registered with :mod:`promwire.schema`.

Importing this module (``import promwire.v2`` does) makes ``promwire.decode``,
``promwire.encode``, ``to_dict``/``from_dict`` and ``promwire.testing.canonical``
work for the classes of :mod:`promwire.v2.messages`.
"""

from __future__ import annotations

from ..schema import SCHEMAS, FieldSpec, Kind, register
from . import messages as v2

__all__ = ["FIELDS"]

F = FieldSpec
K = Kind

#: Field tables keyed by class, from ``io/prometheus/write/v2/types.proto``.
FIELDS: dict[type[object], tuple[FieldSpec, ...]] = {
    v2.Sample: (
        F(1, "value", K.DOUBLE),
        F(2, "timestamp", K.INT64),
        F(3, "start_timestamp", K.INT64),
    ),
    v2.Exemplar: (
        F(1, "labels_refs", K.UINT32, True),
        F(2, "value", K.DOUBLE),
        F(3, "timestamp", K.INT64),
    ),
    v2.Histogram: (
        F(1, "count_int", K.UINT64, oneof="count"),
        F(2, "count_float", K.DOUBLE, oneof="count"),
        F(3, "sum", K.DOUBLE),
        F(4, "schema", K.SINT32),
        F(5, "zero_threshold", K.DOUBLE),
        F(6, "zero_count_int", K.UINT64, oneof="zero_count"),
        F(7, "zero_count_float", K.DOUBLE, oneof="zero_count"),
        F(8, "negative_spans", K.MESSAGE, True, v2.BucketSpan),
        F(9, "negative_deltas", K.SINT64, True),
        F(10, "negative_counts", K.DOUBLE, True),
        F(11, "positive_spans", K.MESSAGE, True, v2.BucketSpan),
        F(12, "positive_deltas", K.SINT64, True),
        F(13, "positive_counts", K.DOUBLE, True),
        F(14, "reset_hint", K.ENUM, enum=v2.ResetHint),
        F(15, "timestamp", K.INT64),
        F(16, "custom_values", K.DOUBLE, True),
        F(17, "start_timestamp", K.INT64),
    ),
    v2.Metadata: (
        F(1, "type", K.ENUM, enum=v2.MetricType),
        F(3, "help_ref", K.UINT32),
        F(4, "unit_ref", K.UINT32),
    ),
    v2.TimeSeries: (
        F(1, "labels_refs", K.UINT32, True),
        F(2, "samples", K.MESSAGE, True, v2.Sample),
        F(3, "histograms", K.MESSAGE, True, v2.Histogram),
        F(4, "exemplars", K.MESSAGE, True, v2.Exemplar),
        F(5, "metadata", K.MESSAGE, False, v2.Metadata),
    ),
    v2.Request: (
        F(4, "symbols", K.STRING, True),
        F(5, "timeseries", K.MESSAGE, True, v2.TimeSeries),
    ),
}

for _cls, _fields in FIELDS.items():
    if _cls not in SCHEMAS:
        register(_cls, _fields)
