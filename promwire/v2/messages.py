"""Message classes of remote write 2.0 (protobuf package ``io.prometheus.write.v2``).

They mirror ``prompb/io/prometheus/write/v2/types.proto`` field for field,
with the same names, and follow the conventions of :mod:`promwire.codec.messages`
(proto3 defaults as Python defaults, enums accept plain ``int`` for numbers
promwire does not know, floats keep their bits, histogram oneofs keep
presence with ``None`` for "absent").

Strings are not carried inline: ``labels_refs``, ``help_ref`` and
``unit_ref`` are indexes into :attr:`Request.symbols`. Build them with
:class:`promwire.v2.symbols.SymbolTable`; resolve them with
:func:`promwire.v2.convert.to_v1` or :func:`promwire.v2.symbols.resolve_labels`.

Field 6 of ``TimeSeries`` (``int64 created_timestamp``) is the 2.0-rc.3
form of a start timestamp, sent by Prometheus v2.54 to v3.8 and reserved
since rc.4 (v3.9), where per-sample ``start_timestamp`` replaced it. promwire
reads both: ``decode`` keeps field 6 in :attr:`TimeSeries.created_timestamp`
(the receiver's checks then give it to the series' samples and histograms
without a ``start_timestamp`` of their own), and ``encode`` writes it only
when it is set (0 = unset), so promwire's own sender speaks rc.4.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

from ..codec.messages import BucketSpan

__all__ = [
    "BucketSpan",
    "Exemplar",
    "Histogram",
    "Metadata",
    "MetricType",
    "Request",
    "ResetHint",
    "Sample",
    "TimeSeries",
]


class MetricType(enum.IntEnum):
    """``Metadata.MetricType`` (same numbers as v1's ``MetricMetadata.MetricType``)."""

    METRIC_TYPE_UNSPECIFIED = 0
    METRIC_TYPE_COUNTER = 1
    METRIC_TYPE_GAUGE = 2
    METRIC_TYPE_HISTOGRAM = 3
    METRIC_TYPE_GAUGEHISTOGRAM = 4
    METRIC_TYPE_SUMMARY = 5
    METRIC_TYPE_INFO = 6
    METRIC_TYPE_STATESET = 7


class ResetHint(enum.IntEnum):
    """``Histogram.ResetHint`` (same numbers as v1's, names prefixed)."""

    RESET_HINT_UNSPECIFIED = 0
    RESET_HINT_YES = 1
    RESET_HINT_NO = 2
    RESET_HINT_GAUGE = 3


# Annotations inside Histogram/Metadata would otherwise resolve to their
# nested ``ResetHint``/``MetricType`` class attributes (protobuf-style access).
_ResetHint = ResetHint
_MetricType = MetricType


@dataclass(slots=True)
class Sample:
    """A float sample: ``value`` (1), ``timestamp`` (2), ``start_timestamp`` (3, 0 = unset); ms."""

    value: float = 0.0
    timestamp: int = 0
    start_timestamp: int = 0


@dataclass(slots=True)
class Exemplar:
    """An exemplar: ``labels_refs`` (1, packed uint32 pairs), ``value`` (2), ``timestamp`` (3)."""

    labels_refs: list[int] = field(default_factory=list)
    value: float = 0.0
    timestamp: int = 0


@dataclass(slots=True)
class Histogram:
    """A native histogram sample: v1's ``Histogram`` fields 1-16 plus ``start_timestamp`` (17).

    As in v1, ``count_float`` present means a float histogram (``*_counts``),
    otherwise an integer one (``*_deltas``).
    """

    ResetHint: ClassVar[type[ResetHint]] = ResetHint

    count_int: int | None = None  # 1 uint64, oneof count
    count_float: float | None = None  # 2 double, oneof count
    sum: float = 0.0  # 3 double
    schema: int = 0  # 4 sint32
    zero_threshold: float = 0.0  # 5 double
    zero_count_int: int | None = None  # 6 uint64, oneof zero_count
    zero_count_float: float | None = None  # 7 double, oneof zero_count
    negative_spans: list[BucketSpan] = field(default_factory=list)  # 8
    negative_deltas: list[int] = field(default_factory=list)  # 9 packed sint64
    negative_counts: list[float] = field(default_factory=list)  # 10 packed double
    positive_spans: list[BucketSpan] = field(default_factory=list)  # 11
    positive_deltas: list[int] = field(default_factory=list)  # 12 packed sint64
    positive_counts: list[float] = field(default_factory=list)  # 13 packed double
    reset_hint: _ResetHint | int = _ResetHint.RESET_HINT_UNSPECIFIED  # 14 enum
    timestamp: int = 0  # 15 int64
    custom_values: list[float] = field(default_factory=list)  # 16 packed double
    start_timestamp: int = 0  # 17 int64 (tag 88 01)

    @property
    def is_float(self) -> bool:
        """True for a float histogram (``count_float`` present)."""
        return self.count_float is not None


@dataclass(slots=True)
class Metadata:
    """Series metadata: ``type`` (1), ``help_ref`` (3) and ``unit_ref`` (4); no field 2.

    Unset help/unit point to symbol 0, the empty string.
    """

    MetricType: ClassVar[type[MetricType]] = MetricType

    type: _MetricType | int = _MetricType.METRIC_TYPE_UNSPECIFIED
    help_ref: int = 0
    unit_ref: int = 0


@dataclass(slots=True)
class TimeSeries:
    """One series: label refs, samples or histograms, exemplars, metadata.

    ``metadata`` is ``None`` when absent on the wire; ``Metadata()`` is present
    but empty (``2a 00``, what Prometheus sends when it knows nothing).
    """

    labels_refs: list[int] = field(default_factory=list)  # 1 packed uint32
    samples: list[Sample] = field(default_factory=list)  # 2
    histograms: list[Histogram] = field(default_factory=list)  # 3
    exemplars: list[Exemplar] = field(default_factory=list)  # 4
    metadata: Metadata | None = None  # 5
    created_timestamp: int = 0  # 6 int64, rc.3 only (0 = unset), see the module docstring


@dataclass(slots=True)
class Request:
    """Remote write 2.0 request body: ``symbols`` (4) and ``timeseries`` (5); 1-3 reserved.

    ``symbols[0]`` must be ``""``. Because fields 1-3 are reserved, a v2 body
    decodes as an *empty* v1 ``WriteRequest`` and the other way round: only
    Content-Type tells them apart.
    """

    symbols: list[str] = field(default_factory=list)
    timeseries: list[TimeSeries] = field(default_factory=list)
