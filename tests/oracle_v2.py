"""protobuf's own (upb) implementation of ``io.prometheus.write.v2``, built at runtime.

The descriptors of ``prompb/io/prometheus/write/v2/types.proto`` are written
out field by field with ``descriptor_pb2`` (names, numbers, types, oneofs,
nested enums as in the .proto), added to a private descriptor pool and turned
into classes by ``message_factory``: no protoc, no generated code.

``CLASSES`` is the schema promwire reads: the current one (rc.4) plus the
``int64 created_timestamp = 6`` that ``TimeSeries`` carried in rc.3, from
Prometheus v2.54 to v3.8 (reserved since). ``LEGACY`` is the same classes,
named for the tests that produce bytes of those older senders.
``to_oracle`` / ``from_oracle`` copy between promwire and oracle messages.
"""

from __future__ import annotations

from typing import Any

from promwire.v2 import messages as v2
from tests.oracle import (
    OPT,
    REP,
    T_DOUBLE,
    T_ENUM,
    T_INT64,
    T_MSG,
    T_SINT32,
    T_SINT64,
    T_STRING,
    T_UINT32,
    T_UINT64,
    Field,
    build_classes,
    file_descriptor,
    fill,
)
from tests.oracle import from_oracle as _from_oracle

PACKAGE = "io.prometheus.write.v2"
FILENAME = "io/prometheus/write/v2/types.proto"

ENUMS: dict[str, list[tuple[str, int]]] = {
    "Metadata.MetricType": [
        ("METRIC_TYPE_UNSPECIFIED", 0),
        ("METRIC_TYPE_COUNTER", 1),
        ("METRIC_TYPE_GAUGE", 2),
        ("METRIC_TYPE_HISTOGRAM", 3),
        ("METRIC_TYPE_GAUGEHISTOGRAM", 4),
        ("METRIC_TYPE_SUMMARY", 5),
        ("METRIC_TYPE_INFO", 6),
        ("METRIC_TYPE_STATESET", 7),
    ],
    "Histogram.ResetHint": [
        ("RESET_HINT_UNSPECIFIED", 0),
        ("RESET_HINT_YES", 1),
        ("RESET_HINT_NO", 2),
        ("RESET_HINT_GAUGE", 3),
    ],
}

MESSAGES: dict[str, list[Field]] = {
    "Request": [
        ("symbols", 4, T_STRING, REP, None, None),
        ("timeseries", 5, T_MSG, REP, "TimeSeries", None),
    ],
    "TimeSeries": [
        ("labels_refs", 1, T_UINT32, REP, None, None),
        ("samples", 2, T_MSG, REP, "Sample", None),
        ("histograms", 3, T_MSG, REP, "Histogram", None),
        ("exemplars", 4, T_MSG, REP, "Exemplar", None),
        ("metadata", 5, T_MSG, OPT, "Metadata", None),
        ("created_timestamp", 6, T_INT64, OPT, None, None),
    ],
    "Exemplar": [
        ("labels_refs", 1, T_UINT32, REP, None, None),
        ("value", 2, T_DOUBLE, OPT, None, None),
        ("timestamp", 3, T_INT64, OPT, None, None),
    ],
    "Sample": [
        ("value", 1, T_DOUBLE, OPT, None, None),
        ("timestamp", 2, T_INT64, OPT, None, None),
        ("start_timestamp", 3, T_INT64, OPT, None, None),
    ],
    "Metadata": [
        ("type", 1, T_ENUM, OPT, "Metadata.MetricType", None),
        ("help_ref", 3, T_UINT32, OPT, None, None),
        ("unit_ref", 4, T_UINT32, OPT, None, None),
    ],
    "Histogram": [
        ("count_int", 1, T_UINT64, OPT, None, "count"),
        ("count_float", 2, T_DOUBLE, OPT, None, "count"),
        ("sum", 3, T_DOUBLE, OPT, None, None),
        ("schema", 4, T_SINT32, OPT, None, None),
        ("zero_threshold", 5, T_DOUBLE, OPT, None, None),
        ("zero_count_int", 6, T_UINT64, OPT, None, "zero_count"),
        ("zero_count_float", 7, T_DOUBLE, OPT, None, "zero_count"),
        ("negative_spans", 8, T_MSG, REP, "BucketSpan", None),
        ("negative_deltas", 9, T_SINT64, REP, None, None),
        ("negative_counts", 10, T_DOUBLE, REP, None, None),
        ("positive_spans", 11, T_MSG, REP, "BucketSpan", None),
        ("positive_deltas", 12, T_SINT64, REP, None, None),
        ("positive_counts", 13, T_DOUBLE, REP, None, None),
        ("reset_hint", 14, T_ENUM, OPT, "Histogram.ResetHint", None),
        ("timestamp", 15, T_INT64, OPT, None, None),
        ("custom_values", 16, T_DOUBLE, REP, None, None),
        ("start_timestamp", 17, T_INT64, OPT, None, None),
    ],
    "BucketSpan": [
        ("offset", 1, T_SINT32, OPT, None, None),
        ("length", 2, T_UINT32, OPT, None, None),
    ],
}

#: Reserved ranges of the current .proto (kept in the descriptor for fidelity).
RESERVED: dict[str, list[tuple[int, int]]] = {"Request": [(1, 4)]}


#: Oracle classes of the current v2 schema, by message name.
CLASSES = build_classes(
    file_descriptor(PACKAGE, MESSAGES, ENUMS, reserved=RESERVED, filename=FILENAME)
)

#: The rc.3 field is part of CLASSES (promwire reads it): the legacy tests use the same classes.
LEGACY = CLASSES

#: promwire v2 class -> oracle class.
ORACLE: dict[type[Any], Any] = {
    v2.Request: CLASSES["Request"],
    v2.TimeSeries: CLASSES["TimeSeries"],
    v2.Exemplar: CLASSES["Exemplar"],
    v2.Sample: CLASSES["Sample"],
    v2.Metadata: CLASSES["Metadata"],
    v2.Histogram: CLASSES["Histogram"],
    v2.BucketSpan: CLASSES["BucketSpan"],
}


def to_oracle(msg: Any, classes: dict[str, Any] | None = None) -> Any:
    """The oracle message with the same content as promwire v2 message ``msg``."""
    return fill((classes or CLASSES)[type(msg).__name__](), msg)


def from_oracle(cls: type[Any], pb: Any) -> Any:
    """The promwire message of class ``cls`` with the content of oracle message ``pb``."""
    return _from_oracle(cls, pb)
