"""Message classes of Prometheus' ``prometheus`` protobuf package.

These mirror ``prompb/types.proto`` and ``prompb/remote.proto`` field for
field, with the same names. They hold data only: the wire codec lives in
:mod:`promwire.decode` and :mod:`promwire.encode`.

Conventions
-----------
* proto3 defaults are the Python defaults (``0``, ``0.0``, ``""``, empty list).
* Enum fields accept the enum or a plain ``int``: a number this version of
  promwire does not know decodes to a plain ``int`` and encodes back unchanged.
* ``Label``, ``BucketSpan`` and ``LabelMatcher`` are frozen (hashable, safe to
  share between series: the decoder hands out cached instances). Everything
  else is a mutable slotted dataclass.
* Float fields keep their exact bit pattern: the stale marker
  (:data:`STALE_NAN_BITS`) survives decode and encode. Compare floats by bits
  (:func:`promwire.codec.wire.double_bits`), never with ``==``.
* Histogram oneofs keep presence: an absent member is ``None``, a present
  zero is ``0``/``0.0``. Setting both members of one oneof is an encode error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    "STALE_NAN_BITS",
    "BucketSpan",
    "Chunk",
    "ChunkEncoding",
    "ChunkedReadResponse",
    "ChunkedSeries",
    "Exemplar",
    "Histogram",
    "Label",
    "LabelMatcher",
    "MatchType",
    "MetricMetadata",
    "MetricType",
    "Query",
    "QueryResult",
    "ReadHints",
    "ReadRequest",
    "ReadResponse",
    "ResetHint",
    "ResponseType",
    "Sample",
    "TimeSeries",
    "WriteRequest",
]

#: Bit pattern of Prometheus' staleness marker (a signalling NaN).
STALE_NAN_BITS = 0x7FF0000000000002


# --------------------------------------------------------------------- types.proto


class MetricType(enum.IntEnum):
    """``MetricMetadata.MetricType``."""

    UNKNOWN = 0
    COUNTER = 1
    GAUGE = 2
    HISTOGRAM = 3
    GAUGEHISTOGRAM = 4
    SUMMARY = 5
    INFO = 6
    STATESET = 7


class ResetHint(enum.IntEnum):
    """``Histogram.ResetHint``."""

    UNKNOWN = 0
    YES = 1
    NO = 2
    GAUGE = 3


class ChunkEncoding(enum.IntEnum):
    """``Chunk.Encoding`` (mirrors TSDB ``chunkenc.Encoding``)."""

    UNKNOWN = 0
    XOR = 1
    HISTOGRAM = 2
    FLOAT_HISTOGRAM = 3
    XOR2 = 4
    HISTOGRAM_ST = 5
    FLOAT_HISTOGRAM_ST = 6


class MatchType(enum.IntEnum):
    """``LabelMatcher.Type``."""

    EQ = 0
    NEQ = 1
    RE = 2
    NRE = 3


class ResponseType(enum.IntEnum):
    """``ReadRequest.ResponseType``."""

    SAMPLES = 0
    STREAMED_XOR_CHUNKS = 1


# Annotations inside the classes below would otherwise resolve to their nested
# enum class attributes (``LabelMatcher.Type`` etc., protobuf-style access).
_MetricType = MetricType
_ResetHint = ResetHint
_ChunkEncoding = ChunkEncoding
_MatchType = MatchType
_ResponseType = ResponseType


@dataclass(frozen=True, slots=True)
class Label:
    """One label pair (field 1 ``name``, field 2 ``value``)."""

    name: str = ""
    value: str = ""


@dataclass(slots=True)
class Sample:
    """A float sample: ``value`` (1, double) at ``timestamp`` ms (2, int64)."""

    value: float = 0.0
    timestamp: int = 0


@dataclass(slots=True)
class Exemplar:
    """An exemplar: labels (1), value (2, double), timestamp ms (3, int64)."""

    labels: list[Label] = field(default_factory=list)
    value: float = 0.0
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class BucketSpan:
    """A run of native-histogram buckets: ``offset`` (1, sint32), ``length`` (2, uint32)."""

    offset: int = 0
    length: int = 0


@dataclass(slots=True)
class Histogram:
    """A native histogram sample (integer or float flavour).

    The flavour is decided by which ``count`` oneof member is present:
    ``count_float`` set means a float histogram (``*_counts``), otherwise an
    integer one (``*_deltas``).
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
    reset_hint: _ResetHint | int = _ResetHint.UNKNOWN  # 14 enum
    timestamp: int = 0  # 15 int64
    custom_values: list[float] = field(default_factory=list)  # 16 packed double

    @property
    def is_float(self) -> bool:
        """True for a float histogram (``count_float`` present)."""
        return self.count_float is not None


@dataclass(slots=True)
class TimeSeries:
    """Labels plus samples, exemplars and native histograms of one series."""

    labels: list[Label] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    exemplars: list[Exemplar] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)


@dataclass(slots=True)
class MetricMetadata:
    """Metadata of one metric family (fields 1, 2, 4, 5; 3 is unused)."""

    MetricType: ClassVar[type[MetricType]] = MetricType

    type: _MetricType | int = _MetricType.UNKNOWN
    metric_family_name: str = ""
    help: str = ""
    unit: str = ""


# -------------------------------------------------------------------- remote.proto


@dataclass(slots=True)
class WriteRequest:
    """Remote write 1.0 request body: ``timeseries`` (1) and ``metadata`` (3)."""

    timeseries: list[TimeSeries] = field(default_factory=list)
    metadata: list[MetricMetadata] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """A label matcher: ``type`` (1), ``name`` (2), ``value`` (3)."""

    Type: ClassVar[type[MatchType]] = MatchType

    type: _MatchType | int = _MatchType.EQ
    name: str = ""
    value: str = ""


@dataclass(slots=True)
class ReadHints:
    """Query hints Prometheus passes along (all optional)."""

    step_ms: int = 0  # 1
    func: str = ""  # 2
    start_ms: int = 0  # 3
    end_ms: int = 0  # 4
    grouping: list[str] = field(default_factory=list)  # 5
    by: bool = False  # 6
    range_ms: int = 0  # 7


@dataclass(slots=True)
class Query:
    """One remote-read query. ``hints`` is ``None`` when absent on the wire."""

    start_timestamp_ms: int = 0
    end_timestamp_ms: int = 0
    matchers: list[LabelMatcher] = field(default_factory=list)
    hints: ReadHints | None = None


@dataclass(slots=True)
class ReadRequest:
    """Remote read request: queries (1) and the accepted response types (2, packed)."""

    ResponseType: ClassVar[type[ResponseType]] = ResponseType

    queries: list[Query] = field(default_factory=list)
    accepted_response_types: list[_ResponseType | int] = field(default_factory=list)


@dataclass(slots=True)
class QueryResult:
    """The series answering one query (samples time-ordered)."""

    timeseries: list[TimeSeries] = field(default_factory=list)


@dataclass(slots=True)
class ReadResponse:
    """SAMPLES response: one ``QueryResult`` per query, in request order."""

    results: list[QueryResult] = field(default_factory=list)


@dataclass(slots=True)
class Chunk:
    """A TSDB chunk: inclusive time range, encoding and raw bytes."""

    Encoding: ClassVar[type[ChunkEncoding]] = ChunkEncoding

    min_time_ms: int = 0
    max_time_ms: int = 0
    type: _ChunkEncoding | int = _ChunkEncoding.UNKNOWN
    data: bytes = b""


@dataclass(slots=True)
class ChunkedSeries:
    """One series of a streamed response: sorted labels and its chunks."""

    labels: list[Label] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


@dataclass(slots=True)
class ChunkedReadResponse:
    """One frame's message in a STREAMED_XOR_CHUNKS response."""

    chunked_series: list[ChunkedSeries] = field(default_factory=list)
    query_index: int = 0
